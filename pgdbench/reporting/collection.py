"""Reading results for reports: pgdbench JSON lines, the device check's JSON, pytest-benchmark JSON and asv results
JSON.

Every source is turned into the same flat *performance rows* (one per
backend × net × batch size × threads × dtype × options) and *TTA runs*, plus
warnings for whatever could not be used (torn lines, runs without a
``run_end``, skipped or failed grid points).

The records of the three scaling studies are summarised by :mod:`pgdbench.studies` (the commands that ran them
print the same summaries), one point per configuration × replica or rank count: `averaging-study` (Ott, *Training
Neural Networks in Parallel*: accuracy and time against replicas, averaging vs summing), `mpi-bench` (MPI backends
timed over rank counts: speedup over one rank and parallel efficiency) and `dbn` / `dbn --scaling` (De Filippo De
Grazia et al., *Parallelization of Deep Networks*: RBM time and classification error against ranks). When several
files hold the same point, the last one read wins, as for performance rows.
"""
from __future__ import annotations

import ast
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from pgdbench.core import registry
from pgdbench.errors import DataError
from pgdbench.core.model import NetSpec
from pgdbench.harness.grid import options_text, point_key
from pgdbench.harness.probe import EPOCH_EXAMPLES, Point
from pgdbench.harness.results import read_records, run_status
from pgdbench.studies.dbn_scaling import scaling_rows
from pgdbench.harness.speedups import add_speedups
from pgdbench.studies.mpi_scaling import add_rank_speedups
from pgdbench.studies.replicas import study_record, summarise


@dataclass
class Collection:
    rows: list = field(default_factory=list)        # performance rows
    tta: list = field(default_factory=list)         # kind "tta" records (one per seed)
    tta_summaries: list = field(default_factory=list)
    not_ok: list = field(default_factory=list)      # grid points that were skipped / unavailable / diverged / failed
    warnings: list = field(default_factory=list)
    machines: list = field(default_factory=list)    # (cpu model, cpus, date) of every run read
    loads: list = field(default_factory=list)       # (1-minute load average, usable CPUs) at each run's start
    commits: list = field(default_factory=list)     # git commits the results were measured at
    sources: list = field(default_factory=list)
    replicas: list = field(default_factory=list)    # averaging-study: one point per study × rule × replica count
    mpi: list = field(default_factory=list)         # mpi-bench: one point per configuration × rank count
    dbn: list = field(default_factory=list)         # dbn: one point per DBN setup × rank count (mean over seeds)
    # the study records as read (after the last-one-wins rule); the points above are made from them
    averaging_records: list = field(default_factory=list)
    mpi_records: list = field(default_factory=list)
    dbn_records: list = field(default_factory=list)
    device_checks: list = field(default_factory=list)   # device-check.json of scripts/device-check.sh

    def empty(self) -> bool:
        return not (self.rows or self.tta or self.replicas or self.mpi or self.dbn or self.device_checks)


PERF_KEYS = ("backend", "net", "batch_size", "threads", "dtype", "seconds_per_epoch", "gflops", "projected", "epochs",
             "speedup_vs_serial", "speedup_vs_1thread", "fraction_of_peak", "test_accuracy", "val_accuracy",
             "examples_timed", "serial_counterpart", "parallelism", "options", "peak_mem_mib", "dataset",
             "peak_gflops", "peak_provider", "peak_date", "peak_machine", "peak_from", "peak_note",
             "theoretical_gflops", "fraction_of_theoretical", "epoch_seconds", "interleaved")


def load(paths) -> Collection:
    out = Collection()
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise DataError(f"results file {path} does not exist")
        if path.is_dir():
            found = sorted(path.rglob("*.jsonl")) + _asv_result_files(path) + _pytest_benchmark_files(path)
            if not found:
                raise DataError(f"no results files (*.jsonl, asv or pytest-benchmark JSON) under {path}")
            for f in found:
                try:
                    _load_file(f, out)
                except DataError as exc:  # other JSON lying in a folder: say so, keep going
                    out.warnings.append(f"skipped: {exc}")
        else:
            _load_file(path, out)
    out.rows = _dedupe(out.rows)
    _fill_speedups(out.rows)
    _summarise_studies(out)
    return out


