"""The one interface every language model goes through: chat generation (batched) and action scoring.

Backends count their own calls and tokens, so every stage can report its cost without knowing which
engine served it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass
class Usage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, calls: int = 0, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        self.calls += calls
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def add_generations(self, generations: list[Generation]) -> None:
        """Count one call per generation with the tokens each reported."""
        self.add(
            calls=len(generations),
            prompt_tokens=sum(g.prompt_tokens for g in generations),
            completion_tokens=sum(g.completion_tokens for g in generations),
        )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class ScoreRequest:
    """One episode's step for ``LLM.score_many``: its prompt and the actions to rank.

    ``session`` names the episode, so a backend can keep the KV cache of its last prompt for the next step.
    """

    conversation: list[Message]
    candidates: tuple[str, ...]
    session: str = ""


@dataclass(frozen=True)
class Scored:
    scores: list[float]
    prompt_tokens: int


@dataclass
class LLM(ABC):
    """A language model backend. ``name`` labels it in logs and records."""

    name: str
    usage: Usage = field(default_factory=Usage)
    # Whether ``generate`` holds replies to its ``schema`` (a grammar or the server's structured outputs);
    # callers of a backend that does not may prefill the reply's start and must validate it either way.
    follows_schema: ClassVar[bool] = False

    @abstractmethod
    def generate(
        self,
        conversations: list[list[Message]],
        max_new_tokens: int,
        temperature: float = 0.0,
        seed: int = 0,
        prefill: str = "",
        schema: dict[str, Any] | None = None,
    ) -> list[Generation]:
        """One reply per conversation. ``prefill`` starts every reply (e.g. ``{`` for JSON) and is
        included in the returned text. ``schema`` (a JSON schema) constrains the reply where
        ``follows_schema`` says the backend can, and is ignored elsewhere."""

    @abstractmethod
    def score(self, conversation: list[Message], candidates: list[str], prefill: str = "") -> list[float]:
        """Mean token log-probability of each candidate as the start of the assistant's reply.

        The mean, not the sum: the sum favours the shortest actions (docs/models.md measured 1/10 vs 5/10).
        """

    def score_many(self, requests: list[ScoreRequest], prefill: str = "") -> list[Scored]:
        """``score`` for many episodes' steps at once (the batched engine's one call per lockstep step).

        This default scores them one by one; backends that can batch override it with the same results.
        """
        out = []
        for request in requests:
            before = self.usage.prompt_tokens
            scores = self.score(request.conversation, list(request.candidates), prefill)
            out.append(Scored(scores, self.usage.prompt_tokens - before))
        return out

    def end_session(self, session: str) -> None:  # noqa: B027 - optional hook
        """The episode ``session`` is over; a backend may drop what it kept for it."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release engine resources; backends that hold none need not override it."""
