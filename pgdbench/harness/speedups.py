"""Speedups: the one definition behind every table, figure, claim and benchmark that shows one.

A speedup is the baseline's time over the time, both for the same work: the
time per epoch of the same net, batch size and dtype. The baselines:

* threads (``bench``, the asv and pytest-benchmark suites, reports): the
  backend's serial counterpart at 1 thread (the paper's SUP) and the backend
  itself at 1 thread, whose speedup over thread count is the efficiency;
* ranks and replicas (MPI scaling, the DBN, replica averaging): the same
  configuration with one rank or one replica, the speedup over count being the
  parallel efficiency.
"""
from __future__ import annotations

from typing import Callable, Optional

from pgdbench.harness.grid import point_key


def speedup(baseline: Optional[float], seconds: Optional[float]) -> Optional[float]:
    """``baseline / seconds``, or None when either is missing or zero."""
    return baseline / seconds if baseline and seconds else None


def _ok(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("status", "ok") == "ok"]


def add_speedups(records: list[dict]) -> list[dict]:
    """``speedup_vs_serial``, ``speedup_vs_1thread`` and ``efficiency`` of every successful record, from the
    records given (the same run, or the points of a report).

    A speedup whose baseline is not among the records keeps the value the
    record came with (a pytest-benchmark file computes its own), or None.
    """
    ok = _ok(records)
    index = {point_key(r): r for r in ok}
    for r in ok:
        _, net, batch, _, dtype, options = point_key(r)
        serial = index.get((r.get("serial_counterpart") or r["backend"], net, batch, 1, dtype, ()))
        one = index.get((r["backend"], net, batch, 1, dtype, options))
        for key, base in (("speedup_vs_serial", serial), ("speedup_vs_1thread", one)):
            value = speedup(base and base.get("seconds_per_epoch"), r.get("seconds_per_epoch"))
            r[key] = value if value is not None else r.get(key)
        r["efficiency"] = r["speedup_vs_1thread"] / r["threads"] if r["speedup_vs_1thread"] else None
    return records


def add_speedups_over_one(records: list[dict], count: str, group: Callable[[dict], tuple], *, key: str,
                          efficiency: str, seconds: str = "seconds_per_epoch") -> list[dict]:
    """``key``: speedup of every successful record over the record of its ``group`` whose ``count`` (ranks,
    replicas) is 1; ``efficiency``: that speedup / ``count``."""
    ok = _ok(records)
    one = {group(r): r for r in ok if r[count] == 1}
    for r in ok:
        base = one.get(group(r))
        r[key] = speedup(base and base[seconds], r[seconds])
        r[efficiency] = r[key] / r[count] if r[key] is not None else None
    return records
