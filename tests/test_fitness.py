"""Expert agreement (masa.rollout.fitness) on scripted scores: the softmax mass on the acceptable candidates."""

from __future__ import annotations

import math

import pytest

from masa.envs.base import ExpertState, Observation, TaskInstance
from masa.rollout.agent import AgentConfig
from masa.rollout.fitness import agreement
from tests.fakes import ScriptedLLM

TASK = TaskInstance("corridor", "walk", "0", "test")


def state(candidates: tuple[str, ...], acceptable: set[str], taken=()) -> ExpertState:
    return ExpertState(
        TASK,
        0,
        (),
        tuple(taken),
        Observation("You are here.", "Walk.", candidates),
        "",
        frozenset(acceptable),
    )


def test_agreement_is_the_softmax_mass_on_the_acceptable_candidates_and_the_greedy_hit_rate():
    # ScriptedLLM scores a liked candidate 1.0 and any other -len/100
    llm = ScriptedLLM(name="s", liked="forward")
    states = [
        state(("go forward", "wait", "look"), {"go forward"}),
        state(("go forward", "wait", "look"), {"wait", "look"}),
    ]
    result = agreement(llm, AgentConfig(), "corridor", 5, states, lambda category: "")
    weights = [math.exp(1.0), math.exp(-0.04), math.exp(-0.04)]
    first = weights[0] / sum(weights)
    assert result.per_state == pytest.approx((first, 1 - first))
    assert result.mass == pytest.approx(0.5) and result.top1 == 0.5 and result.states == 2


def test_the_repeat_penalty_moves_mass_as_it_moves_the_agent():
    llm = ScriptedLLM(name="s", liked="forward")
    states = [state(("go forward", "wait"), {"wait"}, taken=(("go forward", 3),))]
    result = agreement(llm, AgentConfig(repeat_penalty=1.0), "corridor", 5, states, lambda category: "")
    assert result.top1 == 1.0  # 1.0 - 3 x 1.0 < -0.04: the agent would wait
    assert result.per_state[0] == pytest.approx(math.exp(-0.04) / (math.exp(-0.04) + math.exp(-2.0)))


def test_the_skill_text_reaches_the_prompt_scored():
    llm = ScriptedLLM(name="s")
    agreement(
        llm,
        AgentConfig(),
        "corridor",
        5,
        [state(("a", "b"), {"a"})],
        lambda category: f"skills of {category}",
    )
    assert "## Retrieved Relevant Experience\nskills of walk" in llm.prompts[-1]
