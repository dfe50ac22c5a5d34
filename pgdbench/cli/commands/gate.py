"""Is HEAD slower than BASE? Measure both revisions interleaved and decide each point from a confidence interval.

Run it from inside a git checkout of pgdbench, before merging:

    pgdbench gate main            # the checkout's HEAD against main
    pgdbench gate v0.1.0 my-branch --budget 600 --threshold 0.03

Both revisions are exported into .gate/trees/ and run with this Python (their
own code, the same libraries). Every point of the point set (default: the
[gate] table of pgdbench/harness/points.toml: each installed backend at 1
thread and at all CPUs, Net-1h, batches 32 and 512) is timed in rounds of
fresh processes, the two revisions alternating, until the interval of the
ratio HEAD/BASE is wholly above 1 + threshold (a regression: exit status 1),
wholly below it (ok), or the time budget is spent (undecided: said, exit 0).
Points with more than one thread gate only when the machine has those cores
to spare; otherwise they are reported with the load.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from pgdbench.cli.commands.common import check_outputs, int_list, positive_float, positive_int, record_config
from pgdbench.harness.gate import Gate, GateSettings, prepare_revisions, report_lines, repository_root
from pgdbench.harness.machine import cpu_model
from pgdbench.harness.points import check_point_set, load_point_set
from pgdbench.harness.results import ResultsWriter

HELP = "regression gate: time two git revisions interleaved, fail only on a confident slowdown"


def add_arguments(p):
    p.add_argument("base", metavar="BASE", help="the baseline revision (branch, tag or commit), e.g. main")
    p.add_argument("head", metavar="HEAD", nargs="?", default="HEAD",
                   help="the candidate revision (default: the checkout's HEAD; commit changes first)")
    p.add_argument("--threshold", type=positive_float, default=0.05,
                   help="a regression is a slowdown beyond this fraction (default 0.05 = 5 %%)")
    p.add_argument("--confidence", type=positive_float, default=0.95,
                   help="of each point's interval of the ratio (default 0.95)")
    p.add_argument("--budget", type=positive_float, default=270.0,
                   help="seconds for the whole gate; points not decided by then are reported undecided (default 270)")
    p.add_argument("--points", type=Path,
                   help="a points file with a [gate] table (default: pgdbench/harness/points.toml)")
    p.add_argument("--backend", action="append", help="only these backends (repeatable)")
    p.add_argument("--net", action="append", help="only these nets (repeatable; presets or widths like 784-32-10)")
    p.add_argument("--batch-size", type=int_list, help="only these batch sizes (comma-separated)")
    p.add_argument("--threads", type=int_list, help="only these thread counts (comma-separated)")
    p.add_argument("--pairs", type=positive_int, default=4, help="pairs of timings per point per round (default 4)")
    p.add_argument("--min-rounds", type=positive_int, default=6,
                   help="rounds before any point is decided (default 6, the fewest that give a 95%% interval)")
    p.add_argument("--max-rounds", type=positive_int, default=40, help="stop after this many rounds (default 40)")
    p.add_argument("--clock", choices=["auto", "wall", "cpu"], default="auto",
                   help="timings that decide: auto = the process's CPU time for 1-thread CPU points (immune to "
                        "preemption by other jobs), wall time otherwise (default auto)")
    p.add_argument("--seed", type=int, help="seed of the random orders (default: different every run)")
    p.add_argument("--python", default=sys.executable,
                   help="interpreter that runs both revisions (default: this one)")
    p.add_argument("--results", default="results/gate.jsonl",
                   help="results file to append every point's record to (default results/gate.jsonl)")
    p.add_argument("--quiet", action="store_true", help="no progress lines, only the table")


def run(args):
    check_outputs(results=args.results)
    settings = GateSettings(threshold=args.threshold, confidence=args.confidence, budget=args.budget,
                            pairs=args.pairs, min_rounds=args.min_rounds, max_rounds=args.max_rounds, clock=args.clock, seed=args.seed, python=args.python)
    point_set = load_point_set(args.points).restricted(args.backend, args.net, args.batch_size, args.threads)
    check_point_set(point_set)
    settings.sample_seconds = point_set.sample_seconds
    settings.check()
    repo = repository_root(Path.cwd())
    base, head = prepare_revisions(repo, args.base, args.head)

    def log(text):
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    gate = Gate(base, head, point_set, settings, log)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    machine = f"{cpu_model()}, {gate.cpus} usable CPUs, load average {load:.2f} at the start"
    print(f"pgdbench gate: {base.name} ({base.short}) → {head.name} ({head.short}); "
          f"threshold {settings.threshold:.1%}, {settings.confidence:.0%} intervals, budget {settings.budget:.0f} s",
          flush=True)
    print(f"machine: {machine}", flush=True)
    info = {"cpu_model": cpu_model(), "base": base.commit, "head": head.commit, "base_name": base.name,
            "head_name": head.name}
    with ResultsWriter(args.results, "gate", {**info}, record_config(args)) as writer:
        gate.run()
        for r in gate.results:
            writer.write({"kind": "gate_point", **r.summary(), "threshold": settings.threshold})
        failed, undecided = gate.regressions(), gate.undecided()
        outcome = "regression" if failed else ("undecided" if undecided else "pass")
        writer.write({"kind": "gate_summary", "outcome": outcome, "rounds": gate.rounds,
                      "seconds": gate.elapsed(), "stopped_because": gate.stopped_because,
                      "regressions": [r.point.label for r in failed], "undecided": [r.point.label for r in undecided],
                      **info, "threshold": settings.threshold})
    print()
    print("\n".join(report_lines(gate)))
    print()
    print(f"{gate.rounds} rounds in {gate.elapsed():.0f} s; stopped: {gate.stopped_because}")
    if undecided:
        print(f"could not decide {len(undecided)} point(s) within the budget: "
              f"{', '.join(r.point.label for r in undecided)} (a longer --budget or a quieter machine would)")
    if failed:
        print(f"FAIL: {len(failed)} point(s) slower by more than {settings.threshold:.0%} in {head.name}: "
              f"{', '.join(r.point.label for r in failed)}")
        return 1
    print(f"PASS: no point of {head.name} is confidently slower than {base.name} by more than {settings.threshold:.0%}")
    return 0
