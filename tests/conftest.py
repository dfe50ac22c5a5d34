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


def mnist_dir() -> Path | None:
    """The real MNIST files: $PGDBENCH_DATA if it holds them, else ../shared/data/mnist, else None."""
    for candidate in (DATA_ENV, SHARED_MNIST):
        if candidate and (Path(candidate) / "train-images-idx3-ubyte.gz").is_file():
            return Path(candidate)
    return None


def kdd_dir() -> Path | None:
    for candidate in (KDD_ENV, SHARED_KDD):
        if candidate and (Path(candidate) / "kddcup.data_10_percent.gz").is_file():
            return Path(candidate)
    return None


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
