"""The README stays true: its plugin example passes the kit, and .ci/run calls its test command."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

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


def test_readme_documents_every_command():
    from pgdbench.cli import COMMANDS
    for name in COMMANDS:
        assert f"### `pgdbench {name}" in README, f"README has no section for `pgdbench {name}`"
