"""Files written whole or not at all, and outputs checked before the work whose results they will hold.

Results summaries, reports, figures, saved parameters and the stored peak are
written to a temporary file in the same folder, fsync'ed and renamed over the
target, with the mode an ordinary new file would get (mkstemp's 0600 would
make a report unreadable to the others who can read the figures beside it).
An output that cannot be written is an :class:`OutputError` (one line, exit
status 2), and :func:`check_output` finds it before the work starts, so that
no measurement or trained network is lost for want of a place to put it.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from pgdbench.errors import OutputError


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data: bytes) -> None:
    """Write a whole file or nothing: temp file in the same folder, fsync, rename."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"{path}: cannot be written ({exc.strerror or exc})") from None
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def check_output(path, what: str, *, folder: bool = False, replace: bool = True) -> None:
    """Raise OutputError unless ``path`` can be written now; ``what`` names it in the message (``--save``).

    ``folder``: ``path`` is a folder to write files into (``report --out``). ``replace``: the file is replaced
    whole (written atomically) rather than appended to, so it must be a regular file if it exists. Nothing is
    left behind: the folders are not created, a probe file is removed at once.
    """
    path = Path(path)
    where = f"{what} {path}"
    if folder:
        if path.exists() and not path.is_dir():
            raise OutputError(f"{where}: exists and is not a folder")
    elif path.is_dir():
        raise OutputError(f"{where}: is a folder, not a file")
    elif path.exists():
        if replace and not path.is_file():
            raise OutputError(f"{where}: exists and is not a regular file, which would be replaced")
        try:  # no O_CREAT, no O_TRUNC: the file is not changed; O_NONBLOCK: a pipe without a reader fails at once
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK))
        except OSError as exc:
            raise OutputError(f"{where}: cannot be written ({exc.strerror or exc})") from None
        if not replace:
            return  # appended to in place: nothing is created beside it
    elif os.path.lexists(path):
        raise OutputError(f"{where}: a symbolic link to {os.readlink(path)}, which does not exist")
    existing = path if folder and path.is_dir() else path.parent
    while not existing.exists():  # the nearest folder that is there: the others would be created in it
        if os.path.lexists(existing):
            raise OutputError(f"{where}: {existing} is a symbolic link to nothing")
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{where}: {existing} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".pgdbench-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{where}: cannot create files in {existing} ({exc.strerror or exc})") from None
