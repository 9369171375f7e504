"""Statistics a reviewer can trust: percentile bootstrap intervals and paired differences between methods.

Every score in the report carries a 95% interval over episodes. Two methods evaluated on the same (task,
seed) pairs are compared by the per-pair difference, resampled as pairs: the task-to-task spread that both
methods share then cancels, which is what makes small evaluations informative at all.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass
from statistics import fmean
from typing import Any

LEVEL = 0.95


def percentile_interval(means: list[float], level: float = LEVEL) -> tuple[float, float]:
    """The (1-level)/2 and (1+level)/2 percentiles of a bootstrap distribution (sorted here)."""
    ordered = sorted(means)
    tail = (1 - level) / 2
    last = len(ordered) - 1
    return ordered[int(tail * len(ordered))], ordered[min(last, int((1 - tail) * len(ordered)))]


def bootstrap_means(values: list[float], resamples: int, seed: int) -> list[float]:
    """Means of resamples with replacement. When every ordered resample fits in the budget
    (n**n <= resamples, i.e. n <= 4 at 1000) the exact bootstrap distribution is enumerated instead of
    sampled, so a tiny evaluation's interval does not depend on the random seed."""
    n = len(values)
    if n**n <= resamples:
        return [fmean(draw) for draw in itertools.product(values, repeat=n)]
    rng = random.Random(seed)
    return [fmean(rng.choices(values, k=n)) for _ in range(resamples)]


def bootstrap_interval(
    values: list[float], resamples: int = 1000, seed: int = 0, level: float = LEVEL
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (degenerate for fewer than two values)."""
    if len(values) < 2:
        value = values[0] if values else 0.0
        return value, value
    return percentile_interval(bootstrap_means(values, resamples, seed), level)


PairKey = tuple[str, int]  # (task instance key, seed)


@dataclass(frozen=True)
class PairedDifference:
    """Mean of (treatment - control) over the shared (task, seed) pairs, with its paired bootstrap interval."""

    mean: float
    low: float
    high: float
    pairs: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @property
    def excludes_zero(self) -> bool:
        return self.pairs > 1 and (self.low > 0 or self.high < 0)


def paired_difference(
    treatment: dict[PairKey, float], control: dict[PairKey, float], resamples: int = 1000, seed: int = 0
) -> PairedDifference:
    """Pairs present in both; a comparison with no shared pair is a mistake in the caller's inputs."""
    keys = sorted(treatment.keys() & control.keys())
    if not keys:
        raise ValueError(
            "paired difference: the two evaluations share no (task, seed) pair; evaluate both methods on "
            "the same instances and seeds"
        )
    diffs = [treatment[k] - control[k] for k in keys]
    low, high = bootstrap_interval(diffs, resamples, seed)
    return PairedDifference(fmean(diffs), low, high, len(keys))


def episode_rewards(record: dict[str, Any], metric: str = "reward") -> dict[PairKey, float]:
    """(task, seed) -> ``metric`` of one evaluation record (``results/.../eval/*.json``); a failed episode
    has no ``metric`` to pair, so it is left out and the pairs are those both records played."""
    out: dict[PairKey, float] = {}
    for episode in record["episodes"]:
        if episode.get("error"):
            continue
        key = (episode["task"], int(episode.get("seed", 0)))
        if key in out:
            raise ValueError(f"evaluation of {record.get('method')}: episode {key} appears twice")
        out[key] = float(episode[metric])
    return out