def _asv_result_files(folder: Path) -> list[Path]:
    """The newest asv result file of each machine under ``folder`` (asv keeps one file per commit)."""
    newest = {}
    for f in folder.rglob("*.json"):
        if f.name in ("machine.json", "benchmarks.json") or not (f.parent / "machine.json").exists():
            continue
        try:
            date = json.loads(f.read_text()).get("date", 0)
        except (OSError, ValueError):
            continue
        if f.parent not in newest or date > newest[f.parent][0]:
            newest[f.parent] = (date, f)
    return [f for _, f in newest.values()]


def _pytest_benchmark_files(folder: Path) -> list[Path]:
    return [f for f in sorted(folder.rglob("*.json")) if not (f.parent / "machine.json").exists()
            and f.name not in ("machine.json", "benchmarks.json")]


def _load_file(path: Path, out: Collection) -> None:
    out.sources.append(str(path))
    if path.suffix == ".jsonl":
        _load_jsonl(path, out)
        return
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a JSON results file ({exc})") from None
    if isinstance(data, dict) and data.get("kind") == "device-check":
        out.device_checks.append(data)
    elif isinstance(data, dict) and "benchmarks" in data and "machine_info" in data:
        _load_pytest_benchmark(path, data, out)
    elif isinstance(data, dict) and "result_columns" in data and "results" in data:
        _load_asv(path, data, out)
    else:
        raise DataError(f"{path}: neither a pgdbench .jsonl, a device-check JSON, a pytest-benchmark JSON nor an asv "
                        f"result file")


# -- pgdbench JSON lines ----------------------------------------------------------------------------

_NUMBER, _INT, _TEXT, _LIST = (int, float), int, str, list
#: The fields the report reads from each kind of record, and their types; a record without them (hand-edited,
#: or from a foreign file) is skipped with a counted warning rather than stopping the report.
_FIELDS = {
    "run_start": {"run_id": _TEXT},
    "run_end": {"run_id": _TEXT},
    "bench": {"status": _TEXT},
    "tta": {"backend": _TEXT, "seed": _INT, "status": _TEXT, "target": _NUMBER},
    "tta_summary": {"backend": _TEXT, "threads": _INT, "batch_size": _INT, "target": _NUMBER, "on": _TEXT,
                    "reached": _TEXT},
    "averaging-study": {"replicas": _INT, "combine": _TEXT, "status": _TEXT, "oversubscribed": bool},
}
#: ... and the further fields of a measurement that succeeded
_OK_FIELDS = {
    "bench": {"backend": _TEXT, "net": _TEXT, "batch_size": _INT, "threads": _INT, "seconds_per_epoch": _NUMBER,
              "gflops": _NUMBER},
    "dbn": {"ranks": _INT, "rbm_seconds": _NUMBER, "layer_seconds": _LIST, "layer_epochs": _LIST,
            "oversubscribed": bool},
    "averaging-study": {"seconds_per_epoch": _NUMBER, "val_accuracy": _NUMBER, "test_accuracy": _NUMBER},
}


def _problem(r: dict) -> str:
    """What makes a record unusable ('' if nothing): its missing fields, or fields of the wrong type."""
    kind = r.get("kind")
    fields = dict(_FIELDS.get(kind, {}))
    if r.get("status", "ok") == "ok":
        fields.update(_OK_FIELDS.get(kind, {}))
        if kind == "bench" and "ranks" in r:
            fields["ranks"] = _INT
    missing = [k for k in fields if r.get(k) is None]
    wrong = [k for k, t in fields.items() if r.get(k) is not None
             and (not isinstance(r[k], t) or (isinstance(r[k], bool) and t is not bool))]
    return "; ".join(filter(None, [f"no {', '.join(missing)}" if missing else "",
                                   f"{', '.join(wrong)} of the wrong type" if wrong else ""]))


def _usable(path: Path, records: list, warnings: list) -> list:
    """The records the report can use; the others counted in one warning per kind of problem."""
    kept, skipped = [], {}
    for r in records:
        why = _problem(r)
        if why:
            skipped.setdefault((r.get("kind"), why), 0)
            skipped[(r.get("kind"), why)] += 1
        else:
            kept.append(r)
    for (kind, why), n in skipped.items():
        warnings.append(f"{path}: {n} {kind or 'untyped'} record{'s' if n > 1 else ''} skipped ({why})")
    return kept


