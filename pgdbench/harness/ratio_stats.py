"""How much slower is the candidate? A confidence interval for a timing ratio, and the gate's decision.

The regression gate (:mod:`pgdbench.harness.gate`) measures a benchmark point
of two revisions in *rounds*: each round starts a fresh process for each
revision and takes a few timings of each, alternating between the two (A, B,
B, A, …) so that whatever else the machine does at that moment hits both
alike. A round gives one number, the median over its pairs of
``log(candidate / baseline)``, and the rounds are the independent units:
effects that last a whole process (where the allocator put the buffers, which
core the scheduler picked) differ between rounds, not within one, so treating
single timings as independent would make the interval too narrow.

From those per-round log ratios the interval comes from the Wilcoxon
signed-rank test inverted into the Hodges–Lehmann interval: the estimate is
the median of the Walsh averages ``(d_i + d_j) / 2, i ≤ j``, and the interval
runs between two order statistics of those averages chosen from the exact
null distribution of the signed-rank statistic. Why this one:

* it assumes only that the round values are symmetric about their centre,
  not that they are normal: from a dozen rounds on, a round that a burst of
  load slowed down moves the interval by one rank, not by its size (a t
  interval or a bootstrap of the mean would be dragged by it);
* its coverage is exact for any number of rounds, which matters because the
  gate stops as soon as it can decide, often after 6–10 rounds;
* it needs nothing beyond the standard library and NumPy.

With fewer than six rounds no two-sided 95 % interval exists (the smallest
possible tail, 2⁻ⁿ, is still above 2.5 %): the interval is then unbounded and
the point undecided.

Decisions compare the interval with a threshold ``t`` (the gate's
``--threshold``, a fraction): a **regression** when the whole interval lies
above ``1 + t``; **faster** when it lies below ``1 / (1 + t)`` (the same
distance in log space); **ok** when it lies below ``1 + t`` (no slowdown as
large as the threshold is compatible with the data); else **undecided**.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

#: Rounds below which no decision is taken, whatever the interval says (6 is the least that gives a 95 % interval).
MIN_ROUNDS = 6


class Verdict(str, enum.Enum):
    REGRESSION = "regression"   # interval wholly above 1 + threshold: the gate fails
    FASTER = "faster"           # interval wholly below 1 / (1 + threshold)
    OK = "ok"                   # interval below 1 + threshold: no regression as large as the threshold
    UNDECIDED = "undecided"     # interval straddles 1 + threshold (or too few rounds)

    @property
    def decided(self) -> bool:
        return self is not Verdict.UNDECIDED


@dataclass(frozen=True)
class RatioInterval:
    """Candidate time ÷ baseline time: the Hodges–Lehmann estimate and its signed-rank interval."""

    ratio: float
    low: float          # 0 when no interval of the asked confidence exists (too few rounds)
    high: float         # inf likewise
    rounds: int
    confidence: float   # the interval's exact confidence (at least the one asked for), 0 if unbounded

    @property
    def bounded(self) -> bool:
        return self.confidence > 0

    def text(self) -> str:
        if not self.bounded:
            return f"{self.ratio:.3f} [unbounded: {self.rounds} rounds]"
        return f"{self.ratio:.3f} [{self.low:.3f}, {self.high:.3f}]"


@lru_cache(maxsize=None)
def signed_rank_cdf(n: int) -> np.ndarray:
    """P(T ≤ t) for t = 0 … n(n+1)/2, T the Wilcoxon signed-rank statistic of n untied values under H0.

    T is the sum of the ranks that carry a positive sign; under H0 each rank
    is positive with probability ½ independently, so the distribution is
    built rank by rank: adding rank k shifts half of the mass up by k.
    """
    if n < 0:
        raise ValueError(f"n must be ≥ 0, got {n}")
    pmf = np.zeros(n * (n + 1) // 2 + 1)
    pmf[0] = 1.0
    top = 0
    for k in range(1, n + 1):
        shifted = np.zeros_like(pmf)
        shifted[k:top + k + 1] = pmf[:top + 1]
        pmf = 0.5 * (pmf + shifted)
        top += k
    return np.cumsum(pmf)


def walsh_averages(values: Sequence[float]) -> np.ndarray:
    """(d_i + d_j) / 2 for every i ≤ j, sorted."""
    d = np.asarray(values, dtype=float)
    i, j = np.triu_indices(len(d))
    return np.sort((d[i] + d[j]) / 2)


def hodges_lehmann_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(estimate, low, high, achieved confidence) for the centre of symmetric ``values``.

    The interval [W_(c+1), W_(M−c)] of the M sorted Walsh averages, with c
    the largest count such that P(T ≤ c) ≤ (1 − confidence)/2: its exact
    confidence is 1 − 2·P(T ≤ c). Unbounded (−inf, inf, confidence 0) when
    no such c exists.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    d = np.asarray(values, dtype=float)
    if d.size == 0:
        raise ValueError("no values")
    if not np.all(np.isfinite(d)):
        raise ValueError("values must be finite")
    w = walsh_averages(d)
    estimate = float(np.median(w))
    cdf = signed_rank_cdf(len(d))
    tail = (1 - confidence) / 2
    allowed = np.nonzero(cdf <= tail + 1e-12)[0]   # c with P(T ≤ c) ≤ tail, smallest first
    if allowed.size == 0:
        return estimate, -math.inf, math.inf, 0.0
    c = int(allowed[-1])
    m = len(w)
    return estimate, float(w[c]), float(w[m - 1 - c]), float(1 - 2 * cdf[c])


def ratio_interval(log_ratios: Sequence[float], confidence: float = 0.95) -> RatioInterval:
    """The candidate/baseline ratio from per-round log ratios (see :func:`round_log_ratio`)."""
    est, low, high, achieved = hodges_lehmann_interval(log_ratios, confidence)
    return RatioInterval(math.exp(est), math.exp(low), math.exp(high), len(log_ratios), achieved)


def round_log_ratio(baseline: Sequence[float], candidate: Sequence[float]) -> float:
    """One round's value: the median of log(candidate_i / baseline_i) over its pairs (taken next to each other)."""
    if len(baseline) != len(candidate) or not len(baseline):
        raise ValueError(f"a round needs as many candidate as baseline timings, got {len(baseline)} and {len(candidate)}")
    a = np.asarray(baseline, dtype=float)
    b = np.asarray(candidate, dtype=float)
    if np.any(a <= 0) or np.any(b <= 0) or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("timings must be positive and finite")
    return float(np.median(np.log(b / a)))


