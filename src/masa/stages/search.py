"""The searching stages as functions of files: model profile, Stage 1, Stage 2, and the merged library."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from masa.candidates import Candidate, save_candidates, search_fingerprint
from masa.card import build_card, load_card
from masa.cost import Cost
from masa.envs.base import TaskInstance
from masa.hillclimb import HillClimbConfig, climb_general_skills
from masa.io import atomic_write_text, write_json, write_yaml
from masa.replies import log_rejections, teacher_record
from masa.rollout import episode_to_dict
from masa.runtime import Context, Machine, make_teacher, open_context
from masa.skills import SkillLibrary
from masa.teacher import LLMTeacher, Teacher, transcript_records
from masa.ucb import UCBConfig, search_task_skills

log = logging.getLogger(__name__)


def write_transcript(path: str | Path, teacher: Teacher) -> None:
    """Every teacher prompt and reply, one JSON object per line, next to the stage output."""
    lines = [json.dumps(r, ensure_ascii=False) for r in transcript_records(teacher.transcript)]
    atomic_write_text(Path(path), "\n".join(lines) + ("\n" if lines else ""))


def stage_record(
    candidates: list[Candidate], teacher: Teacher, started: float, **state: Any
) -> dict[str, Any]:
    """The stage's own record beside its candidates: the loop's final state, what its rollouts cost (cache
    hits counted apart, as free), the teacher's model usage and reply counts, and the wall-clock seconds."""
    return {
        **state,
        "cost": Cost.of([c.summary for c in candidates]).as_dict(),
        "teacher_usage": {**teacher_usage(teacher), "fallbacks": getattr(teacher, "fallbacks", 0)},
        "teacher": teacher_record(teacher),
        "wall_seconds": time.perf_counter() - started,
    }


def build_model_profile(
    backbone: dict[str, Any],
    env: dict[str, Any],
    run: dict[str, Any],
    teacher_spec: dict[str, Any],
    model_dir: str | None,
    teacher_model_dir: str | None,
    base_library: str,
    card_path: str,
    rollouts_path: str,
    transcript_path: str,
    threads: int | None = None,
    machine: Machine | None = None,
) -> dict[str, Any]:
    """The card: architecture from the weights, provenance from config, weaknesses from preliminary
    rollouts on the environment's dev split (checked disjoint from the search and evaluation splits)."""
    ctx = open_context(backbone, env, run, model_dir, base_library, "profile", threads, machine=machine)
    try:
        evaluation = ctx.evaluator.run(ctx.base, ctx.tasks.profile, label=f"{backbone['name']} profile")
    finally:
        ctx.close()
    teacher = make_teacher(teacher_spec, teacher_model_dir, ctx.base, threads)
    provenance = backbone["spec"].get("provenance", {})
    draft = build_card(Path(model_dir) if model_dir else None, provenance, [])
    card = build_card(
        Path(model_dir) if model_dir else None, provenance, teacher.weaknesses(draft, evaluation.episodes)
    )
    write_yaml(card_path, card)
    write_json(
        rollouts_path,
        {
            "summary": evaluation.summary.as_dict(),
            "tasks": [t.key for t in ctx.tasks.profile],
            "episodes": [episode_to_dict(e) for e in evaluation.episodes],
            "teacher": teacher_record(teacher),
        },
    )
    log_rejections(f"{backbone['name']} profile", teacher.transcript)
    write_transcript(transcript_path, teacher)
    return card


def teacher_usage(teacher: Teacher) -> dict[str, float]:
    """The teacher model's calls, tokens and seconds (zero for the edit teacher), kept in the stage record
    for cost (``masa.cost.search_cost``)."""
    llm = getattr(teacher, "llm", None)
    if llm is None:
        return {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0}
    return {**llm.usage.as_dict(), "seconds": teacher.seconds}


def finish_search(
    label: str,
    candidates: list[Candidate],
    teacher: Teacher,
    started: float,
    state: dict[str, Any],
    best: SkillLibrary,
    records_path: str,
    transcript_path: str,
    library_path: str,
    checkpoint_path: str,
) -> None:
    """A finished search's outputs: every candidate with the stage record, the teacher's transcript, the best
    library; the checkpoint goes last, so a crash before it only means a resume that finds the work done."""
    save_candidates(records_path, candidates, stage_record(candidates, teacher, started, **state))
    log_rejections(label, teacher.transcript)
    write_transcript(transcript_path, teacher)
    best.save(library_path)
    Path(checkpoint_path).unlink(missing_ok=True)


