"""When Stage 1 accepts a candidate: the paper's strict rule, a minimum gain, or a paired test.

Candidate and incumbent are always played on the same task instances and seeds (common random numbers), so
their rewards pair episode by episode; the paired rules test the per-episode differences, which removes the
instances' own difficulty from the noise. ``paired_differences`` refuses unpaired evaluations.
"""

from __future__ import annotations

import math
import random
from statistics import fmean

from masa.rollout.agent import EpisodeResult

RULES = ("strict", "min_gain", "sign_test", "paired_bootstrap")


def paired_differences(candidate: list[EpisodeResult], incumbent: list[EpisodeResult]) -> list[float]:
    """Per-episode reward differences over the pairs both played (a failed episode has no reward to compare);
    raises ValueError unless both were played on the same instances in order."""
    if [e.task for e in candidate] != [e.task for e in incumbent]:
        raise ValueError(
            "candidate and incumbent were not played on the same task instances: acceptance needs common "
            f"random numbers ({[e.task for e in candidate][:3]} vs {[e.task for e in incumbent][:3]})"
        )
    pairs = zip(candidate, incumbent, strict=True)
    return [c.reward - i.reward for c, i in pairs if not (c.error or i.error)]


def sign_test_p(differences: list[float]) -> float:
    """One-sided exact sign test: P(at least this many positive differences | no effect); ties dropped."""
    wins = sum(d > 0 for d in differences)
    n = wins + sum(d < 0 for d in differences)
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n


def paired_bootstrap_p(differences: list[float], resamples: int = 2000, seed: int = 0) -> float:
    """One-sided bootstrap p-value of a positive mean difference: share of resampled means at or below 0."""
    if not differences:
        return 1.0
    rng = random.Random(seed)
    below = sum(fmean(rng.choices(differences, k=len(differences))) <= 0 for _ in range(resamples))
    return below / resamples


def decide(
    rule: str,
    candidate: list[EpisodeResult],
    incumbent: list[EpisodeResult],
    min_gain: float = 0.0,
    alpha: float = 0.05,
    seed: int = 0,
) -> bool:
    """Accept ``candidate`` over ``incumbent`` under ``rule`` (see RULES); every rule needs a positive mean gain."""
    differences = paired_differences(candidate, incumbent)
    gain = fmean(differences) if differences else 0.0
    if rule == "strict":
        return gain > 0
    if rule == "min_gain":
        return gain > min_gain
    if rule == "sign_test":
        return gain > 0 and sign_test_p(differences) < alpha
    if rule == "paired_bootstrap":
        return gain > 0 and paired_bootstrap_p(differences, seed=seed) < alpha
    raise ValueError(f"unknown acceptance rule {rule!r} (one of {RULES})")
