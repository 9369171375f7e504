"""Run inside the vLLM environment by tests/test_vllm_cpu.py: real ScienceWorld episodes through masa's vLLM
backend (offline engine, prompt log-probabilities for `policy: score`), reported as JSON on the last line.

    .venv-vllm/bin/python tests/vllm_episodes.py MODEL_DIR
"""

from __future__ import annotations

import json
import sys

from masa.envs.scienceworld import ScienceWorld
from masa.llm.base import Message
from masa.rollout.agent import Agent, AgentConfig
from masa.stages.context import load_llm

PROBE = [Message("system", "You are an agent."), Message("user", "You see a door. Reply with one action.")]
PROBE_CANDIDATES = ["open door", "look around", "go to kitchen"]


def main(model_dir: str) -> None:  # the engine starts worker processes: keep module import side-effect free
    llm = load_llm({"backend": "vllm", "path": model_dir, "tensor_parallel_size": 1}, None, "vllm-cpu")
    env = ScienceWorld(tasks=["find-living-thing"], max_steps=2, max_candidates=8)
    agent = Agent(llm, AgentConfig(policy="score"))
    try:
        tasks = env.instances("find-living-thing", "dev")[:2]
        episodes = [agent.play(env, task, "", seed, 0.25) for seed, task in enumerate(tasks)]
    finally:
        env.close()
    report = {
        "episodes": [
            {"task": e.task, "steps": e.steps, "llm_calls": e.llm_calls, "prompt_tokens": e.prompt_tokens}
            | {"valid": [s.valid for s in e.trajectory]}
            for e in episodes
        ],
        "probe_scores": llm.score(PROBE, PROBE_CANDIDATES, prefill="<action>"),
        "generation": llm.generate([PROBE], 8, prefill="<action>")[0].text,
        "usage": llm.usage.as_dict(),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
