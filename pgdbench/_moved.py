"""The deprecated module paths of pgdbench 0.1 (``pgdbench.protocol``, ``.model``, ``.registry``, ``.testing``).

Plugins written against 0.1 import them; each is now an alias of its module in
:mod:`pgdbench.core` that warns once, when first imported. Removed in the next
release: import from ``pgdbench`` (the package API) instead.
"""
from __future__ import annotations

import importlib
import sys
import warnings


def reexport(namespace: dict, new: str) -> None:
    """Fill the namespace of the deprecated module with the public names of ``new``, and warn the importer."""
    old = namespace["__name__"]
    # the warning belongs to whoever imported the old path: skip this module, the alias and importlib's frames
    level, frame = 3, sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
        level, frame = level + 1, frame.f_back
    warnings.warn(f"{old} is deprecated and will be removed in the next release; import from pgdbench "
                  f"(e.g. from pgdbench import Trainer) or from {new}", DeprecationWarning, stacklevel=level)
    module = importlib.import_module(new)
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("__")]
    namespace.update({n: getattr(module, n) for n in names})
