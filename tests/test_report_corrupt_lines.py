"""`pgdbench report` skips lines and records it cannot use, counts them, and prints every warning.

Before, valid JSON that is not an object (42, null, [1, 2]), a byte that is not UTF-8, or a record missing a
field the report reads stopped it with a traceback, and "2 warnings" were announced without being shown.
"""
from __future__ import annotations

import json
import subprocess
import sys

CLI = [sys.executable, "-m", "pgdbench.cli"]

GOOD = [
    {"kind": "run_start", "run_id": "r1", "command": "bench", "machine": {"cpu_model": "test CPU", "cpus_usable": 2}},
    {"kind": "bench", "run_id": "r1", "status": "ok", "backend": "numpy", "net": "net1h", "batch_size": 32,
     "threads": 1, "dtype": "float32", "seconds_per_epoch": 2.0, "gflops": 5.0, "projected": False,
     "test_accuracy": 0.9, "val_accuracy": 0.9, "epoch_seconds": [2.0]},
    {"kind": "run_end", "run_id": "r1", "status": "complete"},
]
CORRUPT = [
    b"42", b"null", b"[1, 2]", b'"text"', b'\xff\xfe{"kind": "bench"}',
    json.dumps({"kind": "bench", "run_id": "r1", "status": "ok"}).encode(),                    # fields missing
    json.dumps({"kind": "bench", "run_id": "r1", "status": "ok", "backend": "numpy", "net": "net2h",
                "batch_size": 32, "threads": 1, "seconds_per_epoch": "fast", "gflops": 1.0}).encode(),
    json.dumps({"kind": "run_start"}).encode(),                                                # no run id
    json.dumps({"kind": "dbn", "run_id": "r1"}).encode(),
    json.dumps({"kind": "tta", "run_id": "r1", "curve": []}).encode(),
    json.dumps({"kind": "bench", "run_id": "r1", "status": "ok", "ranks": 2}).encode(),
]


def _write(path, lines):
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _report(tmp_path, results):
    return subprocess.run(CLI + ["report", str(results), "--out", str(tmp_path / "out")], capture_output=True,
                          timeout=180, cwd=tmp_path)


def test_corrupt_lines_and_records_are_skipped_counted_and_shown(tmp_path):
    good = [json.dumps(r).encode() for r in GOOD]
    results = _write(tmp_path / "r.jsonl", good[:2] + CORRUPT + good[2:])
    proc = _report(tmp_path, results)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0 and "Traceback" not in err, err
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert f"{len(warnings)} warnings:" in out, out
    for line in (3, 4, 5, 6):
        assert any(f"r.jsonl:{line}: " in w and "not a record" in w for w in warnings), warnings
    assert any("r.jsonl:7: not UTF-8" in w for w in warnings), warnings
    assert any("2 bench records skipped (no backend, net" in w for w in warnings), warnings  # counted per problem
    assert any("1 bench record skipped (seconds_per_epoch of the wrong type)" in w for w in warnings), warnings
    assert any("run_start record skipped (no run_id)" in w for w in warnings), warnings
    assert any("dbn record skipped" in w for w in warnings) and any("tta record skipped" in w for w in warnings)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "numpy" in report


def test_nothing_usable_shows_the_warnings_then_one_error(tmp_path):
    proc = _report(tmp_path, _write(tmp_path / "r.jsonl", [b"42", b"null"]))
    err = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr.decode(), err
    assert err[0] == "2 warnings:" and err[1].startswith("warning: ") and err[2].startswith("warning: "), err
    assert err[-1].startswith("pgdbench report: error: no usable results") and len(err) == 4, err
