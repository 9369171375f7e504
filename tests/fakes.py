"""Scripted stand-ins for unit tests of the search logic: exact, instant, and honest about what they do."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from masa.envs.base import Environment, Observation, StepOutcome, TaskInstance
from masa.llm.base import LLM, Generation, Message
from masa.rollout.agent import AgentConfig
from masa.rollout.settings import EpisodeSettings


@dataclass
class ScriptedLLM(LLM):
    """Replies from a list in order (the last one repeats); scores prefer candidates containing ``liked``."""

    replies: list[str] = field(default_factory=list)
    liked: str = ""
    prompts: list[str] = field(default_factory=list)

    def generate(self, conversations, max_new_tokens, temperature=0.0, seed=0, prefill="", schema=None):
        out = []
        for conversation in conversations:
            self.prompts.append(conversation[-1].content)
            index = min(len(self.prompts) - 1, len(self.replies) - 1)
            text = self.replies[index] if self.replies else ""
            out.append(Generation(prefill + text, 10, 5))
        self.usage.add(calls=len(out), prompt_tokens=10 * len(out), completion_tokens=5 * len(out))
        return out

    def score(self, conversation: list[Message], candidates, prefill=""):
        self.prompts.append(conversation[-1].content)
        self.usage.add(calls=1, prompt_tokens=10)
        return [1.0 if self.liked and self.liked in c else -float(len(c)) / 100 for c in candidates]


@dataclass
class HashLLM(LLM):
    """Scores and replies that are a fixed function of the whole prompt: any change in what the model sees
    (a step, an observation, the history) changes its choice, so two players agree only if their prompts do.
    Candidates with "forward" get a bonus, so episodes of different lengths end at different steps."""

    def generate(self, conversations, max_new_tokens, temperature=0.0, seed=0, prefill="", schema=None):
        out = []
        for conversation in conversations:
            text = conversation[-1].content
            actions = text.split("Admissible actions: ")[-1].split("\n")[0].split(", ")
            reply = (
                f"<action>{actions[zlib.crc32(text.encode()) % (len(actions) + 1) % len(actions)]}</action>"
            )
            out.append(Generation(prefill + reply, len(text) // 4, 7))
        self.usage.add_generations(out)
        return out

    def score(self, conversation, candidates, prefill=""):
        text = conversation[-1].content
        self.usage.add(calls=1, prompt_tokens=len(text) // 4 + len(candidates))
        return [
            0.6 * ("forward" in c) - (zlib.crc32(f"{text}|{c}".encode()) % 1000) / 1000 for c in candidates
        ]


class CorridorEnv(Environment):
    """A corridor of ``length`` rooms: 'go forward' advances, 'wait' changes nothing, the end wins.

    With ``spread``, instance i is ``spread * i`` rooms longer (episodes of one evaluation end at different
    steps) and offers a 'go back' too."""

    name = "corridor"

    def __init__(self, length: int = 3, max_steps: int = 5, spread: int = 0):
        self.base, self.length, self.max_steps, self.position, self.spread = (
            length,
            length,
            max_steps,
            0,
            spread,
        )
        self.resets = 0

    def spawn(self):
        return CorridorEnv(self.base, self.max_steps, self.spread)

    def categories(self):
        return ["walk"]

    def instances(self, category, split):
        return [TaskInstance(self.name, category, str(i), split) for i in range(3)]

    def _obs(self):
        actions = ("go forward", "wait", "go back") if self.spread else ("go forward", "wait")
        return Observation(f"room {self.position}", "reach the end", actions)

    def reset(self, task):
        self.position, self.resets = 0, self.resets + 1
        self.length = self.base + self.spread * int(task.instance)
        return self._obs()

    def step(self, action):
        moved = action == "go forward" or (action == "go back" and self.position > 0)
        self.position += 1 if action == "go forward" else -1 if moved else 0
        won = self.position >= self.length
        return StepOutcome(self._obs(), self.position / self.length, won, won, not moved)


def fake_settings(agent: AgentConfig | None = None, noop_penalty: float = 0.25) -> EpisodeSettings:
    """Episode settings of a fake model on the corridor, for Evaluators built by hand."""
    return EpisodeSettings.of(
        {"backend": "fake"}, None, agent or AgentConfig(), {"name": "corridor"}, noop_penalty
    )
