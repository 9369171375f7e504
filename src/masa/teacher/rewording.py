"""The teacher rewords a library at a level of detail (the granularity study), one skill group at a time.

A reply must give one principle per input skill, in order, averaging within a factor of two of the level's
word target (``masa.skills.granularity.level_words``); titles, ids and conditions are never taken from it.
Without a valid reply the group falls back to ``truncated_principle`` and the transcript says so.
"""

from __future__ import annotations

import json
from statistics import fmean

from masa.skills.granularity import (
    level_name,
    level_words,
    shown_groups,
    truncated_principle,
    with_principles,
    words,
)
from masa.skills.library import LibraryFormatError, Skill, SkillLibrary
from masa.teacher.teachers import Teacher, first_json_array, list_reply, record

REWORD_PROMPT = """Reword the principle of each of these {count} skills at the {name} level of detail:
about {words} words per principle ({level} of {levels} levels, 1 the most concise). Keep every skill's meaning
and its order; change only how much it says, not what it asks for.
Skills (JSON list):
{skills}

Answer as a JSON list of {count} objects with keys "title" (unchanged) and "principle" (reworded).
Output only the JSON list."""


# llama.cpp's grammar parser runs out of recursion depth on long strings, and where depends on the stack it
# runs on (measured: maxLength 480 compiles in a plain process, not under pytest; 560 in neither); 400
# keeps a margin and holds a detailed level's 48-word principle.
MAX_PRINCIPLE_CHARS = 400


def reword_schema(target: int, count: int) -> dict:
    """The reply's shape: ``count`` (title, principle) records, a principle up to eight characters a word (within MAX_PRINCIPLE_CHARS)."""
    return list_reply(
        "skills", record({"title": 80, "principle": min(MAX_PRINCIPLE_CHARS, 8 * target + 40)}), count
    )


def parse_principles(reply: str, skills: list[Skill], target: int) -> list[str]:
    """One non-empty principle per skill whose mean length is within a factor of two of ``target`` words."""
    items = first_json_array(reply)
    if len(items) != len(skills):
        raise LibraryFormatError(f"reply has {len(items)} skills, the group has {len(skills)}")
    principles = []
    for i, item in enumerate(items):
        text = item.get("principle") if isinstance(item, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise LibraryFormatError(f"reply[{i}] has no principle")
        principles.append(" ".join(text.split()))
    mean = fmean(words(p) for p in principles)
    if not target / 2 <= mean <= 2 * target:
        raise LibraryFormatError(f"principles average {mean:.0f} words; this level asks for about {target}")
    return principles


def reword_library(
    teacher: Teacher,
    base: SkillLibrary,
    level: int,
    levels: int,
    seed: int,
    categories: list[str] | None = None,
) -> tuple[SkillLibrary, dict[str, str]]:
    """``base`` at ``level`` of ``levels`` and, per skill group, where its text came from ("llm" or
    "truncated"). Only the general skills and those of ``categories`` (None: all) are reworded: the agent
    is never shown another category's skills, so rewording them would cost teacher calls for nothing."""
    target = level_words(level, levels)
    principles: dict[str, list[str]] = {}
    sources = {}
    for index, (scope, skills) in enumerate(shown_groups(base, categories).items()):
        if not skills:
            continue
        shown = json.dumps([{"title": s.title, "principle": s.principle} for s in skills], ensure_ascii=False)
        prompt = REWORD_PROMPT.format(
            count=len(skills),
            name=level_name(level, levels),
            words=target,
            level=level,
            levels=levels,
            skills=shown,
        )
        schema = reword_schema(target, len(skills))
        tokens = min(1200, 2 * target * len(skills) + 40 * len(skills) + 40)
        reply = teacher.ask(
            f"reword level {level}",
            prompt,
            lambda text, skills=skills: parse_principles(text, skills, target),
            schema,
            '[{"title": "',
            seed + 100 * level + index,
            tokens,
        )
        if reply is None:
            reply = [truncated_principle(s, level, levels) for s in skills]
            teacher.fell_back(f"reword level {level}", json.dumps({scope: reply}, ensure_ascii=False))
            sources[scope] = "truncated"
        else:
            sources[scope] = "llm"
        principles[scope] = reply
    return with_principles(base, principles), sources
