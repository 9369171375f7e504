"""Steps per second of the batched engine vs the naive loop, side by side in one run, on one loaded model.

    python benchmarks/bench_engine.py [--config config/config.yaml] [--backbone NAME] [--steps N] [--width N]

The setting is the default config's: its first backbone (or --backbone) with its agent, the ScienceWorld
tasks, steps, candidates, base skills, search instances per category and episodes in flight; the flags
override a few. Three players on the same ScienceWorld train instances:
  naive       one episode at a time, one ``generate`` call per step, no prompt cache (the issue's baseline)
  sequential  one episode at a time, ``score`` per step, previous prompt's KV cache reused (Agent.play)
  engine      all episodes in lockstep, one ``score_many`` call per step (masa.rollout.engine)
It prints steps/s of each, the ratios, the machine, and where the time goes (model, environment, Python).
A step is one agent turn (an unparsable reply costs a turn without an environment step). The players take
turns in two rounds (the naive one plays half the jobs in each), so load drift on a shared machine hits all
three alike. Every simulator is warmed up first, and no player starts from another's prompt caches. Not a
test.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from masa.config import validate_config
from masa.envs.base import Environment
from masa.envs.scienceworld import ScienceWorld
from masa.llm.base import LLM
from masa.llm.transformers_backend import TransformersLLM
from masa.rollout.agent import Agent, AgentConfig, EpisodeResult
from masa.rollout.engine import Engine, EpisodeJob
from masa.skills.library import SkillLibrary

SCHEMA = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"


@dataclass
class Clock:
    """Seconds in the model, and the environment's busy intervals (the engine steps a pool of simulators
    side by side, so their time is the length of the intervals' union, not their sum)."""

    model: float = 0.0
    env_intervals: list[tuple[float, float]] = field(default_factory=list)

    @property
    def env(self) -> float:
        total, reach = 0.0, float("-inf")
        for start, end in sorted(self.env_intervals):
            total += max(0.0, end - max(start, reach))
            reach = max(reach, end)
        return total


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
    """Delegates to ``inner`` and records its reset/step intervals in ``clock``."""

    def __init__(self, inner: Environment, clock: Clock):
        self.inner, self.clock = inner, clock
        self.name, self.max_steps = inner.name, inner.max_steps
        self.steps_concurrently = inner.steps_concurrently

    def categories(self):
        return self.inner.categories()

    def instances(self, category, split):
        return self.inner.instances(category, split)

    def _timed(self, method: str, argument):
        start = time.perf_counter()
        try:
            return getattr(self.inner, method)(argument)
        finally:
            self.clock.env_intervals.append((start, time.perf_counter()))

    def reset(self, task):
        return self._timed("reset", task)

    def step(self, action):
        return self._timed("step", action)


def warm_up(env: Environment, tasks: list, steps: int) -> None:
    """Start the JVM and play ``steps`` steps through the candidates, so its JIT has compiled the simulator
    before the clocks run: a search job's pool lives for thousands of steps, and a cold JVM spends 3x the CPU
    per step (measured: 52 ms after 30 steps, 17 ms after 300)."""
    observation = env.reset(tasks[0])
    for step in range(steps):
        outcome = env.step(observation.candidates[step % len(observation.candidates)])
        observation = env.reset(tasks[step % len(tasks)]) if outcome.done else outcome.observation


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
    parser.add_argument("--config", default="config/config.yaml", type=Path)
    parser.add_argument("--backbone", help="a backbone of the config (default: its first)")
    parser.add_argument("--steps", type=int, help="episode length (default: the config's max_steps)")
    parser.add_argument("--width", type=int, help="episodes in flight (default: the config's)")
    parser.add_argument("--warmup", type=int, default=300, help="simulator steps per JVM before timing")
    args = parser.parse_args()
    config = validate_config(yaml.safe_load(args.config.read_text()), SCHEMA)  # defaults filled, errors named
    backbone = args.backbone or next(iter(config["backbones"]))
    spec = config["backbones"][backbone]
    science = config["environments"]["scienceworld"]
    width = args.width or config["engine"]["episodes_in_flight"]
    noop_penalty = config["reward"]["noop_penalty"]
    print(f"load before: {os.getloadavg()}")
    model_dir = f"resources/models/{spec['model']['packaged']}"
    model = TransformersLLM(name="bench", path=model_dir, threads=2)
    base = ScienceWorld(
        science["tasks"], args.steps or science["max_steps"], max_candidates=science["max_candidates"]
    )
    tasks = [t for c in science["tasks"] for t in base.instances(c, "train")[: science["search_instances"]]]
    library = SkillLibrary.load(config["skills"]["base"]["scienceworld"])
    jobs = [EpisodeJob(t, library.render(t.category), 0) for t in tasks]
    pool = [base, *(base.spawn() for _ in range(width - 1))]
    with ThreadPoolExecutor(len(pool)) as threads:
        list(threads.map(lambda env: warm_up(env, tasks, args.warmup), pool))
    scoring = AgentConfig(policy="score", repeat_penalty=spec["agent"]["repeat_penalty"])
    players = {
        "engine": scoring,
        "naive": AgentConfig(policy="generate"),
        "sequential": scoring,
    }
    totals = {name: ([], 0.0, Clock()) for name in players}
    # Load on a shared machine drifts, so the players take turns: in each of two rounds the engine and the
    # sequential player play every job, and the slow naive player half of them.
    turns = [(name, jobs if name != "naive" else jobs[half::2]) for half in (0, 1) for name in players]
    for name, played in turns:
        episodes, wall, clock = totals[name]
        llm = TimedLLM(name=name, inner=model, clock=clock)
        model.forget_prompts()  # no player starts from another's caches
        start = time.perf_counter()
        if name == "engine":
            engine = Engine(Agent(llm, players[name]), [TimedEnv(env, clock) for env in pool], noop_penalty)
            episodes += engine.play(played)
        else:
            agent, env = Agent(llm, players[name]), TimedEnv(base, clock)
            episodes += [agent.play(env, j.task, j.skills_text, j.seed, noop_penalty) for j in played]
        totals[name] = (episodes, wall + time.perf_counter() - start, clock)
    rates = {name: report(name, *totals[name]) for name in players}
    print(
        f"engine / naive x{rates['engine'] / rates['naive']:.1f}; "
        f"engine / sequential x{rates['engine'] / rates['sequential']:.1f}; "
        f"sequential / naive x{rates['sequential'] / rates['naive']:.1f}"
    )
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"flags: {cpu_flags()}; torch threads 2; backbone {backbone} ({model_dir}); {len(jobs)} episodes of "
        f"{base.max_steps} steps, {width} in flight; "
        f"load after: {os.getloadavg()}"
    )
    for env in pool:
        env.close()


if __name__ == "__main__":
    main()
