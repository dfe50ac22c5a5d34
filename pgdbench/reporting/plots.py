"""Figures of a report (matplotlib, Agg backend: no display needed).

Every figure has labelled axes with units, a legend, and a caption naming the
machine and the date; bars of projected figures (timed on part of an epoch
and extrapolated) are hatched, and the caption says so. In the scaling
studies' figures, points measured with more replicas or ranks than CPUs
(oversubscribed) have hollow markers or dashed lines.
"""
from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path

from pgdbench.core.files import atomic_write_bytes
from pgdbench.harness.grid import options_text
from pgdbench.reporting.collection import mpi_series_label, series_label

NET_TITLES = {"net1h": "Net-1h (784-1024-10)", "net2h": "Net-2h (784-1024-1024-10)"}
#: The paper's figure numbers (Kamra et al., *Parallel Gradient Descent*) for each figure kind and net.
PAPER_FIGURES = {("tpe", "net1h"): 5, ("gflops", "net1h"): 6, ("tpe", "net2h"): 7, ("gflops", "net2h"): 8,
                 ("speedup", "net1h"): 9, ("speedup", "net2h"): 10}


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _colors(labels):
    plt = _plt()
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {lab: cmap(i % cmap.N) for i, lab in enumerate(labels)}


def _caption(fig, caption: str) -> None:
    fig.text(0.01, 0.005, caption, fontsize=7, color="0.3", ha="left", va="bottom", wrap=True)


def _finish(fig, caption: str, path: Path, bottom: float = 0.05) -> Path:
    """Caption (machine and date) under the axes, layout leaving it room, save as PNG, close."""
    _caption(fig, caption)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    _plt().close(fig)
    atomic_write_bytes(path, png.getvalue())  # whole or not at all, with report.md's mode
    return path


def bars_vs_batch(rows, net: str, metric: str, ylabel: str, title: str, caption: str, path: Path,
                  log: bool = False) -> Path | None:
    """Grouped bars: one group per batch size, one bar per series (backend, threads); projected bars hatched."""

    rows = [r for r in rows if r["net"] == net and r.get(metric) is not None]
    if not rows:
        return None
    values = [r[metric] for r in rows if r[metric] > 0]
    log = log and bool(values) and max(values) / min(values) > 10  # a log axis only when the spread needs one
    plt = _plt()
    batches = sorted({r["batch_size"] for r in rows})
    labels = sorted({series_label(r) for r in rows}, key=_series_order)
    colors = _colors(labels)
    cell = {(series_label(r), r["batch_size"]): r for r in rows}
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(batches) * max(1, len(labels)) * 0.35 + 3), 4.8))
    width = 0.8 / len(labels)
    any_projected = False
    for i, lab in enumerate(labels):
        xs, ys, hatches = [], [], []
        for j, b in enumerate(batches):
            r = cell.get((lab, b))
            if r is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(r[metric])
            hatches.append("///" if r.get("projected") else "")
            any_projected |= bool(r.get("projected"))
        bars = ax.bar(xs, ys, width, label=lab, color=colors[lab], edgecolor="black", linewidth=0.4)
        for bar, h in zip(bars, hatches):
            bar.set_hatch(h)
    ax.set_xticks(range(len(batches)))
    ax.set_xticklabels([str(b) for b in batches])
    ax.set_xlabel("batch size (examples per minibatch)")
    ax.set_ylabel(ylabel + (" — log scale" if log else ""))
    if log:
        ax.set_yscale("log")
        ax.get_yaxis().set_major_formatter(_plain_formatter())
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3, which="both" if log else "major")
    handles, names = ax.get_legend_handles_labels()
    if any_projected:
        from matplotlib.patches import Patch
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///"))
        names.append("hatched: projected")
    ax.legend(handles, names, fontsize=7, ncol=2 if len(names) > 8 else 1, loc="best", framealpha=0.8)
    return _finish(fig, caption, path)


