"""The README stays true: its plugin example passes the kit, and .ci/run calls its test command."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from pgdbench.core.testing import check_backend

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_plugin_example_passes_the_conformance_kit(tmp_path):
    source = next(b for b in code_blocks("python") if "class PlainTrainer" in b)
    path = tmp_path / "plain_example.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("plain_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    check_backend(module.PlainTrainer)


def test_ci_runs_the_readme_test_command():
    test_command = code_blocks("bash")[1].strip()
    assert test_command == ".venv/bin/python -m pytest tests"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in [line.strip() for line in ci]


def test_plugin_pyproject_is_a_whole_one():
    """The snippet once held only the entry-point table: a new package needs [project] (name, version) too."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    snippet = tomllib.loads(next(b for b in code_blocks("toml") if "pgdbench.implementations" in b))
    assert snippet["project"]["name"] and snippet["project"]["version"]
    assert snippet["build-system"]["build-backend"]
    assert snippet["project"]["entry-points"]["pgdbench.implementations"]["plain"].endswith(":PlainTrainer")


def test_readme_flop_figures_follow_the_flop_model():
    """The README once gave Net-2h 7.47 MFLOP per example, where its own formula and the CLI give 9.56."""
    from pgdbench.core.model import NetSpec

    for name, layers in (("Net-1h", (784, 1024, 10)), ("Net-2h", (784, 1024, 1024, 10))):
        spec = NetSpec(layers)
        figures = re.search(rf"{name}: ([\d.]+) MFLOP per example, ([\d.]+) GFLOP", README)
        assert figures, f"the README gives no FLOP figures for {name}"
        assert float(figures[1]) == round(spec.flops_per_example() / 1e6, 2)
        assert float(figures[2]) == round(spec.flops_per_epoch(50_000) / 1e9, 1)


def test_readme_documents_every_command():
    from pgdbench.cli import COMMANDS
    for name in COMMANDS:
        assert f"### `pgdbench {name}" in README, f"README has no section for `pgdbench {name}`"
