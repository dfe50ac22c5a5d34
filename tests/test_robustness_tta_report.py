"""Results survive killed runs, diverging runs are recorded as such, and tta/report work end to end.

Everything runs the real command line in subprocesses (signals need a real
process) on tiny grids and data.
"""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pgdbench.harness.results import read_records, run_status

CLI = [sys.executable, "-m", "pgdbench.cli"]


def _bench_until_first_record(results: Path):
    """Start a long `pgdbench bench` and return it once its first grid point is on disk."""
    # the first point is quick, the later ones (small batches, many epochs) slow: killed midway for sure
    cmd = CLI + ["bench", "--backend", "numpy", "--net", "net1h", "--batch-size", "1000,64,32,16,8",
                 "--threads", "1", "--dataset", "synthetic:1000", "--epochs", "2", "--quiet",
                 "--results", str(results)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if results.exists() and any(json.loads(l).get("kind") == "bench"
                                    for l in results.read_text().splitlines() if l.strip()):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"bench produced no record in time: {proc.communicate()}")


@pytest.mark.parametrize("sig, expected_status, expected_rc", [
    (signal.SIGKILL, "incomplete", -signal.SIGKILL),
    (signal.SIGINT, "interrupted", 130),
    (signal.SIGTERM, "interrupted", 130),
])
def test_killed_bench_keeps_earlier_records_and_is_marked(tmp_path, sig, expected_status, expected_rc):
    results = tmp_path / "bench.jsonl"
    results.write_text(json.dumps({"kind": "run_start", "run_id": "earlier", "command": "bench", "machine": {}}) + "\n"
                       + json.dumps({"kind": "run_end", "run_id": "earlier", "status": "complete"}) + "\n")
    proc = _bench_until_first_record(results)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode == expected_rc
    records, warnings = read_records(results)
    assert warnings == []
    status = run_status(records)
    assert status.pop("earlier") == "complete"
    assert list(status.values()) == [expected_status]
    bench = [r for r in records if r.get("kind") == "bench"]
    assert bench and all(r["status"] == "ok" and r["seconds_per_epoch"] > 0 for r in bench)
    assert len(bench) < 5  # killed midway, not after the last point


