"""Scripted stand-ins for unit tests of the search logic: exact, instant, and honest about what they do."""

from __future__ import annotations

from dataclasses import dataclass, field

from masa.envs.base import Environment, Observation, StepOutcome, TaskInstance
from masa.llm.base import LLM, Generation, Message


@dataclass
class ScriptedLLM(LLM):
    """Replies from a list in order (the last one repeats); scores prefer candidates containing ``liked``."""

    replies: list[str] = field(default_factory=list)
    liked: str = ""
    prompts: list[str] = field(default_factory=list)

    def generate(self, conversations, max_new_tokens, temperature=0.0, seed=0, prefill=""):
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


class CorridorEnv(Environment):
    """A corridor of ``length`` rooms: 'go forward' advances, 'wait' changes nothing, the end wins."""

    name = "corridor"

    def __init__(self, length: int = 3, max_steps: int = 5):
        self.length, self.max_steps, self.position = length, max_steps, 0

    def categories(self):
        return ["walk"]

    def instances(self, category, split):
        return [TaskInstance(self.name, category, str(i), split) for i in range(3)]

    def _obs(self):
        return Observation(f"room {self.position}", "reach the end", ("go forward", "wait"))

    def reset(self, task):
        self.position = 0
        return self._obs()

    def step(self, action):
        moved = action == "go forward"
        self.position += moved
        won = self.position >= self.length
        return StepOutcome(self._obs(), self.position / self.length, won, won, not moved)
