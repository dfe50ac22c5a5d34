"""The regression gate's statistics: the signed-rank interval of a ratio and the decision taken from it.

Everything here runs on synthetic per-round values from seeded generators:
deterministic, no timing. What would make the gate cry wolf or miss a
slowdown shows up here as a wrong distribution, a wrong interval or a wrong
verdict.
"""
import itertools
import math

import numpy as np
import pytest
from scipy import stats

from pgdbench.harness.ratio_stats import (MIN_ROUNDS, RatioInterval, Verdict, decide, hodges_lehmann_interval,
                                          ratio_interval, round_log_ratio, rounds_needed, signed_rank_cdf,
                                          walsh_averages)


@pytest.mark.parametrize("n", [1, 2, 5, 8, 11])
def test_signed_rank_distribution_matches_enumeration(n):
    counts = np.zeros(n * (n + 1) // 2 + 1)
    for signs in itertools.product((0, 1), repeat=n):
        counts[sum(rank for rank, s in zip(range(1, n + 1), signs) if s)] += 1
    np.testing.assert_allclose(signed_rank_cdf(n), np.cumsum(counts) / 2 ** n, rtol=0, atol=1e-15)


def test_signed_rank_distribution_matches_scipy():
    # scipy's exact one-sided p-value P(T ≤ t), for a size enumeration cannot reach: values whose
    # positive ranks sum to exactly t
    n = 30
    cdf = signed_rank_cdf(n)
    for t in (50, 100, 137, 200, 300):
        signs, rest = -np.ones(n), t
        for rank in range(n, 0, -1):
            if rank <= rest:
                signs[rank - 1], rest = 1, rest - rank
        result = stats.wilcoxon(signs * np.arange(1, n + 1), alternative="less", method="exact")
        assert result.statistic == t
        assert cdf[t] == pytest.approx(result.pvalue, rel=1e-12)
    pmf = np.diff(np.concatenate([[0.0], cdf]))
    np.testing.assert_allclose(pmf, pmf[::-1], atol=1e-15)   # symmetric about n(n+1)/4
    assert cdf[-1] == pytest.approx(1.0)


def test_walsh_averages_are_all_pairwise_means():
    w = walsh_averages([3.0, 1.0, 2.0])
    assert list(w) == sorted([3.0, 1.0, 2.0, 2.0, 2.5, 1.5])


def test_interval_of_six_values_is_the_range_of_walsh_averages_at_969_percent():
    values = [0.05, -0.02, 0.01, 0.03, 0.00, 0.02]
    est, low, high, conf = hodges_lehmann_interval(values, 0.95)
    w = walsh_averages(values)
    assert (low, high) == (w[0], w[-1])
    assert conf == pytest.approx(1 - 2 / 64)
    assert est == pytest.approx(np.median(w))


def test_too_few_rounds_give_an_unbounded_interval():
    est, low, high, conf = hodges_lehmann_interval([0.1, 0.11, 0.09, 0.1, 0.1], 0.95)
    assert (low, high, conf) == (-math.inf, math.inf, 0.0)
    interval = ratio_interval([0.1] * 5)
    assert not interval.bounded and interval.low == 0 and interval.high == math.inf
    assert decide(interval, 0.05) is Verdict.UNDECIDED


def test_interval_bounds_are_where_the_signed_rank_test_stops_rejecting():
    # Inverting the test: shifting the data by a value inside the interval must not be rejected at 5 %,
    # shifting it just beyond either bound must be.
    rng = np.random.default_rng(3)
    d = rng.normal(0.02, 0.03, size=15)
    _, low, high, conf = hodges_lehmann_interval(d, 0.95)
    alpha = 1 - conf

    def p(shift):
        return stats.wilcoxon(d - shift, method="exact").pvalue

    assert p((low + high) / 2) > 0.05
    assert p(low - 1e-9) <= alpha + 1e-9 and p(high + 1e-9) <= alpha + 1e-9
    assert p(low + 1e-9) > alpha and p(high - 1e-9) > alpha


def test_coverage_of_the_interval_on_skewed_noise_is_at_least_nominal():
    # Rounds disturbed by load: mostly small symmetric noise, sometimes a large excursion either way.
    rng = np.random.default_rng(11)
    covered = 0
    trials = 2000
    for _ in range(trials):
        noise = rng.normal(0, 0.03, 12)
        burst = rng.random(12) < 0.15
        noise[burst] += rng.choice([-1, 1], burst.sum()) * rng.exponential(0.2, burst.sum())
        _, low, high, _ = hodges_lehmann_interval(np.log(1.0) + noise, 0.95)
        covered += low <= 0 <= high
    assert covered / trials >= 0.94


def test_one_outlying_round_moves_the_interval_by_a_rank_not_by_its_size():
    # from 12 rounds on, the n Walsh averages an outlier takes part in are fewer than the c cut off each side
    base = [0.01, -0.01, 0.0, 0.02, -0.02, 0.01, 0.0, -0.01, 0.015, -0.005, 0.005, -0.015]
    calm = ratio_interval(base)
    stormy = ratio_interval(base[:-1] + [2.0])   # one round 7× slower on one side only
    assert stormy.high < 1.05 and abs(stormy.ratio - calm.ratio) < 0.01


def test_decisions():
    ok = RatioInterval(1.0, 0.98, 1.03, 10, 0.95)
    assert decide(ok, 0.05) is Verdict.OK
    assert decide(RatioInterval(1.12, 1.07, 1.18, 10, 0.95), 0.05) is Verdict.REGRESSION
    assert decide(RatioInterval(0.8, 0.75, 0.9, 10, 0.95), 0.05) is Verdict.FASTER
    assert decide(RatioInterval(1.04, 1.0, 1.09, 10, 0.95), 0.05) is Verdict.UNDECIDED   # straddles 1.05
    assert decide(RatioInterval(1.12, 1.07, 1.18, MIN_ROUNDS - 1, 0.95), 0.05) is Verdict.UNDECIDED
    # a slowdown smaller than the threshold is "ok": the gate promises nothing below it
    assert decide(RatioInterval(1.03, 1.02, 1.04, 10, 0.95), 0.05) is Verdict.OK
    with pytest.raises(ValueError):
        decide(ok, 0)


def _simulate(true_ratio, spread, threshold=0.05, max_rounds=40, seed=0):
    """The gate's stopping rule on synthetic rounds: (verdict, rounds used)."""
    rng = np.random.default_rng(seed)
    values = []
    for n in range(1, max_rounds + 1):
        values.append(math.log(true_ratio) + rng.normal(0, spread))
        verdict = decide(ratio_interval(values), threshold)
        if verdict.decided:
            return verdict, n
    return Verdict.UNDECIDED, max_rounds


def test_stopping_rule_catches_a_ten_percent_slowdown_and_passes_unchanged_code():
    # spread 0.045: the per-round spread measured on the 2-core development machine with another job running
    caught = [_simulate(1.10, 0.045, seed=s)[0] for s in range(200)]
    passed = [_simulate(1.00, 0.045, seed=1000 + s)[0] for s in range(200)]
    assert sum(v is Verdict.REGRESSION for v in caught) >= 195
    assert not any(v is Verdict.REGRESSION for v in passed)
    assert sum(v in (Verdict.OK, Verdict.FASTER) for v in passed) >= 195


def test_stopping_rule_says_undecided_at_the_threshold():
    verdicts = [_simulate(1.05, 0.08, seed=s)[0] for s in range(50)]
    assert sum(v is Verdict.UNDECIDED for v in verdicts) >= 25


def test_round_value_is_the_median_pair_log_ratio():
    assert round_log_ratio([1.0, 1.0, 1.0], [1.1, 1.2, 5.0]) == pytest.approx(math.log(1.2))
    with pytest.raises(ValueError):
        round_log_ratio([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        round_log_ratio([0.0], [1.0])


def test_rounds_needed_grows_with_the_spread():
    rng = np.random.default_rng(5)
    quiet = rounds_needed(rng.normal(0, 0.02, 8), 0.05)
    noisy = rounds_needed(rng.normal(0, 0.08, 8), 0.05)
    assert quiet is not None and (noisy is None or noisy > quiet)
