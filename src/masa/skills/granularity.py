"""Levels of detail of one library, for the granularity study (the MASA paper's section 2).

A level rewords only the skills' principles: ids, titles, when-to-apply conditions, categories and the
common mistakes stay the base library's, so level k and the base differ in how much they say, not in what
they are about. Level 1 is the most concise, level n the most detailed; ``level_words`` is the principle
length each level asks for, spaced geometrically from a short imperative to a short paragraph.
"""

from __future__ import annotations

import math
from dataclasses import replace

from masa.skills.library import Skill, SkillLibrary

CONCISE_WORDS = 8  # level 1: a short imperative ("Open a receptacle before searching it.")
DETAILED_WORDS = 48  # level n: the principle with its reasons and conditions spelled out (2-3 sentences)


def level_words(level: int, levels: int) -> int:
    """Words per principle that ``level`` of ``levels`` asks for."""
    return round(CONCISE_WORDS * (DETAILED_WORDS / CONCISE_WORDS) ** ((level - 1) / (levels - 1)))


def level_name(level: int, levels: int) -> str:
    if level == 1:
        return "concise"
    return "detailed" if level == levels else "moderate"


def words(text: str) -> int:
    return len(text.split())


def shown_groups(library: SkillLibrary, categories: list[str] | None = None) -> dict[str, list[Skill]]:
    """The groups the agent is shown: the general skills and those of ``categories`` (None: every one)."""
    return {
        g: ss for g, ss in groups_of(library).items() if categories is None or g in ["general", *categories]
    }


def principle_words(library: SkillLibrary, categories: list[str] | None = None) -> int:
    """The words of the principles the agent is shown (``shown_groups``): what the levels order."""
    return sum(words(s.principle) for ss in shown_groups(library, categories).values() for s in ss)


def groups_of(library: SkillLibrary) -> dict[str, list[Skill]]:
    """The skill groups a level rewords one at a time: "general", then each category."""
    return {"general": library.general_skills, **library.task_specific_skills}


def with_principles(library: SkillLibrary, principles: dict[str, list[str]]) -> SkillLibrary:
    """``library`` with each named group's principles replaced, in order (group as in ``groups_of``)."""
    reworded = {
        scope: [replace(s, principle=p) for s, p in zip(groups_of(library)[scope], texts, strict=True)]
        for scope, texts in principles.items()
    }
    out = library.with_general(reworded.get("general", library.general_skills))
    for category, skills in reworded.items():
        if category != "general":
            out = out.with_task_skills(category, skills)
    return out


def truncated_principle(skill: Skill, level: int, levels: int) -> str:
    """A principle at ``level`` without a model: the first k/n of the principle followed by its condition
    ("Especially when ..."), cut at a word. It keeps the principle's opening words and so its meaning at the
    top levels; at level 1 it is only the opening. The fallback when the teacher gives no valid rewording."""
    ladder = skill.principle.rstrip(". ").split()
    if skill.when_to_apply:
        condition = skill.when_to_apply.rstrip(". ")
        ladder += ["Especially", "when", condition[0].lower() + condition[1:]]
        ladder = " ".join(ladder).split()
    keep = max(3, math.ceil(len(ladder) * level / levels))
    return " ".join(ladder[:keep]).rstrip(",;:") + "."


def truncated_level(
    base: SkillLibrary, level: int, levels: int, categories: list[str] | None = None
) -> SkillLibrary:
    """Every shown group at ``level`` by ``truncated_principle``; the others as in ``base``."""
    shown = shown_groups(base, categories)
    return with_principles(
        base, {g: [truncated_principle(s, level, levels) for s in ss] for g, ss in shown.items()}
    )


def level_problems(
    base: SkillLibrary, levels: list[SkillLibrary], categories: list[str] | None = None
) -> list[str]:
    """What makes ``levels`` (level 1 first) not a rewording of ``base``: a changed skill id, title,
    condition or category, or shown principle lengths (``principle_words``) that do not grow strictly from
    level to level."""
    problems = []
    shape = [(s.skill_id, s.title, s.when_to_apply) for s in base.skills()]
    for k, library in enumerate(levels, 1):
        if [(s.skill_id, s.title, s.when_to_apply) for s in library.skills()] != shape:
            problems.append(f"level {k}: its skills (ids, titles, conditions) differ from the base library's")
        if {c: [s.skill_id for s in ss] for c, ss in library.task_specific_skills.items()} != {
            c: [s.skill_id for s in ss] for c, ss in base.task_specific_skills.items()
        }:
            problems.append(f"level {k}: its task skills are not in the base library's categories")
        if library.common_mistakes != base.common_mistakes:
            problems.append(f"level {k}: its common mistakes differ from the base library's")
    lengths = [principle_words(library, categories) for library in levels]
    for k in range(1, len(lengths)):
        if lengths[k] <= lengths[k - 1]:
            problems.append(
                f"level {k + 1} has {lengths[k]} principle words, level {k} {lengths[k - 1]}: "
                "lengths must grow from level to level"
            )
    return problems
