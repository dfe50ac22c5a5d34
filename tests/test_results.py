"""Results files survive interruption: whole records or nothing, and runs marked complete or not."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from pgdbench.results import (
    ResultsWriter,
    append_record,
    atomic_write_bytes,
    read_records,
    run_status,
)


def test_append_and_read(tmp_path):
    path = tmp_path / "r.jsonl"
    append_record(path, {"a": 1, "x": float("nan")})
    append_record(path, {"a": 2})
    records, warnings = read_records(path)
    assert records == [{"a": 1, "x": None}, {"a": 2}] and warnings == []


def test_torn_last_line_is_skipped_and_reported(tmp_path):
    path = tmp_path / "r.jsonl"
    append_record(path, {"a": 1})
    with open(path, "ab") as f:
        f.write(b'{"a": 2, "trunc')
    records, warnings = read_records(path)
    assert records == [{"a": 1}] and "torn" in warnings[0]


def test_run_status(tmp_path):
    path = tmp_path / "r.jsonl"
    done = ResultsWriter(path, "bench", {}, {})
    done.write({"kind": "bench"})
    done.close()
    killed = ResultsWriter(path, "bench", {}, {})
    killed.write({"kind": "bench"})
    status = run_status(read_records(path)[0])
    assert status == {done.run_id: "complete", killed.run_id: "incomplete"}


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    class Boom(bytes):
        pass

    try:
        atomic_write_bytes(path, None)  # TypeError while writing
    except TypeError:
        pass
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_bench_interrupted_keeps_earlier_records(tmp_path):
    """SIGINT in the middle of a grid: finished records stay, the run is marked interrupted."""
    path = tmp_path / "b.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "pgdbench.cli", "bench", "--dataset", "synthetic:3000",
                             "--net", "net1h", "--batch-size", "8,16,32,64,128,256", "--threads", "1",
                             "--epochs", "2", "--results", str(path), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if path.exists() and sum(1 for l in path.read_text().splitlines() if '"kind": "bench"' in l) >= 1:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    records, warnings = read_records(path)
    assert warnings == []
    bench = [r for r in records if r.get("kind") == "bench"]
    assert 1 <= len(bench) < 6 and all(r["status"] == "ok" for r in bench)
    assert run_status(records) == {records[0]["run_id"]: "interrupted"}


def test_bench_killed_leaves_whole_records(tmp_path):
    """SIGKILL gives no chance to clean up: every line is still whole, the run reads as incomplete."""
    path = tmp_path / "b.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "pgdbench.cli", "bench", "--dataset", "synthetic:3000",
                             "--net", "net1h", "--batch-size", "8,16,32,64,128,256", "--threads", "1",
                             "--epochs", "2", "--results", str(path), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (path.exists() and '"kind": "bench"' in path.read_text()):
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    records, warnings = read_records(path)
    assert warnings == [] and records[0]["kind"] == "run_start"
    assert run_status(records) == {records[0]["run_id"]: "incomplete"}
    assert all(json.dumps(r) for r in records)