def speedup_vs_batch(rows, net: str, title: str, caption: str, path: Path) -> Path | None:
    """Speedup over the serial counterpart against batch size, one line per parallel series (paper Figs 9-10)."""

    rows = [r for r in rows if r["net"] == net and r.get("speedup_vs_serial") is not None
            and not (r["threads"] == 1 and r["backend"] == r.get("serial_counterpart"))]
    if not rows:
        return None
    plt = _plt()
    by = defaultdict(list)
    for r in rows:
        by[series_label(r)].append(r)
    labels = sorted(by, key=_series_order)
    colors = _colors(labels)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for lab in labels:
        pts = sorted(by[lab], key=lambda r: r["batch_size"])
        projected = any(r.get("projected") for r in pts)
        ax.plot([r["batch_size"] for r in pts], [r["speedup_vs_serial"] for r in pts], marker="o",
                linestyle="--" if projected else "-", color=colors[lab],
                label=f"{lab} vs {pts[0]['serial_counterpart']} T=1" + (" (projected)" if projected else ""))
    ax.axhline(1.0, color="0.4", linewidth=0.8, linestyle=":")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({r["batch_size"] for r in rows}))
    ax.get_xaxis().set_major_formatter(_plain_formatter())
    ax.set_yscale("log")
    ax.get_yaxis().set_major_formatter(_plain_formatter())
    ax.get_yaxis().set_minor_formatter(_plain_formatter())
    ax.set_xlabel("batch size (examples per minibatch)")
    ax.set_ylabel("speedup over the serial counterpart (×, log scale)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    return _finish(fig, caption, path)


def thread_scaling(rows, title: str, caption: str, path: Path) -> Path | None:
    """Speedup over 1 thread and parallel efficiency against threads, per backend × net at its largest batch."""
    groups = defaultdict(list)
    for r in rows:
        if r.get("seconds_per_epoch"):
            opts = options_text(r.get("options"))
            groups[(r["backend"], r["net"], r["batch_size"], opts)].append(r)
    lines = {k: sorted(v, key=lambda r: r["threads"]) for k, v in groups.items()
             if len({r["threads"] for r in v}) > 1 and any(r["threads"] == 1 for r in v)}
    if not lines:
        return None
    # one batch size per backend × net: the largest measured at several thread counts
    chosen = {}
    for (b, n, bs, o) in lines:
        if (b, n, o) not in chosen or bs > chosen[(b, n, o)]:
            chosen[(b, n, o)] = bs
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.6))
    labels = [f"{b} {n} B={bs}" + (f" [{o}]" if o else "") for (b, n, o), bs in sorted(chosen.items())]
    colors = _colors(labels)
    max_t = 1
    for ((b, n, o), bs), lab in zip(sorted(chosen.items()), labels):
        pts = lines[(b, n, bs, o)]
        base = next(r for r in pts if r["threads"] == 1)["seconds_per_epoch"]
        ts = [r["threads"] for r in pts]
        sp = [base / r["seconds_per_epoch"] for r in pts]
        max_t = max(max_t, *ts)
        projected = any(r.get("projected") for r in pts)  # dashed, as in the speedup figures
        style = {"marker": "o", "color": colors[lab], "linestyle": "--" if projected else "-",
                 "label": lab + (" (projected)" if projected else "")}
        ax1.plot(ts, sp, **style)
        ax2.plot(ts, [s / t for s, t in zip(sp, ts)], **style)
    ideal = list(range(1, max_t + 1))
    ax1.plot(ideal, ideal, color="0.5", linestyle=":", label="ideal (linear)")
    ax2.axhline(1.0, color="0.5", linestyle=":", label="ideal")
    for ax in (ax1, ax2):
        ax.set_xlabel("threads (workers, ranks)")
        ax.set_xticks(ideal if max_t <= 16 else None)
        ax.grid(alpha=0.3)
    ax1.set_ylabel("speedup over the same backend at 1 thread (×)")
    ax2.set_ylabel("parallel efficiency (speedup ÷ threads)")
    ax2.set_ylim(bottom=0)
    ax1.set_title("speedup")
    ax2.set_title("efficiency")
    ax1.legend(fontsize=7, loc="best")
    fig.suptitle(title)
    return _finish(fig, caption, path)


def tta_curves(runs, title: str, caption: str, path: Path) -> Path | None:
    """Accuracy against wall time (evaluation off the clock), one line per seed, one colour per backend."""
    runs = [r for r in runs if r.get("curve")]
    if not runs:
        return None
    plt = _plt()
    labels = sorted({_tta_label(r) for r in runs})
    colors = _colors(labels)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    seen, targets = set(), set()
    for r in runs:
        key = "val_accuracy" if r.get("on", "val") == "val" else "test_accuracy"
        lab = _tta_label(r)
        xs = [p["seconds"] for p in r["curve"]]
        ys = [100 * (p.get(key) if p.get(key) is not None else math.nan) for p in r["curve"]]
        ax.plot(xs, ys, marker=".", color=colors[lab], alpha=0.85, label=lab if lab not in seen else None)
        seen.add(lab)
        if r["status"] == "reached":
            ax.plot(xs[-1], ys[-1], marker="*", markersize=12, color=colors[lab], markeredgecolor="black")
        elif r["status"] in ("diverged", "not_reached", "error") and xs:
            ax.plot(xs[-1], ys[-1], marker="x", markersize=9, color="black")
        targets.add((100 * r["target"], r.get("on", "val")))
    for t, on in sorted(targets):
        ax.axhline(t, color="0.3", linestyle="--", linewidth=0.8)
        ax.text(ax.get_xlim()[0], t, f" target {t:g}% ({on})", va="bottom", fontsize=7, color="0.3")
    ax.set_xlabel("wall time: data transfer + training, evaluation excluded (s)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", title="★ reached, × gave up or diverged", title_fontsize=7)
    return _finish(fig, caption, path)


