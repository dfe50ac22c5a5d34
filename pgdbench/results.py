"""Results files: JSON lines, appended one whole record at a time.

Each record is written with a single ``os.write`` on a file opened with
O_APPEND and then fsync'ed, so a run killed at any moment leaves every earlier
record intact and at worst no trace of the record in flight. Every record of
one invocation carries the same ``run_id``; the invocation's last record is
``{"kind": "run_end"}``, so a reader can tell a complete run from an
interrupted one. Readers skip (and report) a torn last line.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import uuid
from pathlib import Path
from typing import Iterable


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
    line = (json.dumps(_clean(record), sort_keys=True, default=str) + "\n").encode()
    path = Path(path)
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
        if written != len(line):  # never seen for one line on a local disk, but never silent either
            raise OSError(f"short write to {path}: {written} of {len(line)} bytes")
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path) -> tuple[list[dict], list[str]]:
    """Records of a results file, and warnings for lines that could not be read."""
    records, warnings = [], []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                records.append(json.loads(raw))
            except json.JSONDecodeError:
                warnings.append(f"{path}:{number}: torn or corrupt line skipped")
    return records, warnings


class ResultsWriter:
    """Appends the records of one invocation under a shared run id."""

    def __init__(self, path, command: str, machine: dict, config: dict):
        self.path = Path(path)
        self.run_id = uuid.uuid4().hex[:12]
        self.count = 0
        append_record(self.path, {"kind": "run_start", "run_id": self.run_id, "command": command,
                                  "machine": machine, "config": config})

    def write(self, record: dict) -> None:
        append_record(self.path, {"run_id": self.run_id, **record})
        self.count += 1

    def close(self, status: str = "complete") -> None:
        append_record(self.path, {"kind": "run_end", "run_id": self.run_id, "status": status,
                                  "records": self.count})


def run_status(records: Iterable[dict]) -> dict[str, str]:
    """run_id → 'complete', 'interrupted', 'failed' or 'incomplete' (no run_end: killed)."""
    status = {}
    for r in records:
        if r.get("kind") == "run_start":
            status.setdefault(r["run_id"], "incomplete")
        elif r.get("kind") == "run_end":
            status[r["run_id"]] = r.get("status", "complete")
    return status


def atomic_write_bytes(path, data: bytes) -> None:
    """Write a whole file or nothing: temp file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
