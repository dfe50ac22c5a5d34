"""The DBN scaling study (De Filippo De Grazia, Stoianov, Zorzi): RBM time and error against MPI ranks.

One row per rank count (means over the repeated runs) and the power law
fitted to time against ranks.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from pgdbench.harness.speedups import add_speedups_over_one


def scaling_rows(runs: list[dict]) -> list[dict]:
    """One row per rank count: means over the repeats."""
    rows = []
    for k in sorted({r["ranks"] for r in runs}):
        same = [r for r in runs if r["ranks"] == k]
        errors = [r["test_error"] for r in same if r.get("test_error") is not None]
        row = {"ranks": k, "runs": len(same), "oversubscribed": any(r["oversubscribed"] for r in same),
               "rbm_seconds": float(np.mean([r["rbm_seconds"] for r in same])),
               "layers": " ".join(f"{s:.1f}" for s in np.mean([r["layer_seconds"] for r in same], axis=0)),
               "epochs": " ".join(f"{e:g}" for e in np.mean([r["layer_epochs"] for r in same], axis=0))}
        if errors:
            row["test_error"] = float(np.mean(errors))
            row["err"] = f"{row['test_error']:.2%}"
        row["over"] = "yes" if row["oversubscribed"] else ""
        rows.append(row)
    return add_speedups_over_one(rows, "ranks", lambda row: (), key="speedup", efficiency="efficiency",
                                 seconds="rbm_seconds")


def power_law_exponent(ranks: Sequence[int], seconds: Sequence[float]) -> float:
    """Slope p of log(seconds) = a + p·log(ranks), least squares (De Filippo De Grazia et al., *Parallelization of
    Deep Networks* reports p = −0.86)."""
    if len(set(ranks)) < 2:
        return float("nan")
    return float(np.polyfit(np.log(np.asarray(ranks, float)), np.log(np.asarray(seconds, float)), 1)[0])
