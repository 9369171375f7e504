"""The batched engine: many episodes in lockstep, one model call per step for all of them.

Rollouts are nearly all of MASA's cost. Played one at a time, every step pays a full model call for one
prompt; in lockstep, the live episodes' prompts go to the model together (``LLM.score_many`` or one batched
``generate``), so a backend can share prompt caches and forward passes across them. Each live episode owns an
environment from a small pool (a ScienceWorld environment is a JVM: 3-4 s to start, ~300 MB), reused for the
next episode when its own ends.

Episodes go through ``EpisodeRun``, the same state machine ``Agent.play`` drives, so an episode played here
equals the one ``Agent.play`` plays (exactly on an exact backend; up to bf16 rounding on a real model).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from masa.agent import Agent, EpisodeResult, EpisodeRun, parse_action, pick_action
from masa.envs.base import Environment, TaskInstance
from masa.llm.base import ScoreRequest


@dataclass(frozen=True)
class EpisodeJob:
    task: TaskInstance
    skills_text: str
    seed: int


@dataclass
class Engine:
    """Plays jobs on a pool of environments, one live episode per environment."""

    agent: Agent
    envs: list[Environment]
    noop_penalty: float

    def play(
        self, jobs: list[EpisodeJob], on_done: Callable[[int, EpisodeResult], None] | None = None
    ) -> list[EpisodeResult]:
        """Every job's episode, in the jobs' order; ``on_done(index, episode)`` as each one ends."""
        if not self.envs:
            raise ValueError("the engine needs at least one environment")
        results: list[EpisodeResult | None] = [None] * len(jobs)
        queue = deque(enumerate(jobs))
        free = list(range(len(self.envs)))
        live: list[tuple[int, int, EpisodeRun]] = []  # (job index, environment index, run)
        while queue or live:
            while queue and free:
                index, job = queue.popleft()
                env_index = free.pop(0)
                started = time.perf_counter()
                run = EpisodeRun(
                    self.envs[env_index],
                    job.task,
                    job.skills_text,
                    job.seed,
                    self.noop_penalty,
                    self.agent.config,
                )
                run.elapsed += time.perf_counter() - started
                live.append((index, env_index, run))
            stepping = [entry for entry in live if not entry[2].done]
            if stepping:
                self.step([run for _, _, run in stepping])
            for entry in [e for e in live if e[2].done]:
                index, env_index, run = entry
                live.remove(entry)
                free.append(env_index)
                self.agent.llm.end_session(run.session)
                results[index] = run.result()
                if on_done is not None:
                    on_done(index, results[index])
        return [r for r in results if r is not None]

    def step(self, runs: list[EpisodeRun]) -> None:
        """One action for every run, from one model call; the step's wall time is shared among them."""
        started = time.perf_counter()
        config, llm = self.agent.config, self.agent.llm
        if config.policy == "score":
            requests = [ScoreRequest(r.conversation(), r.observation.candidates, r.session) for r in runs]
            for run, scored in zip(runs, llm.score_many(requests, prefill="<action>"), strict=True):
                run.llm_calls += 1
                run.prompt_tokens += scored.prompt_tokens
                run.apply(pick_action(scored.scores, run.observation.candidates, run.taken, config, run.rng))
        else:
            # Each run draws its seed as Agent.play would, keeping its random stream in step; a sampled batch
            # is seeded by its first run (greedy decoding ignores the seed).
            seeds = [r.rng.randrange(2**31) for r in runs]
            replies = llm.generate(
                [r.conversation() for r in runs], config.max_new_tokens, config.temperature, seeds[0]
            )
            for run, reply in zip(runs, replies, strict=True):
                run.llm_calls += 1
                run.prompt_tokens += reply.prompt_tokens
                run.completion_tokens += reply.completion_tokens
                run.apply(parse_action(reply.text))
        share = (time.perf_counter() - started) / len(runs)
        for run in runs:
            run.elapsed += share


def environment_pool(env: Environment, width: int) -> list[Environment]:
    """``env`` plus up to ``width - 1`` fresh copies of it (fewer if it cannot be copied)."""
    pool = [env]
    while len(pool) < width:
        copy = env.spawn()
        if copy is None:
            break
        pool.append(copy)
    return pool
