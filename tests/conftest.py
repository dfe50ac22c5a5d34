"""Fixtures shared by the tests: the registry's backends as parameters, and where the real data is."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgdbench.core import registry

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
SHARED_KDD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kddcup99"
# Read once: the autouse fixture below removes them from the environment of every test.
DATA_ENV = os.environ.get("PGDBENCH_DATA")
KDD_ENV = os.environ.get("PGDBENCH_KDD_DATA")


def _holding(filename: str, *folders) -> Path | None:
    for folder in folders:
        if folder and (Path(folder) / filename).is_file():
            return Path(folder)
    return None


def mnist_dir() -> Path | None:
    """The real MNIST files: $PGDBENCH_DATA (or its mnist/), else ../shared/data/mnist, else None."""
    return _holding("train-images-idx3-ubyte.gz", DATA_ENV, DATA_ENV and Path(DATA_ENV) / "mnist", SHARED_MNIST)


def kdd_dir() -> Path | None:
    """The real KDD Cup 1999 files: $PGDBENCH_KDD_DATA, $PGDBENCH_DATA (or its kddcup99/), ../shared/data/kddcup99."""
    return _holding("kddcup.data_10_percent.gz", KDD_ENV, DATA_ENV, DATA_ENV and Path(DATA_ENV) / "kddcup99",
                    SHARED_KDD)


def backend_params():
    """Every registered backend as a pytest parameter; the tests skip unavailable ones with the reason."""
    return [pytest.param(name, id=name) for name in registry.names()]


def available_backend(name: str) -> type:
    entry = registry.entries()[name]
    avail = entry.availability()
    if not avail:
        pytest.skip(f"backend {name!r} unavailable here: {avail.reason}")
    return entry.cls


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """No test reads or fills the user's cache, finds data it was not pointed at, or downloads
    (unless it serves the files itself)."""
    monkeypatch.setenv("PGDBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PGDBENCH_OFFLINE", "1")
    monkeypatch.delenv("PGDBENCH_DATA", raising=False)
