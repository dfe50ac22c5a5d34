"""Where data files come from: an explicit folder, $PGDBENCH_DATA, the user cache, or a verified download.

Downloads go through pooch, which checks each file's sha256 before it is used.
Files found locally are checked against the same hashes when they are the
original gzip files (the uncompressed forms are checked structurally instead).
"""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from pgdbench.errors import DataError

#: The original MNIST files (LeCun, Cortes, Burges) and their sha256, as public loaders publish them.
KNOWN_FILES = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "kddcup.data_10_percent.gz": "8045aca0d84e70e622d1148d7df782496f6333bf6eb979a1b0837c42a9fd9561",
    "corrected.gz": "74f0daef49b242badc09f2adbd457dea6a45b4f77177efbd11216d333651044b",
}

#: Public mirrors, tried in order. $PGDBENCH_MIRROR_<SET> (a base URL) replaces them;
#: $PGDBENCH_OFFLINE=1 forbids downloading altogether.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "kddcup99": [
        "https://kdd.ics.uci.edu/databases/kddcup99/",
    ],
}


def cache_dir() -> Path:
    import pooch
    return Path(os.environ.get("PGDBENCH_CACHE") or pooch.os_cache("pgdbench"))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path) -> None:
    expected = KNOWN_FILES.get(path.name)
    if expected is None:
        return
    got = sha256(path)
    if got != expected:
        raise DataError(f"{path}: checksum mismatch (sha256 {got[:16]}…, expected {expected[:16]}…): "
                        f"the file is corrupt or not the original; delete it and try again")


def candidates(filename: str, data_dir, collection: str = "") -> list[Path]:
    """Files searched, in order: ``filename`` or its uncompressed form in --data-dir, $PGDBENCH_DATA (or, in
    either, a subfolder named after the collection: mnist/, kddcup99/) and the cache."""
    dirs = []
    for given in (data_dir, os.environ.get("PGDBENCH_DATA")):
        if given:
            dirs.append(Path(given))
            if collection:  # a folder holding mnist/ and kddcup99/ works as well as either of them
                dirs.append(Path(given) / collection)
    dirs.append(cache_dir())
    names = [filename]
    if filename.endswith(".gz"):
        stem = filename[:-3]
        names += [stem, stem.replace("-idx", ".idx")]  # both spellings of the raw MNIST files exist
    return [d / n for d in dirs for n in names]


def regular_file(path: Path) -> bool:
    """Whether ``path`` is a regular file (through symlinks); False if nothing is there. Anything else that is
    there (a folder, a device, a pipe, a dangling symlink) is a DataError saying what it is, not "not found"."""
    if path.is_file():
        return True
    if not os.path.lexists(path):
        return False
    if not path.exists():
        raise DataError(f"{path}: a symbolic link to {os.readlink(path)}, which does not exist")
    mode = path.stat().st_mode
    kind = ("a directory" if stat.S_ISDIR(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a pipe" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    raise DataError(f"{path}: {kind}{' (through a symbolic link)' if path.is_symlink() else ''}, not a data file")


def locate(filename: str, collection: str, data_dir=None, download: bool = True) -> Path:
    """Path of a local, verified copy of ``filename``, downloading it into the cache if needed."""
    if data_dir and not Path(data_dir).is_dir():
        raise DataError(f"--data-dir {data_dir}: no such directory")
    for path in candidates(filename, data_dir, collection):
        if regular_file(path):
            verify(path)
            return path
    searched = ", ".join(dict.fromkeys(str(p.parent) for p in candidates(filename, data_dir, collection)))
    if not download:
        raise DataError(f"{filename} not found (searched {searched}) and downloading is off")
    return fetch(filename, collection, searched)


def _first_line(exc: Exception) -> str:
    """The first line of an error, whole: cutting it at a fixed length cut URLs mid-word."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def fetch(filename: str, collection: str, searched: str) -> Path:
    import pooch

    advice = ("Put the file in one of those folders, or pass --data-dir DIR, or set PGDBENCH_DATA=DIR; "
              "offline, use the embedded default --dataset mnist-sample")
    if os.environ.get("PGDBENCH_OFFLINE"):
        raise DataError(f"{filename} not found locally (searched {searched}) and PGDBENCH_OFFLINE is set. {advice}")
    override = os.environ.get(f"PGDBENCH_MIRROR_{collection.upper()}")
    mirrors = [override.rstrip("/") + "/"] if override else list(MIRRORS[collection])
    errors = []
    for base in mirrors:
        try:
            path = pooch.retrieve(base + filename, known_hash=f"sha256:{KNOWN_FILES[filename]}",
                                  fname=filename, path=cache_dir(), progressbar=False)
            return Path(path)
        except ValueError as exc:  # pooch's hash mismatch
            errors.append(f"{base + filename}: checksum mismatch ({_first_line(exc)})")
        except Exception as exc:
            errors.append(f"{base + filename}: {type(exc).__name__}: {_first_line(exc)}")
    raise DataError(
        f"{filename} not found locally (searched {searched}) and could not be downloaded "
        f"({'; '.join(errors)}). {advice}"
    )