def decide(interval: RatioInterval, threshold: float, min_rounds: int = MIN_ROUNDS) -> Verdict:
    """The verdict on one point (see the module docstring); undecided before ``min_rounds`` rounds."""
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    if interval.rounds < min_rounds or not interval.bounded:
        return Verdict.UNDECIDED
    if interval.low > 1 + threshold:
        return Verdict.REGRESSION
    if interval.high < 1 / (1 + threshold):
        return Verdict.FASTER
    if interval.high < 1 + threshold:
        return Verdict.OK
    return Verdict.UNDECIDED


def rounds_needed(log_ratios: Sequence[float], threshold: float, confidence: float = 0.95,
                  limit: int = 200) -> int | None:
    """Rough number of rounds after which a point with this spread would be decided, or None beyond ``limit``.

    Used only to tell the user, when the budget runs out, how much longer the
    point would have needed: it assumes the rounds still to come spread like
    those seen (their median absolute deviation) and the estimate stays put,
    and asks when the interval's half-width (≈ z·1.25·MAD·1.4826/√n for the
    Hodges–Lehmann interval) would clear the threshold.
    """
    d = np.asarray(log_ratios, dtype=float)
    if d.size < 2:
        return None
    spread = 1.4826 * float(np.median(np.abs(d - np.median(d))))
    if spread == 0:
        return max(MIN_ROUNDS, d.size)
    centre = float(np.median(d))
    distance = abs(math.log1p(threshold) - centre)
    if distance == 0:
        return None
    z = 1.96 if confidence == 0.95 else _normal_quantile(1 - (1 - confidence) / 2)
    n = math.ceil((z * 1.25 * spread / distance) ** 2)  # HL is ≈ 0.95 as efficient as the mean: 1.25 is generous
    n = max(n, MIN_ROUNDS)
    return n if n <= limit else None


def _normal_quantile(p: float) -> float:
    """Inverse of the standard normal CDF by bisection (rarely called: only for unusual confidences)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
