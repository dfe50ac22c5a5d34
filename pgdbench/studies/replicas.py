"""The replica-averaging study (Ott, *Training Neural Networks in Parallel*): its records and summary table.

The study is a grid of the ``averaging`` backend: one replica per thread, over
replica counts × the rules that combine them (weights averaged or summed)
(``pgdbench bench --backend averaging --threads 1,2,4 -o combine=average,sum``).
:func:`study_record` reads a bench record of that backend as a point of the
study; :func:`summarise` gives accuracy and time per epoch against the number
of replicas, one row per rule × replica count.
"""
from __future__ import annotations

from pgdbench.harness.speedups import add_speedups_over_one


def study_record(record: dict, cpus: int, **known) -> dict:
    """A bench record of the ``averaging`` backend as a point of the study (kind ``averaging-study``).

    ``cpus``: the usable CPUs of the machine that measured it (more replicas
    than that is oversubscribed); ``known``: fields the record lacks when the
    run failed (``layers``, ``n_train``).
    """
    options = record.get("options") or {}
    n = options.get("replicas") or (record.get("backend_metadata") or {}).get("replicas") or record["threads"]
    n_train = record.get("n_train", known.get("n_train"))
    out = {"kind": "averaging-study", "replicas": n, "threads": record["threads"],
           "combine": options.get("combine", "average") if n > 1 else "none (1 replica)",
           "sync_every": options.get("sync_every", 0), "seed": record.get("seed"), "epochs": record.get("epochs"),
           "batch_size": record["batch_size"], "learning_rate": record.get("learning_rate"),
           "layers": record.get("layers", known.get("layers")), "dataset": record.get("dataset"),
           "dtype": record.get("dtype"), "n_train": n_train,
           "examples_per_replica": n_train // n if n_train else None, "oversubscribed": n > cpus,
           "status": record["status"]}
    if record["status"] == "ok":
        out.update(seconds_per_epoch=record["seconds_per_epoch"], train_seconds=sum(record["epoch_seconds"]),
                   val_accuracy=record["val_accuracy"], test_accuracy=record["test_accuracy"],
                   backend_metadata=record.get("backend_metadata"))
    else:
        out["reason"] = record.get("reason", "")
    return out


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
        for (n, c), recs in sorted(runs.items()):
            if c != combine:
                continue
            ok = [r for r in recs if r.get("status") == "ok"]
            tpe = mean([r["seconds_per_epoch"] for r in ok])
            val, test = mean([r["val_accuracy"] for r in ok]), mean([r["test_accuracy"] for r in ok])
            rows.append({"combine": combine, "replicas": n, "examples": recs[0]["examples_per_replica"],
                         "val_accuracy": val, "test_accuracy": test, "seconds_per_epoch": tpe,
                         "oversubscribed": bool(recs[0]["oversubscribed"]), "runs": len(recs), "ok": len(ok),
                         "val": f"{val:.1%}" if val is not None else "-",
                         "test": f"{test:.1%}" if test is not None else "-",
                         "tpe": f"{tpe:.3f}" if tpe is not None else "-",
                         "note": "oversubscribed" if recs[0]["oversubscribed"] else
                                 ("diverged" if len(ok) < len(recs) else "")})
    return add_speedups_over_one(rows, "replicas", lambda row: row["combine"], key="speedup", efficiency="efficiency")
