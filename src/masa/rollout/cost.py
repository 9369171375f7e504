"""What each method cost, read from the records the stages already write, so scores sit next to budgets.

A method's cost = its held-out evaluation + whatever produced its library: the searches for MASA and its
ablations (agent rollouts of every candidate plus the teacher's calls), the one-shot teacher rewrite for the
Adapter, training and inference for the Rewriter. Episodes count at their recorded cost even when the
rollout cache served them, so a method's cost does not depend on which job ran first. Records written by
other stages are read tolerantly: a missing key counts as zero, extra keys are ignored, so an older record
still gives a (lower-bound) cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from masa.io import read_json

TRAINING_RECORD = "training.json"  # the rewriter's training cost, written by masa.rewriter.train


@dataclass(frozen=True)
class Cost:
    """Episodes, steps, model calls, tokens and seconds: the one cost record of every stage, the search
    budgets and the report. ``episodes`` counts played ones; ``cache_hits`` those the rollout cache served."""

    episodes: int = 0
    env_steps: int = 0
    llm_calls: int = 0  # agent and teacher/rewriter calls
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cache_hits: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Cost) -> Cost:
        return Cost(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Cost)))

    def as_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "tokens": self.tokens}

    @classmethod
    def of(cls, summaries: Iterable[Any]) -> Cost:
        """Totals over ``masa.rollout.evaluator.Summary`` objects (their counters exclude cache hits)."""
        summaries = list(summaries)
        return cls(
            episodes=sum(s.episodes - s.cache_hits for s in summaries),
            env_steps=sum(s.steps for s in summaries),
            llm_calls=sum(s.llm_calls for s in summaries),
            prompt_tokens=sum(s.prompt_tokens for s in summaries),
            completion_tokens=sum(s.completion_tokens for s in summaries),
            seconds=sum(s.seconds for s in summaries),
            cache_hits=sum(s.cache_hits for s in summaries),
        )


def episodes_cost(episodes: list[dict[str, Any]]) -> Cost:
    """What playing these episodes costs, counting a rollout-cache hit at the cost recorded when it was
    first played: the budget a run without the cache spends, whichever job happened to play it first."""
    return Cost(
        episodes=len(episodes),
        env_steps=sum(int(e.get("steps", 0)) for e in episodes),
        llm_calls=sum(int(e.get("llm_calls", 0)) for e in episodes),
        prompt_tokens=sum(int(e.get("prompt_tokens", 0)) for e in episodes),
        completion_tokens=sum(int(e.get("completion_tokens", 0)) for e in episodes),
        seconds=sum(float(e.get("seconds", 0.0)) for e in episodes),
    )


def summary_cost(summary: dict[str, Any]) -> Cost:
    """The agent's cost in a ``masa.rollout.evaluator.Summary`` dict (its counters exclude cache hits), for records
    that do not keep their episodes."""
    return Cost(
        episodes=int(summary.get("episodes", 0)) - int(summary.get("cache_hits", 0)),
        env_steps=int(summary.get("steps", 0)),
        llm_calls=int(summary.get("llm_calls", 0)),
        prompt_tokens=int(summary.get("prompt_tokens", 0)),
        completion_tokens=int(summary.get("completion_tokens", 0)),
        seconds=float(summary.get("seconds", 0.0)),
    )


def usage_cost(usage: dict[str, Any] | None, seconds: float = 0.0) -> Cost:
    """A model's ``Usage`` dict ({calls, prompt_tokens, completion_tokens}) as a cost."""
    usage = usage or {}
    return Cost(
        llm_calls=int(usage.get("calls", 0)),
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        seconds=float(seconds),
    )


def search_cost(record: dict[str, Any]) -> Cost:
    """A Stage 1 ``candidates.json`` or Stage 2 ``tree.json``: every candidate's rollouts, plus the teacher's
    usage and seconds as the stage recorded them in ``state.teacher_usage``."""
    total = sum((_played(c) for c in record.get("candidates", [])), Cost())
    state = record.get("state", {})
    usage = state.get("teacher_usage") or {}
    return total + usage_cost(usage, usage.get("seconds", 0.0))


def _played(record: dict[str, Any]) -> Cost:
    episodes = record.get("episodes")
    return episodes_cost(episodes) if episodes else summary_cost(record.get("summary", {}))


def rollout_cost(cost: dict[str, Any]) -> Cost:
    """A ``Cost.as_dict`` read back (its derived ``tokens`` dropped, a missing field zero)."""
    return Cost(**{f.name: type(f.default)(cost.get(f.name, 0)) for f in fields(Cost)})


def training_cost(record: dict[str, Any]) -> Cost:
    """The rewriter's ``training.json``: seconds, and tokens when recorded (``tokens`` or ``usage``)."""
    cost = usage_cost(record.get("usage"), record.get("seconds", 0.0))
    return cost + Cost(prompt_tokens=int(record.get("tokens", 0)))


def record_cost(path: str | Path) -> Cost:
    """Cost of one preparation record, by what the file is: search record, lifecycle record (rollouts and
    teacher usage), usage record or adapter folder."""
    path = Path(path)
    if path.is_dir():
        training = path / TRAINING_RECORD
        return training_cost(read_json(training)) if training.is_file() else Cost()
    record = read_json(path)
    if "candidates" in record:
        return search_cost(record)
    if "rollouts" in record:  # a stage that plays libraries and asks the teacher (the skill lifecycle)
        usage = record.get("usage") or {}
        return rollout_cost(record["rollouts"]) + usage_cost(usage, usage.get("seconds", 0.0))
    if "episodes" in record:  # a stage that played episodes and asked a model (the induced library)
        return episodes_cost(record["episodes"]) + usage_cost(record.get("usage"), record.get("seconds", 0.0))
    return usage_cost(record.get("usage"), record.get("seconds", 0.0))


def method_cost(evaluation: dict[str, Any], preparation: list[str]) -> tuple[Cost, Cost]:
    """(evaluation cost, preparation cost) of one method's row."""
    prep = sum((record_cost(p) for p in preparation), Cost())
    return _played(evaluation), prep
