"""Finding backends: the entry-point group ``pgdbench.implementations``.

Backends in this repository are declared in pyproject.toml exactly like a
third-party plugin would declare its own. The entry-point name is the
backend's name (:attr:`Trainer.name` reads it); a class that also sets
``name`` itself must set the same one. Loading one entry point never
depends on another: a plugin that fails to import is reported with its error
and the others are still listed. Backends are loaded only when asked for:
:func:`names` imports none of them and :func:`get` imports just the one it
returns (asv imports its benchmark suite anew in a process per grid point).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Optional

from pgdbench.core.protocol import GROUP, Availability, Trainer, unavailable
from pgdbench.errors import BackendUnavailable, UsageError


@dataclass(frozen=True)
class Entry:
    """One registered backend: its class, or the error that stopped it from loading."""

    name: str
    value: str
    cls: Optional[type] = None
    load_error: str = ""

    def availability(self) -> Availability:
        if self.cls is None:
            return unavailable(f"failed to load {self.value}: {self.load_error}")
        try:
            return self.cls.availability()
        except Exception as exc:  # a plugin's bug must not take the listing down
            return unavailable(f"availability check raised {type(exc).__name__}: {exc}")


@lru_cache(maxsize=1)
def _declared() -> dict:
    """The declared entry points by name, sorted, none of them loaded (no backend module is imported)."""
    return {ep.name: ep for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name)}


@lru_cache(maxsize=None)
def entry(name: str) -> Entry:
    """The entry of one registered backend, loading that backend's module only (a clear error if unknown)."""
    declared = _declared()
    if name not in declared:
        raise UsageError(f"unknown backend {name!r}; registered backends: {', '.join(declared) or 'none'}")
    ep = declared[name]
    try:
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Trainer)):
            raise TypeError(f"{ep.value} is not a subclass of pgdbench.Trainer")
        if cls.name != ep.name:
            raise TypeError(f"{ep.value}.name is {cls.name!r} but it is registered as {ep.name!r}")
        return Entry(ep.name, ep.value, cls)
    except Exception as exc:
        return Entry(ep.name, ep.value, None, f"{type(exc).__name__}: {exc}")


def entries() -> dict[str, Entry]:
    """Every registered backend, loaded (a plugin that fails to import keeps its error and the others load)."""
    return {name: entry(name) for name in _declared()}


def names() -> list[str]:
    """The registered backends' names, without importing any backend (cheap: asv imports its suite per point)."""
    return list(_declared())


def get(name: str) -> type:
    """The backend class registered as ``name``; a clear error if unknown or broken."""
    found = entry(name)
    if found.cls is None:
        raise BackendUnavailable(f"backend {name!r} failed to load: {found.load_error}")
    return found.cls


def get_available(name: str) -> type:
    cls = get(name)
    avail = entry(name).availability()
    if not avail:
        raise BackendUnavailable(f"backend {name!r} is unavailable here: {avail.reason}")
    return cls
