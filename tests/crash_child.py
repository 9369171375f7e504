"""A search run in its own process, for the kill-and-resume tests (tests/test_crash.py).

It runs the real search code (``masa.search.hillclimb`` / ``masa.search.ucb`` through the real ``Evaluator``, agent and
rollout cache) with a deterministic fake model and environment, and records to ``workdir``:

- ``llm_calls.log``: one line per call of the agent's model (flushed, so it survives SIGKILL), and
  ``teacher_calls.log`` the same for the teacher's (an LLM teacher whose replies are a function of the prompt);
- ``episodes.log``: the cache key of every episode actually played (not served from the cache);
- ``result.json``: the final library and candidate records, written when the run finishes.

``--pause KIND:N`` makes the run stop at a chosen point, write ``paused`` and sleep, so that the test can
SIGKILL it at exactly that point: ``checkpoint:N`` after the N-th checkpoint save, ``accepted:1`` after
the checkpoint that records the first accepted rewrite, ``episode:N`` after the N-th played episode,
``replace:N`` inside the N-th checkpoint write (temporary file written, not yet renamed).

Usage: python tests/crash_child.py {hillclimb,ucb} WORKDIR [--pause KIND:N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import masa.io
import masa.search.loop
from masa.envs.base import Environment, Observation, StepOutcome, TaskInstance
from masa.llm.base import LLM, Generation
from masa.rollout.agent import Agent, AgentConfig
from masa.rollout.evaluator import Evaluator, RolloutCache
from masa.rollout.settings import EpisodeSettings
from masa.search.hillclimb import HillClimbConfig, climb_general_skills
from masa.search.ucb import UCBConfig, search_task_skills
from masa.skills.library import Skill, SkillLibrary
from masa.teacher.replies import teacher_record
from masa.teacher.teachers import EditTeacher, LLMTeacher

CATEGORY = "walk"
INITIAL = SkillLibrary(
    general_skills=[Skill("g1", "Look", "Look around first. Then act."), Skill("g2", "Move", "Go forward.")],
    task_specific_skills={CATEGORY: [Skill("w1", "Walk", "Walk to the end. Do not wait.", "in corridors")]},
)
POOL = [Skill(f"p{i}", f"Tip {i}", f"Tip number {i} says go forward {i} times. Count.") for i in range(8)]


class HashLLM(LLM):
    """Scores each action by a hash of (prompt, action): deterministic across processes, and a different
    skill text gives a different policy, so rewrites win and lose like real ones."""

    def __init__(self, calls_log: Path):
        super().__init__("hash-llm")
        self.calls_log = open(calls_log, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the run

    def _record(self) -> None:
        self.calls_log.write(f"{os.getpid()}\n")
        self.calls_log.flush()

    def generate(self, conversations, max_new_tokens, temperature=0.0, seed=0, prefill="", schema=None):
        """The teacher's replies, a fixed function of the prompt: an attribution never validates (the edit
        teacher answers), a rewrite validates two times in three, so usage and fallbacks both accumulate."""
        self._record()
        out = []
        for conversation in conversations:
            prompt = conversation[-1].content
            h = int(hashlib.sha256(prompt.encode()).hexdigest()[:6], 16)
            if prefill.startswith('[{"skill_id"') and h % 3:
                skill = {"title": f"Tip {h % 97}", "principle": f"Go forward {h % 5 + 1} times, then look."}
                reply = json.dumps([{"skill_id": "x", **skill}])  # starts with the prefill, as a reply does
            else:
                reply = "not an answer"
            out.append(Generation(reply, len(prompt) // 4, 9))
        self.usage.add_generations(out)
        return out

    def score(self, conversation, candidates, prefill=""):
        self._record()
        self.usage.add(calls=1, prompt_tokens=10)
        prompt = conversation[-1].content
        return [int(hashlib.sha256(f"{prompt}|{c}".encode()).hexdigest()[:6], 16) / 16**6 for c in candidates]


class Corridor(Environment):
    """Four rooms; 'go forward' advances, 'wait' and 'look' change nothing; reaching the end wins."""

    name = "corridor"
    max_steps = 5

    def __init__(self):
        self.position = 0

    def categories(self):
        return [CATEGORY]

    def instances(self, category, split):
        return [TaskInstance(self.name, category, str(i), split) for i in range(3)]

    def _obs(self):
        return Observation(f"room {self.position}", "reach the end", ("go forward", "wait", "look"))

    def reset(self, task):
        self.position = int(task.instance) % 2
        return self._obs()

    def step(self, action):
        moved = action == "go forward"
        self.position += moved
        won = self.position >= 4
        return StepOutcome(self._obs(), self.position / 4, won, won, not moved)


class LoggedCache(RolloutCache):
    """The real cache, plus a line in ``episodes.log`` for every episode that was actually played."""

    def __init__(self, root: Path, log: Path, pause: tuple[str, int] | None):
        super().__init__(root)
        self.log, self.pause, self.played = log, pause, 0

    def put(self, key, episode):
        super().put(key, episode)
        with open(self.log, "a", encoding="utf-8") as handle:
            handle.write(key + "\n")
        self.played += 1
        if self.pause == ("episode", self.played):
            stop_here()


WORKDIR = Path(".")


def stop_here() -> None:
    """Tell the test we are at the kill point, then wait for the SIGKILL."""
    (WORKDIR / "paused").write_text(str(os.getpid()))
    time.sleep(600)
    raise SystemExit("not killed")


def install_checkpoint_pauses(module, checkpoint: Path, pause: tuple[str, int] | None) -> None:
    """Wrap the search module's checkpoint save (and the rename inside it) to stop at the chosen point."""
    saves = {"n": 0}
    original_save = module.save_checkpoint
    original_replace = os.replace

    def save(path, state, teacher):
        saves["n"] += 1
        original_save(path, state, teacher)
        if pause == ("checkpoint", saves["n"]):
            stop_here()
        if pause and pause[0] == "accepted" and any(c.accepted and c.iteration > 0 for c in state.candidates):
            stop_here()

    def replace(src, dst):
        if pause == ("replace", saves["n"]) and Path(dst) == checkpoint:
            stop_here()
        original_replace(src, dst)

    module.save_checkpoint = save
    masa.io.os.replace = replace


