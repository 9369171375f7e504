"""The model profile stage: the capability card of one backbone (docs/method.md, "Model profile")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from masa.io import write_json, write_yaml
from masa.rollout.evaluator import episode_to_dict
from masa.stages.context import Machine, make_teacher, open_context
from masa.stages.records import write_transcript
from masa.teacher.card import build_card
from masa.teacher.replies import log_rejections, teacher_record


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
