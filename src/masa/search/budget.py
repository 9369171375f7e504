"""What a search stage spent, and the budget that may stop it (``budget: {episodes, tokens}`` in config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from masa.rollout.cost import Cost


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
