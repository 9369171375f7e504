"""Statistics a reviewer can trust: percentile bootstrap intervals and paired differences between methods.

Every score in the report carries a 95% interval over episodes. Two methods evaluated on the same (task,
seed) pairs are compared by the per-pair difference, resampled as pairs: the task-to-task spread that both
methods share then cancels, which is what makes small evaluations informative at all.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass
from statistics import NormalDist, fmean, stdev
from typing import Any

LEVEL = 0.95
POWER = 0.80  # of the minimum detectable change: the change a paired test at LEVEL finds four times in five


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
    detectable: float  # the minimum detectable change of these pairs (``detectable_change``)

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
    detectable = detectable_change(diffs, [control[k] for k in keys])
    return PairedDifference(fmean(diffs), low, high, len(keys), detectable)


def detectable_change(diffs: list[float], control: list[float]) -> float:
    """The smallest true mean change that a two-sided paired test at ``LEVEL`` detects with ``POWER``:
    (z_(1+LEVEL)/2 + z_POWER) x sd / sqrt(n), the normal approximation.

    sd is the spread of the paired differences. Where they are all equal (two methods that played the same
    episodes) that spread says nothing about a real change, so the unpaired bound sqrt(2) x sd(control) is
    used instead; with fewer than two pairs nothing is detectable (infinity).
    """
    if len(diffs) < 2:
        return float("inf")
    z = NormalDist().inv_cdf((1 + LEVEL) / 2) + NormalDist().inv_cdf(POWER)
    spread = stdev(diffs) or 2**0.5 * stdev(control)
    return z * spread / len(diffs) ** 0.5 if spread else float("inf")


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


def ranks(values: list[float]) -> list[float]:
    """Ranks from 1, ties given their mean rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (nan when either side is constant or there are fewer than 3 pairs)."""
    if len(x) != len(y):
        raise ValueError(f"spearman needs pairs: {len(x)} vs {len(y)} values")
    if len(x) < 3:
        return float("nan")
    rx, ry = ranks(x), ranks(y)
    mx, my = fmean(rx), fmean(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return sxy / (sxx * syy) ** 0.5 if sxx and syy else float("nan")


def spearman_interval(
    x: list[float], y: list[float], resamples: int = 1000, seed: int = 0, level: float = LEVEL
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``spearman`` over resampled pairs (resamples with a constant side
    are skipped; nan, nan when fewer than 3 pairs)."""
    if len(x) < 3:
        return float("nan"), float("nan")
    rng = random.Random(seed)
    values = []
    for _ in range(resamples):
        picks = [rng.randrange(len(x)) for _ in x]
        rho = spearman([x[i] for i in picks], [y[i] for i in picks])
        if rho == rho:
            values.append(rho)
    return percentile_interval(values, level) if values else (float("nan"), float("nan"))
