"""Stage 1: hill climbing on the general skills (docs/method.md).

The loop is independent of environments and models: it gets an ``evaluate`` function (a library in, an
evaluation on a fixed task suite out) and a teacher. It checkpoints after every iteration; a re-run with
the same checkpoint path continues from the last finished iteration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masa.rollout.evaluator import Evaluation
from masa.search.acceptance import RULES, decide
from masa.search.budget import Budget
from masa.search.candidates import Candidate, search_checkpoint
from masa.search.loop import SearchState, run_search
from masa.skills.library import SkillLibrary
from masa.teacher.teachers import Teacher

log = logging.getLogger(__name__)

ACCEPTANCE_RULES = RULES


@dataclass(frozen=True)
class HillClimbConfig:
    iterations: int = 10  # I
    patience: int = 3  # p
    top_k: int = 5  # K best past skill sets shown to the teacher
    acceptance: str = "strict"  # the paper's rule: accept on R > best_R
    min_gain: float = 0.0  # for acceptance "min_gain": accept on R > best_R + min_gain
    alpha: float = 0.05  # for the paired tests ("sign_test", "paired_bootstrap")
    budget: Budget | dict[str, Any] = field(default_factory=Budget)

    def __post_init__(self) -> None:
        if self.acceptance not in ACCEPTANCE_RULES:
            raise ValueError(
                f"hillclimb.acceptance must be one of {ACCEPTANCE_RULES}, got {self.acceptance!r}"
            )
        object.__setattr__(self, "budget", Budget.from_config(self.budget))


def accepts(config: HillClimbConfig, candidate: float, incumbent: float) -> bool:
    """The mean-reward rules on means alone (``strict``, ``min_gain``); see ``accept_candidate``."""
    gain = config.min_gain if config.acceptance == "min_gain" else 0.0
    return candidate > incumbent + gain


def accept_candidate(
    config: HillClimbConfig, candidate: Candidate, incumbent: Candidate, seed: int = 0
) -> bool:
    """The configured rule on the two candidates' paired episodes (same instances and seeds, checked)."""
    return decide(
        config.acceptance, candidate.episodes, incumbent.episodes, config.min_gain, config.alpha, seed
    )


@dataclass
class HillClimbResult:
    best: Candidate
    candidates: list[Candidate]
    stopped_by: str  # "iterations", "patience" or "budget: ..." (what ran out)


def climb_general_skills(
    initial: SkillLibrary,
    evaluate: Callable[[SkillLibrary, str], Evaluation],
    teacher: Teacher,
    card: dict,
    config: HillClimbConfig,
    seed: int = 0,
    checkpoint: Path | None = None,
    inputs: str = "",
) -> HillClimbResult:
    """Rewrite the general skills until ``patience`` rewrites in a row fail to beat the incumbent.

    Every candidate is scored on the same suite as the incumbent (``evaluate`` is fixed), so the comparison
    uses common random numbers. Task-specific skills keep their initial value. A checkpoint is resumed only
    if it was made with the same initial library, card, config, seed and ``inputs`` (the caller's settings).
    """
    saved = search_checkpoint(checkpoint, config, seed, initial.to_dict(), card, inputs)

    def start() -> SearchState:
        root_eval = evaluate(initial, "stage1 initial")
        root = Candidate(
            "g0", "", 0, "general", "", initial, root_eval.summary, root_eval.episodes, "initial", True
        )
        return SearchState([root], best="g0")

    def step(state: SearchState) -> None:
        by_id = {c.node_id: c for c in state.candidates}
        iteration = state.iteration + 1
        best = by_id[state.best]
        analysis = teacher.attribute(best.evaluation.failures, "general")
        history = sorted(state.candidates, key=lambda c: c.reward, reverse=True)[: config.top_k]
        rewrite = teacher.rewrite(
            best.library.general_skills,
            "general",
            analysis,
            card,
            [(c.library.general_skills, c.reward) for c in history],
            seed + iteration,
            rejected=[
                (c.library.general_skills, c.reward)
                for c in state.candidates
                if c.iteration and c.played and not c.accepted
            ],
        )
        library = best.library.with_general(rewrite.skills)
        evaluation = evaluate(library, f"stage1 iteration {iteration}")
        candidate = Candidate(
            f"g{iteration}",
            best.node_id,
            iteration,
            "general",
            "",
            library,
            evaluation.summary,
            evaluation.episodes,
            rewrite.source,
        )
        candidate.accepted = accept_candidate(config, candidate, best, seed + iteration)
        log.info(
            "stage1 iteration %d: R=%.4f vs best %.4f (%s) -> %s",
            iteration,
            candidate.reward,
            best.reward,
            rewrite.source,
            "accepted" if candidate.accepted else "rejected",
        )
        if candidate.accepted:
            state.best, state.patience = candidate.node_id, 0
        else:
            state.patience += 1
        state.candidates.append(candidate)
        state.iteration = iteration
        if state.patience >= config.patience:
            state.stopped_by = "patience"

    def more(state: SearchState) -> bool:
        return state.iteration < config.iterations and state.patience < config.patience

    state = run_search("stage1", saved, teacher, config.budget, start, step, more)
    best = next(c for c in state.candidates if c.node_id == state.best)
    return HillClimbResult(best, state.candidates, state.stopped_by)
