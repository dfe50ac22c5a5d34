"""MPI backends timed over rank counts: speedup over one rank and parallel efficiency."""
from __future__ import annotations

from pgdbench.harness.grid import point_key
from pgdbench.harness.speedups import add_speedups_over_one


def add_rank_speedups(records: list[dict]) -> list[dict]:
    """``speedup_vs_1rank``: over the 1-rank run of the same configuration; ``parallel_efficiency`` = speedup /
    ranks."""
    return add_speedups_over_one(records, "ranks", point_key, key="speedup_vs_1rank", efficiency="parallel_efficiency")
