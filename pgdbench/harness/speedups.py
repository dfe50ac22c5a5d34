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

import statistics
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


def paired_ratios(records: list[dict], baseline: str) -> list[dict]:
    """``ratio_vs[baseline]``: how many times faster than ``baseline`` every successful record ran (its time per
    epoch over the record's), at the same net, batch size, dtype and thread count.

    Where both records were measured interleaved in one process
    (:func:`pgdbench.harness.grid.measure_interleaved`), the ratio is taken
    round by round (the two epochs of a round ran seconds apart, under the same
    load) and the record gets the median of those ratios with their least and
    greatest (``ratio_vs_range[baseline]``); otherwise the ratio of the two
    medians, without a range. The baseline record is the one with the
    baseline's default options.
    """
    ok = _ok(records)
    base = {}
    for r in ok:
        if r["backend"] == baseline and not r.get("options"):
            base[(r["net"], r["batch_size"], r.get("dtype") or "float32", r["threads"])] = r
    for r in ok:
        b = base.get((r["net"], r["batch_size"], r.get("dtype") or "float32", r["threads"]))
        if b is None:
            continue
        mine, theirs = r.get("epoch_seconds") or [], b.get("epoch_seconds") or []
        if r.get("interleaved") and b.get("interleaved") and len(mine) == len(theirs) and mine:
            each = [t_b / t for t_b, t in zip(theirs, mine)]
            value, spread = statistics.median(each), (min(each), max(each))
        else:
            value, spread = speedup(b.get("seconds_per_epoch"), r.get("seconds_per_epoch")), None
        r.setdefault("ratio_vs", {})[baseline] = value
        r.setdefault("ratio_vs_range", {})[baseline] = spread
    return records