def main() -> None:
    global WORKDIR
    parser = argparse.ArgumentParser()
    parser.add_argument("search", choices=["hillclimb", "ucb"])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--pause", default="")
    args = parser.parse_args()
    WORKDIR = args.workdir
    kind, _, number = args.pause.partition(":")
    pause = (kind, int(number)) if kind else None
    checkpoint = WORKDIR / "checkpoint.json"
    cache = LoggedCache(WORKDIR / "cache", WORKDIR / "episodes.log", pause)
    env = Corridor()
    evaluator = Evaluator(
        Agent(HashLLM(WORKDIR / "llm_calls.log"), AgentConfig(policy="score")),
        env,
        EpisodeSettings.of(
            {"backend": "hash"}, None, AgentConfig(policy="score"), {"name": "corridor"}, 0.25
        ),
        cache=cache,
        progress=False,
    )
    suite = env.instances(CATEGORY, "train")

    def evaluate(library, label):
        return evaluator.run(library, suite, seeds=(0, 1), label=label)

    # the teacher's calls go to their own log: llm_calls.log counts the agent's, which a resume never repeats
    teacher = LLMTeacher(HashLLM(WORKDIR / "teacher_calls.log"), EditTeacher(POOL), retries=0)
    install_checkpoint_pauses(masa.search.loop, checkpoint, pause)
    if args.search == "hillclimb":
        result = climb_general_skills(
            INITIAL, evaluate, teacher, {}, HillClimbConfig(iterations=6, patience=2), 7, checkpoint
        )
        best, records, extra = result.best, result.candidates, {"stopped_by": result.stopped_by}
    else:
        tree = search_task_skills(
            INITIAL, CATEGORY, evaluate, teacher, {}, UCBConfig(iterations=6, max_children=2), 7, checkpoint
        )
        best, records, extra = tree.best, tree.nodes, {}
    masa.io.write_json(
        WORKDIR / "result.json",
        {
            "best": best.node_id,
            "library": best.library.to_dict(),
            "candidates": [c.to_dict() for c in records],
            "transcript": [c.__dict__ for c in teacher.transcript],
            "teacher_usage": {**teacher.llm.usage.as_dict(), "fallbacks": teacher.fallbacks},
            "teacher_replies": teacher_record(teacher),
            **extra,
        },
    )


if __name__ == "__main__":
    main()