def _log2_axis(ax, ticks, label):
    """A log2 x axis with exactly ``ticks`` labelled in plain numbers (ranks, batch sizes)."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(ticks))
    ax.get_xaxis().set_major_formatter(_plain_formatter())
    ax.get_xaxis().set_minor_formatter(_blank_formatter())
    ax.set_xlabel(label)
    ax.grid(alpha=0.3, which="both")


def _line(ax, pts, x, y, color, label, linestyle="-", scale=1.0):
    """One series; points flagged oversubscribed get hollow markers (their times measure contention)."""
    ax.plot([p[x] for p in pts], [scale * p[y] for p in pts], color=color, linestyle=linestyle, label=label)
    for p in pts:
        ax.plot(p[x], scale * p[y], marker="o", markersize=6, color=color,
                markerfacecolor="white" if p.get("oversubscribed") else color)


def _legend_with_hollow(ax):
    """The axes' legend plus an entry explaining hollow markers (oversubscribed points)."""
    from matplotlib.lines import Line2D
    handles, labels = ax.get_legend_handles_labels()
    hollow = Line2D([], [], marker="o", color="0.3", markerfacecolor="white", linestyle="none")
    ax.legend(handles + [hollow], labels + ["hollow: oversubscribed (more than the CPUs)"], fontsize=7, loc="best")


def replica_study(points, title: str, caption: str, path: Path) -> Path | None:
    """Ott, *Training Neural Networks in Parallel*: test accuracy and speedup over one replica against the number
    of replicas, averaging vs summing."""
    points = [p for p in points if p.get("test_accuracy") is not None]
    if not points:
        return None
    plt = _plt()
    names = sorted({p["name"] for p in points})
    colors = _colors(names)
    styles = {"average": "-", "sum": "--"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.8))
    counts = {p["replicas"] for p in points}
    for name in names:
        for rule in sorted({p["combine"] for p in points if p["name"] == name}):
            pts = sorted((p for p in points if p["name"] == name and p["combine"] == rule), key=lambda p: p["replicas"])
            label = f"{name}, weights {'averaged' if rule == 'average' else 'summed'}"
            _line(ax1, pts, "replicas", "test_accuracy", colors[name], label, styles.get(rule, ":"), 100)
            timed = [p for p in pts if p.get("speedup") is not None]
            if timed:
                _line(ax2, timed, "replicas", "speedup", colors[name], label, styles.get(rule, ":"))
    ideal = sorted(counts)
    ax2.plot(ideal, ideal, color="0.5", linestyle=":", label="ideal (linear)")
    ax2.axhline(1.0, color="0.4", linewidth=0.8)
    _log2_axis(ax1, counts, "replicas n (one thread each; each trains on 1/n of the examples)")
    _log2_axis(ax2, counts, "replicas n (one thread each)")
    ax1.set_ylabel("test accuracy (%)")
    ax2.set_ylabel("speedup of the epoch over one replica (×)")
    ax1.set_title("accuracy")
    ax2.set_title("training time")
    _legend_with_hollow(ax1)
    ax2.legend(fontsize=7, loc="best")
    fig.suptitle(title)
    return _finish(fig, caption, path, bottom=0.06)


