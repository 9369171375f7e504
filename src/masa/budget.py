"""What a search stage spent, and the budget that may stop it (``budget: {episodes, tokens}`` in config)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from masa.rollout import Summary


@dataclass(frozen=True)
class Budget:
    episodes: int | None = None  # played episodes (cache hits are free)
    tokens: int | None = None  # prompt + completion tokens of the rollouts

    @classmethod
    def from_config(cls, data: dict[str, Any] | Budget | None) -> Budget:
        if isinstance(data, Budget):
            return data
        return cls(**(data or {}))

    def exhausted(self, spent: Cost) -> str:
        """Why the budget is used up ("" while it is not)."""
        if self.episodes is not None and spent.episodes >= self.episodes:
            return f"budget: {spent.episodes} of {self.episodes} episodes played"
        if self.tokens is not None and spent.tokens >= self.tokens:
            return f"budget: {spent.tokens} of {self.tokens} tokens used"
        return ""


@dataclass(frozen=True)
class Cost:
    """Totals over a stage's evaluations; ``episodes`` counts played ones, ``cache_hits`` the replayed."""

    episodes: int = 0
    cache_hits: int = 0
    env_steps: int = 0
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def of(cls, summaries: list[Summary]) -> Cost:
        return cls(
            episodes=sum(s.episodes - s.cache_hits for s in summaries),
            cache_hits=sum(s.cache_hits for s in summaries),
            env_steps=sum(s.steps for s in summaries),
            llm_calls=sum(s.llm_calls for s in summaries),
            prompt_tokens=sum(s.prompt_tokens for s in summaries),
            completion_tokens=sum(s.completion_tokens for s in summaries),
            seconds=sum(s.seconds for s in summaries),
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens": self.tokens}
