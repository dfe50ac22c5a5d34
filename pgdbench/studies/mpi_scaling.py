"""MPI backends timed over rank counts: speedup over one rank and parallel efficiency."""
from __future__ import annotations

import json


def add_rank_speedups(records: list[dict]) -> list[dict]:
    """Speedup over the 1-rank run of the same configuration, and parallel efficiency = speedup / ranks."""
    ok = [r for r in records if r.get("status") == "ok"]

    def key(r):
        return (r["backend"], r["net"], r["batch_size"], r["threads"], r["dtype"],
                json.dumps(r.get("options") or {}, sort_keys=True))

    one = {key(r): r for r in ok if r["ranks"] == 1}
    for r in ok:
        base = one.get(key(r))
        speedup = base["seconds_per_epoch"] / r["seconds_per_epoch"] if base else None
        r.update(speedup_vs_1rank=speedup, parallel_efficiency=speedup / r["ranks"] if base else None)
    return records
