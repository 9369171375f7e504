"""Stage 1 as a function of files: general-skill hill climbing on every non-held-out category."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from masa.search.hillclimb import HillClimbConfig, climb_general_skills
from masa.stages.context import Machine, make_teacher, open_context
from masa.stages.records import finish_search, search_inputs, searched_categories
from masa.teacher.card import load_card


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
