"""Results files: JSON lines, appended one whole record at a time.

Each record is written with a single ``os.write`` on a file opened with
O_APPEND and then fsync'ed, so a run killed at any moment leaves every earlier
record intact and at worst no trace of the record in flight. Every record of
one invocation carries the same ``run_id``; the invocation's last record is
``{"kind": "run_end"}``, so a reader can tell a complete run from an
interrupted one. Readers skip (and report) a torn last line.

A command opens its results file as ``with ResultsWriter(...) as writer:``;
leaving the block writes the ``run_end``, whose status says how the block
ended: ``complete``, ``interrupted`` (Ctrl-C, or SIGTERM, which the block
turns into a KeyboardInterrupt) or ``failed`` (any other exception, whose type
and message are recorded). The exception itself always goes on to the caller.
Where there may be no file to write (no ``--results``), :func:`optional_writer`
gives a :class:`NullWriter` that drops the records. Under mpiexec only rank 0
writes: :func:`results_writer` gives the other ranks a :class:`RankWriter`,
which drops the records but knows rank 0's run, so that a rank that fails or
is interrupted, and so aborts the job (killing rank 0 before it can write
anything), ends rank 0's run in the file with the reason.
"""
from __future__ import annotations

import json
import math
import os
import signal
import stat
import threading
import uuid
from pathlib import Path
from typing import Iterable

from pgdbench.core import mpi
from pgdbench.errors import BackendUnavailable, OutputError
from pgdbench.harness.machine import machine_info


def _clean(value):
    """JSON has no NaN: store non-finite floats as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    return value


def append_record(path, record: dict) -> None:
    """Append ``record`` as one JSON line, on a line of its own; an OutputError (one line) if it cannot be."""
    line = (json.dumps(_clean(record), sort_keys=True, default=str) + "\n").encode()
    path = Path(path)
    try:
        if path.parent != Path(""):
            path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(f"{path}: cannot append results ({exc.strerror or exc})") from None
    try:
        size = os.fstat(fd).st_size
        # a torn last line (a short write on a full disk, a killed writer) must not swallow this record
        if size and stat.S_ISREG(os.fstat(fd).st_mode) and _last_byte(path, size) != b"\n":
            line = b"\n" + line
        written = os.write(fd, line)
        if written != len(line):  # a full disk can take part of a line: the reader skips the fragment
            raise OutputError(f"{path}: cannot append results (disk full? {written} of {len(line)} bytes written)")
        os.fsync(fd)
    except OSError as exc:
        raise OutputError(f"{path}: cannot append results ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _last_byte(path: Path, size: int) -> bytes:
    try:
        with open(path, "rb") as f:  # the append descriptor is write-only
            f.seek(size - 1)
            return f.read(1)
    except OSError:  # a file this process may append to but not read: nothing to go on
        return b"\n"


def read_records(path) -> tuple[list[dict], list[str]]:
    """Records (JSON objects) of a results file, and warnings for lines that could not be read: torn or corrupt
    lines, bytes that are not UTF-8, valid JSON that is not an object (``42``, ``null``, ``[1, 2]``)."""
    records, warnings = [], []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                warnings.append(f"{path}:{number}: not UTF-8 text, line skipped")
                continue
            except ValueError:
                warnings.append(f"{path}:{number}: torn or corrupt line skipped")
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                what = {type(None): "null", bool: "true or false", list: "an array", str: "a string"}.get(
                    type(record), "a number")
                warnings.append(f"{path}:{number}: {what}, not a record (a JSON object): line skipped")
    return records, warnings


class ResultsWriter:
    """Appends the records of one invocation under a shared run id; use it as a context manager.

    ``run_start`` is written when the writer is made, ``run_end`` when the
    ``with`` block ends (or by :meth:`close`, once). Inside the block SIGTERM
    raises KeyboardInterrupt, as Ctrl-C does, so a terminated run still gets
    its ``run_end``, marked interrupted (SIGKILL cannot be caught: such a run
    has no ``run_end`` and reads as incomplete).
    """

    def __init__(self, path, command: str, machine: dict, config: dict):
        self.path = Path(path)
        self.run_id = uuid.uuid4().hex[:12]
        self.count = 0
        self.closed = False
        self._sigterm = None  # (previous handler,) while this writer's SIGTERM handler is installed
        # the load says what else ran (not part of the machine: it differs from run to run)
        load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
        append_record(self.path, {"kind": "run_start", "run_id": self.run_id, "command": command,
                                  "machine": machine, "config": config, "load_average": load})

    def write(self, record: dict) -> None:
        if self.closed:
            raise ValueError(f"run {self.run_id} in {self.path} has already ended")
        append_record(self.path, {"run_id": self.run_id, **record})
        self.count += 1

    def close(self, status: str = "complete", error: BaseException | None = None) -> None:
        """Write the ``run_end`` record, with the type and message of ``error`` if given (once: a second
        call does nothing)."""
        if self.closed:
            return
        record = {"kind": "run_end", "run_id": self.run_id, "status": status, "records": self.count}
        if error is not None:
            record["error"] = {"type": type(error).__name__, "message": str(error)}
        append_record(self.path, record)
        self.closed = True

    def __enter__(self) -> "ResultsWriter":
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._sigterm = (signal.signal(signal.SIGTERM, _sigterm_as_interrupt),)
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        try:
            if exc is None:
                self.close("complete")
            else:
                interrupted = isinstance(exc, KeyboardInterrupt)
                try:
                    self.close("interrupted" if interrupted else "failed", None if interrupted else exc)
                except Exception as close_error:  # the block's exception is the one to report (the run
                    if hasattr(exc, "add_note"):  # then reads as incomplete); Python 3.11+ shows the note
                        exc.add_note(f"(its run_end could not be written to {self.path}: {close_error!r})")
        finally:
            if self._sigterm is not None:
                previous = self._sigterm[0]  # None: installed outside Python, the default is the best guess
                signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
                self._sigterm = None
        return False  # never swallow the exception


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


class NullWriter:
    """Stands in for a ResultsWriter where nothing is to be written: takes records and drops them."""

    run_id = None
    count = 0

    def write(self, record: dict) -> None:
        pass

    def close(self, status: str = "complete", error: BaseException | None = None) -> None:
        pass

    def __enter__(self) -> "NullWriter":
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        return False


class RankWriter(NullWriter):
    """A rank other than 0 of an MPI job: drops the records (rank 0 writes them), but if the block ends with an
    exception, which makes this rank abort the job, it writes the ``run_end`` of rank 0's run (``run_id``)."""

    def __init__(self, path, run_id):
        self.path, self.run_id = Path(path), run_id

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is not None and self.run_id:
            interrupted = isinstance(exc, KeyboardInterrupt)
            record = {"kind": "run_end", "run_id": self.run_id, "status": "interrupted" if interrupted else "failed",
                      "rank": mpi.launched_rank()}
            if not interrupted:
                record["error"] = {"type": type(exc).__name__, "message": str(exc)}
            try:
                append_record(self.path, record)
            except Exception:  # the exception that ends the block is the one to report
                pass
        return False


