"""The report: figures (PNG) and the Markdown summary (report.md) made from a loaded :class:`Collection`."""
from __future__ import annotations

from pathlib import Path

from pgdbench.reporting.claims import evaluate, pct
from pgdbench.reporting import claims, plots
from pgdbench.reporting.collection import mpi_series_label, series_label
from pgdbench.reporting.plots import PAPER_FIGURES
from pgdbench.harness.grid import options_text
from pgdbench.harness.speedups import paired_ratios
from pgdbench.reporting.tables import fmt


def caption(data) -> str:
    machines = sorted({f"{cpu}, {n} CPUs" if n else str(cpu) for cpu, n, _ in data.machines}) or ["unknown machine"]
    dates = sorted({str(d)[:10] for _, _, d in data.machines if d and d != "?"})
    span = dates[0] if len(dates) == 1 else (f"{dates[0]} to {dates[-1]}" if dates else "date unknown")
    datasets = sorted({str(r["dataset"]) for r in data.rows + data.tta + data.replicas + data.mpi + data.dbn
                       if r.get("dataset")})
    on = f" Data: {', '.join(datasets)}." if datasets else ""
    commits = sorted(set(data.commits))
    at = f" Commit {', '.join(commits[:3])}{' …' if len(commits) > 3 else ''}." if commits else ""
    return f"Machine: {'; '.join(machines)}. Measured {span}.{on}{at} pgdbench report."


def peak_lines(rows) -> list[str]:
    """Where the "of peak" column's peak comes from: which BLAS set it, on what machine and when; or that the
    results carry none, or one from another machine."""
    with_peak = [r for r in rows if r.get("peak_gflops")]
    lines = ["\"of peak\": GFLOP/s over the best GEMM that any BLAS the suite can call reached at the same dtype and "
             "threads (`pgdbench peak`); \"of limit\": over the cores' theoretical limit (vector lanes × FMA units "
             "× 2 × clock), which nothing can exceed."]
    if not with_peak:
        return lines + ["", "**No peak**: these results were measured where `pgdbench peak` had not been run; the "
                            "fractions are missing."]
    sources = sorted({(str(r.get("peak_machine")), str(r.get("peak_date"))[:10], r.get("peak_from") or "?",
                       r.get("peak_provider") or "numpy") for r in with_peak})
    for machine, date, relation, provider in sources:
        where = "" if relation == "this machine" else f" — **from {relation}**, not the machine of the results"
        lines.append(f"- peak measured on {machine}, {date}, best BLAS: {provider}{where}")
    missing = len(rows) - len(with_peak)
    if missing:
        lines.append(f"- {missing} rows have no peak (none measured on their machine)")
    if any((r.get("fraction_of_peak") or 0) > 1 for r in rows):
        lines.append("- (!) above the stored peak: it was measured low (a busy machine, or older pgdbench that "
                     "timed NumPy's BLAS only); run `pgdbench peak` again")
    return lines