def dbn_scaling(points, title: str, caption: str, path: Path, exponent: float = -0.86) -> Path | None:
    """De Filippo De Grazia et al., *Parallelization of Deep Networks*: RBM training time (log-log, with the
    paper's power law for reference) and test error against ranks."""
    if not points:
        return None
    plt = _plt()
    setups = sorted({p["setup"] for p in points})
    errors = any(p.get("test_error") is not None for p in points)
    fig, axes = plt.subplots(1, 2 if errors else 1, figsize=(11 if errors else 7.5, 4.8), squeeze=False)
    ax1 = axes[0][0]
    names = {p["setup"]: p["name"] + (" (convergence rule)" if p["stop"] == "convergence" else " (fixed epochs)")
             for p in points}
    colors = _colors(setups)
    counts = {p["ranks"] for p in points}
    for i, setup in enumerate(setups):
        pts = sorted((p for p in points if p["setup"] == setup), key=lambda p: p["ranks"])
        _line(ax1, pts, "ranks", "rbm_seconds", colors[setup], names[setup])
        base = next((p for p in pts if p["ranks"] == 1), None)
        if base and len(counts) > 1:
            ks = sorted(counts)
            ax1.plot(ks, [base["rbm_seconds"] * k ** exponent for k in ks], color=colors[setup], linestyle=":",
                     linewidth=1, label=f"dotted: the DBN study's power law (time ∝ ranks^{exponent:g}) from each "
                                        "1-rank time" if i == 0 else None)
        if errors:
            done = [p for p in pts if p.get("test_error") is not None]
            if done:
                _line(axes[0][1], done, "ranks", "test_error", colors[setup], names[setup], scale=100)
    _log2_axis(ax1, counts, "MPI ranks")
    ax1.set_yscale("log")
    ax1.get_yaxis().set_major_formatter(_plain_formatter())
    seconds = [p["rbm_seconds"] for p in points]
    ax1.get_yaxis().set_minor_formatter(_plain_formatter() if max(seconds) / min(seconds) < 5 else _blank_formatter())
    ax1.set_ylabel("RBM pre-training time, all layers (s, log scale)")
    ax1.set_title("pre-training time")
    _legend_with_hollow(ax1)
    if errors:
        ax2 = axes[0][1]
        _log2_axis(ax2, counts, "MPI ranks")
        ax2.set_ylabel("classification error on the test split after fine-tuning (%)")
        ax2.set_ylim(bottom=0)
        ax2.set_title("classification error")
        ax2.legend(fontsize=7, loc="best")
    fig.suptitle(title)
    return _finish(fig, caption, path, bottom=0.06)


def mpi_efficiency(records, title: str, caption: str, path: Path, target: float | None = None) -> Path | None:
    """Parallel efficiency (speedup over 1 rank ÷ ranks) against batch size, one line per configuration × ranks."""

    records = [r for r in records if r["ranks"] > 1 and r.get("parallel_efficiency") is not None]
    if not records:
        return None
    plt = _plt()
    by = defaultdict(list)
    for r in records:
        by[(mpi_series_label(r), r["ranks"])].append(r)
    keys = sorted(by)
    colors = _colors([f"{k}" for k in keys])
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    any_over = False
    for key in keys:
        pts = sorted(by[key], key=lambda r: r["batch_size"])
        over = any(r.get("oversubscribed") for r in pts)
        any_over |= over
        projected = any(r.get("projected") for r in pts)
        ax.plot([r["batch_size"] for r in pts], [100 * r["parallel_efficiency"] for r in pts], marker="o",
                linestyle="--" if over else "-", color=colors[f"{key}"],
                label=f"{key[0]}, {key[1]} ranks" + (" (oversubscribed)" if over else "")
                + (" (projected)" if projected else ""))
    ax.axhline(100, color="0.5", linestyle=":", label="ideal")
    if target:
        ax.axhline(100 * target, color="0.3", linestyle="--", linewidth=0.8, label=f"target {target:.0%}")
    _log2_axis(ax, {r["batch_size"] for r in records}, "batch size (examples per minibatch, split over the ranks)")
    ax.set_ylim(0, 110)
    ax.set_ylabel("parallel efficiency: speedup over 1 rank ÷ ranks (%)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best", title="dashed: oversubscribed" if any_over else None, title_fontsize=7)
    return _finish(fig, caption, path)


def _tta_label(r) -> str:
    return (f"{r['backend']} {r.get('net', '')} T={r.get('threads', 1)} B={r.get('batch_size')} "
            f"lr={r.get('learning_rate')} ({r.get('dataset', '?')})")


def _series_order(label: str):
    name, _, rest = label.partition(" T=")
    t = rest.split(" ")[0]
    return (name, int(t) if t.isdigit() else 0, label)


def _plain_formatter():
    from matplotlib.ticker import FuncFormatter
    return FuncFormatter(lambda v, _: f"{v:.4g}")  # 1024, not 1.02e+03


def _blank_formatter():
    from matplotlib.ticker import NullFormatter
    return NullFormatter()
