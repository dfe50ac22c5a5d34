"""The studies' claims (docs/studies.md says where each comes from) checked against the data of a report.

Each claim states the paper's value and the test applied to our data; the
verdict is "yes", "no", "partly" (holds for some series and not others),
"not measured" (the rows it needs are absent: no GPU, backend not run, ...)
or "cannot decide (why)" (rows are there but cannot test the claim: Ott, *Training Neural Networks in Parallel*
and 004 speak of 6 to 40 cores, a 2-core machine runs 1 or 2 ranks without
oversubscription, and two points fit any power law). The machine differs
from the paper's (32 cores, a K40 GPU), so scalable claims are compared as
efficiencies where that is the honest comparison. Oversubscribed runs (more
replicas or ranks than CPUs) count for accuracy, never for time.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict

from pgdbench.harness.grid import options_text
from pgdbench.reporting.collection import mpi_series_label
from pgdbench.studies.dbn_scaling import power_law_exponent

FLAT = 1.5  # max/min time per epoch across batch sizes still called "flat"


def _series(rows, pred):
    out = defaultdict(list)
    for r in rows:
        if r.get("seconds_per_epoch") and pred(r):
            opts = options_text(r.get("options"))
            out[(r["backend"], r["net"], r["threads"], opts)].append(r)
    return {k: sorted(v, key=lambda r: r["batch_size"]) for k, v in out.items() if len({r["batch_size"] for r in v}) > 1}


def _name(key):
    b, n, t, o = key
    return f"{b} {n} T={t}" + (f" [{o}]" if o else "")


def _verdict(flags):
    if not flags:
        return "not measured"
    return "yes" if all(flags) else ("no" if not any(flags) else "partly")


def _is_serial(r):
    return r["threads"] == 1 and r.get("parallelism") in ("none", "matrix") and r.get("device", "cpu") == "cpu"


def _flat_in_batch_size(rows, keep):
    """Every series picked by ``keep`` has max/min time per epoch over batch sizes ≤ FLAT."""
    parts, flags = [], []
    for k, pts in _series(rows, keep).items():
        tpe = [r["seconds_per_epoch"] for r in pts]
        ratio = max(tpe) / min(tpe)
        flags.append(ratio <= FLAT)
        parts.append(f"{_name(k)}: max/min {ratio:.2f}")
    return "; ".join(parts) or "-", _verdict(flags)


def claim_serial_flat(rows):
    return _flat_in_batch_size(rows, _is_serial)


def claim_examples_parallel_faster_with_batch(rows):
    s = _series(rows, lambda r: r["threads"] > 1 and r.get("parallelism") in ("examples", "examples+matrix")
                or r.get("device") == "gpu")
    parts, flags = [], []
    for k, pts in s.items():
        first, last = pts[0], pts[-1]
        ratio = first["seconds_per_epoch"] / last["seconds_per_epoch"]
        flags.append(ratio > 1.0)
        parts.append(f"{_name(k)}: TPE B={first['batch_size']} / B={last['batch_size']} = {ratio:.2f}")
    return "; ".join(parts) or "-", _verdict(flags)


def claim_blas_parallel_flat(rows):
    return _flat_in_batch_size(rows, lambda r: r["threads"] > 1 and r.get("parallelism") == "matrix")


def claim_multicore_speedup(rows):
    cand = [r for r in rows if r["threads"] > 1 and r.get("parallelism") in ("examples", "examples+matrix")
            and r.get("speedup_vs_1thread")]
    if not cand:
        return "-", "not measured"
    best = {}
    for r in cand:
        k = (r["backend"], r["net"])
        if k not in best or r["speedup_vs_1thread"] > best[k]["speedup_vs_1thread"]:
            best[k] = r
    parts, flags = [], []
    for (b, n), r in sorted(best.items()):
        eff = r["speedup_vs_1thread"] / r["threads"]
        flags.append(eff >= 10 / 32)
        parts.append(f"{b} {n}: {r['speedup_vs_1thread']:.2f}× at T={r['threads']} B={r['batch_size']} "
                     f"(efficiency {eff:.0%})")
    return "; ".join(parts), _verdict(flags)


def claim_gpu_speedup(rows, device_checks=()):
    cand = [r for r in rows if r.get("device") == "gpu" and r.get("speedup_vs_serial")]
    if not cand:   # the device check's JSON alone: its best speedup over serial numpy (never a dry run's)
        best = [t for c in device_checks if not c.get("dry_run")
                for t in [c.get("targets", {}).get("speedup_vs_serial", {})] if t.get("speedup")]
        if best:
            t = max(best, key=lambda t: t["speedup"])
            return f"device check: {t['best']}", "yes" if t["speedup"] >= 12.5 else "no"
        return "no GPU results", "not measured"
    best = max(cand, key=lambda r: r["speedup_vs_serial"])
    return (f"{best['backend']} {best['net']}: {best['speedup_vs_serial']:.1f}× at B={best['batch_size']}",
            "yes" if best["speedup_vs_serial"] >= 12.5 else "no")


def claim_blas_vs_naive(rows):
    by = {}
    for r in rows:
        if r["threads"] == 1 and r.get("seconds_per_epoch"):
            by[(r["backend"], r["net"], r["batch_size"])] = r
    naive = [k for k in by if k[0] == "python"]
    ratios = defaultdict(list)
    for (b, n, bs) in naive:
        fast = by.get(("numpy", n, bs))
        if fast:
            ratios[n].append(by[(b, n, bs)]["seconds_per_epoch"] / fast["seconds_per_epoch"])
    if not ratios:
        return "needs python and numpy at T=1", "not measured"
    parts, flags = [], []
    for n, rs in sorted(ratios.items()):
        g = math.exp(statistics.mean(math.log(x) for x in rs))
        flags.append(5 <= g <= 20)
        parts.append(f"{n}: numpy T=1 is {g:.0f}× faster than python (geometric mean over batch sizes)")
    return "; ".join(parts), _verdict(flags)


def claim_matrix_beats_examples_gflops(rows):
    idx = defaultdict(dict)
    for r in rows:
        if r["threads"] > 1 and r.get("gflops") and r.get("device", "cpu") == "cpu":
            par = r.get("parallelism")
            if par in ("matrix", "examples"):
                k = (r["net"], r["batch_size"], r["threads"])
                idx[k][par] = max(idx[k].get(par, 0), r["gflops"])
    both = {k: v for k, v in idx.items() if len(v) == 2}
    if not both:
        return "needs matrix- and example-parallel backends at the same T", "not measured"
    wins = sum(v["matrix"] > v["examples"] for v in both.values())
    return f"matrix-parallel has more GFLOP/s at {wins} of {len(both)} points", _verdict(
        [v["matrix"] > v["examples"] for v in both.values()])


def claim_framework_fastest_large_batch(rows, framework="torch"):
    parts, flags = [], []
    for net in sorted({r["net"] for r in rows}):
        cpu = [r for r in rows if r["net"] == net and r.get("seconds_per_epoch") and r.get("device", "cpu") == "cpu"]
        if not cpu or not any(r["backend"] == framework for r in cpu):
            continue
        bmax = max(r["batch_size"] for r in cpu if r["backend"] == framework)
        at = [r for r in cpu if r["batch_size"] == bmax]
        best = min(at, key=lambda r: r["seconds_per_epoch"])
        flags.append(best["backend"] == framework)
        parts.append(f"{net} B={bmax}: fastest is {best['backend']} T={best['threads']}")
    if not flags:
        return f"{framework} not measured", "not measured"
    return "; ".join(parts), _verdict(flags)


def claim_accuracy(rows, tta):
    runs = [r for r in tta if r.get("dataset") == "mnist" and r.get("best_accuracy") is not None]
    if not runs:
        return "needs pgdbench tta runs on --dataset mnist", "not measured"
    accs = [r["best_accuracy"] for r in runs]
    epochs = max(len(r.get("curve") or []) for r in runs)
    ours = f"best {max(accs):.1%} (range {min(accs):.1%}–{max(accs):.1%}, longest run {epochs} epochs)"
    if max(accs) >= 0.93:
        return ours, "yes"
    return ours, "no" if epochs >= 10 else "inconclusive (runs too short)"


def claim_tta(tta_summaries):
    if not tta_summaries:
        return "no tta runs", "not measured"
    parts = []
    for s in tta_summaries:
        med = s.get("median_seconds")
        parts.append(f"{s['backend']} T={s['threads']}: {'%.1f s' % med if med is not None else 'not reached'} "
                     f"({s['reached']} seeds)")
    return "; ".join(parts), "info"


def _judge(results):
    """``results``: (text, verdict) pairs, the verdict True, False, or the reason it cannot be decided."""
    if not results:
        return "-", "not measured"
    flags = [v for _, v in results if isinstance(v, bool)]
    if flags:  # the undecided parts are shown, and say why they do not count
        return "; ".join(t if isinstance(v, bool) else f"{t} (not counted: {v})" for t, v in results), _verdict(flags)
    return "; ".join(t for t, _ in results), f"cannot decide ({results[0][1]})"


def pct(x) -> str:
    """A fraction as a percentage with one decimal, or "-" when there is none (claims and report tables)."""
    return "-" if x is None else f"{x:.1%}"


def _points_by(points, key):
    out = defaultdict(list)
    for p in points:
        out[key(p)].append(p)
    return out


# -- Ott, *Training Neural Networks in Parallel*: replicas, weights averaged or summed
# ---------------------------------------------------

# Ott, *Training Neural Networks in Parallel*: "not until we reach six threads or more" is training faster
REPLICAS_FASTER_FROM = 6
# Ott: summing gave "roughly ten percent" more accuracy; we ask for ≥ 5 points
SUM_GAIN = 0.05


def claim_replica_time(data):
    results = []
    for name, pts in sorted(_points_by([p for p in data.replicas if p["combine"] == "average"
                                        and p.get("speedup") is not None], lambda p: p["name"]).items()):
        pts = sorted(pts, key=lambda p: p["replicas"])
        shown = [p for p in pts if p["replicas"] > 1]
        if not shown:
            continue
        text = f"{name}: " + ", ".join(f"{p['speedup']:.2f}× at n={p['replicas']}"
                                       + (" (oversubscribed: not counted)" if p["oversubscribed"] else "")
                                       for p in shown)
        fit = [p for p in shown if not p["oversubscribed"]]
        below = [p for p in fit if p["replicas"] < REPLICAS_FASTER_FROM]
        above = [p for p in fit if p["replicas"] >= REPLICAS_FASTER_FROM]
        if any(p["speedup"] > 1 for p in below):
            verdict = False  # faster below six replicas: less overhead than the paper's
        elif above:
            verdict = all(p["speedup"] > 1 for p in above)
        else:
            most = max((p["replicas"] for p in fit), default=1)
            verdict = (f"no run with n ≥ {REPLICAS_FASTER_FROM} replicas on as many CPUs; the most without "
                       f"oversubscription here: {most}")
        results.append((text, verdict))
    if not results:
        return "needs pgdbench bench --backend averaging at several thread (replica) counts", "not measured"
    return _judge(results)


def claim_replica_accuracy(data):
    series = {}
    for name, pts in _points_by([p for p in data.replicas if p["combine"] == "average"
                                 and p.get("test_accuracy") is not None], lambda p: p["name"]).items():
        # (bench runs of the averaging backend are points of the study too: see studies.replicas.study_record)
        series[f"{name} (averaging-study)"] = {p["replicas"]: p["test_accuracy"] for p in pts}
    results = []
    for name, acc in sorted(series.items()):
        if len(acc) < 2:
            continue
        ns = sorted(acc)
        results.append((f"{name}: " + " → ".join(f"{pct(acc[n])} at n={n}" for n in ns), acc[ns[-1]] < acc[ns[0]]))
    if not results:
        return "needs pgdbench bench --backend averaging at several thread (replica) counts", "not measured"
    return _judge(results)


def claim_sum_beats_average(data):
    parts, flags = [], []
    for name, pts in sorted(_points_by(data.replicas, lambda p: p["name"]).items()):
        acc = {(p["combine"], p["replicas"]): p["test_accuracy"] for p in pts if p.get("test_accuracy") is not None}
        gains = []
        for n in sorted({n for _, n in acc if n > 1}):
            if ("sum", n) in acc and ("average", n) in acc:
                gain = acc[("sum", n)] - acc[("average", n)]
                flags.append(gain >= SUM_GAIN)
                gains.append(f"n={n}: {pct(acc[('sum', n)])} vs {pct(acc[('average', n)])} "
                             f"({100 * gain:+.1f} points)")
        if gains:
            parts.append(f"{name}: " + ", ".join(gains))
    if not flags:
        return "needs pgdbench averaging-study with --combine average,sum at n > 1", "not measured"
    return "; ".join(parts), _verdict(flags)


# -- De Filippo De Grazia et al., *Parallelization of Deep Networks*: the DBN over MPI ranks
# -------------------------------------------------------------------

DBN_EXPONENT = -0.86              # RBM time ∝ cores^p, fixed 50 epochs per layer, 1 → 40 cores
DBN_EXPONENT_CONVERGENCE = round(math.log(1100 / 6700) / math.log(40), 2)  # 6,700 s → 1,100 s: −0.49
EXPONENT_TOLERANCE = 0.2
MIN_R2 = 0.9                      # a power law: the log-log fit explains ≥ 90 % of the variance
ERROR_COST = 0.01                 # "error just slightly increased": +0.48 points (fixed epochs), +0.32 (convergence)
LEVELS_OFF_AT = 16                # "learning time appeared to asymptote at 16 cores" (convergence rule)
LEVEL = 1.25                      # beyond 16 ranks, time falls by less than 1.25× more: levelled off


def _fit(ranks, seconds):
    import numpy as np

    x, y = np.log(np.asarray(ranks, float)), np.log(np.asarray(seconds, float))
    r2 = float(np.corrcoef(x, y)[0, 1] ** 2) if len(set(ranks)) > 2 else 1.0
    return power_law_exponent(ranks, seconds), r2


def _dbn_setups(data, stop=None):
    pts = [p for p in data.dbn if stop is None or p["stop"] == stop]
    return {k: sorted(v, key=lambda p: p["ranks"]) for k, v in _points_by(pts, lambda p: p["setup"]).items()}


def claim_dbn_power_law(data, stop="epochs", paper=DBN_EXPONENT):
    setups = _dbn_setups(data, stop)
    if not setups:
        return f"needs pgdbench dbn --scaling runs{' with --stop convergence' if stop == 'convergence' else ''}", \
            "not measured"
    results = []
    for _, pts in sorted(setups.items()):
        fit = [p for p in pts if not p["oversubscribed"]]
        over = [p["ranks"] for p in pts if p["oversubscribed"]]
        times = ", ".join(f"{p['rbm_seconds']:.3g} s at {p['ranks']}" for p in pts)
        text = f"{pts[0]['name']}: RBM time {times} rank(s)"
        if over:
            text += f" (oversubscribed, not fitted: {', '.join(map(str, over))})"
        if len(fit) < 2:
            results.append((text, "one rank count without oversubscription"))
            continue
        p, r2 = _fit([q["ranks"] for q in fit], [q["rbm_seconds"] for q in fit])
        text += f"; exponent {p:+.2f} over ranks {', '.join(str(q['ranks']) for q in fit)}"
        if len(fit) == 2:
            results.append((text, f"only {len(fit)} rank counts without oversubscription "
                                  f"({fit[0]['ranks']} and {fit[1]['ranks']}): two points fit any power law"))
            continue
        text += f" (R² {r2:.2f})"
        results.append((text, abs(p - paper) <= EXPONENT_TOLERANCE and r2 >= MIN_R2))
    return _judge(results)


def claim_dbn_convergence_power_law(data):
    return claim_dbn_power_law(data, "convergence", DBN_EXPONENT_CONVERGENCE)


def claim_dbn_error_cost(data):
    results = []
    for _, pts in sorted(_dbn_setups(data).items()):
        pts = [p for p in pts if p.get("test_error") is not None]
        if not pts:
            continue
        rule = "convergence rule" if pts[0]["stop"] == "convergence" else "fixed epochs"
        first, last = pts[0], pts[-1]
        text = f"{pts[0]['name']}, {rule}: " + " → ".join(f"{pct(p['test_error'])} at {p['ranks']}" for p in pts) \
            + " rank(s)"
        if len(pts) < 2:
            results.append((text, "one rank count"))
        elif min(p["test_error"] for p in pts) >= 0.5:
            results.append((text, "the fine-tuned nets did not learn: every error ≥ 50 %"))
        else:
            rise = last["test_error"] - first["test_error"]
            results.append((text + f" ({100 * rise:+.1f} points)", rise <= ERROR_COST))
    if not results:
        return "needs pgdbench dbn runs with fine-tuning (--finetune-epochs > 0) at several rank counts", \
            "not measured"
    return _judge(results)


def claim_dbn_levels_off(data):
    setups = _dbn_setups(data, "convergence")
    if not setups:
        return "needs pgdbench dbn --scaling runs with --stop convergence", "not measured"
    results = []
    for _, pts in sorted(setups.items()):
        fit = {p["ranks"]: p for p in pts if not p["oversubscribed"]}
        beyond = [k for k in fit if k > LEVELS_OFF_AT]
        text = f"{pts[0]['name']}: " + ", ".join(f"{p['rbm_seconds']:.3g} s at {k}" for k, p in sorted(fit.items())) \
            + " rank(s) without oversubscription"
        if LEVELS_OFF_AT not in fit or not beyond:
            results.append((text, f"needs runs at {LEVELS_OFF_AT} and more ranks without oversubscription; "
                                  f"the most here: {max(fit, default=0)}"))
            continue
        gain = fit[LEVELS_OFF_AT]["rbm_seconds"] / fit[max(beyond)]["rbm_seconds"]
        results.append((text + f"; {LEVELS_OFF_AT} → {max(beyond)} ranks: {gain:.2f}× faster", gain < LEVEL))
    return _judge(results)


# -- MPI: data-parallel MLP training over ranks (mpi-bench) --------------------------------------------

MPI_EFFICIENCY = 0.85   # the project's own target: 2 ranks on a 2-core machine, batch ≥ 512
MPI_MIN_BATCH = 512


def claim_mpi_efficiency(data):
    if not data.mpi:
        return "needs pgdbench mpi-bench", "not measured"
    multi = [r for r in data.mpi if r["ranks"] > 1 and r.get("parallel_efficiency") is not None]
    if not multi:
        return (f"ranks measured: {', '.join(map(str, sorted({r['ranks'] for r in data.mpi})))}",
                "cannot decide (needs 1 rank and more ranks of the same configuration)")
    text = "; ".join(f"{mpi_series_label(r)} B={r['batch_size']}: {r['parallel_efficiency']:.0%} at {r['ranks']} ranks"
                     + (" (oversubscribed: not counted)" if r.get("oversubscribed") else
                        f" (B < {MPI_MIN_BATCH}: not counted)" if r["batch_size"] < MPI_MIN_BATCH else "")
                     for r in multi)
    judged = [r for r in multi if not r.get("oversubscribed") and r["batch_size"] >= MPI_MIN_BATCH]
    if not judged:
        why = ("every run with more than 1 rank is oversubscribed" if all(r.get("oversubscribed") for r in multi)
               else f"no batch ≥ {MPI_MIN_BATCH} at more than 1 rank without oversubscription")
        return text, f"cannot decide ({why})"
    return text, _verdict([r["parallel_efficiency"] >= MPI_EFFICIENCY for r in judged])


#: The studies, by authors and short title (docs/studies.md summarises each and names the claims' sources).
KAMRA = "Kamra et al., *Parallel Gradient Descent*"
OTT = "Ott, *Training Neural Networks in Parallel*"
DE_GRAZIA = "De Filippo De Grazia et al., *Parallelization of Deep Networks*"

CLAIMS = [
    (KAMRA, "Serial implementations: TPE and GFLOP/s constant in batch size", "flat (Figs 5–8)",
     f"max/min TPE over batch sizes ≤ {FLAT} for every serial series (T=1)", lambda d: claim_serial_flat(d.rows)),
    (KAMRA, "Example-parallel implementations get faster as batches grow", "TPE falls with batch size",
     "TPE at the largest batch < TPE at the smallest, every example-parallel series at T>1",
     lambda d: claim_examples_parallel_faster_with_batch(d.rows)),
    (KAMRA, "BLAS-parallel TPE flat in batch size", "flat",
     f"max/min TPE ≤ {FLAT} for matrix-parallel series at T>1", lambda d: claim_blas_parallel_flat(d.rows)),
    (KAMRA, "Multicore (example-parallel) speedup", "≈10× on 32 threads (31 % efficiency)",
     "best efficiency (speedup over own 1-thread run ÷ T) ≥ 31 %", lambda d: claim_multicore_speedup(d.rows)),
    (KAMRA, "CUDA speedup over its serial counterpart", "≈25× (K40)",
     "best GPU speedup over serial ≥ 12.5×", lambda d: claim_gpu_speedup(d.rows, d.device_checks)),
    (KAMRA, "BLAS serial vs naive serial", "≈10× faster",
     "python ÷ numpy T=1 time per epoch within 5–20× (the paper's naive serial was C++; ours is pure Python)",
     lambda d: claim_blas_vs_naive(d.rows)),
    (KAMRA, "Matrix-parallel beats example-parallel in GFLOP/s", "yes, clearly",
     "higher GFLOP/s at every common (net, batch, T)", lambda d: claim_matrix_beats_examples_gflops(d.rows)),
    (KAMRA, "The framework (Theano; here PyTorch) is fastest at large batches", "lowest TPE at large batch",
     "torch has the lowest CPU TPE at its largest batch size", lambda d: claim_framework_fastest_large_batch(d.rows)),
    (KAMRA, "Accuracy on MNIST", "93 %–97.8 % (validation/test)",
     "best MNIST accuracy in pgdbench tta runs ≥ 93 % (runs under 10 epochs are inconclusive)",
     lambda d: claim_accuracy(d.rows, d.tta)),
    (OTT, "Replicas: training time falls once n ≥ 6 (overhead wins below)", "faster than 1 thread only from n = 6",
     f"speedup over one replica (averaging): ≤ 1 below n = {REPLICAS_FASTER_FROM} and > 1 from it, runs not "
     "oversubscribed", claim_replica_time),
    (OTT, "Replica averaging: accuracy falls as replicas grow", "falls with n threads (each sees 50,000/n)",
     "test accuracy (averaging) at the most replicas < at the fewest", claim_replica_accuracy),
    (OTT, "Summing the replicas' weights beats averaging them", "≈ 10 points more accuracy",
     f"test accuracy with sum − with average ≥ {100 * SUM_GAIN:.0f} points at every n > 1",
     claim_sum_beats_average),
    (DE_GRAZIA, "DBN: RBM time vs cores is a power law (fixed epochs)", f"exponent {DBN_EXPONENT} (16,500 s → 900 s, "
     "1 → 40 cores)", f"fit over ≥ 3 rank counts without oversubscription: exponent within ±{EXPONENT_TOLERANCE} "
     f"of {DBN_EXPONENT}, R² ≥ {MIN_R2}", claim_dbn_power_law),
    (DE_GRAZIA, "DBN: more cores cost little accuracy", "error 1.14 % → 1.62 % (fixed epochs), 1.25 % → 1.57 % "
     "(convergence rule), 1 → 40 cores", f"test error at the most ranks − at the fewest ≤ {100 * ERROR_COST:.0f} "
     "point (oversubscribed runs count: same arithmetic)", claim_dbn_error_cost),
    (DE_GRAZIA, "DBN with the convergence rule: time still falls with cores", "6,700 s → 1,100 s (1 → 40 cores: "
     f"exponent {DBN_EXPONENT_CONVERGENCE})", f"as the fixed-epoch fit, around {DBN_EXPONENT_CONVERGENCE}",
     claim_dbn_convergence_power_law),
    (DE_GRAZIA, "DBN with the convergence rule: time levels off at 16 cores", "asymptote at 16 cores",
     f"without oversubscription, beyond {LEVELS_OFF_AT} ranks less than {LEVEL}× faster than at {LEVELS_OFF_AT}",
     claim_dbn_levels_off),
    ("pgdbench", "Data-parallel MLP training over MPI ranks (`mpi`, `mpi-averaging`): parallel efficiency",
     f"not reported for the MLP; the DBN study's exponent {DBN_EXPONENT} means efficiency K^−0.14: 91 % at 2 ranks",
     f"speedup over 1 rank ÷ ranks ≥ {MPI_EFFICIENCY:.0%} at batch ≥ {MPI_MIN_BATCH}, runs not oversubscribed "
     "(the project's own target)", claim_mpi_efficiency),
    ("—", "Time to accuracy (beyond the paper)", "not reported",
     "median wall time to target over seeds", lambda d: claim_tta(d.tta_summaries)),
]


def evidence(data) -> str:
    """What the verdicts rest on, said under the claims table: a bare yes or no reads stronger than a few
    projected points, timed once on a loaded machine, can bear."""
    rows = [r for r in data.rows if r.get("seconds_per_epoch")]
    if not rows:
        return ""
    batches = sorted({r["batch_size"] for r in rows})
    projected = [r for r in rows if r.get("projected")]
    timed = [r["examples_timed"] for r in projected if isinstance(r.get("examples_timed"), int)]
    epochs = [r["epochs"] for r in rows if isinstance(r.get("epochs"), int)]
    loads = [(load, cpus) for load, cpus in data.loads if isinstance(load, (int, float))]
    said = [f"{len(rows)} performance point{'s' if len(rows) > 1 else ''} at {len(batches)} batch "
            f"size{'s' if len(batches) > 1 else ''} ({', '.join(map(str, batches))})"]
    if projected:
        said.append(f"{len(projected)} of them projected" + (f" from as few as {min(timed):,} examples per epoch"
                                                            if timed else ""))
    if epochs and min(epochs) == 1:
        said.append("some from a single timed epoch")
    busy = max(loads, key=lambda lc: lc[0] / (lc[1] or 1), default=None)
    if busy:
        said.append(f"measured at a load average up to {busy[0]:g} on {busy[1] or '?'} CPUs")
    weak = bool(projected) or len(batches) < 3 or (epochs and min(epochs) == 1) or \
        (busy is not None and busy[0] > 0.5 * (busy[1] or 1))
    text = "**Strength of the evidence.** The performance verdicts rest on " + ", ".join(said) + "."
    if weak:
        text += (" Read them as indications, not findings: for a firm verdict, time whole epochs (no "
                 "`--max-examples`), more batch sizes and `--epochs 3` (the median of three) on an otherwise idle "
                 "machine.")
    return text


def evaluate(data) -> list[dict]:
    """The claims table for a :class:`pgdbench.reporting.collection.Collection`."""
    out = []
    for study, claim, paper, test, fn in CLAIMS:
        ours, holds = fn(data)
        out.append({"study": study, "claim": claim, "paper": paper, "test": test, "ours": ours, "holds": holds})
    return out
