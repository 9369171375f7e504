"""The induced library as functions of files: episodes per backbone, lessons per analyst slice, one
consolidated library per environment (masa.search.induction holds the logic).

The episodes are the search instances of the searched categories only, in the draw every search uses, played
with the starting library (deepen) or none (scratch): no held-out category and no evaluation instance ever
reaches a lesson, so the induced library is scored on instances it never saw. With the rollout cache on,
a deepen run whose starting library is the search's base replays episodes the searches already played.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from masa.config import with_schema_defaults
from masa.io import atomic_write_text, read_json, write_json
from masa.search.induction import (
    ConsolidationLog,
    Lesson,
    analyse,
    compact_episode,
    consolidate,
    episode_slice,
    into_library,
    reword_merged,
)
from masa.skills.library import SkillLibrary
from masa.stages.context import Machine, env_run, load_base_library, make_teacher, open_context
from masa.stages.records import searched_categories, teacher_usage
from masa.teacher.teachers import transcript_records

COST_FIELDS = ("steps", "no_op_steps", "llm_calls", "prompt_tokens", "completion_tokens", "seconds")


def play_induction_episodes(
    backbone: dict[str, Any],
    env: dict[str, Any],
    run: dict[str, Any],
    heldout: list[str],
    start_library: str | None,
    model_dir: str | None,
    out_path: str,
    threads: int | None = None,
    machine: Machine | None = None,
) -> dict[str, Any]:
    """``backbone``'s episodes on the searched categories' search instances with ``start_library`` (None:
    no skills), compact (masa.search.induction.compact_episode), with what they cost."""
    ctx = open_context(backbone, env, run, model_dir, start_library, "search", threads, machine=machine)
    suite = [t for c in searched_categories(ctx.env.categories(), heldout) for t in ctx.tasks.search[c]]
    library = ctx.base if start_library else None
    try:
        played = ctx.evaluator.run(library, suite, label=f"{backbone['name']} induction episodes").episodes
    finally:
        ctx.close()
    episodes = [compact_episode(backbone["name"], 0, e) for e in played]  # Evaluator.run's one seed, 0
    out = {"backbone": backbone["name"], "env": env["name"], "library": start_library, "episodes": episodes}
    write_json(out_path, out)
    return out


def analyse_episodes(
    teacher_spec: dict[str, Any],
    teacher_model_dir: str | None,
    env: str,
    episodes_paths: list[str],
    categories: list[str],
    index: int,
    analysts: int,
    most: int,
    seed: int,
    out_path: str,
    threads: int | None = None,
) -> list[Lesson]:
    """Analyst ``index`` of ``analysts``: its slice of every backbone's episodes, and the lessons drawn from
    it (the teacher's when valid, else the deterministic analyst's), with the teacher's transcript and usage."""
    started = time.monotonic()
    episodes = [e for path in sorted(episodes_paths) for e in read_json(path)["episodes"]]
    share = episode_slice(episodes, index, analysts)
    teacher = make_teacher(teacher_spec, teacher_model_dir, SkillLibrary(), threads)
    tokens = with_schema_defaults(teacher_spec, "teacher")["max_new_tokens"]
    lessons = analyse(teacher, env, share, categories, most, seed + index, tokens)
    write_json(
        out_path,
        {
            "slice": index,
            "analysts": analysts,
            "episodes": sorted(f"{e['backbone']}/{e['task']}/{e['seed']}" for e in share),
            "lessons": [lesson.as_dict() for lesson in lessons],
            "usage": teacher_usage(teacher),
            "seconds": time.monotonic() - started,
            "teacher": transcript_records(teacher.transcript),
        },
    )
    return lessons


def consolidate_lessons(
    teacher_spec: dict[str, Any],
    teacher_model_dir: str | None,
    env: str,
    start_library: str | None,
    run: dict[str, Any],
    seed: int,
    lessons_paths: list[str],
    episodes_paths: list[str],
    out_library: str,
    out_log: str,
    out_record: str,
    out_transcript: str,
    threads: int | None = None,
) -> SkillLibrary:
    """The analysts' lessons merged into one library (masa.search.induction.consolidate, the merged ones
    reworded by the teacher where it answers validly, then ``into_library`` on ``start_library``, the deepen
    mode's given library, or on nothing from scratch).

    The record prices the whole induction, shared by every backbone that plays the library: every
    backbone's episodes (at their recorded cost, like a search's) and every teacher call, the analysts' and
    this stage's; the transcript holds all those calls, the analysts' first (by slice)."""
    started = time.monotonic()
    analysts = sorted((read_json(path) for path in lessons_paths), key=lambda a: a["slice"])
    slices = {a["slice"]: [Lesson.from_dict(x) for x in a["lessons"]] for a in analysts}
    log = ConsolidationLog()
    teacher = make_teacher(teacher_spec, teacher_model_dir, SkillLibrary(), threads)
    tokens = with_schema_defaults(teacher_spec, "teacher")["max_new_tokens"]
    lessons = reword_merged(teacher, consolidate(slices, log), log, seed, tokens)
    start = load_base_library(start_library, env_run(run, env)) if start_library else SkillLibrary()
    library = into_library(start, lessons, log)
    library.save(out_library)
    write_json(
        out_log, {"env": env, "start_library": start_library, "lessons": len(lessons), **log.as_dict()}
    )
    usages = [a["usage"] for a in analysts] + [teacher_usage(teacher)]
    episodes = [
        {k: e[k] for k in COST_FIELDS} for path in sorted(episodes_paths) for e in read_json(path)["episodes"]
    ]
    write_json(
        out_record,
        {
            "usage": {
                k: sum(u.get(k, 0) for u in usages) for k in ("calls", "prompt_tokens", "completion_tokens")
            },
            "teacher_seconds": sum(u.get("seconds", 0.0) for u in usages),
            "seconds": sum(a["seconds"] for a in analysts) + time.monotonic() - started,
            "episodes": episodes,
        },
    )
    calls = [{"slice": a["slice"], **call} for a in analysts for call in a["teacher"]]
    calls += [{"slice": None, **call} for call in transcript_records(teacher.transcript)]
    lines = [json.dumps(call, ensure_ascii=False) for call in calls]
    atomic_write_text(Path(out_transcript), "\n".join(lines) + ("\n" if lines else ""))
    return library
