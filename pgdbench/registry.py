"""Finding backends: the entry-point group ``pgdbench.implementations``.

Backends in this repository are declared in pyproject.toml exactly like a
third-party plugin would declare its own. Loading one entry point never
depends on another: a plugin that fails to import is reported with its error
and the others are still listed.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Optional

from pgdbench.errors import BackendUnavailable, UsageError
from pgdbench.protocol import Availability, Trainer, unavailable

GROUP = "pgdbench.implementations"


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
def entries() -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Trainer)):
                raise TypeError(f"{ep.value} is not a subclass of pgdbench.protocol.Trainer")
            if cls.name != ep.name:
                raise TypeError(f"{ep.value}.name is {cls.name!r} but it is registered as {ep.name!r}")
            found[ep.name] = Entry(ep.name, ep.value, cls)
        except Exception as exc:
            found[ep.name] = Entry(ep.name, ep.value, None, f"{type(exc).__name__}: {exc}")
    return found


def names() -> list[str]:
    return list(entries())


def get(name: str) -> type:
    """The backend class registered as ``name``; a clear error if unknown or broken."""
    all_entries = entries()
    if name not in all_entries:
        raise UsageError(f"unknown backend {name!r}; registered backends: {', '.join(all_entries) or 'none'}")
    entry = all_entries[name]
    if entry.cls is None:
        raise BackendUnavailable(f"backend {name!r} failed to load: {entry.load_error}")
    return entry.cls


def get_available(name: str) -> type:
    cls = get(name)
    avail = entries()[name].availability()
    if not avail:
        raise BackendUnavailable(f"backend {name!r} is unavailable here: {avail.reason}")
    return cls
