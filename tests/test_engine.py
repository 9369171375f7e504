"""The batched engine plays the same episodes as ``Agent.play``, in lockstep, with one model call per step."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict

import pytest

from masa.rollout.agent import Agent, AgentConfig
from masa.rollout.engine import Engine, EpisodeJob, environment_pool
from masa.rollout.evaluator import Evaluator
from masa.skills.library import Skill, SkillLibrary
from tests.fakes import CorridorEnv, HashLLM, fake_settings


def jobs_for(env, seeds=(0, 1), skills="### General Principles\n- **Move**: keep moving."):
    return [EpisodeJob(t, skills, s) for s in seeds for t in env.instances("walk", "train")]


def without_time(episode):
    record = asdict(episode)
    record.pop("seconds")
    return record


def sequential(config, jobs, env):
    agent = Agent(HashLLM(name="fake"), config)
    return [agent.play(env, j.task, j.skills_text, j.seed, 0.25) for j in jobs]


@pytest.mark.parametrize(
    "config",
    [
        AgentConfig(policy="score"),
        AgentConfig(policy="score", temperature=0.7, repeat_penalty=0.5),
        AgentConfig(policy="generate"),
    ],
    ids=["greedy-score", "sampled-score", "generate"],
)
def test_engine_plays_the_same_episodes_as_agent_play(config):
    env = CorridorEnv(length=2, max_steps=6, spread=1)
    jobs = jobs_for(env)
    expected = sequential(config, jobs, CorridorEnv(length=2, max_steps=6, spread=1))
    llm = HashLLM(name="fake")
    engine = Engine(Agent(llm, config), environment_pool(env, 4), 0.25)
    done = []
    got = engine.play(jobs, lambda index, episode: done.append(index))
    assert [without_time(e) for e in got] == [without_time(e) for e in expected]
    assert sorted(done) == list(range(len(jobs)))
    assert (
        len({e.steps for e in got}) > 1
    )  # episodes ended at different steps, so the batch shrank and refilled
    assert llm.usage.calls == sum(e.llm_calls for e in got) == sum(e.steps for e in got)


def test_engine_reuses_a_small_pool_of_environments():
    env = CorridorEnv(length=2, max_steps=6, spread=1)
    pool = environment_pool(env, 2)
    Engine(Agent(HashLLM(name="fake"), AgentConfig()), pool, 0.25).play(jobs_for(env))
    assert len(pool) == 2 and pool[0] is env
    assert sum(e.resets for e in pool) == 6  # six episodes on two environments


def test_evaluator_results_do_not_depend_on_the_engine_width():
    library = SkillLibrary(general_skills=[Skill("g1", "Move", "Keep moving.")])

    def evaluate(width):
        env = CorridorEnv(length=2, max_steps=6, spread=1)
        evaluator = Evaluator(Agent(HashLLM(name="fake"), AgentConfig()), env, fake_settings(), width=width)
        result = evaluator.run(library, env.instances("walk", "train"), seeds=(0, 1, 2))
        evaluator.close()
        return result

    one, four = evaluate(1), evaluate(4)
    assert [without_time(e) for e in one.episodes] == [without_time(e) for e in four.episodes]
    assert one.summary.reward_mean == four.summary.reward_mean


def test_engine_matches_agent_play_on_the_real_model(smollm2_dir):
    """SmolLM2 in float32 (bf16 rounding could flip a near tie): the engine's batched, prefix-cached scoring
    chooses what the sequential agent chooses, in one forward pass per lockstep step."""
    from masa.llm.transformers_backend import TransformersLLM

    env = CorridorEnv(length=2, max_steps=3, spread=1)
    jobs = jobs_for(env, seeds=(0,))
    config = AgentConfig(policy="score", repeat_penalty=0.5)
    reference = TransformersLLM(name="ref", path=str(smollm2_dir), dtype="float32", threads=2)
    expected = [Agent(reference, config).play(env, j.task, j.skills_text, j.seed, 0.25) for j in jobs]
    llm = TransformersLLM(name="engine", path=str(smollm2_dir), dtype="float32", threads=2)
    got = Engine(Agent(llm, config), environment_pool(env, 3), 0.25).play(jobs)
    assert [[s.action for s in e.trajectory] for e in got] == [
        [s.action for s in e.trajectory] for e in expected
    ]
    assert [without_time(e) for e in got] == [without_time(e) for e in expected]
    assert llm.forward_passes == max(e.steps for e in got)  # lockstep: one pass per step for all episodes
    assert llm.reused_prefix_tokens > 0


@pytest.mark.parametrize("model", ["smollm2_dir", "gemma_dir"])
def test_score_many_equals_score_across_interleaved_episodes(model, request):
    """Two episodes over two steps, each packed into one row with its candidates, must give ``score``'s
    numbers. The prompts are longer than Gemma 3's 512-token sliding window, so its sliding layers' own mask
    must hide what lies beyond the window (and the full layers' must not)."""
    from masa.llm.base import Message, ScoreRequest
    from masa.llm.transformers_backend import TransformersLLM

    path = str(request.getfixturevalue(model))
    many = TransformersLLM(name="many", path=path, dtype="float32", threads=2)
    single = TransformersLLM(name="one", path=path, dtype="float32", threads=2)
    candidates = ("open door", "look around", "go to kitchen and then open the fridge")
    rule = "Rule: never repeat a useless action. " * 70
    for step in range(2):
        requests = [
            ScoreRequest(
                [
                    Message("system", "You are an agent."),
                    Message("user", f"{rule}Task {e}. Step {step}. You see a door."),
                ],
                candidates[: 2 + e],
                f"episode {e}",
            )
            for e in range(2)
        ]
        got = many.score_many(requests, prefill="<action>")
        for req, scored in zip(requests, got, strict=True):
            single.forget_prompts()
            assert scored.scores == pytest.approx(
                single.score(req.conversation, list(req.candidates), "<action>"), abs=1e-3
            )
    assert many.usage.calls == single.usage.calls == 4
    assert many.usage.prompt_tokens == single.usage.prompt_tokens
    assert many.reused_prefix_tokens > 0  # the second step resumed each episode's own cache
    assert many.forward_passes == 2  # one pass per step for both episodes and all their candidates


def test_a_key_repeated_within_one_evaluation_is_played_once():
    env = CorridorEnv(length=2, max_steps=6, spread=1)
    llm = HashLLM(name="fake")
    evaluator = Evaluator(Agent(llm, AgentConfig()), env, fake_settings(), width=3)
    task = env.instances("walk", "train")[1]
    result = evaluator.run(None, [task, task, task])
    assert [e.cached for e in result.episodes] == [False, True, True]
    assert result.summary.cache_hits == 2 and llm.usage.calls == result.episodes[0].steps
    assert len({e.reward for e in result.episodes}) == 1


class SlowCorridor(CorridorEnv):
    """A corridor whose simulator takes 20 ms a step in a process of its own (like a ScienceWorld JVM)."""

    steps_concurrently = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.threads: set[int] = set()

    def spawn(self):
        return SlowCorridor(self.base, self.max_steps, self.spread)

    def step(self, action):
        self.threads.add(threading.get_ident())
        time.sleep(0.02)
        return super().step(action)


def test_a_pool_of_separate_simulators_steps_side_by_side_with_the_same_episodes():
    env = SlowCorridor(length=2, max_steps=6, spread=1)
    jobs = jobs_for(env)
    config = AgentConfig(policy="score", temperature=0.7)
    expected = sequential(config, jobs, CorridorEnv(length=2, max_steps=6, spread=1))
    pool = environment_pool(env, 3)
    got = Engine(Agent(HashLLM(name="fake"), config), pool, 0.25).play(jobs)
    assert [without_time(e) for e in got] == [without_time(e) for e in expected]
    assert len(set().union(*(e.threads for e in pool))) > 1  # the pool's steps ran on several threads