def results_writer(path, command: str, config: dict, machine: dict | None = None) -> ResultsWriter | NullWriter:
    """A ResultsWriter on ``path`` (describing this machine unless ``machine`` is given) in a plain process and on
    rank 0 of an MPI job; a RankWriter on the other ranks. Under mpiexec every rank must call it (rank 0 tells
    the others its run id)."""
    if mpi.launched_size() <= 1:
        if not mpi.is_root():  # PMI_RANK set without a job size: nobody to tell, nothing to write
            return NullWriter()
        return ResultsWriter(path, command, machine_info() if machine is None else machine, config)
    writer = ResultsWriter(path, command, machine_info() if machine is None else machine, config) \
        if mpi.is_root() else None
    try:
        run_id = mpi.from_root(writer.run_id if writer else None)
    except BackendUnavailable:  # no mpi4py: ranks cannot talk, and rank 0 writes alone
        run_id = None
    return writer if writer is not None else RankWriter(path, run_id)


def optional_writer(path, command: str, config: dict) -> ResultsWriter | NullWriter:
    """:func:`results_writer`, or a NullWriter when ``path`` is None or empty."""

    if not path:
        return NullWriter()
    return results_writer(path, command, config)


def run_status(records: Iterable[dict]) -> dict[str, str]:
    """run_id → 'complete', 'interrupted', 'failed' or 'incomplete' (no run_end: killed)."""
    status = {}
    for r in records:
        if not isinstance(r.get("run_id"), str):
            continue
        if r.get("kind") == "run_start":
            status.setdefault(r["run_id"], "incomplete")
        elif r.get("kind") == "run_end":
            status[r["run_id"]] = r.get("status", "complete")
    return status
