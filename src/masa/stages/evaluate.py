"""Held-out evaluation of one method (or of another backbone's library) for one backbone."""

from __future__ import annotations

import logging
from typing import Any

from masa.io import write_json
from masa.methods import EXTERNAL
from masa.rollout.agent import EpisodeResult
from masa.rollout.evaluator import episode_to_dict, summarise
from masa.stages.context import Machine, open_context, played_library

log = logging.getLogger(__name__)


def evaluate_method(
    method: str,
    backbone: dict[str, Any],
    env: dict[str, Any],
    run: dict[str, Any],
    evaluation: dict[str, Any],
    model_dir: str | None,
    base_library: str,
    library: str | None,
    out_path: str,
    threads: int | None = None,
    machine: Machine | None = None,
    library_source: str | None = None,
) -> dict[str, Any]:
    """Play ``method``'s library on the held-out (test-split) instances of every category, for every seed.

    ``library_source`` names the backbone whose library is played when it is not ``backbone`` (the swap
    matrix), or the label of an external library (method ``external``). Each episode is recorded with its seed, so two records pair up by (task, seed)."""
    ctx = open_context(
        backbone,
        env,
        run,
        model_dir,
        base_library,
        "evaluation",
        threads,
        evaluation["temperature"],
        machine=machine,
    )
    env_label = ctx.env.display_name
    tasks = ctx.heldout_tasks()
    skills = played_library(ctx, method, library, run)
    seeds = tuple(evaluation["seeds"])
    try:
        result = ctx.evaluator.run(skills, tasks, seeds, label=f"{backbone['name']} {method}")
    finally:
        ctx.close()
    check_failures(result.episodes, evaluation["max_failed_share"], f"{backbone['name']} {method}")
    played = [(seed, task) for seed in seeds for task in tasks]  # Evaluator.run's order: seeds, then tasks
    resamples = evaluation["bootstrap_resamples"]
    by_category: dict[str, list] = {}
    for episode in result.episodes:
        by_category.setdefault(episode.category, []).append(episode)
    record = {
        "backbone": backbone["name"],
        "env": env["name"],
        "env_label": env_label,
        "method": method,
        "library_source": library_source or backbone["name"],
        "library_path": library if method == EXTERNAL else None,
        "seeds": list(seeds),
        "summary": summarise(result.episodes, resamples).as_dict(),
        "by_category": {c: summarise(es, resamples).as_dict() for c, es in sorted(by_category.items())},
        "tasks": [t.key for t in tasks],
        "episodes": [
            {**episode_to_dict(e), "seed": seed} for (seed, _), e in zip(played, result.episodes, strict=True)
        ],
    }
    write_json(out_path, record)
    return record


class EvaluationFailed(RuntimeError):
    """Too many episodes of an evaluation could not be played for its scores to mean anything."""


def check_failures(episodes: list[EpisodeResult], max_share: float, label: str) -> None:
    """Fail the job, with the causes, when the failed episodes pass ``evaluation.max_failed_share``: a
    record that averaged over a few surviving episodes would read as the method's score."""
    failed = [e for e in episodes if e.error]
    if episodes and len(failed) / len(episodes) > max_share:
        causes = sorted({e.error for e in failed})
        raise EvaluationFailed(
            f"{label}: {len(failed)} of {len(episodes)} episodes failed (more than evaluation.max_failed_share "
            f"= {max_share}); causes: {'; '.join(causes[:3])}. Fix the environment and re-run: the played "
            "episodes are in the rollout cache"
        )
