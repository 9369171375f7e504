import random

import pytest

from masa.stats import (
    bootstrap_interval,
    detectable_change,
    episode_rewards,
    paired_difference,
    percentile_interval,
)


def test_bootstrap_interval_matches_the_hand_computed_exact_distribution():
    # [0, 0, 0, 1]: the mean of a resample is k/4 with k ~ Binomial(4, 1/4) over the 256 ordered resamples:
    # k=0: 81, k=1: 108, k=2: 54, k=3: 12, k=4: 1. Sorted, index int(0.025*256)=6 is 0 and index
    # int(0.975*256)=249 falls in the k=3 block (indices 243..254), so the interval is [0, 0.75].
    assert bootstrap_interval([0.0, 0.0, 0.0, 1.0]) == (0.0, 0.75)


def test_exact_bootstrap_ignores_the_seed_and_sampled_bootstrap_brackets_the_mean():
    assert bootstrap_interval([0.2, 0.9, 0.4], seed=1) == bootstrap_interval([0.2, 0.9, 0.4], seed=2)
    values = [0.0, 1.0, 0.5, 0.25, 0.75, 0.1, 0.3]
    low, high = bootstrap_interval(values, resamples=500, seed=3)
    assert low < sum(values) / len(values) < high
    assert bootstrap_interval([0.3]) == (0.3, 0.3) and bootstrap_interval([]) == (0.0, 0.0)


def test_percentile_interval_picks_the_tails():
    assert percentile_interval([float(i) for i in range(100, 0, -1)]) == (3.0, 98.0)


def record(method, rewards):
    return {
        "method": method,
        "episodes": [{"task": t, "seed": s, "reward": r} for (t, s), r in rewards.items()],
    }


def test_paired_difference_on_a_fixture():
    # Same four (task, seed) pairs; the treatment wins by 0.1, 0.1, 0.1, 0.5 and has one unshared extra.
    control = record("base_skill", {("a", 0): 0.1, ("b", 0): 0.5, ("a", 1): 0.2, ("b", 1): 0.0})
    treatment = record("masa", {("a", 0): 0.2, ("b", 0): 0.6, ("a", 1): 0.3, ("b", 1): 0.5, ("c", 0): 1.0})
    diff = paired_difference(episode_rewards(treatment), episode_rewards(control))
    assert diff.pairs == 4
    assert diff.mean == pytest.approx(0.2)
    # exact distribution of the mean of 4 draws from [0.1, 0.1, 0.1, 0.5]: same shape as the case above
    assert (diff.low, diff.high) == pytest.approx((0.1, 0.4))
    assert diff.excludes_zero


def test_paired_difference_refuses_disjoint_evaluations_and_duplicate_pairs():
    with pytest.raises(ValueError, match="share no"):
        paired_difference({("a", 0): 1.0}, {("b", 0): 1.0})
    duplicated = {"method": "m", "episodes": [{"task": "a", "seed": 0, "reward": 1.0}] * 2}
    with pytest.raises(ValueError, match="twice"):
        episode_rewards(duplicated)


def test_detectable_change_is_the_hand_computed_bound_and_shrinks_with_the_square_root_of_pairs():
    diffs = [0.1, -0.1, 0.3, -0.3]  # sd = sqrt(0.2 / 3)
    assert detectable_change(diffs, [0.5] * 4) == pytest.approx(2.8016 * (0.2 / 3) ** 0.5 / 2, rel=1e-3)
    assert detectable_change(diffs * 4, [0.5] * 16) == pytest.approx(
        detectable_change(diffs, [0.5] * 4) / 2,
        rel=0.15,  # sd's n-1 differs between 4 and 16 pairs
    )
    # Identical episodes say nothing about a real change: the unpaired bound from the control's spread.
    assert detectable_change([0.0] * 4, [0.2, 0.4, 0.6, 0.8]) > 0.3
    assert detectable_change([0.0], [0.5]) == float("inf")


def test_a_change_of_the_detectable_size_is_found_about_four_times_in_five():
    rng = random.Random(0)
    found, runs = 0, 400
    for _ in range(runs):
        noise = [rng.gauss(0, 0.2) for _ in range(40)]
        bound = detectable_change(noise, [0.5] * 40)
        shifted = [n + bound for n in noise]  # a true change of the bound: the test should find it
        treatment = {(f"t{i}", 0): 0.5 + d for i, d in enumerate(shifted)}
        control = {(f"t{i}", 0): 0.5 for i in range(40)}
        found += paired_difference(treatment, control, resamples=200, seed=1).excludes_zero
    assert 0.6 < found / runs <= 1.0


def test_spearman_ranks_ties_by_their_mean_and_is_undefined_without_variation():
    from masa.stats import ranks, spearman, spearman_interval

    assert ranks([0.3, 0.1, 0.3, 0.2]) == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Pearson on the tie-averaged ranks [1, 2.5, 2.5, 4] and [1, 2, 3, 4]
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / (4.5 * 5) ** 0.5)
    assert spearman([1, 1, 1], [1, 2, 3]) != spearman([1, 1, 1], [1, 2, 3])  # nan: one side constant
    low, high = spearman_interval([1, 2, 3, 4, 5], [1, 3, 2, 5, 4], resamples=200)
    assert -1 <= low <= 0.8 <= high <= 1