def comparison_tables(rows, baselines) -> list[str]:
    """Issue 12's table, per thread count and dtype: a row per net and batch size, a column per series (backend
    and options), each cell GFLOP/s and how many times faster than each baseline backend (at the same net,
    batch, threads and dtype). Interleaved records give the median of the per-round ratios."""
    baselines = [b for b in baselines if any(r["backend"] == b for r in rows)]
    if not baselines:
        return []
    rows = [dict(r) for r in rows]
    for b in baselines:
        paired_ratios(rows, b)
    interleaved = any(r.get("interleaved") for r in rows)
    lines = ["## Against " + " and ".join(f"`{b}`" for b in baselines), "",
             "GFLOP/s, then in brackets how many times faster than " + ", ".join(f"`{b}`" for b in baselines) +
             " at the same net, batch, threads and dtype" +
             (" (median of the per-round ratios: the configurations were measured in one process, epoch by "
              "epoch in turn)" if interleaved else " (ratio of the medians of separate runs)") + ".", ""]
    def series(r):
        opts = options_text(r.get("options"))
        return r["backend"] + (f" [{opts}]" if opts else "")
    for threads, dtype in sorted({(r["threads"], r.get("dtype") or "float32") for r in rows}):
        group = [r for r in rows if r["threads"] == threads and (r.get("dtype") or "float32") == dtype]
        names = list(dict.fromkeys(series(r) for r in group))
        lines += [f"### {threads} thread{'s' if threads > 1 else ''}, {dtype}", "",
                  "| net | B | " + " | ".join(f"`{n}`" for n in names) + " |", "|---|---|" + "---|" * len(names)]
        for net, batch in sorted({(r["net"], r["batch_size"]) for r in group}):
            cells = []
            for name in names:
                r = next((r for r in group if series(r) == name and r["net"] == net and r["batch_size"] == batch),
                         None)
                if r is None or not r.get("gflops"):
                    cells.append("-")
                    continue
                ratios = [(r.get("ratio_vs") or {}).get(b) for b in baselines]
                cells.append(f"{r['gflops']:.0f} (" + ", ".join(f"{x:.2f}" if x else "-" for x in ratios) + ")")
            lines.append(f"| {net} | {batch} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def make_figures(data, out: Path) -> list[tuple[str, Path]]:
    cap = caption(data)
    projected = any(r.get("projected") for r in data.rows)
    cap_bars = cap + (" Hatched bars: projected (timed on part of an epoch, scaled to the full epoch)."
                      if projected else "")
    rows = data.rows
    for r in rows:
        r["percent_of_peak"] = 100 * r["fraction_of_peak"] if r.get("fraction_of_peak") else None
    figs = []
    nets = sorted({r["net"] for r in rows}, key=lambda n: (n not in plots.NET_TITLES, n))
    for net in nets:
        title = plots.NET_TITLES.get(net, net)
        made = [  # (heading in report.md, figure)
            (f"Time per epoch, {title}",
             plots.bars_vs_batch(rows, net, "seconds_per_epoch", "time per epoch (s)",
                                 _fig_title("tpe", net, f"Time per epoch — {title}"), cap_bars,
                                 out / f"tpe_{net}.png", log=True)),
            (f"GFLOP/s, {title}",
             plots.bars_vs_batch(rows, net, "gflops", "GFLOP/s (matrix work only)",
                                 _fig_title("gflops", net, f"GFLOP/s — {title}"), cap_bars,
                                 out / f"gflops_{net}.png", log=True)),
            (f"Speedup over the serial counterpart, {title}",
             plots.speedup_vs_batch(rows, net, _fig_title("speedup", net, f"Speedup — {title}"),
                                    cap + " Dashed: projected.", out / f"speedup_{net}.png")),
            (f"Fraction of the GEMM peak, {title}",
             plots.bars_vs_batch(rows, net, "percent_of_peak", "fraction of the machine's GEMM peak (%)",
                                 f"Fraction of peak — {title}", cap_bars + " Peak: best BLAS GEMM at the "
                                 "same threads and dtype.", out / f"peak_{net}.png")),
        ]
        figs += [(heading, p) for heading, p in made if p]
    p = plots.thread_scaling(rows, "Thread scaling (largest batch size measured at several thread counts)",
                             cap + (" Dashed: projected." if projected else ""), out / "threads.png")
    if p:
        figs.append(("Thread scaling", p))
    p = plots.tta_curves(data.tta, "Time to accuracy", cap + " Evaluation is off the clock.", out / "tta.png")
    if p:
        figs.append(("Time to accuracy", p))
    figs += study_figures(data, cap, out)
    return figs


def study_figures(data, cap: str, out: Path) -> list[tuple[str, Path]]:
    """Ott's (*Training Neural Networks in Parallel*) replicas, De Filippo De Grazia et al.'s (*Parallelization of
    Deep Networks*) DBN over ranks, and MPI efficiency against batch size."""

    over = " Hollow markers: oversubscribed (more replicas or ranks than CPUs): their times measure contention."
    made = [
        ("Replica averaging (Ott, *Training Neural Networks in Parallel*)",
         plots.replica_study(data.replicas,
                             "Replicas, weights averaged or summed (Ott, Training Neural Networks in Parallel)",
                             cap + " Mean over seeds; one thread per replica; speedup of the median epoch." + over,
                             out / "replicas.png")),
        ("DBN scaling (De Filippo De Grazia et al., *Parallelization of Deep Networks*)",
         plots.dbn_scaling(data.dbn,
                           "DBN over MPI ranks (De Filippo De Grazia et al., Parallelization of Deep Networks)",
                           cap + " Mean over seeds; RBM time on rank 0, communication included." + over,
                           out / "dbn_scaling.png", exponent=claims.DBN_EXPONENT)),
        ("MPI parallel efficiency",
         plots.mpi_efficiency(data.mpi, "MPI: parallel efficiency against batch size (pgdbench mpi-bench)",
                              cap + " Median epoch; efficiency over the 1-rank run of the same configuration.",
                              out / "mpi_efficiency.png", target=claims.MPI_EFFICIENCY)),
    ]
    return [(name, p) for name, p in made if p]


def _fig_title(kind, net, title):
    n = PAPER_FIGURES.get((kind, net))
    return f"{title} (paper Fig. {n})" if n else title


def markdown(data, figures, title, baselines=("torch-nn", "torch")) -> str:
    lines = [f"# {title}", "", caption(data), "", "Sources: " + ", ".join(f"`{s}`" for s in data.sources), ""]
    if data.warnings:
        lines += ["## Warnings", ""] + [f"- ⚠ {w}" for w in data.warnings] + [""]
    lines += ["## Claims of the studies, checked on this machine", "",
              "| study | claim | paper | test applied | ours | holds? |", "|---|---|---|---|---|---|"]
    for c in evaluate(data):
        lines.append(f"| {c['study']} | {c['claim']} | {c['paper']} | {c['test']} | {c['ours']} | **{c['holds']}** |")
    if claims.evidence(data):
        lines += ["", claims.evidence(data)]
    lines += ["", "The machine differs from the paper's (32 cores, Tesla K40C), so thread-count claims are "
              "compared as efficiencies; \"not measured\" means the results given hold no rows for that claim. "
              "What each study contributes and where each claim comes from (figure, table or section): "
              "docs/studies.md in the pgdbench repository.", ""]
    for check in data.device_checks:       # its own tables: per-product ratios to cuBLAS, whole-step ratios
        lines += ["## GPU device check (scripts/device-check.sh)", ""]
        lines += [("#" + line) if line.startswith("#") else line
                  for line in check.get("summary_markdown", "").splitlines()] + [""]
    if figures:
        lines += ["## Figures", ""]
        for name, path in figures:
            lines += [f"### {name}", "", f"![{name}]({path.name})", ""]
    if data.rows:
        lines += ["## Performance", "", "`*` projected: timed on part of an epoch and scaled to the full epoch.", "",
                  *peak_lines(data.rows), "",
                  "| net | series | batch | s/epoch | GFLOP/s | vs serial | vs 1 thread | of peak | of limit | source |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(data.rows, key=lambda r: (r["net"], series_label(r), r["batch_size"])):
            tpe = fmt(r.get("seconds_per_epoch")) + ("*" if r.get("projected") else "")
            peak = f"{r['fraction_of_peak']:.0%}" if r.get("fraction_of_peak") else "-"
            if r.get("fraction_of_peak") and r["fraction_of_peak"] > 1:
                peak += " (!)"
            limit = f"{r['fraction_of_theoretical']:.0%}" if r.get("fraction_of_theoretical") else "-"
            lines.append(f"| {r['net']} | {series_label(r)} | {r['batch_size']} | {tpe} | {fmt(r.get('gflops'))} | "
                         f"{fmt(r.get('speedup_vs_serial'))} | {fmt(r.get('speedup_vs_1thread'))} | {peak} | "
                         f"{limit} | {r.get('source')} |")
        lines.append("")
        lines += comparison_tables(data.rows, baselines)
    if data.tta_summaries or data.tta:
        lines += ["## Time to accuracy", "", "| backend | threads | batch | target | reached | median s | min s | "
                  "max s | median epochs |", "|---|---|---|---|---|---|---|---|---|"]
        for s in data.tta_summaries:
            lines.append(f"| {s['backend']} | {s['threads']} | {s['batch_size']} | {s['target']:.1%} {s['on']} | "
                         f"{s['reached']} | {fmt(s.get('median_seconds'))} | {fmt(s.get('min_seconds'))} | "
                         f"{fmt(s.get('max_seconds'))} | {fmt(s.get('median_epochs'))} |")
        bad = [r for r in data.tta if r["status"] != "reached"]
        for r in bad:
            lines.append(f"\n- {r['backend']} seed {r['seed']}: **{r['status']}** — {r.get('reason', '')}")
        lines.append("")
    lines += study_tables(data)
    if data.not_ok:
        lines += ["## Points not measured", "", "| source | backend | net | batch | threads | status | reason |",
                  "|---|---|---|---|---|---|---|"]
        for r in data.not_ok:
            lines.append(f"| {r['source']} | {r['backend']} | {r['net']} | {r['batch_size']} | {r['threads']} | "
                         f"{r['status']} | {str(r['reason']).replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


def study_tables(data) -> list[str]:
    """Markdown tables of the averaging study, the MPI runs and the DBN runs (what the claims were computed from)."""

    lines = []
    if data.replicas:
        lines += ["## Replicas, weights averaged or summed (Ott, *Training Neural Networks in Parallel*)", "",
                  "Means over the seeds that finished; one replica is plain minibatch GD, the baseline of both rules.",
                  "", "| study | rule | replicas | examples/replica | val acc | test acc | s/epoch | vs 1 replica | "
                  "seeds | note |", "|---|---|---|---|---|---|---|---|---|---|"]
        for p in data.replicas:
            note = "oversubscribed" if p["oversubscribed"] else ""
            if p["ok"] < p["runs"]:
                note = ", ".join(filter(None, [note, f"{p['runs'] - p['ok']} diverged"]))
            lines.append(f"| {p['study']} | {p['combine']} | {p['replicas']} | {p['examples']} | "
                         f"{pct(p['val_accuracy'])} | {pct(p['test_accuracy'])} | {fmt(p['seconds_per_epoch'])} | "
                         f"{fmt(p['speedup'])} | {p['ok']}/{p['runs']} | {note} |")
        lines.append("")
    if data.mpi:
        lines += ["## MPI over rank counts (`pgdbench mpi-bench`)", "",
                  "`*` projected: timed on part of an epoch and scaled to the full epoch.", "",
                  "| configuration | batch | ranks | s/epoch | GFLOP/s | vs 1 rank | efficiency | oversubscribed | "
                  "test acc |", "|---|---|---|---|---|---|---|---|---|"]
        for r in data.mpi:
            eff = r.get("parallel_efficiency")
            lines.append(f"| {mpi_series_label(r)} | {r['batch_size']} | {r['ranks']} | "
                         f"{fmt(r.get('seconds_per_epoch'))}{'*' if r.get('projected') else ''} | "
                         f"{fmt(r.get('gflops'))} | {fmt(r.get('speedup_vs_1rank'))} | "
                         f"{'-' if eff is None else format(eff, '.0%')} | {'yes' if r.get('oversubscribed') else ''} "
                         f"| {pct(r.get('test_accuracy'))} |")
        lines.append("")
    if data.dbn:
        lines += ["## Deep Belief Network over MPI ranks (De Filippo De Grazia et al., *Parallelization of Deep "
                  "Networks*, `pgdbench dbn`)", "",
                  "Means over the runs (seeds) of each rank count; RBM time is all layers' pre-training on rank 0.",
                  "", "| setup | ranks | runs | RBM s | epochs per layer | speedup | test error | oversubscribed |",
                  "|---|---|---|---|---|---|---|---|"]
        for p in data.dbn:
            lines.append(f"| {p['setup']} | {p['ranks']} | {p['runs']} | {fmt(p['rbm_seconds'])} | {p['epochs']} | "
                         f"{fmt(p.get('speedup'))} | {pct(p.get('test_error'))} | {p['over']} |")
        lines.append("")
    return lines
