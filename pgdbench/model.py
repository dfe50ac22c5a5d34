"""Deprecated alias of :mod:`pgdbench.core.model` (kept for plugins for one release; import from ``pgdbench``)."""
from pgdbench._moved import reexport

reexport(globals(), "pgdbench.core.model")
