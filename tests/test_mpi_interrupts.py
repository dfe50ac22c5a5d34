"""An interrupted MPI rank, or an interrupted command that started an MPI job, ends the whole job within seconds.

Before, SIGINT or SIGTERM to one rank of ``mpiexec -n 2 pgdbench train --backend
mpi`` made that rank print "interrupted" and exit, while the other spun in
Allreduce for ever; and a signal to ``bench --ranks`` or ``dbn --scaling`` killed
their mpiexec with SIGKILL instead of handing the signal on. Each test here has a
deadline, so a regression fails rather than hangs, and kills whatever it started.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from pgdbench.core.protocol import module_missing
from pgdbench.harness.results import read_records, run_status
from tests.mpi_jobs import mpiexec_or_skip

pytestmark = pytest.mark.skipif(module_missing("mpi4py") is not None or module_missing("psutil") is not None,
                                reason="needs mpi4py (pip install -e '.[mpi]') and psutil")

CLI = [sys.executable, "-m", "pgdbench.cli"]
DEADLINE = 30  # seconds from the signal to the end of the job; it takes well under one here
LONG_TRAIN = ["--layers", "784,32,10", "--dataset", "mnist-sample", "--epochs", "100000", "--batch-size", "10",
              "--quiet"]


def _ranks(root_pid: int, wanted: int, timeout: float = 60.0) -> dict:
    """rank → psutil.Process among the descendants of ``root_pid``, once ``wanted`` ranks are up."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {}
        try:
            children = psutil.Process(root_pid).children(recursive=True)
        except psutil.Error:
            break
        for p in children:
            try:
                rank = p.environ().get("PMI_RANK", p.environ().get("OMPI_COMM_WORLD_RANK"))
            except psutil.Error:
                continue
            if rank is not None and p.name().startswith("python"):
                found[int(rank)] = p
        if len(found) >= wanted:
            return found
        time.sleep(0.2)
    pytest.fail(f"{wanted} ranks did not start under pid {root_pid} within {timeout:g} s")


def _start(cmd, cwd):
    # a session of its own: whatever the test leaves behind is killed as a group in _finish
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            start_new_session=True)


def _wait_for_line(job, text: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline and job.poll() is None:
        line = job.stdout.readline()
        seen += line
        if text in line:
            return
    pytest.fail(f"no {text!r} in the job's output within {timeout:g} s: {seen!r}")


def _finish(job, processes=()) -> tuple[float, str]:
    """Wait for ``job`` (at most DEADLINE seconds); returns (seconds waited, stderr). Kills everything on a hang."""
    start = time.monotonic()
    try:
        _, err = job.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        _kill(job, processes)
        job.communicate()
        pytest.fail(f"the job did not end within {DEADLINE} s of the signal")
    return time.monotonic() - start, err


def _kill(job, processes) -> None:
    for p in processes:
        try:
            p.kill()
        except Exception:
            pass
    try:
        os.killpg(job.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _gone(processes, timeout: float = 10.0) -> list:
    """The processes still running after ``timeout`` seconds (killed then, so that none is left behind)."""
    import psutil

    alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    _, alive = psutil.wait_procs(alive, timeout=timeout)
    for p in alive:
        p.kill()
    return alive


@pytest.mark.parametrize("sig, rank", [(signal.SIGINT, 1), (signal.SIGTERM, 0)], ids=["SIGINT-rank1", "SIGTERM-rank0"])
def test_signal_to_one_rank_ends_the_train_job(tmp_path, sig, rank):
    """Rank 1 interrupted: it aborts the job (rank 0 was waiting for it in Allreduce); rank 0 terminated: it marks
    the results interrupted and aborts. Either way one line names the rank, and the results say interrupted."""
    results = tmp_path / "r.jsonl"
    job = _start([mpiexec_or_skip(), "-n", "2", *CLI, "train", "--backend", "mpi", *LONG_TRAIN,
                  "--results", str(results)], tmp_path)
    ranks = {}
    try:
        _wait_for_line(job, "epoch   1")
        ranks = _ranks(job.pid, 2)
        ranks[rank].send_signal(sig)
        waited, err = _finish(job, ranks.values())
    finally:
        _kill(job, ranks.values()) if job.poll() is None else None
    assert waited < DEADLINE
    assert job.returncode != 0
    assert err.count(f"rank {rank} of 2 interrupted") == 1, err
    assert "Traceback" not in err, err
    assert not _gone(ranks.values())
    records, warnings = read_records(results)
    assert warnings == [] and list(run_status(records).values()) == ["interrupted"], records[-2:]


def test_signal_to_one_rank_ends_the_dbn_job(tmp_path):
    """The DBN's ranks meet in Reduce/Bcast every epoch: an interrupted rank 1 must not leave rank 0 there."""
    job = _start([mpiexec_or_skip(), "-n", "2", *CLI, "dbn", "--dataset", "mnist-sample", "--hidden", "32",
                  "--epochs", "100000", "--finetune-epochs", "0", "--results", str(tmp_path / "d.jsonl")], tmp_path)
    ranks = {}
    try:
        _wait_for_line(job, "layer 1 epoch   1")
        ranks = _ranks(job.pid, 2)
        ranks[1].send_signal(signal.SIGINT)
        waited, err = _finish(job, ranks.values())
    finally:
        _kill(job, ranks.values()) if job.poll() is None else None
    assert waited < DEADLINE and job.returncode != 0
    assert err.count("rank 1 of 2 interrupted") == 1, err
    assert not _gone(ranks.values())
    records, _ = read_records(tmp_path / "d.jsonl")
    assert list(run_status(records).values()) == ["interrupted"]


@pytest.mark.parametrize("command", [
    ["bench", "--ranks", "2", "--net", "784,32,10", "--batch-size", "10", "--dataset", "mnist-sample",
     "--epochs", "100000"],
    ["dbn", "--scaling", "2", "--hidden", "32", "--dataset", "mnist-sample", "--epochs", "100000",
     "--finetune-epochs", "0"],
], ids=["bench-ranks", "dbn-scaling"])
def test_signal_to_a_command_reaches_its_mpi_job(tmp_path, command):
    """SIGTERM to `bench --ranks` or `dbn --scaling` goes on to the ranks of its mpiexec job at once: they end
    (interrupted, not killed), the command ends, and its results say interrupted."""
    mpiexec_or_skip()
    results = tmp_path / "r.jsonl"
    job = _start(CLI + command + ["--results", str(results)], tmp_path)
    ranks = {}
    try:
        ranks = _ranks(job.pid, 2)
        time.sleep(3)  # into the training loop (a signal during start-up is handled the same way, but less often)
        job.send_signal(signal.SIGTERM)
        waited, err = _finish(job, ranks.values())
    finally:
        _kill(job, ranks.values()) if job.poll() is None else None
    assert waited < DEADLINE
    assert job.returncode == 130, err
    assert not _gone(ranks.values(), timeout=5), "ranks of the MPI job outlived the command"
    assert "interrupted" in err.splitlines()[-1], err
    records, warnings = read_records(results)
    assert warnings == [] and list(run_status(records).values()) == ["interrupted"], records
    # the job's fate is recorded too, and its ranks were interrupted themselves (not killed with their mpiexec)
    job_records = [r for r in records if r.get("status") == "interrupted" and r.get("kind") != "run_end"]
    assert [r["ranks"] for r in job_records] == [2], records
    assert "of 2 interrupted; aborting the MPI job" in job_records[0]["reason"], job_records
