"""Results files survive interruption: whole records or nothing, and runs marked complete or not."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pgdbench.core.files import atomic_write_bytes
from pgdbench.harness.results import NullWriter, ResultsWriter, append_record, optional_writer, read_records, run_status


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


def _run(path):
    records, warnings = read_records(path)
    assert warnings == []  # every line whole
    return records


def test_with_block_ends_complete(tmp_path):
    path = tmp_path / "r.jsonl"
    with ResultsWriter(path, "bench", {}, {}) as writer:
        writer.write({"kind": "bench", "x": 1})
    records = _run(path)
    assert [r["kind"] for r in records] == ["run_start", "bench", "run_end"]
    assert records[-1] == {"kind": "run_end", "run_id": writer.run_id, "status": "complete", "records": 1}
    assert run_status(records) == {writer.run_id: "complete"}


def test_with_block_interrupted_reraises_and_ends_interrupted(tmp_path):
    path = tmp_path / "r.jsonl"
    with pytest.raises(KeyboardInterrupt):
        with ResultsWriter(path, "bench", {}, {}) as writer:
            writer.write({"kind": "bench"})
            raise KeyboardInterrupt
    records = _run(path)
    assert records[-1] == {"kind": "run_end", "run_id": writer.run_id, "status": "interrupted", "records": 1}


def test_with_block_failed_reraises_and_records_the_error(tmp_path):
    path = tmp_path / "r.jsonl"
    with pytest.raises(ZeroDivisionError, match="no grid points"):
        with ResultsWriter(path, "bench", {}, {}) as writer:
            writer.write({"kind": "bench"})
            raise ZeroDivisionError("no grid points")
    end = _run(path)[-1]
    assert end["status"] == "failed" and end["records"] == 1
    assert end["error"] == {"type": "ZeroDivisionError", "message": "no grid points"}
    assert run_status(_run(path)) == {writer.run_id: "failed"}


def test_sigterm_inside_the_block_is_an_interrupt_and_the_handler_is_restored(tmp_path):
    path = tmp_path / "r.jsonl"
    received = []

    def sentinel(signum, frame):  # stands in for whatever handled SIGTERM before the block
        received.append(signum)

    original = signal.signal(signal.SIGTERM, sentinel)
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            with ResultsWriter(path, "bench", {}, {}):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(2)  # the handler raises long before this ends
        assert received == [] and _run(path)[-1]["status"] == "interrupted"
        assert signal.getsignal(signal.SIGTERM) is sentinel
    finally:
        signal.signal(signal.SIGTERM, original)


def test_a_record_that_cannot_be_written_leaves_no_partial_line(tmp_path):
    path = tmp_path / "r.jsonl"
    with pytest.raises(TypeError, match="keys must be"):  # json refuses it before a byte is written
        with ResultsWriter(path, "bench", {}, {}) as writer:
            writer.write({"kind": "bench", "n": 1})
            writer.write({"kind": "bench", "per_point": {(64, 1): 0.5}})
    records = _run(path)
    assert [r["kind"] for r in records] == ["run_start", "bench", "run_end"]
    assert records[-1]["status"] == "failed" and records[-1]["records"] == 1
    assert records[-1]["error"]["type"] == "TypeError"
    assert path.read_bytes().endswith(b"}\n")


def test_run_end_is_written_once_and_closes_the_run(tmp_path):
    path = tmp_path / "r.jsonl"
    with ResultsWriter(path, "bench", {}, {}) as writer:
        writer.close("interrupted")
    assert [r["kind"] for r in _run(path)] == ["run_start", "run_end"]
    assert _run(path)[-1]["status"] == "interrupted"
    with pytest.raises(ValueError, match="already ended"):
        writer.write({"kind": "bench"})


def test_a_failing_run_end_does_not_hide_the_blocks_exception(tmp_path):
    path = tmp_path / "r.jsonl"
    with pytest.raises(KeyboardInterrupt):
        with ResultsWriter(path, "bench", {}, {}):
            path.unlink()
            path.mkdir()  # appending the run_end now fails with IsADirectoryError
            raise KeyboardInterrupt


def test_optional_writer_without_a_path_writes_nothing(tmp_path):
    with optional_writer(None, "train", {}) as writer:
        writer.write({"kind": "epoch"})
    assert isinstance(writer, NullWriter) and list(tmp_path.iterdir()) == []
    with pytest.raises(KeyboardInterrupt):  # and lets exceptions through too
        with optional_writer("", "train", {}):
            raise KeyboardInterrupt
    path = tmp_path / "r.jsonl"
    with optional_writer(path, "train", {"epochs": 1}) as writer:
        writer.write({"kind": "epoch"})
    records = _run(path)
    assert records[0]["config"] == {"epochs": 1} and records[0]["machine"]["cpu_model"]
    assert records[-1]["status"] == "complete"


def test_optional_writer_on_an_mpi_rank_other_than_0_writes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    monkeypatch.setenv("PMI_RANK", "1")
    with optional_writer(path, "train", {}) as writer:
        writer.write({"kind": "epoch"})
    assert isinstance(writer, NullWriter) and not path.exists()
    monkeypatch.setenv("PMI_RANK", "0")
    with optional_writer(path, "train", {}) as writer:
        writer.write({"kind": "epoch"})
    assert [r["kind"] for r in _run(path)] == ["run_start", "epoch", "run_end"]
