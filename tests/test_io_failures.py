"""Outputs that cannot be written give one line and exit status 2, before the work; appends never merge lines.

Before, a results path that was a folder, a read-only folder or file, or a full disk ended in a traceback
(exit 1); `train --save` into a read-only folder failed only after training, losing the parameters; and a
record appended after a torn fragment was glued onto it (both lost). Read-only cases need a user that file
modes apply to: as root the command runs as nobody (uid 65534) in a folder open to it.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pgdbench.harness.results import ResultsWriter, append_record, read_records, run_status

CLI = [sys.executable, "-m", "pgdbench.cli"]
TRAIN = ["train", "--layers", "784,16,10", "--epochs", "1", "--quiet"]
NOBODY = 65534


@pytest.fixture
def open_dir():
    """A folder every user may write in (the command may run as nobody), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="pgdbench-io-"))
    path.chmod(0o777)
    yield path
    for p in path.rglob("*"):  # read-only folders inside must be opened up before they can be removed
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    shutil.rmtree(path)


def _cli(args, cwd, unprivileged=False):
    env = {**os.environ, "PGDBENCH_CACHE": str(cwd / "cache"), "MPLCONFIGDIR": str(cwd / "mpl")}
    prefix = []
    if unprivileged and os.geteuid() == 0:  # root ignores file modes: be someone they apply to
        # setpriv, not subprocess's user=: it finds the interpreter with root's rights (it may lie in /root)
        # and runs it as nobody
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: file modes cannot be tested")
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        env["HOME"] = str(cwd)
    return subprocess.run(prefix + CLI + list(args), capture_output=True, text=True, timeout=180, cwd=cwd, env=env)


def _one_line_exit_2(proc, *expected):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and ": error: " in lines[0], lines
    for text in expected:
        assert text in lines[0], lines
    assert "epoch" not in proc.stdout, "the work started before the output was checked"


def test_results_path_that_is_a_folder(tmp_path):
    (tmp_path / "r.jsonl").mkdir()
    _one_line_exit_2(_cli(TRAIN + ["--results", "r.jsonl"], tmp_path), "r.jsonl", "folder")
    _one_line_exit_2(_cli(["bench", "--net", "784,16,10", "--batch-size", "32", "--threads", "1", "--dataset",
                           "mnist-sample", "--quiet", "--results", "r.jsonl"], tmp_path), "r.jsonl", "folder")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full to stand for a full disk")
def test_results_on_a_full_disk(tmp_path):
    (tmp_path / "r.jsonl").symlink_to("/dev/full")  # every write fails with ENOSPC
    _one_line_exit_2(_cli(TRAIN + ["--results", "r.jsonl"], tmp_path), "r.jsonl", "No space left on device")


def test_save_into_a_read_only_folder_fails_before_training(open_dir):
    ro = open_dir / "ro"
    ro.mkdir(mode=0o555)
    ro.chmod(0o555)
    _one_line_exit_2(_cli(TRAIN + ["--save", "ro/p.npz"], open_dir, unprivileged=True), "--save", "ro",
                     "Permission denied")


def test_save_under_a_file_fails_before_training(tmp_path):
    (tmp_path / "plain").write_text("x")
    _one_line_exit_2(_cli(TRAIN + ["--save", "plain/p.npz"], tmp_path), "--save", "not a folder")
    _one_line_exit_2(_cli(["dbn", "--dataset", "mnist-sample", "--hidden", "8", "--epochs", "1",
                           "--finetune-epochs", "0", "--save", "plain/p.npz"], tmp_path), "--save", "not a folder")


def test_read_only_results_file(open_dir):
    (open_dir / "r.jsonl").write_text("")
    (open_dir / "r.jsonl").chmod(0o444)
    _one_line_exit_2(_cli(TRAIN + ["--results", "r.jsonl"], open_dir, unprivileged=True), "r.jsonl",
                     "Permission denied")


def test_read_only_results_folder(open_dir):
    (open_dir / "ro").mkdir()
    (open_dir / "ro").chmod(0o555)
    _one_line_exit_2(_cli(["tune", "--grid", "0.5", "--layers", "784,16,10", "--epochs", "1", "--results",
                           "ro/sub/t.jsonl"], open_dir, unprivileged=True), "ro", "Permission denied")


def test_report_out_that_cannot_be_a_folder(tmp_path):
    results = tmp_path / "r.jsonl"
    with ResultsWriter(results, "bench", {}, {}) as w:
        w.write({"kind": "bench", "status": "ok", "backend": "numpy", "net": "net1h", "batch_size": 32, "threads": 1,
                 "dtype": "float32", "seconds_per_epoch": 1.0, "gflops": 1.0, "projected": False})
    (tmp_path / "out").write_text("a file where the report folder would go")
    _one_line_exit_2(_cli(["report", str(results), "--out", "out"], tmp_path), "--out", "not a folder")


def test_an_append_after_a_torn_fragment_starts_a_fresh_line(tmp_path):
    """A short write (a full disk) left half a record: the next one must not be glued onto it."""
    path = tmp_path / "r.jsonl"
    append_record(path, {"kind": "run_start", "run_id": "a", "command": "bench"})
    with open(path, "ab") as f:
        f.write(b'{"kind": "bench", "run_id": "a", "seconds_per')       # the fragment, no newline
    with ResultsWriter(path, "bench", {}, {}) as writer:
        writer.write({"kind": "bench", "n": 1})
    records, warnings = read_records(path)
    assert len(warnings) == 1 and ":2:" in warnings[0]                    # the fragment alone is skipped
    assert [r["kind"] for r in records] == ["run_start", "run_start", "bench", "run_end"]
    assert run_status(records)[writer.run_id] == "complete"
    assert all(json.loads(line) for line in path.read_text().splitlines()[2:])


def test_an_append_to_a_missing_folder_inside_a_file_is_one_error(tmp_path):
    from pgdbench.errors import OutputError

    (tmp_path / "f").write_text("")
    with pytest.raises(OutputError, match="cannot append results"):
        append_record(tmp_path / "f" / "r.jsonl", {"kind": "x"})


def test_saved_files_get_an_ordinary_mode(tmp_path):
    """Atomic writes go through mkstemp (mode 0600): the file must end with the mode a plain new file gets."""
    from pgdbench.core.files import atomic_write_text

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "report.md", "# r\n")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == 0o644
