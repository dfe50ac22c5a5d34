"""A newcomer's first hour (issue 13): what the README and the natural next commands show them.

Each test names what a new user met: a garbled progress bar, help without defaults, an accuracy that looked
like a failure, "1 configurations", a cut URL, a report unreadable to others, raw headings, projected data drawn
solid, a claims table without a word on how little it rests on, a data folder one level too high.
"""
from __future__ import annotations

import os
import re
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "pgdbench.cli"]
ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, cwd=None, ok=True, env=None):
    proc = subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=180, cwd=cwd, env=env)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def _on_a_terminal(args, timeout=120.0) -> str:
    """Everything the command writes to a terminal (stdout and stderr on one pseudo-terminal), as one string."""
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    proc = subprocess.Popen(CLI + list(args), stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the command has gone and the terminal is closed
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


def test_the_progress_bar_is_gone_before_an_epoch_line_is_printed():
    """On a terminal, the bar (stderr) used to be still shown when the epoch line (stdout) came: they shared a line,
    `numpy epoch 1:  78%|███…| 6.21k/8.00k [00:00<00:00, 12.4kex/s]epoch   1  val loss …`."""
    out = _on_a_terminal(["train", "--layers", "784,256,10", "--epochs", "2", "--batch-size", "16"])
    assert "ex/s" in out, "no progress bar was drawn: the test proves nothing"
    ansi = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
    epoch_lines = 0
    for line in ansi.sub("", out).replace("\r\n", "\n").split("\n"):
        if "epoch   " in line and "val loss" in line:
            epoch_lines += 1
            shown = line.split("\r")[-1]  # what the terminal shows once the carriage returns have done their work
            assert shown.startswith("epoch "), repr(line)
    assert epoch_lines == 2


def test_help_shows_every_default_and_no_internal_text():
    top = _cli("--help").stdout
    assert "pgdbench/cli/commands" not in top and "pgdbench/commands" not in top
    train = " ".join(_cli("train", "--help").stdout.split())
    for option, default in (("--epochs", "5"), ("--batch-size", "32"), ("--threads", "1"), ("--net", "net1h"),
                            ("--dtype", "float32")):
        assert re.search(rf"{option} \S+ .*?\(default {default}\)", train), (option, train)
    bench = " ".join(_cli("bench", "--help").stdout.split())
    assert "(default 1)" in bench and "(default results/bench.jsonl)" in bench


def test_train_checks_threads_and_options_before_loading_data():
    """No MNIST files here (offline): the mistake in the arguments must be what is reported, before the data."""
    for args, expected in ((["--threads", "100000"], "threads"), (["-o", "nosuch=1"], "no option nosuch")):
        proc = _cli("train", "--dataset", "mnist", *args, ok=False)
        assert proc.returncode == 2 and expected in proc.stderr and "not found" not in proc.stderr, proc.stderr
        assert proc.stdout == ""  # no banner before the check either


def test_max_examples_says_why_the_accuracy_is_low():
    out = _cli("train", "--layers", "784,16,10", "--epochs", "1", "--max-examples", "200", "--quiet").stdout
    assert "each epoch trained on 200 of the 4,000 training examples" in out, out


def test_counts_agree_with_their_nouns(tmp_path):
    out = _cli("bench", "--net", "784,16,10", "--batch-size", "32", "--threads", "1", "--backend", "python",
               "--dataset", "synthetic:200", "--max-examples", "32", "--quiet", "--results",
               str(tmp_path / "b.jsonl")).stdout
    assert out.startswith("1 configuration on "), out


def test_a_download_error_shows_the_whole_url(tmp_path, monkeypatch):
    from pgdbench.data.sources import locate
    from pgdbench.errors import DataError

    base = "http://127.0.0.1:9/" + "a-long-mirror-path/" * 8  # port 9 (discard): refused at once
    monkeypatch.delenv("PGDBENCH_OFFLINE")
    monkeypatch.setenv("PGDBENCH_MIRROR_MNIST", base)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as caught:
        locate("t10k-labels-idx1-ubyte.gz", "mnist", tmp_path / "empty")
    assert base + "t10k-labels-idx1-ubyte.gz" in str(caught.value)


def _bench_then_report(tmp_path, *bench_args):
    results = tmp_path / "r.jsonl"
    _cli("bench", "--backend", "numpy", "--net", "784,32,10", "--batch-size", "32,64", "--threads", "1",
         "--dataset", "mnist-sample", "--quiet", "--results", str(results), *bench_args)
    mask = os.umask(0o022)  # the report's files must get what the umask gives an ordinary file
    try:
        _cli("report", str(results), "--out", str(tmp_path / "report"))
    finally:
        os.umask(mask)
    return tmp_path / "report"


def test_report_readable_headings_modes_and_a_word_on_the_evidence(tmp_path):
    report = _bench_then_report(tmp_path, "--max-examples", "512")
    md = (report / "report.md").read_text()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in report.iterdir()}
    assert modes["report.md"] == 0o644 and set(modes.values()) == {0o644}, modes  # report.md was 0600
    headings = re.findall(r"^### (.*)$", md, flags=re.M)
    assert headings and not any(re.match(r"(tpe|gflops|speedup|peak) \S+$", h) for h in headings), headings
    assert "### Time per epoch, 784,32,10" in md
    assert "**Strength of the evidence.**" in md and "2 batch sizes (32, 64)" in md
    assert "projected from as few as 512 examples" in md and "indications, not findings" in md


def test_thread_scaling_draws_projected_data_dashed(tmp_path, monkeypatch):
    from pgdbench.reporting import plots

    drawn = {}

    def keep(fig, caption, path, bottom=0.05):
        drawn["fig"] = fig
        return path

    monkeypatch.setattr(plots, "_finish", keep)
    rows = [{"backend": "numpy", "net": "net1h", "batch_size": 512, "threads": t, "options": {}, "projected": p,
             "seconds_per_epoch": 2.0 / t} for t in (1, 2) for p in (True,)]
    rows += [{**r, "backend": "threads", "projected": False} for r in rows]
    plots.thread_scaling(rows, "t", "c", tmp_path / "threads.png")
    styles = {line.get_label(): line.get_linestyle() for ax in drawn["fig"].axes for line in ax.get_lines()}
    assert styles["numpy net1h B=512 (projected)"] == "--" and styles["threads net1h B=512"] == "-", styles


def test_gitignore_keeps_the_default_outputs_out_of_git():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "report/" in ignored and "results/" in ignored


def test_pgdbench_data_may_be_the_folder_above_mnist(tmp_path, monkeypatch):
    """PGDBENCH_DATA pointing at the folder that holds mnist/ (as ../shared/data does) used to find nothing."""
    from pgdbench.data import load_dataset
    from tests.test_data import write_mnist

    write_mnist(tmp_path / "data" / "mnist")
    monkeypatch.setenv("PGDBENCH_DATA", str(tmp_path / "data"))
    assert len(load_dataset("mnist").X_train) == 50000


def test_install_hints_name_the_extra_one_way(monkeypatch):
    import importlib.util

    from pgdbench.core import protocol

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("numba", "torch", "mpi4py")
                        else real(name, *a))
    for package, extra in (("numba", "numba"), ("torch", "torch"), ("mpi4py", "mpi")):
        assert protocol.module_missing(package).reason == \
            f"package {package!r} is not installed (pip install -e '.[{extra}]')"
