"""The architecture, read from the source with the standard library's ``ast``: dependencies point one way.

Every import statement of every module of ``pgdbench/`` and ``implementations/``
counts, at any depth (inside functions too), relative imports resolved; an
import of a name from the lazy package API (``from pgdbench import Trainer``)
counts as an import of the module that defines the name. The layers, lowest
first, are :data:`LAYERS`: a module may import its own layer and lower ones.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pgdbench", "implementations")
#: Sub-packages of pgdbench, lowest layer first; pgdbench.errors lies below them all.
LAYERS = ("pgdbench.data", "pgdbench.core", "pgdbench.harness", "pgdbench.studies", "pgdbench.reporting",
          "pgdbench.cli")
BASE = ("pgdbench.errors",)
#: The module paths of pgdbench 0.1, kept one release for third-party plugins: nothing here may use them.
DEPRECATED = ("pgdbench.protocol", "pgdbench.model", "pgdbench.registry", "pgdbench.testing")
#: First-party imports that stay inside functions, and why.
DEFERRED = {
    ("implementations.numba_prange", "implementations._numba_kernels"):
        "the kernels module imports numba (a heavy optional package) at its top",
    ("pgdbench.harness.peak", "pgdbench.harness.fma_clock"):
        "the clock's FMA chain is compiled with numba (an optional package), imported at its top",
    ("pgdbench.core.elementwise", "pgdbench.core.fused_numba"):
        "the compiled elementwise passes import numba (an optional package) at their top",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


@lru_cache(maxsize=1)
def api_exports() -> dict[str, str]:
    """The lazy package API's table: public name → defining module (read from pgdbench/__init__.py)."""
    tree = ast.parse((ROOT / "pgdbench" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets):
                return ast.literal_eval(node.value)
    raise AssertionError("pgdbench/__init__.py has no _EXPORTS table")


def first_party(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def imports_of(path: Path, name: str) -> list[tuple[str, ast.stmt, bool]]:
    """(imported first-party module, statement, at module level) for every import statement of the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            targets = []
            for a in node.names:
                sub = f"{source}.{a.name}"
                if sub in modules():
                    targets.append(sub)                   # from pgdbench.core import registry
                elif source == "pgdbench" and a.name in api_exports():
                    targets.append(api_exports()[a.name])  # from pgdbench import Trainer
                else:
                    targets.append(source)
        else:
            continue
        out += [(t, node, id(node) in top) for t in targets if first_party(t)]
    return out


@lru_cache(maxsize=1)
def graph() -> dict[str, set[str]]:
    return {name: {t for t, _, _ in imports_of(path, name) if t != name} for name, path in modules().items()}


def layer(name: str) -> int:
    if name in BASE:
        return -1
    for k, prefix in enumerate(LAYERS):
        if name == prefix or name.startswith(prefix + "."):
            return k
    raise AssertionError(f"{name} belongs to no layer: add it to LAYERS or BASE of {Path(__file__).name}")


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_is_read_from_every_module():
    names = modules()
    assert {"pgdbench.core.protocol", "pgdbench.cli", "pgdbench.data.dataset", "implementations.numpy_blas"} <= set(names)
    assert "pgdbench.core.protocol" in graph()["implementations.numpy_blas"]


def test_no_import_cycles():
    cycle = find_cycle({m: {d for d in deps if d in modules()} for m, deps in graph().items()})
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_nothing_outside_the_cli_imports_the_cli():
    bad = [f"{m} imports {d}" for m, deps in graph().items() if not m.startswith("pgdbench.cli")
           for d in deps if d == "pgdbench.cli" or d.startswith("pgdbench.cli.")]
    assert not bad, "; ".join(bad)


def test_layers_import_only_their_own_layer_and_lower_ones():
    bad = []
    for m, deps in graph().items():
        if not m.startswith("pgdbench.") or m in DEPRECATED or m == "pgdbench._moved":
            continue
        for d in deps:
            if d.startswith("pgdbench.") and layer(d) > layer(m):
                bad.append(f"{m} ({LAYERS[layer(m)] if layer(m) >= 0 else 'base'}) imports {d}")
    assert not bad, "; ".join(sorted(bad))


def test_the_library_never_imports_a_backend_and_backends_use_only_the_core():
    library = [f"{m} imports {d}" for m, deps in graph().items() if m.startswith("pgdbench")
               for d in deps if d.startswith("implementations")]
    assert not library, "; ".join(library)
    allowed = ("pgdbench.core", "pgdbench.errors", "implementations")
    backends = [f"{m} imports {d}" for m, deps in graph().items() if m.startswith("implementations")
                for d in deps if not any(d == a or d.startswith(a + ".") for a in allowed)]
    assert not backends, "; ".join(backends)


def test_first_party_imports_are_at_the_top_of_each_module():
    inner = []
    for name, path in modules().items():
        for target, node, at_top in imports_of(path, name):
            if not at_top and (name, target) not in DEFERRED:
                inner.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target} inside a block")
    assert not inner, "\n".join(inner)


def test_nothing_in_the_project_uses_the_deprecated_module_paths():
    files = [p for d in ("pgdbench", "implementations", "tests", "benchmarks") for p in (ROOT / d).rglob("*.py")]
    files.append(ROOT / "conftest.py")
    bad = []
    for path in files:
        name = module_name(path)
        if name in DEPRECATED:
            continue
        for target, node, _ in imports_of(path, name):
            if target in DEPRECATED:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target}")
    assert not bad, "; ".join(bad)


def test_scripts_import_only_modules_that_exist_and_no_deprecated_path():
    """scripts/ (tooling such as the device check) lies outside the package: it may use any layer, but only
    modules that exist under their current names -- a moved module otherwise breaks it only on the GPU machine."""
    bad = []
    for path in sorted((ROOT / "scripts").glob("*.py")):
        for target, node, _ in imports_of(path, f"scripts.{path.stem}"):
            if target not in modules() or target in DEPRECATED:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target}")
    assert not bad, "; ".join(bad)


def test_importing_a_backend_module_loads_no_heavy_optional_package():
    heavy = ("torch", "numba", "cupy", "pyopencl", "pycuda", "mpi4py", "matplotlib")
    code = ("import sys, importlib; from pgdbench.core import registry; "
            "[importlib.import_module(e.value.split(':')[0]) for e in registry._declared().values()]; "
            f"loaded = [m for m in {heavy!r} if m in sys.modules]; assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_importing_the_package_loads_neither_numpy_nor_a_sub_package():
    code = ("import sys, pgdbench, pgdbench.harness.openblas_env; "
            "assert 'numpy' not in sys.modules, 'numpy loaded'; "
            "assert not [m for m in sys.modules if m.startswith('pgdbench.') and m not in "
            "('pgdbench.harness', 'pgdbench.harness.openblas_env')], sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_every_name_of_the_package_api_is_defined_where_the_table_says():
    import importlib

    import pgdbench

    assert sorted(pgdbench.__all__) == sorted(api_exports())
    for name, module in api_exports().items():
        assert getattr(pgdbench, name) is getattr(importlib.import_module(module), name), name
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        pgdbench.nothing_here


@pytest.mark.parametrize("old", DEPRECATED)
def test_deprecated_module_paths_still_work_and_warn(old):
    import importlib

    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and old in str(w.message) for w in caught), caught
    new = importlib.import_module(old.replace("pgdbench.", "pgdbench.core."))
    public = [n for n in vars(new) if not n.startswith("_")]
    assert all(getattr(module, n) is getattr(new, n) for n in public)
