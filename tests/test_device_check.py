"""The device check's dry run (scripts/device-check.sh --cpu-dry-run): every code path of the GPU run --
per-product timing and checks, epochs of every backend, the serial baseline, the summaries, the report,
the tarball that the GPU machine hands back -- on PoCL, NumPy and the CPU, with tiny sizes.

A dry run measures nothing: these tests check that the one command that gets the GPU's 15 minutes runs
to its end and writes what it promises, not any number in it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_writes_everything_within_its_budget(tmp_path):
    pytest.importorskip("pyopencl", reason="pyopencl not installed (pip install -e '.[opencl]'): the dry run uses PoCL")
    if shutil.which("bash") is None:
        pytest.skip("no bash here")
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    env.pop("PGDBENCH_DATA", None)                  # the embedded sample only: quick
    run = subprocess.run(["bash", "scripts/device-check.sh", "--cpu-dry-run", "--budget", "180"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["device-check.json", "device-check.log", "device-check.tar.gz", "summary.md"]  # <= 8 files back
    result = json.loads((out / "device-check.json").read_text())
    assert result["kind"] == "device-check" and result["dry_run"] is True
    assert all(t["met"] is None for t in result["targets"].values()), "a dry run must not decide a target"
    assert result["duration_seconds"] < 180   # 25–45 s here; a cold PoCL cache on a busy CI machine needs room
    failed = {k: v for k, v in result["phases"].items() if v["status"] != "ok"}
    assert not failed, failed

    gemm = result["gemm"]
    assert gemm["dry_run"] and gemm["complete"]
    assert len(gemm["products"]) == 8 and gemm["checks"]              # every product of a Net-2h step
    assert gemm["max_error"] < 1e-4                                   # float32 against float64
    for r in gemm["products"]:
        assert r["variants"][0]["name"] == "plan" and r["variants"][0]["seconds"] > 0
        assert {"numpy", "torch"} <= set(r["baselines"]) and r["plan_vs_cublas"] > 0

    rows = {(r["net"], r["batch"]): r for r in result["epoch_table"]}
    row = rows[("net1h", 64)]
    assert row["opencl_s"] > 0 and row["numpy_s"] > 0 and row["torch_s"] > 0
    with tarfile.open(out / "device-check.tar.gz") as tar:
        inside = {Path(n).name for n in tar.getnames()}
    assert {"gemm.json", "epochs-mnist-sample.jsonl", "report.md", "summary.md"} <= inside
    # the cupy / cupy-tiled / pycuda grid points are there, recorded unavailable with the reason
    records = [json.loads(line) for line in _member(out, "epochs-mnist-sample.jsonl").splitlines()]
    reasons = {r["backend"]: r.get("reason", "") for r in records if r.get("kind") == "bench"}
    assert {"cupy-tiled", "cupy", "pycuda", "opencl", "numpy", "torch"} <= set(reasons)
    report = _member(out, "report.md")
    assert "## Claims" in report and "GPU device check" in report and "CPU dry run" in report


def _member(out: Path, name: str) -> str:
    with tarfile.open(out / "device-check.tar.gz") as tar:
        member = next(m for m in tar.getmembers() if Path(m.name).name == name)
        return tar.extractfile(member).read().decode()


def test_device_check_rejects_unknown_arguments():
    run = subprocess.run(["bash", "scripts/device-check.sh", "--bogus"], cwd=ROOT, capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 2 and "unknown argument" in run.stderr


def test_report_reads_the_device_check_json(tmp_path):
    """pgdbench report shows the check's tables and fills the CUDA claim from it; a dry run's never counts."""
    from pgdbench.cli import main
    from pgdbench.reporting.claims import claim_gpu_speedup
    from pgdbench.reporting.collection import load

    check = {"kind": "device-check", "dry_run": False, "summary_markdown": "# Device check\n\n| B | product |\n",
             "targets": {"speedup_vs_serial": {"speedup": 40.0, "best": "cupy-tiled net2h B=4096 on mnist: 40.0x"}}}
    path = tmp_path / "device-check.json"
    path.write_text(json.dumps(check))
    data = load([path])
    assert not data.empty() and len(data.device_checks) == 1
    assert claim_gpu_speedup(data.rows, data.device_checks) == ("device check: cupy-tiled net2h B=4096 on mnist: 40.0x",
                                                                 "yes")
    assert claim_gpu_speedup([], [{**check, "dry_run": True}]) == ("no GPU results", "not measured")
    assert main(["report", str(path), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## GPU device check" in text and "## Device check" in text and "40.0x" in text
