"""Stage 2: UCB1 tree search over one category's task skills (docs/method.md).

Nodes are task-skill sets, edges teacher rewrites. Selection descends from the root by
UCB1(n) = mean(n) + C * sqrt(ln N_parent / N_n), where mean(n) averages the rewards evaluated at n and below
it. A node keeps being expanded until it has ``max_children`` children (**ours**: the paper does not say when
selection stops descending; a bounded branching factor is the usual rule for unbounded action spaces).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masa.rollout.evaluator import Evaluation
from masa.search.budget import Budget
from masa.search.candidates import Candidate, search_checkpoint
from masa.search.loop import SearchState, run_search
from masa.skills.library import SkillLibrary
from masa.teacher.teachers import Teacher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UCBConfig:
    iterations: int = 10  # J
    exploration: float = 1.4  # C
    max_children: int = 3
    budget: Budget | dict[str, Any] = field(default_factory=Budget)

    def __post_init__(self) -> None:
        object.__setattr__(self, "budget", Budget.from_config(self.budget))


@dataclass
class TreeResult:
    best: Candidate
    nodes: list[Candidate]
    stopped_by: str = "iterations"  # or "budget: ..." (what ran out)


def ucb1(node: Candidate, parent_visits: int, exploration: float) -> float:
    if node.visits == 0:
        return math.inf
    return node.value_sum / node.visits + exploration * math.sqrt(math.log(parent_visits) / node.visits)


def select(nodes: dict[str, Candidate], root_id: str, config: UCBConfig) -> Candidate:
    """Descend from the root by UCB1 to the first node that can still take a child."""
    node = nodes[root_id]
    while len(node.children) >= config.max_children:
        node = max(
            (nodes[c] for c in node.children),
            key=lambda child: (ucb1(child, node.visits, config.exploration), -child.iteration),
        )
    return node


def backpropagate(nodes: dict[str, Candidate], leaf: Candidate, reward: float) -> None:
    node: Candidate | None = leaf
    while node is not None:
        node.visits += 1
        node.value_sum += reward
        node = nodes.get(node.parent_id) if node.parent_id else None


def best_node(nodes: list[Candidate]) -> Candidate:
    """The best node by its own evaluated mean; ties go to the shallower, then the earlier node. A node whose
    every episode failed has no mean and is never the best (the root is, when nothing else was played)."""
    played = [n for n in nodes if n.played or not n.parent_id]
    return max(played, key=lambda n: (n.reward, -n.depth, -n.iteration))


def search_task_skills(
    library: SkillLibrary,
    category: str,
    evaluate: Callable[[SkillLibrary, str], Evaluation],
    teacher: Teacher,
    card: dict,
    config: UCBConfig,
    seed: int = 0,
    checkpoint: Path | None = None,
    inputs: str = "",
) -> TreeResult:
    """Search ``category``'s task skills with the rest of ``library`` (general skills) frozen; a checkpoint
    is resumed only if made with the same library, category, card, config, seed and ``inputs``."""
    saved = search_checkpoint(checkpoint, config, seed, library.to_dict(), category, card, inputs)

    def start() -> SearchState:
        root_eval = evaluate(library, f"stage2 {category} root")
        root = Candidate(
            "t0",
            "",
            0,
            "task",
            category,
            library,
            root_eval.summary,
            root_eval.episodes,
            "initial",
            visits=1,
            value_sum=root_eval.summary.reward_mean,
        )
        return SearchState([root])

    def step(state: SearchState) -> None:
        nodes = {n.node_id: n for n in state.candidates}
        iteration = state.iteration + 1
        parent = select(nodes, "t0", config)
        skills = parent.library.task_specific_skills.get(category, [])
        analysis = teacher.attribute(parent.evaluation.failures, category)
        siblings = [nodes[c] for c in parent.children]
        rewrite = teacher.rewrite(
            skills,
            category,
            analysis,
            card,
            [(n.library.task_specific_skills.get(category, []), n.reward) for n in [parent, *siblings]],
            seed + iteration,
            rejected=[
                (n.library.task_specific_skills.get(category, []), n.reward)
                for n in nodes.values()
                if n.parent_id and n.played and n.reward <= nodes[n.parent_id].reward
            ],
            frozen=parent.library.general_skills,
        )
        child_library = parent.library.with_task_skills(category, rewrite.skills)
        evaluation = evaluate(child_library, f"stage2 {category} iteration {iteration}")
        child = Candidate(
            f"t{iteration}",
            parent.node_id,
            iteration,
            "task",
            category,
            child_library,
            evaluation.summary,
            evaluation.episodes,
            rewrite.source,
            depth=parent.depth + 1,
        )
        nodes[child.node_id] = child
        parent.children.append(child.node_id)
        if child.played:
            backpropagate(nodes, child, child.reward)
        else:  # a failure is no reward: it must not pull its ancestors' means towards 0
            log.warning(
                "stage2 %s: every episode of %s failed; its reward is not backed up", category, child.node_id
            )
        log.info(
            "stage2 %s iteration %d: expanded %s -> %s, R=%.4f (%s)",
            category,
            iteration,
            parent.node_id,
            child.node_id,
            child.reward,
            rewrite.source,
        )
        state.candidates.append(child)
        state.iteration = iteration

    state = run_search(
        f"stage2 {category}",
        saved,
        teacher,
        config.budget,
        start,
        step,
        lambda state: state.iteration < config.iterations,
    )
    best = best_node(state.candidates)
    best.accepted = True
    return TreeResult(best, state.candidates, state.stopped_by)
