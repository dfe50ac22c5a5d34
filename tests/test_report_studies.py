"""`pgdbench report` reads the scaling studies' records: averaging-study (Ott, *Training Neural Networks in
Parallel*), mpi-bench and dbn (De Filippo De Grazia et al., *Parallelization of Deep Networks*).

tests/data/studies holds the files of real runs of the commands on the 2-core development machine (shared with
other jobs at the time, hence the poor MPI efficiencies), written with, in that folder:

    PGDBENCH_MAX_THREADS=8 pgdbench averaging-study --dataset mnist-sample --layers 784,16,10 \\
        --replicas 1,2,4,8 --batch-size 20 --lr 2 --seeds 0,1 --results averaging-study.jsonl
    pgdbench mpi-bench --ranks 1,2,4 --net net1h --batch-size 128,512 --dataset synthetic:2048 --epochs 1 \\
        --quiet --results mpi-bench.jsonl
    pgdbench dbn --scaling 1,2,4 --dataset mnist-sample --hidden 32,32,64 --epochs 3 --batch-size 25 \\
        --finetune-epochs 4 --finetune-lr 2 --quiet --results dbn.jsonl
    pgdbench dbn --scaling 1,2 --dataset mnist-sample --hidden 32,32,64 --examples 2000 --epochs 10 \\
        --stop convergence --tau 0.01 --batch-size 25 --finetune-epochs 0 --quiet --results dbn.jsonl

The last test runs the three commands afresh at a tiny size and checks the report against their records.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pgdbench.reporting import claims
from pgdbench.reporting.collection import Collection

CLI = [sys.executable, "-m", "pgdbench.cli"]
STUDIES = Path(__file__).parent / "data" / "studies"
FIGURES = ("replicas.png", "dbn_scaling.png", "mpi_efficiency.png")


def _report(tmp_path, *paths) -> tuple[str, str]:
    out = tmp_path / "rep"
    rep = subprocess.run(CLI + ["report", *map(str, paths), "--out", str(out)], capture_output=True, text=True,
                         timeout=120)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    for name in FIGURES:
        assert (out / name).stat().st_size > 10_000, name
    return (out / "report.md").read_text(), rep.stdout


def _claim(md: str, claim: str) -> tuple[str, str]:
    """(ours, holds) of the claims-table row whose claim column is ``claim``."""
    row = next(line for line in md.splitlines() if line.startswith("| ") and f"| {claim} |" in line)
    cells = row.strip("|").split(" | ")
    return cells[-2].strip(), cells[-1].strip().strip("*")


def _records(path, kind):
    return [r for r in map(json.loads, Path(path).read_text().splitlines()) if r.get("kind") == kind]


def test_report_of_the_studies_fixtures(tmp_path):
    md, stdout = _report(tmp_path, STUDIES)
    assert "14 averaging-study runs, 6 mpi-bench points, 5 DBN runs" in stdout
    assert "## Warnings" not in md  # dbn --scaling's copied child records belong to the scaling run
    assert "Machine: AMD EPYC, 2 CPUs. Measured 2026-11-22. Data: mnist-sample, synthetic:2048." in md
    for name in FIGURES:
        assert f"]({name})" in md

    ours, holds = _claim(md, "Replicas: training time falls once n ≥ 6 (overhead wins below)")
    assert ours == ("784-16-10 mnist-sample B=20: 0.73× at n=2, 0.86× at n=4 (oversubscribed: not counted), "
                    "1.15× at n=8 (oversubscribed: not counted)")
    assert holds == ("cannot decide (no run with n ≥ 6 replicas on as many CPUs; the most without oversubscription "
                     "here: 2)")
    ours, holds = _claim(md, "Replica averaging: accuracy falls as replicas grow")
    assert ours == ("784-16-10 mnist-sample B=20 (averaging-study): 81.1% at n=1 → 71.0% at n=2 → 53.0% at n=4 → "
                    "45.2% at n=8") and holds == "yes"
    ours, holds = _claim(md, "Summing the replicas' weights beats averaging them")
    assert ours == ("784-16-10 mnist-sample B=20: n=2: 71.2% vs 71.0% (+0.2 points), n=4: 57.2% vs 53.0% "
                    "(+4.2 points), n=8: 42.8% vs 45.2% (-2.4 points)") and holds == "no"

    ours, holds = _claim(md, "DBN: RBM time vs cores is a power law (fixed epochs)")
    assert ours == ("DBN 32-32-64 on 4000 mnist-sample: RBM time 0.772 s at 1, 0.34 s at 2, 0.384 s at 4 rank(s) "
                    "(oversubscribed, not fitted: 4); exponent -1.19 over ranks 1, 2")
    assert holds.startswith("cannot decide (only 2 rank counts without oversubscription (1 and 2)")
    ours, holds = _claim(md, "DBN: more cores cost little accuracy")
    assert ours == ("DBN 32-32-64 on 4000 mnist-sample, fixed epochs: 31.0% at 1 → 42.2% at 2 → 55.8% at 4 rank(s) "
                    "(+24.8 points)") and holds == "no"
    ours, holds = _claim(md, "DBN with the convergence rule: time still falls with cores")
    assert "0.456 s at 1, 0.352 s at 2 rank(s); exponent -0.37 over ranks 1, 2" in ours
    assert holds.startswith("cannot decide (only 2 rank counts")
    ours, holds = _claim(md, "DBN with the convergence rule: time levels off at 16 cores")
    assert holds == "cannot decide (needs runs at 16 and more ranks without oversubscription; the most here: 2)"

    ours, holds = _claim(md, "Data-parallel MLP training over MPI ranks (`mpi`, `mpi-averaging`): parallel efficiency")
    assert "mpi net1h 1 thread(s)/rank float32 B=512: 61% at 2 ranks;" in ours
    assert "B=128: 50% at 2 ranks (B < 512: not counted)" in ours
    assert "B=512: 21% at 4 ranks (oversubscribed: not counted)" in ours and holds == "no"

    # the tables the claims were computed from
    assert ("| average | 8 | 500 | 44.2% | 45.2% | 0.0486 | 1.15 | 2/2 | oversubscribed |") in md
    assert "| mpi net1h 1 thread(s)/rank float32 | 512 | 2 | 0.141 | 47.6 | 1.22 | 61% |  | 8.6% |" in md
    assert "ε 0.1, convergence rule (τ 0.01, at most 10 epochs) | 2 | 1 | 0.352 | 5 8 7 | 1.29 | - |  |" in md


def test_fixture_values_are_the_records_values():
    """The pinned numbers above are what the records say, not what the report happens to print."""
    study = [r for r in _records(STUDIES / "averaging-study.jsonl", "averaging-study")]
    at = {(r["combine"], r["replicas"], r["seed"]): r["test_accuracy"] for r in study}
    assert (at[("average", 8, 0)] + at[("average", 8, 1)]) / 2 == pytest.approx(0.452)
    assert (at[("sum", 8, 0)] + at[("sum", 8, 1)]) / 2 == pytest.approx(0.428)
    two = next(r for r in _records(STUDIES / "mpi-bench.jsonl", "bench") if r["ranks"] == 2 and r["batch_size"] == 512)
    assert round(two["parallel_efficiency"], 2) == 0.61
    scaling = _records(STUDIES / "dbn.jsonl", "dbn_scaling")
    assert [round(s["exponent"], 2) for s in scaling] == [-1.19, -0.37]


def test_empty_or_missing_studies_say_not_measured(tmp_path):
    bench = tmp_path / "bench.jsonl"
    out = subprocess.run(CLI + ["bench", "--backend", "numpy", "--net", "net1h", "--batch-size", "64", "--threads",
                                "1", "--dataset", "synthetic:200", "--max-examples", "64", "--quiet", "--results",
                                str(bench)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rep = subprocess.run(CLI + ["report", str(bench), "--out", str(tmp_path / "rep")], capture_output=True,
                         text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    assert _claim(md, "Summing the replicas' weights beats averaging them") == (
        "needs pgdbench averaging-study with --combine average,sum at n > 1", "not measured")
    assert _claim(md, "DBN: RBM time vs cores is a power law (fixed epochs)")[1] == "not measured"
    assert _claim(md, "Data-parallel MLP training over MPI ranks (`mpi`, `mpi-averaging`): parallel efficiency") == (
        "needs pgdbench mpi-bench", "not measured")
    assert not any((tmp_path / "rep" / name).exists() for name in FIGURES)


# -- the claims decide when the machine is large enough ------------------------------------------------------

def _dbn_point(ranks, seconds, stop="epochs", error=None, over=False):
    return {"setup": f"s-{stop}", "name": f"DBN {stop}", "stop": stop, "ranks": ranks, "rbm_seconds": seconds,
            "test_error": error, "oversubscribed": over}


def test_dbn_power_law_decides_with_three_rank_counts():
    law = Collection(dbn=[_dbn_point(k, 100 * k ** -0.86) for k in (1, 2, 4, 8)])
    ours, holds = claims.claim_dbn_power_law(law)
    assert holds == "yes" and "exponent -0.86 over ranks 1, 2, 4, 8 (R² 1.00)" in ours
    flat = Collection(dbn=[_dbn_point(k, 100 * k ** -0.3) for k in (1, 2, 4)] + [_dbn_point(8, 1.0, over=True)])
    ours, holds = claims.claim_dbn_power_law(flat)
    assert holds == "no" and "exponent -0.30 over ranks 1, 2, 4" in ours and "not fitted: 8" in ours


def test_dbn_levels_off_and_error_cost():
    levelled = Collection(dbn=[_dbn_point(k, s, "convergence") for k, s in ((1, 6700), (16, 1150), (40, 1100))])
    assert claims.claim_dbn_levels_off(levelled)[1] == "yes"
    still = Collection(dbn=[_dbn_point(k, s, "convergence") for k, s in ((1, 6700), (16, 1150), (32, 600))])
    assert claims.claim_dbn_levels_off(still)[1] == "no"
    cheap = Collection(dbn=[_dbn_point(1, 10, error=0.0114), _dbn_point(40, 1, error=0.0162)])
    assert claims.claim_dbn_error_cost(cheap) == ("DBN epochs, fixed epochs: 1.1% at 1 → 1.6% at 40 rank(s) "
                                                  "(+0.5 points)", "yes")
    unlearnt = Collection(dbn=[_dbn_point(1, 10, error=0.9), _dbn_point(2, 5, error=0.9)])
    assert claims.claim_dbn_error_cost(unlearnt)[1] == "cannot decide (the fine-tuned nets did not learn: every " \
                                                       "error ≥ 50 %)"


def test_replica_time_and_mpi_efficiency_decide_on_a_large_machine():
    def point(n, speedup):
        return {"name": "net", "combine": "average", "replicas": n, "speedup": speedup, "oversubscribed": False}

    paper = Collection(replicas=[point(1, 1.0), point(2, 0.6), point(4, 0.9), point(8, 1.5)])
    assert claims.claim_replica_time(paper)[1] == "yes"
    early = Collection(replicas=[point(1, 1.0), point(2, 1.6), point(8, 3.0)])
    assert claims.claim_replica_time(early)[1] == "no"

    def mpi(ranks, batch, eff, over=False):
        return {"backend": "mpi", "net": "net2h", "threads": 1, "dtype": "float32", "options": {}, "ranks": ranks,
                "batch_size": batch, "parallel_efficiency": eff, "oversubscribed": over}

    good = Collection(mpi=[mpi(1, 512, 1.0), mpi(2, 512, 0.9), mpi(2, 1024, 0.93), mpi(2, 128, 0.5),
                           mpi(4, 1024, 0.3, over=True)])
    assert claims.claim_mpi_efficiency(good)[1] == "yes"
    crowded = Collection(mpi=[mpi(1, 512, 1.0), mpi(4, 512, 0.3, over=True)])
    assert claims.claim_mpi_efficiency(crowded)[1] == ("cannot decide (every run with more than 1 rank is "
                                                       "oversubscribed)")


# -- end to end: the commands' fresh records --------------------------------------------------------------

def test_report_of_fresh_study_runs(tmp_path):
    """Run averaging-study, mpi-bench and dbn --scaling at a tiny size; the report shows what their records say."""
    from tests.mpi_jobs import mpiexec_or_skip, run_job

    mpiexec_or_skip()
    env = {**os.environ, "PGDBENCH_MAX_THREADS": "2"}  # 2 replicas even on a 1-CPU machine (then oversubscribed)
    avg, mb, dbn = tmp_path / "avg.jsonl", tmp_path / "mpi.jsonl", tmp_path / "dbn.jsonl"
    out = subprocess.run(CLI + ["averaging-study", "--dataset", "mnist-sample", "--layers", "784,16,10", "--replicas",
                                "1,2", "--batch-size", "20", "--lr", "2", "--results", str(avg)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    proc = run_job(CLI + ["mpi-bench", "--ranks", "1,2", "--net", "net1h", "--batch-size", "128", "--dataset",
                          "synthetic:600", "--epochs", "1", "--results", str(mb), "--quiet"], timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run_job(CLI + ["dbn", "--scaling", "1,2", "--dataset", "mnist-sample", "--hidden", "32,32,64", "--epochs",
                          "2", "--examples", "1000", "--finetune-epochs", "2", "--results", str(dbn), "--quiet"],
                   timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr

    from pgdbench.harness.results import read_records

    runs = {r["run_id"] for r in read_records(dbn)[0] if r["kind"] == "run_start"}
    assert {r["run_id"] for r in read_records(dbn)[0]} == runs  # child jobs' records carried under the run's id

    md, _ = _report(tmp_path, avg, mb, dbn)
    assert "## Warnings" not in md
    study = _records(avg, "averaging-study")
    acc = {r["replicas"]: r["test_accuracy"] for r in study if r["combine"] in ("average", "none (1 replica)")}
    ours, holds = _claim(md, "Replica averaging: accuracy falls as replicas grow")
    assert ours.endswith(f"{acc[1]:.1%} at n=1 → {acc[2]:.1%} at n=2")
    assert holds == ("yes" if acc[2] < acc[1] else "no")
    summed = next(r["test_accuracy"] for r in study if r["combine"] == "sum")
    ours, holds = _claim(md, "Summing the replicas' weights beats averaging them")
    assert f"n=2: {summed:.1%} vs {acc[2]:.1%}" in ours and holds in ("yes", "no")

    two = next(r for r in _records(mb, "bench") if r["ranks"] == 2)
    ours, holds = _claim(md, "Data-parallel MLP training over MPI ranks (`mpi`, `mpi-averaging`): parallel efficiency")
    assert f"B=128: {two['parallel_efficiency']:.0%} at 2 ranks" in ours
    assert holds.startswith("cannot decide")  # batch 128 only: the target is for batches ≥ 512

    scaling = _records(dbn, "dbn_scaling")[0]
    ours, holds = _claim(md, "DBN: RBM time vs cores is a power law (fixed epochs)")
    if not any(scaling["oversubscribed"]):
        assert f"exponent {scaling['exponent']:+.2f} over ranks 1, 2" in ours
    assert holds.startswith("cannot decide")  # two rank counts at most on this machine: any power law fits
    errors = dict(zip(scaling["ranks"], scaling["test_error"]))
    ours, holds = _claim(md, "DBN: more cores cost little accuracy")
    assert f"{errors[1]:.1%} at 1 → {errors[2]:.1%} at 2 rank(s)" in ours and holds != "not measured"


def test_the_replica_study_is_a_bench_grid_of_the_averaging_backend(tmp_path):
    """`bench --backend averaging --threads 1,2 -o combine=average,sum`: report reads it as the replica study."""
    env = {**os.environ, "PGDBENCH_MAX_THREADS": "2"}  # 2 replicas even on a 1-CPU machine (then oversubscribed)
    results, out = tmp_path / "bench.jsonl", tmp_path / "rep"
    run = subprocess.run(CLI + ["bench", "--backend", "averaging", "--threads", "1,2", "-o", "combine=average,sum",
                                "--net", "784,16,10", "--dataset", "mnist-sample", "--batch-size", "20", "--lr", "2",
                                "--quiet", "--results", str(results)], capture_output=True, text=True, timeout=300,
                         env=env)
    assert run.returncode == 0, run.stderr
    bench = {(r["threads"], r["options"]["combine"]): r for r in _records(results, "bench")
             if r["backend"] == "averaging"}
    assert set(bench) == {(1, "average"), (1, "sum"), (2, "average"), (2, "sum")}
    rep = subprocess.run(CLI + ["report", str(results), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr
    assert (out / "replicas.png").stat().st_size > 10_000
    md = (out / "report.md").read_text()
    one, two = bench[(1, "average")]["test_accuracy"], bench[(2, "average")]["test_accuracy"]
    ours, holds = _claim(md, "Replica averaging: accuracy falls as replicas grow")
    assert ours.endswith(f"{one:.1%} at n=1 → {two:.1%} at n=2")
    assert holds == ("yes" if two < one else "no")
    ours, _ = _claim(md, "Summing the replicas' weights beats averaging them")
    assert f"n=2: {bench[(2, 'sum')]['test_accuracy']:.1%} vs {two:.1%}" in ours
