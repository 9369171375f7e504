"""Stage 2 as a function of files: the task-skill UCB tree search of one category."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from masa.search.ucb import UCBConfig, search_task_skills
from masa.skills.library import SkillLibrary
from masa.stages.context import Machine, make_teacher, open_context
from masa.stages.records import finish_search, search_inputs
from masa.teacher.card import load_card


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