def search_inputs(ctx: Context, suite: list[TaskInstance], teacher_spec: dict[str, Any]) -> str:
    """What a search's checkpoint must have been made with besides the loop's own inputs: the episode
    settings, the suite, the skill retrieval and the teacher."""
    return search_fingerprint(
        ctx.evaluator.settings.fingerprint, [t.key for t in suite], ctx.evaluator.retrieval, teacher_spec
    )


def searched_categories(ctx_categories: list[str], heldout: list[str]) -> list[str]:
    return [c for c in ctx_categories if c not in set(heldout)]


def climb(
    backbone: dict[str, Any],
    env: dict[str, Any],
    run: dict[str, Any],
    teacher_spec: dict[str, Any],
    search: dict[str, Any],
    heldout: list[str],
    model_dir: str | None,
    teacher_model_dir: str | None,
    base_library: str,
    card_path: str,
    library_path: str,
    candidates_path: str,
    transcript_path: str,
    checkpoint_path: str,
    threads: int | None = None,
    machine: Machine | None = None,
) -> None:
    """Stage 1 on the search instances of every non-held-out category."""
    started = time.perf_counter()
    ctx = open_context(backbone, env, run, model_dir, base_library, "search", threads, machine=machine)
    teacher = make_teacher(teacher_spec, teacher_model_dir, ctx.base, threads)
    suite = [t for c in searched_categories(ctx.env.categories(), heldout) for t in ctx.tasks.search[c]]
    try:
        result = climb_general_skills(
            ctx.base,
            lambda lib, label: ctx.evaluator.run(lib, suite, label=label),
            teacher,
            load_card(card_path),
            HillClimbConfig(**search),
            ctx.seed,
            Path(checkpoint_path),
            search_inputs(ctx, suite, teacher_spec),
        )
    finally:
        ctx.close()
    finish_search(
        f"{backbone['name']} stage 1",
        result.candidates,
        teacher,
        started,
        {"best": result.best.node_id, "stopped_by": result.stopped_by},
        result.best.library,
        candidates_path,
        transcript_path,
        library_path,
        checkpoint_path,
    )


def search_category(
    backbone: dict[str, Any],
    env: dict[str, Any],
    run: dict[str, Any],
    teacher_spec: dict[str, Any],
    search: dict[str, Any],
    category: str,
    model_dir: str | None,
    teacher_model_dir: str | None,
    base_library: str,
    general_library: str,
    card_path: str,
    library_path: str,
    tree_path: str,
    transcript_path: str,
    checkpoint_path: str,
    threads: int | None = None,
    machine: Machine | None = None,
) -> None:
    """Stage 2 for one category, with Stage 1's general skills frozen."""
    started = time.perf_counter()
    ctx = open_context(backbone, env, run, model_dir, base_library, "search", threads, machine=machine)
    teacher = make_teacher(teacher_spec, teacher_model_dir, ctx.base, threads)
    if category not in ctx.tasks.search:
        raise ValueError(f"category {category!r} is not a task of {env['name']}: {sorted(ctx.tasks.search)}")
    suite = ctx.tasks.search[category]
    frozen = SkillLibrary.load(general_library)
    if isinstance(teacher, LLMTeacher):
        teacher.frozen_general = frozen.general_skills
    try:
        result = search_task_skills(
            frozen,
            category,
            lambda lib, label: ctx.evaluator.run(lib, suite, label=label),
            teacher,
            load_card(card_path),
            UCBConfig(**search),
            ctx.seed,
            Path(checkpoint_path),
            search_inputs(ctx, suite, teacher_spec),
        )
    finally:
        ctx.close()
    finish_search(
        f"{backbone['name']} stage 2 {category}",
        result.nodes,
        teacher,
        started,
        {"best": result.best.node_id, "stopped_by": result.stopped_by},
        result.best.library,
        tree_path,
        transcript_path,
        library_path,
        checkpoint_path,
    )


def merge_library(general_library: str, category_libraries: dict[str, str], out_path: str) -> SkillLibrary:
    """Stage 1's general skills with each searched category's best task skills; other categories keep
    their initial task skills."""
    merged = SkillLibrary.load(general_library)
    for category, path in category_libraries.items():
        merged.task_specific_skills[category] = SkillLibrary.load(path).task_specific_skills.get(category, [])
    merged.save(out_path)
    return merged