def _load_jsonl(path: Path, out: Collection) -> None:
    records, warnings = read_records(path)
    out.warnings.extend(warnings)
    records = _usable(path, records, out.warnings)
    status = run_status(records)
    starts = {r["run_id"]: r for r in records if r.get("kind") == "run_start"}
    _adopt_scaling_children(records, starts)
    for run_id, st in status.items():
        if st != "complete":
            what = {"incomplete": "has no run_end (killed or still running)"}.get(st, f"ended {st}")
            cmd = starts.get(run_id, {}).get("command", "?")
            out.warnings.append(f"{path}: run {run_id} ({cmd}) {what}: its records are shown but may be partial")
    orphans = {}
    for r in records:
        if r.get("run_id") and r["run_id"] not in starts:
            orphans[r["run_id"]] = orphans.get(r["run_id"], 0) + 1
    for run_id, n in orphans.items():
        out.warnings.append(f"{path}: {n} records of run {run_id} have no run_start (file truncated, edited, or "
                            f"appended to by a process started before it was replaced)")
    for run_id, start in starts.items():
        m = start.get("machine") or {}
        out.machines.append((m.get("cpu_model", "?"), m.get("cpus_usable"), m.get("date", "?")))
        if isinstance(start.get("load_average"), list) and start["load_average"]:
            out.loads.append((start["load_average"][0], m.get("cpus_usable")))
        if m.get("git_commit"):
            out.commits.append(str(m["git_commit"])[:8])
    for r in records:
        kind = r.get("kind")
        if kind == "bench" and "ranks" in r:  # mpi-bench: one configuration at one rank count
            if r.get("status") == "ok":
                out.mpi_records.append(r)
            else:
                out.not_ok.append({**_not_ok(r, "mpi-bench"),
                                   "threads": f"{r.get('threads', '?')} × {r['ranks']} ranks"})
        elif kind == "averaging-study":
            out.averaging_records.append(r)
            if r.get("status") != "ok":
                out.not_ok.append({**_not_ok(r, "averaging-study"), "backend": "averaging",
                                   "net": "-".join(map(str, r.get("layers") or [])),
                                   "threads": f"{r.get('replicas')} replicas ({r.get('combine')})"})
        elif kind == "dbn":
            config = starts.get(r.get("run_id"), {}).get("config") or {}
            if r.get("status", "ok") == "ok":
                out.dbn_records.append({**r, "config": config})
            else:
                out.not_ok.append({"source": "dbn", "backend": "dbn", "batch_size": config.get("batch_size"),
                                   "net": "-".join(map(str, config.get("hidden") or [])),
                                   "threads": f"{r.get('ranks')} ranks", "status": r.get("status"),
                                   "reason": r.get("reason", "")})
        elif kind == "bench":
            if r.get("backend") == "averaging" and r.get("status") == "ok":  # a point of the replica study too
                cpus = ((starts.get(r.get("run_id")) or {}).get("machine") or {}).get("cpus_usable") or 1
                out.averaging_records.append(study_record(r, cpus))
            if r.get("status") == "ok":
                row = {k: r.get(k) for k in PERF_KEYS}
                row["source"] = "bench"
                row["examples_timed"] = r.get("examples_timed")
                # what the run actually used beats what the backend is for: OpenCL on PoCL is a CPU run
                row["device"] = (r.get("backend_metadata") or {}).get("device_kind")
                out.rows.append(row)
            else:
                out.not_ok.append(_not_ok(r, "bench"))
        elif kind == "tta":
            out.tta.append(r)
        elif kind == "tta_summary":
            out.tta_summaries.append(r)


def _adopt_scaling_children(records: list, starts: dict) -> None:
    """Files written by `dbn --scaling` before it re-labelled its child jobs' records kept the child's run id,
    which has no run_start there: those records belong to the scaling run around them."""
    open_run = None
    for r in records:
        kind = r.get("kind")
        if kind == "run_start":
            open_run = r["run_id"] if r.get("command") == "dbn-scaling" else None
        elif kind == "run_end" and r.get("run_id") == open_run:
            open_run = None
        elif open_run and kind in ("dbn", "dbn_layer") and "repeat" in r and r.get("run_id") not in starts:
            r["job_run_id"], r["run_id"] = r.get("run_id"), open_run


def _not_ok(r: dict, source: str) -> dict:
    return {"source": source, "backend": r.get("backend"), "net": r.get("net"), "batch_size": r.get("batch_size"),
            "threads": r.get("threads"), "status": r.get("status"), "reason": r.get("reason", "")}


