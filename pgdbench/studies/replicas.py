"""The replica-averaging study (Ott, *Training Neural Networks in Parallel*): its summary table.

Accuracy and time per epoch against the number of replicas, for each rule that
combines them (weights averaged or summed), one row per rule × replica count.
"""
from __future__ import annotations


def summarise(records: list[dict], combines: list[str]) -> list[dict]:
    """One row per rule × replica count: means over the seeds that finished (numbers, and text for the table).

    ``records`` are one study's runs; a 1-replica run is plain minibatch GD, the baseline of every rule.
    `pgdbench report` summarises results files with it too.
    """
    runs = {}
    for r in records:
        for rule in (combines if r["replicas"] == 1 else [r["combine"]]):
            runs.setdefault((r["replicas"], rule), []).append(r)

    def mean(values):
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    rows = []
    for combine in combines:
        base = None
        for (n, c), recs in sorted(runs.items()):
            if c != combine:
                continue
            ok = [r for r in recs if r.get("status") == "ok"]
            tpe = mean([r["seconds_per_epoch"] for r in ok])
            if n == 1:
                base = tpe
            val, test = mean([r["val_accuracy"] for r in ok]), mean([r["test_accuracy"] for r in ok])
            rows.append({"combine": combine, "replicas": n, "examples": recs[0]["examples_per_replica"],
                         "val_accuracy": val, "test_accuracy": test, "seconds_per_epoch": tpe,
                         "oversubscribed": bool(recs[0]["oversubscribed"]), "runs": len(recs), "ok": len(ok),
                         "val": f"{val:.1%}" if val is not None else "-",
                         "test": f"{test:.1%}" if test is not None else "-",
                         "tpe": f"{tpe:.3f}" if tpe is not None else "-",
                         "speedup": base / tpe if base and tpe else None,
                         "note": "oversubscribed" if recs[0]["oversubscribed"] else
                                 ("diverged" if len(ok) < len(recs) else "")})
    return rows