def test_diverging_bench_point_is_recorded_as_diverged_not_as_a_time(tmp_path):
    results = tmp_path / "div.jsonl"
    out = subprocess.run(CLI + ["bench", "--backend", "numpy", "--net", "net1h", "--batch-size", "64", "--threads",
                                "1", "--dataset", "synthetic:256", "--lr", "1e300", "--quiet", "--results",
                                str(results)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    records, _ = read_records(results)
    bench = [r for r in records if r.get("kind") == "bench"]
    assert bench and all(r["status"] == "diverged" for r in bench)
    assert all("seconds_per_epoch" not in r and "nan" in r["reason"] for r in bench)


def _tta(tmp_path, *extra):
    cmd = CLI + ["tta", "--backend", "numpy", "--dataset", "mnist-sample", "--layers", "784,32,10", "--lr", "1.0",
                 "--batch-size", "32", "--quiet", "--results", str(tmp_path / "tta.jsonl"), *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_tta_reached_not_reached_and_diverged(tmp_path):
    _tta(tmp_path, "--target", "0.6", "--seeds", "0,1,2", "--max-epochs", "5")
    _tta(tmp_path, "--target", "1.0", "--on", "test", "--seeds", "0", "--max-epochs", "2")
    _tta(tmp_path, "--target", "0.6", "--seeds", "0", "--max-epochs", "2", "--lr", "1e300")
    records, warnings = read_records(tmp_path / "tta.jsonl")
    assert warnings == [] and set(run_status(records).values()) == {"complete"}
    runs = [r for r in records if r.get("kind") == "tta"]
    summaries = [r for r in records if r.get("kind") == "tta_summary"]
    assert [r["status"] for r in runs] == ["reached"] * 3 + ["not_reached", "diverged"]
    for r in runs[:3]:
        last = r["curve"][-1]
        assert last["val_accuracy"] >= 0.6 and r["seconds_to_target"] == last["seconds"] > 0
        assert r["epochs_to_target"] == len(r["curve"])
        assert all(r["curve"][i]["seconds"] < r["curve"][i + 1]["seconds"] for i in range(len(r["curve"]) - 1))
        assert all(0 <= p["test_accuracy"] <= 1 for p in r["curve"])  # test evaluated every epoch, off the clock
    assert runs[3]["seconds_to_target"] is None and len(runs[3]["curve"]) == 2
    assert runs[4]["seconds_to_target"] is None and "nan" in runs[4]["reason"]
    ok = summaries[0]
    times = sorted(r["seconds_to_target"] for r in runs[:3])
    assert ok["reached"] == "3/3" and ok["median_seconds"] == times[1]
    assert ok["min_seconds"] == times[0] and ok["max_seconds"] == times[2]
    assert summaries[1]["median_seconds"] is None and summaries[1]["reached"] == "0/1"
    assert summaries[2]["statuses"] == ["diverged"]


def test_tta_rejects_a_bad_target(tmp_path):
    out = subprocess.run(CLI + ["tta", "--target", "97", "--results", str(tmp_path / "x.jsonl")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "fraction" in out.stderr


def test_report_figures_claims_and_flags(tmp_path):
    bench = tmp_path / "bench.jsonl"
    out = subprocess.run(CLI + ["bench", "--backend", "numpy", "--net", "net1h", "--net", "net2h", "--batch-size",
                                "32,128", "--threads", "1", "--dataset", "synthetic:300", "--max-examples", "128",
                                "--quiet", "--results", str(bench)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    _tta(tmp_path, "--target", "0.5", "--seeds", "0,1,2", "--max-epochs", "3")
    with open(bench, "a") as f:  # a run killed before its run_end, and a torn last line
        f.write(json.dumps({"kind": "run_start", "run_id": "killed", "command": "bench", "machine": {}}) + "\n")
        f.write('{"kind": "bench", "run_id": "killed", "backend": "num')
    rep = subprocess.run(CLI + ["report", str(bench), str(tmp_path / "tta.jsonl"), "--out", str(tmp_path / "rep")],
                         capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr
    made = {p.name for p in (tmp_path / "rep").iterdir()}
    assert {"tpe_net1h.png", "tpe_net2h.png", "gflops_net1h.png", "gflops_net2h.png", "tta.png",
            "report.md"} <= made
    assert all((tmp_path / "rep" / p).stat().st_size > 10_000 for p in made if p.endswith(".png"))
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "run killed (bench) has no run_end" in md
    assert "torn or corrupt line skipped" in md
    assert "| Kamra et al., *Parallel Gradient Descent* | CUDA speedup over its serial counterpart | ≈25× (K40) |" in md
    assert "**not measured**" in md
    assert "numpy net1h T=1: max/min" in md  # the flat-TPE claim is computed from the data
    assert "| net2h | numpy T=1 | 128 |" in md and "(paper Fig. 7)" not in md  # titles live in the PNGs
    assert "| numpy | 1 | 32 | 50.0% val | 3/3 |" in md


def test_report_rejects_unknown_files(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    out = subprocess.run(CLI + ["report", str(bad), "--out", str(tmp_path / "r")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "neither" in out.stderr


def test_report_reads_asv_results(tmp_path):
    """tests/data/asv holds the result files of a real `asv run --python=same` of benchmarks/ (time_step and
    peakmem_step of one point, the others n/a), as asv 0.6 wrote them: seconds per step become seconds per epoch
    (projected) and GFLOP/s."""
    data = Path(__file__).parent / "data" / "asv"
    rep = subprocess.run(CLI + ["report", str(data), "--out", str(tmp_path / "rep")], capture_output=True, text=True,
                         timeout=120)
    assert rep.returncode == 0, rep.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| net1h | numpy T=1 | 512 | 2.77* | 59.1 | 1 | 1 | - | - | asv |" in md   # 28.35 ms per step of 512
    assert "AMD EPYC, 2 CPUs" in md and "Commit e59b9c30" in md and "Measured 2026-12-01" in md
    assert (tmp_path / "rep" / "tpe_net1h.png").exists()
