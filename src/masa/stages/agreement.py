"""Expert agreement of every evaluated library on the held-out instances' expert paths (masa.rollout.fitness).

The held-out instances are the evaluation's own, which no search uses, so the report can set each library's
agreement beside its held-out episode reward on the same instances and say whether the one tracks the other.
"""

from __future__ import annotations

import logging
from typing import Any

from masa.io import write_json
from masa.rollout.fitness import agreement
from masa.stages.context import Machine, open_context, played_library

log = logging.getLogger(__name__)


def score_agreement(
    libraries: dict[str, str | None],
    instances: int,
    backbone: dict[str, Any],
    env: dict[str, Any],
    run: dict[str, Any],
    model_dir: str | None,
    base_library: str,
    out_path: str,
    threads: int | None = None,
    machine: Machine | None = None,
) -> dict[str, Any]:
    """``libraries`` maps each method to its library file (None: the base library; ``no_skill``: none);
    the first ``instances`` held-out instances of each category are scored, in the evaluation's order."""
    ctx = open_context(backbone, env, run, model_dir, base_library, "evaluation", threads, machine=machine)
    try:
        states, unexpressed = [], 0
        ctx.heldout_tasks()  # checks that no search or profile instance is among them
        chosen = [t for c in ctx.env.categories() for t in ctx.tasks.evaluation[c][:instances]]
        for task in chosen:  # in order, from this job's fresh simulator (expert_states)
            found, missing = ctx.env.expert_states(task)
            states += found
            unexpressed += missing
        log.info("%d expert decisions on %d held-out instances (%d not expressible)", len(states),
                 len({s.task.key for s in states}), unexpressed)  # fmt: skip
        agent = ctx.evaluator.agent
        scores = {}
        for method, path in libraries.items():
            library = played_library(ctx, method, path, run)
            result = agreement(
                agent.llm,
                agent.config,
                ctx.env.name,
                ctx.env.max_steps,
                states,
                lambda category, library=library: ctx.evaluator.skills_text(library, category),
            )
            log.info("%s %s: agreement %.4f, greedy on an expert action %.3f", backbone["name"], method,
                     result.mass, result.top1)  # fmt: skip
            scores[method] = result.as_dict()
    finally:
        ctx.close()
    record = {
        "backbone": backbone["name"],
        "env": env["name"],
        "tasks": [t.key for t in chosen],
        "states": [f"{s.task.key}#{s.step}" for s in states],
        "unexpressed": unexpressed,
        "methods": scores,
    }
    write_json(out_path, record)
    return record
