"""Dense fitness: how much of a backbone's choice, with a given skill text, falls on what an expert would do.

Episode reward over a handful of episodes is coarse for tiny backbones (most skill texts leave most
trajectories unchanged). Agreement is scored at every decision of an expert's path (``ExpertState``): the
agent's prompt for that state, every candidate scored as the score policy scores it (mean log-probability,
repeat penalty), and the softmax mass on the candidates that keep an optimal completion (``acceptable``).
It is precise, but precision is not validity: docs/fitness.md says what it was measured to track, and the
search uses episode reward unless that measurement supports otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from masa.envs.base import ExpertState
from masa.llm.base import LLM, ScoreRequest
from masa.rollout.agent import AgentConfig, build_conversation, greedy, penalised


def has_expert_path(env_name: str, tasks: list[str]) -> bool:
    """Whether every task of the environment has expert states to score agreement on (read without
    starting a simulator): ScienceWorld's find-* tasks."""
    if env_name != "scienceworld":
        return False
    from masa.envs.scienceworld import EXPERT_TASKS

    return all(task.startswith(EXPERT_TASKS) for task in tasks)


@dataclass(frozen=True)
class Agreement:
    """A skill text's agreement with the expert over a set of states."""

    mass: float  # mean softmax probability on the acceptable candidates
    top1: float  # share of states whose best candidate (the greedy policy's pick) is acceptable
    states: int
    per_state: tuple[float, ...]  # the mass at each state, in the order given (for paired comparisons)

    def as_dict(self) -> dict[str, float | int | list[float]]:
        return {
            "mass": self.mass,
            "top1": self.top1,
            "states": self.states,
            "per_state": list(self.per_state),
        }


def state_request(
    state: ExpertState, env_name: str, max_steps: int, skills_text: str, config: AgentConfig
) -> ScoreRequest:
    """The agent's prompt at ``state``, as ``EpisodeRun.conversation`` builds it mid-episode."""
    conversation = build_conversation(
        env_name,
        state.observation.task_description,
        skills_text,
        min(state.step, max_steps - 1),  # the expert may need more steps than an episode has
        max_steps,
        list(state.history),
        state.observation,
        config,
    )
    return ScoreRequest(conversation, state.observation.candidates)


def acceptable_mass(scores: list[float], state: ExpertState, config: AgentConfig) -> tuple[float, bool]:
    """The softmax mass on ``state.acceptable`` after the repeat penalty, and whether the greedy pick is in it."""
    candidates = state.observation.candidates
    adjusted = penalised(scores, candidates, dict(state.taken), config)
    top = max(adjusted)
    weights = [math.exp(s - top) for s in adjusted]
    mass = sum(w for w, c in zip(weights, candidates, strict=True) if c in state.acceptable) / sum(weights)
    return mass, greedy(adjusted, candidates) in state.acceptable


def agreement(
    llm: LLM,
    config: AgentConfig,
    env_name: str,
    max_steps: int,
    states: list[ExpertState],
    skills_text: Callable[[str], str],
) -> Agreement:
    """Score every state in one batched call; ``skills_text(category)`` is what the agent would be shown."""
    if not states:
        raise ValueError("no expert states to score agreement on")
    requests = [state_request(s, env_name, max_steps, skills_text(s.task.category), config) for s in states]
    scored = llm.score_many(requests, prefill="<action>")
    values = [acceptable_mass(r.scores, s, config) for r, s in zip(scored, states, strict=True)]
    masses = tuple(mass for mass, _ in values)
    return Agreement(
        sum(masses) / len(masses), sum(hit for _, hit in values) / len(values), len(states), masses
    )
