"""The batched engine: many episodes in lockstep, one model call per step for all of them.

Rollouts are nearly all of MASA's cost. Played one at a time, every step pays a full model call for one
prompt; in lockstep, the live episodes' prompts go to the model together (``LLM.score_many`` or one batched
``generate``), so a backend can share prompt caches and forward passes across them. Each live episode owns an
environment from a small pool (a ScienceWorld environment is a JVM: 3-4 s to start, ~300 MB), reused for the
next episode when its own ends.

Episodes go through ``EpisodeRun``, the same state machine ``Agent.play`` drives, so an episode played here
equals the one ``Agent.play`` plays (exactly on an exact backend; up to bf16 rounding on a real model).

A simulator that fails mid-episode (a dead ScienceWorld JVM, a crashed game: the environment's ``faults``) is
restarted and the episode played again from the start, once; a second failure is recorded as a failed
episode (reward 0) with the reason instead of raised, so one dead game cannot end a nine-hour search.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

from masa.envs.base import Environment, TaskInstance
from masa.llm.base import ScoreRequest
from masa.rollout.agent import Agent, EpisodeResult, EpisodeRun, parse_action, pick_action

log = logging.getLogger(__name__)
ATTEMPTS = 2  # a failed simulator gets one restart and one replay of the episode
R = TypeVar("R")


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
    _threads: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)

    def play(
        self, jobs: list[EpisodeJob], on_done: Callable[[int, EpisodeResult], None] | None = None
    ) -> list[EpisodeResult]:
        """Every job's episode, in the jobs' order; ``on_done(index, episode)`` as each one ends."""
        if not self.envs:
            raise ValueError("the engine needs at least one environment")
        concurrent = len(self.envs) > 1 and all(env.steps_concurrently for env in self.envs)
        with ThreadPoolExecutor(len(self.envs)) if concurrent else nullcontext() as threads:
            self._threads = threads
            try:
                return self._play(jobs, on_done)
            finally:
                self._threads = None

    def _play(
        self, jobs: list[EpisodeJob], on_done: Callable[[int, EpisodeResult], None] | None
    ) -> list[EpisodeResult]:
        results: list[EpisodeResult | None] = [None] * len(jobs)
        queue = deque(enumerate(jobs))
        free = list(range(len(self.envs)))
        live: list[tuple[int, int, EpisodeRun]] = []  # (job index, environment index, run)
        attempts = [0] * len(jobs)

        def finish(index: int, episode: EpisodeResult) -> None:
            results[index] = episode
            if on_done is not None:
                on_done(index, episode)

        def failed(index: int, env_index: int, reason: str) -> None:
            """Restart the environment; replay the episode once, then record it as failed."""
            task = jobs[index].task
            log.warning(
                "%s: environment failed (attempt %d): %s; restarting it", task.key, attempts[index], reason
            )
            self.envs[env_index].restart()
            free.append(env_index)
            if attempts[index] < ATTEMPTS:
                queue.appendleft((index, jobs[index]))
                return
            log.error("%s: recorded as failed after a restart and a retry: %s", task.key, reason)
            finish(
                index,
                EpisodeResult(task.key, task.category, False, 0.0, 0, 0, 0.0, 0, 0, 0, 0.0, error=reason),
            )

        while queue or live:
            starting: list[int] = []  # job indices
            placed: list[int] = []  # the free environment each one starts on
            while queue and free:
                index, _ = queue.popleft()
                attempts[index] += 1
                starting.append(index)
                placed.append(free.pop(0))
            runs = self._each(self._start, [jobs[i] for i in starting], placed)
            for index, env_index, run in zip(starting, placed, runs, strict=True):
                if isinstance(run, str):
                    failed(index, env_index, run)
                else:
                    live.append((index, env_index, run))
            stepping = [entry for entry in live if not entry[2].done]
            if stepping:
                self.step([run for _, _, run in stepping])
            for entry in [e for e in live if e[2].done]:
                index, env_index, run = entry
                live.remove(entry)
                self.agent.llm.end_session(run.session)
                if run.fault:
                    failed(index, env_index, run.fault)
                else:
                    free.append(env_index)
                    finish(index, run.result())
        return [r for r in results if r is not None]

    def _start(self, job: EpisodeJob, env_index: int) -> EpisodeRun | str:
        """A new run of the job on the environment (its reset included), or why the simulator failed."""
        started = time.perf_counter()
        env = self.envs[env_index]
        try:
            run = EpisodeRun(env, job.task, job.skills_text, job.seed, self.noop_penalty, self.agent.config)
        except env.faults as err:
            return f"{type(err).__name__}: {err}"
        run.elapsed += time.perf_counter() - started
        return run

    def _each(self, work: Callable[..., R], *columns: list[Any]) -> list[R]:
        """``work`` on every row of ``columns`` (as ``map`` does), in order: side by side when the pool's
        simulators run in processes of their own (a ScienceWorld step waits ~70 ms on its JVM, two of which
        use both cores), else in turn."""
        if self._threads is None or len(columns[0]) < 2:
            return list(map(work, *columns))
        return list(self._threads.map(work, *columns))

    def step(self, runs: list[EpisodeRun]) -> None:
        """One action for every run, from one model call; the step's wall time is shared among them."""
        started = time.perf_counter()
        config, llm = self.agent.config, self.agent.llm
        if config.policy == "score":
            requests = [ScoreRequest(r.conversation(), r.observation.candidates, r.session) for r in runs]
            actions: list[str | None] = []
            for run, scored in zip(runs, llm.score_many(requests, prefill="<action>"), strict=True):
                run.llm_calls += 1
                run.prompt_tokens += scored.prompt_tokens
                actions.append(
                    pick_action(scored.scores, run.observation.candidates, run.taken, config, run.rng)
                )
        else:
            # Each run draws its seed as Agent.play would, keeping its random stream in step; a sampled batch
            # is seeded by its first run (greedy decoding ignores the seed).
            seeds = [r.rng.randrange(2**31) for r in runs]
            replies = llm.generate(
                [r.conversation() for r in runs], config.max_new_tokens, config.temperature, seeds[0]
            )
            actions = []
            for run, reply in zip(runs, replies, strict=True):
                run.llm_calls += 1
                run.prompt_tokens += reply.prompt_tokens
                run.completion_tokens += reply.completion_tokens
                actions.append(parse_action(reply.text))
        self._each(apply, runs, actions)
        share = (time.perf_counter() - started) / len(runs)
        for run in runs:
            run.elapsed += share


def apply(run: EpisodeRun, action: str | None) -> None:
    """``run.apply(action)``; a simulator failure ends the run with its reason (the engine replays it)."""
    try:
        run.apply(action)
    except run.env.faults as err:
        run.fault = f"{type(err).__name__}: {err}"
        run.done = True


def environment_pool(env: Environment, width: int) -> list[Environment]:
    """``env`` plus up to ``width - 1`` fresh copies of it (fewer if it cannot be copied)."""
    pool = [env]
    while len(pool) < width:
        copy = env.spawn()
        if copy is None:
            break
        pool.append(copy)
    return pool
