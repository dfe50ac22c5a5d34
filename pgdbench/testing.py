"""Deprecated alias of :mod:`pgdbench.core.testing` (kept for plugins for one release; import from ``pgdbench``)."""
from pgdbench._moved import reexport

reexport(globals(), "pgdbench.core.testing")
