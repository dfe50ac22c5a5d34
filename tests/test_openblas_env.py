"""OPENBLAS_THREAD_TIMEOUT is set only where it can take effect, and results record it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import os, sys
{before}
from pgdbench.harness.openblas_env import prefer_sleeping_blas_threads
print(prefer_sleeping_blas_threads(), os.environ.get("OPENBLAS_THREAD_TIMEOUT"))
"""


def probe(before: str = "", **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE.format(before=before)], capture_output=True, text=True,
                         env=environ, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("before, env, expected", [
    ("", {}, "True 4"),                                                  # fresh process: set
    ("", {"OPENBLAS_THREAD_TIMEOUT": "12"}, "True 12"),                  # the user's value wins
    ("import numpy", {}, "False None"),                                  # too late to take effect: left unset
])
def test_set_only_before_numpy_loads_and_never_over_the_users_value(before, env, expected):
    assert probe(before, **env) == expected


def test_pgdbench_records_the_setting_in_the_results(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    results = tmp_path / "r.jsonl"
    subprocess.run([sys.executable, "-m", "pgdbench.cli", "bench", "--backend", "numpy", "--net", "net1h",
                    "--batch-size", "16", "--threads", "1", "--dataset", "synthetic:64", "--epochs", "1", "--quiet",
                    "--results", str(results)], check=True, capture_output=True, env=environ, cwd=tmp_path)
    start = json.loads(results.read_text().splitlines()[0])
    assert start["kind"] == "run_start"
    assert start["machine"]["threading_environment"]["OPENBLAS_THREAD_TIMEOUT"] == "4"