# -- pytest-benchmark -------------------------------------------------------------------------------

def _load_pytest_benchmark(path: Path, data: dict, out: Collection) -> None:
    mi = data.get("machine_info", {})
    pg = mi.get("pgdbench", {})
    out.machines.append((pg.get("cpu_model") or mi.get("cpu", {}).get("brand_raw", "?"), pg.get("cpus_usable"),
                         data.get("datetime", "?")))
    commit = (data.get("commit_info") or {}).get("id")
    if commit:
        out.commits.append(str(commit)[:8])
    for b in data.get("benchmarks", []):
        info = b.get("extra_info") or {}
        if "backend" not in info:
            continue
        row = {k: info.get(k) for k in PERF_KEYS}
        row.update(source="pytest-benchmark", dtype=info.get("dtype", "float32"), options={},
                   projected=bool(info.get("projected", True)))
        out.rows.append(row)


# -- asv --------------------------------------------------------------------------------------------

#: asv benchmarks the report reads, and what their value is (benchmarks/bench_training.py).
_ASV_BENCHMARKS = {"time_step": "seconds_per_step", "peakmem_step": "peak_mem_mib"}


def _load_asv(path: Path, data: dict, out: Collection) -> None:
    machine = {}
    try:
        machine = json.loads((path.parent / "machine.json").read_text())
    except (OSError, ValueError):
        pass
    date = data.get("date")
    if isinstance(date, (int, float)):
        import datetime
        date = datetime.datetime.fromtimestamp(date / 1000, datetime.timezone.utc).isoformat(timespec="seconds")
    out.machines.append((machine.get("cpu", "?"), machine.get("num_cpu"), date))
    if data.get("commit_hash"):
        out.commits.append(str(data["commit_hash"])[:8])
    columns = data["result_columns"]
    rows = {}
    for name, values in data["results"].items():
        metric = _ASV_BENCHMARKS.get(name.rsplit(".", 1)[-1])
        entry = dict(zip(columns, values))
        params, results = entry.get("params") or [], entry.get("result")
        if metric is None or results is None or len(params) != 1:
            continue   # another suite's benchmark (asv keeps results of benchmarks since removed)
        for label, value in zip(params[0], results):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            try:
                point = Point.from_label(_asv_value(label))
            except ValueError:
                continue
            row = rows.setdefault(point, {"backend": point.backend, "net": point.net, "batch_size": point.batch_size,
                                          "threads": point.threads, "dtype": point.dtype, "projected": True,
                                          "options": dict(point.options), "source": "asv"})
            if metric == "peak_mem_mib":
                row[metric] = value / 2**20
            else:   # seconds per minibatch step: per 50,000-example epoch, projected, and the rate it implies
                row["seconds_per_epoch"] = value * EPOCH_EXAMPLES / point.batch_size
                row["gflops"] = NetSpec(point.layers()).flops_per_example() * point.batch_size / value / 1e9
                row["examples_timed"] = point.batch_size
    for row in rows.values():
        if row.get("seconds_per_epoch") is None:
            continue  # only memory was measured: not a performance row
        out.rows.append({**{k: None for k in PERF_KEYS}, **row})


def _asv_value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# -- combining --------------------------------------------------------------------------------------

def _dedupe(rows: list) -> list:
    """The last measurement of each grid point wins (files are read in the order given)."""
    return _last_wins(rows, point_key)


def _last_wins(records: list, key) -> list:
    latest = {}
    for r in records:
        latest[key(r)] = r
    return list(latest.values())


def _fill_speedups(rows: list) -> None:
    """What the rows lack of their backends' facts (serial counterpart, parallelism, device), then speedups."""
    classes = {n: e.cls for n, e in registry.entries().items() if e.cls is not None}
    for r in rows:
        cls = classes.get(r["backend"])
        if not r.get("serial_counterpart"):
            r["serial_counterpart"] = (cls.serial_counterpart if cls else None) or r["backend"]
        if not r.get("parallelism") and cls is not None:
            r["parallelism"] = cls.parallelism.value
        if r.get("device") is None:
            r["device"] = cls.device if cls else ("gpu" if r.get("parallelism") == "device" else "cpu")
    add_speedups(rows)


def series_label(r: dict) -> str:
    opts = options_text(r.get("options"))
    return f"{r['backend']} T={r['threads']}" + (f" [{opts}]" if opts else "")


