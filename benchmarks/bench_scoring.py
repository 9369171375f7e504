"""Scoring speed with and without reuse of the previous prompt's KV cache, side by side in one run.

    .venv/bin/python benchmarks/bench_scoring.py [model_dir] [steps]

Plays the prompts of a synthetic 8-step agent episode (role, task and the base skills stay fixed; history
and observation change) through ``TransformersLLM.score`` twice, alternating the two modes per step so
machine noise hits both alike, and prints the ratio. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import os
import platform
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from masa.envs.base import Observation
from masa.llm.transformers_backend import TransformersLLM
from masa.rollout.agent import AgentConfig, build_conversation
from masa.skills.library import SkillLibrary


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "resources/models/smollm2-135m-instruct"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    skills = SkillLibrary.load("resources/skills/scienceworld.json").render("find-living-thing")
    candidates = tuple(f"go to room {i}" for i in range(12)) + tuple(f"pick up object {i}" for i in range(12))
    prompts, history = [], []
    for step in range(steps):
        obs = Observation(
            f"You are in room {step}. You see a table, a chair and object {step}.", "find a thing", candidates
        )
        prompts.append(
            build_conversation(
                "scienceworld", "find a living thing", skills, step, steps, history, obs, AgentConfig()
            )
        )
        history.append((obs.text, candidates[step]))
    reuse = TransformersLLM(name="reuse", path=model, threads=2)
    fresh = TransformersLLM(name="fresh", path=model, threads=2)
    timings = {"reuse": 0.0, "fresh": 0.0}
    for _ in range(2):  # warm-up pass, then the measured one
        timings = {"reuse": 0.0, "fresh": 0.0}
        reuse.forget_prompts()
        for conversation in prompts:
            fresh.forget_prompts()  # every call starts from scratch
            t = time.perf_counter()
            fresh.score(conversation, list(candidates), prefill="<action>")
            timings["fresh"] += time.perf_counter() - t
            t = time.perf_counter()
            reuse.score(conversation, list(candidates), prefill="<action>")
            timings["reuse"] += time.perf_counter() - t
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; model {model}")
    print(
        f"{steps} steps x {len(candidates)} candidates: fresh {timings['fresh']:.2f} s, "
        f"reuse {timings['reuse']:.2f} s, speed-up x{timings['fresh'] / timings['reuse']:.2f}"
    )


if __name__ == "__main__":
    main()
