"""Steps per second of the batched engine vs the naive loop, side by side in one run, on one loaded model.

    nice python benchmarks/bench_engine.py [--model DIR] [--episodes 4] [--steps 6] [--width 4]

Three players on the same ScienceWorld tasks (train variations of find-living-thing and find-non-living-thing):
  naive       one episode at a time, one ``generate`` call per step, no prompt cache (the issue's baseline)
  sequential  one episode at a time, ``score`` per step, previous prompt's KV cache reused (Agent.play)
  engine      all episodes in lockstep, one ``score_many`` call per step (masa.engine)
It prints steps/s of each, the ratios, the machine, and where the time goes (model, environment, Python).
A step is one agent turn (an unparsable reply costs a turn without an environment step). The sequential
and engine players run twice, before and after the naive one, so load drift on a shared machine hits all
three alike. Not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass, field

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from masa.agent import Agent, AgentConfig, EpisodeResult
from masa.engine import Engine, EpisodeJob
from masa.envs.base import Environment
from masa.envs.scienceworld import ScienceWorld
from masa.llm.base import LLM
from masa.llm.transformers_backend import TransformersLLM
from masa.skills import SkillLibrary

TASKS = ["find-living-thing", "find-non-living-thing"]


@dataclass
class Clock:
    model: float = 0.0
    env: float = 0.0


@dataclass
class TimedLLM(LLM):
    """Delegates to ``inner`` and adds the time spent to ``clock.model``."""

    inner: LLM | None = None
    clock: Clock = field(default_factory=Clock)

    def __post_init__(self) -> None:
        self.usage = self.inner.usage

    def _timed(self, method: str, *args, **kwargs):
        start = time.perf_counter()
        try:
            return getattr(self.inner, method)(*args, **kwargs)
        finally:
            self.clock.model += time.perf_counter() - start

    def generate(self, *args, **kwargs):
        return self._timed("generate", *args, **kwargs)

    def score(self, *args, **kwargs):
        return self._timed("score", *args, **kwargs)

    def score_many(self, *args, **kwargs):
        return self._timed("score_many", *args, **kwargs)

    def end_session(self, session: str) -> None:
        self.inner.end_session(session)


class TimedEnv(Environment):
    """Delegates to ``inner`` and adds reset/step time to ``clock.env``."""

    def __init__(self, inner: Environment, clock: Clock):
        self.inner, self.clock = inner, clock
        self.name, self.max_steps = inner.name, inner.max_steps

    def categories(self):
        return self.inner.categories()

    def instances(self, category, split):
        return self.inner.instances(category, split)

    def reset(self, task):
        start = time.perf_counter()
        try:
            return self.inner.reset(task)
        finally:
            self.clock.env += time.perf_counter() - start

    def step(self, action):
        start = time.perf_counter()
        try:
            return self.inner.step(action)
        finally:
            self.clock.env += time.perf_counter() - start


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            flags = next(ln for ln in info if ln.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "amx_tile")
    return " ".join(f for f in wanted if f in flags) + ("" if "amx_bf16" in flags else " (no AMX)")


def report(name: str, episodes: list[EpisodeResult], wall: float, clock: Clock) -> float:
    steps = sum(e.steps for e in episodes)
    rate = steps / wall
    python = max(0.0, wall - clock.model - clock.env)
    print(
        f"{name:<10} {len(episodes)} episodes, {steps} steps in {wall:7.1f} s = {rate:6.3f} steps/s | "
        f"model {clock.model / wall:5.1%}, environment {clock.env / wall:5.1%}, Python {python / wall:5.1%} | "
        f"mean progress {sum(e.score for e in episodes) / len(episodes):.2f}"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="/work/main/resources/models/smollm2-135m-instruct")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--candidates", type=int, default=12)
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}")
    model = TransformersLLM(name="bench", path=args.model, threads=2)
    base = ScienceWorld(TASKS, args.steps, max_candidates=args.candidates)
    tasks = [t for c in TASKS for t in base.instances(c, "train")[: args.episodes // len(TASKS)]]
    library = SkillLibrary.load("resources/skills/scienceworld.json")
    jobs = [EpisodeJob(t, library.render(t.category), 0) for t in tasks]
    pool = [base, *(base.spawn() for _ in range(args.width - 1))]
    for env in pool:  # start every JVM and let its JIT warm up before the clocks run
        env.reset(tasks[0])
        for _ in range(3):
            env.step("look around")
    players = {
        "naive": AgentConfig(policy="generate"),
        "sequential": AgentConfig(policy="score", repeat_penalty=1.0),
        "engine": AgentConfig(policy="score", repeat_penalty=1.0),
    }
    totals = {name: ([], 0.0, Clock()) for name in players}
    # Load on a shared machine drifts: the fast players run before and after the slow one, and add up.
    for name in ("sequential", "engine", "naive", "engine", "sequential"):
        episodes, wall, clock = totals[name]
        llm = TimedLLM(name=name, inner=model, clock=clock)
        model._last_prefix = None
        start = time.perf_counter()
        if name == "engine":
            episodes += Engine(Agent(llm, players[name]), [TimedEnv(env, clock) for env in pool], 0.25).play(
                jobs
            )
        else:
            agent, env = Agent(llm, players[name]), TimedEnv(base, clock)
            episodes += [agent.play(env, j.task, j.skills_text, j.seed, 0.25) for j in jobs]
        totals[name] = (episodes, wall + time.perf_counter() - start, clock)
    rates = {name: report(name, *totals[name]) for name in players}
    print(
        f"engine / naive x{rates['engine'] / rates['naive']:.1f}; "
        f"engine / sequential x{rates['engine'] / rates['sequential']:.1f}; "
        f"sequential / naive x{rates['sequential'] / rates['naive']:.1f}"
    )
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"flags: {cpu_flags()}; torch threads 2; model {args.model}; {args.width} episodes in flight; "
        f"load after: {os.getloadavg()}"
    )
    for env in pool:
        env.close()


if __name__ == "__main__":
    main()