# -- the scaling studies ----------------------------------------------------------------------------

def _summarise_studies(out: Collection) -> None:
    out.averaging_records = _last_wins(out.averaging_records,
                                       lambda r: (replica_study_label(r), r.get("combine"), r.get("replicas"),
                                                  r.get("seed")))
    out.replicas = _unique_names(_replica_points(out.averaging_records), "study")
    out.mpi_records = _last_wins(out.mpi_records, lambda r: (*point_key(r), r["ranks"]))
    add_rank_speedups(out.mpi_records)  # speedup over the 1-rank run of the same configuration, efficiency
    out.mpi = sorted(out.mpi_records, key=lambda r: (mpi_series_label(r), r["batch_size"], r["ranks"]))
    out.dbn_records = _last_wins(out.dbn_records, lambda r: (dbn_setup_label(r), r["ranks"], r.get("seed")))
    out.dbn = _unique_names(_dbn_points(out.dbn_records), "setup")


def _unique_names(points: list, full: str) -> list:
    """Short names for tables and legends, unless two setups share one: then their full descriptions."""
    owners = {}
    for p in points:
        owners.setdefault(p["name"], set()).add(p[full])
    for p in points:
        if len(owners[p["name"]]) > 1:
            p["name"] = p[full]
    return points


def replica_study_label(r: dict) -> str:
    """What must be equal for averaging-study records to be compared: net, data, batch, rate, epochs, period."""
    sync = r.get("sync_every")
    return (f"{'-'.join(map(str, r.get('layers') or []))} on {r.get('dataset')} ({r.get('n_train')} train), "
            f"B={r.get('batch_size')}, lr={r.get('learning_rate')}, {r.get('epochs')} epoch(s), "
            f"{r.get('dtype')}, combined {'every %s minibatches' % sync if sync else 'once per epoch'}")


def _replica_points(records: list) -> list:
    points = []
    for label in sorted({replica_study_label(r) for r in records}):
        recs = [r for r in records if replica_study_label(r) == label]
        rules = sorted({r["combine"] for r in recs if r["replicas"] > 1}) or ["average"]
        for row in summarise(recs, rules):
            r0 = recs[0]
            points.append({"study": label, "dataset": r0.get("dataset"),
                           "name": f"{'-'.join(map(str, r0.get('layers') or []))} {r0.get('dataset')} "
                                   f"B={r0.get('batch_size')}", **{k: row[k] for k in (
                "combine", "replicas", "examples", "val_accuracy", "test_accuracy", "seconds_per_epoch", "speedup",
                "oversubscribed", "runs", "ok")}})
    return points


def dbn_setup_label(r: dict) -> str:
    """What must be equal for DBN runs to be compared across rank counts (the run's config gives the rest)."""
    c = r.get("config") or {}
    stop = (f"convergence rule (τ {c.get('tau')}, at most {c.get('epochs')} epochs)" if r.get("stop") == "convergence"
            else f"{c.get('epochs', '?')} epochs per layer")
    threads = r.get("threads") or 1
    return (f"{'-'.join(map(str, r.get('hidden') or []))} on {r.get('n_train')} {c.get('dataset', '?')} examples, "
            f"CD-1 batch {c.get('batch_size', '?')} per rank, ε {c.get('lr', '?')}, {stop}"
            + (f", {threads} BLAS threads per rank" if threads > 1 else ""))


def _dbn_points(records: list) -> list:
    points = []
    for label in sorted({dbn_setup_label(r) for r in records}):
        runs = [r for r in records if dbn_setup_label(r) == label]
        for row in scaling_rows(runs):  # means over seeds (repeats) per rank count, speedup over 1 rank
            r0 = runs[0]
            points.append({"setup": label, "stop": r0.get("stop", "epochs"),
                           "dataset": (r0.get("config") or {}).get("dataset"),
                           "name": f"DBN {'-'.join(map(str, r0.get('hidden') or []))} on {r0.get('n_train')} "
                                   f"{(r0.get('config') or {}).get('dataset', '?')}", **row})
    return points


def mpi_series_label(r: dict) -> str:
    """An mpi-bench configuration without its batch size and rank count."""
    opts = options_text(r.get("options"))
    return (f"{r['backend']} {r['net']} {r.get('threads', 1)} thread(s)/rank {r.get('dtype') or 'float32'}"
            + (f" [{opts}]" if opts else ""))
