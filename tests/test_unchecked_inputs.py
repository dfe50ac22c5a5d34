"""Inputs that went unchecked: each now gives one line naming the problem, or is accepted and reported.

Before: `--seed -1` and a word in a numeric KDD column ended in tracebacks; KDD test rows with the wrong number
of fields stopped the load, and rows with unknown labels vanished without a word; an npz `y` of shape (n, 1)
broke training, string inputs gave a traceback and complex ones lost their imaginary part silently;
`bench -o nosuch=1` was ignored for backends without options; a link to a device was "not found".
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pgdbench.data import load_dataset
from pgdbench.errors import DataError

CLI = [sys.executable, "-m", "pgdbench.cli"]


def _cli(*args, cwd=None):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=120, cwd=cwd)


def _one_line_exit_2(proc, *expected):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    for text in expected:
        assert text in lines[0], lines


@pytest.mark.parametrize("command", [["train"], ["bench"], ["dbn", "--dataset", "mnist-sample"],
                                     ["averaging-study", "--seeds", "0,-1"]])
def test_negative_seed(command):
    args = command if "--seeds" in command else command + ["--seed", "-1"]
    _one_line_exit_2(_cli(*args), "a seed must be 0 or positive, got -1")


def test_bench_rejects_an_option_no_backend_has(tmp_path):
    # a small grid: before, the option was ignored and the grid ran
    _one_line_exit_2(_cli("bench", "--backend", "numpy", "-o", "nosuch=1", "--net", "784,16,10", "--batch-size", "32",
                          "--threads", "1", "--dataset", "mnist-sample", "--results", str(tmp_path / "b.jsonl")),
                     "nosuch", "numpy")


# -- KDD Cup 1999, from small uncompressed files (no checksum applies to them) -------------------------------

ROW = "0,tcp,http,SF,181,5450,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,8,8,0.00,0.00,0.00,0.00,1.00,0.00,0.00,9,9,1.00," \
      "0.00,0.11,0.00,0.00,0.00,0.00,0.00,{label}."


def _kdd(folder: Path, train_rows: list[str], test_rows: list[str]) -> Path:
    folder.mkdir()
    (folder / "kddcup.data_10_percent").write_text("\n".join(train_rows) + "\n")
    (folder / "corrected").write_text("\n".join(test_rows) + "\n")
    return folder


def _rows(n=12):
    labels = ["normal", "smurf", "neptune", "ipsweep", "guess_passwd", "rootkit"]
    return [ROW.format(label=labels[k % len(labels)]) for k in range(n)]


def test_kdd_word_in_a_numeric_column_names_the_file_and_line(tmp_path):
    train = _rows()
    train[4] = train[4].replace("0,tcp,http,SF,181,", "0,tcp,http,SF,lots,")
    folder = _kdd(tmp_path / "kdd", train, _rows())
    with pytest.raises(DataError, match=r"kddcup.data_10_percent: line 5: field 5 should be a number, got 'lots'"):
        load_dataset("kddcup99", data_dir=folder)


def test_kdd_test_rows_with_the_wrong_field_count_or_an_unknown_label_are_counted(tmp_path):
    test = _rows(10)
    test[2] += ",7"                                    # 43 fields
    test[5] = ",".join(test[5].split(",")[:30])        # 30 fields
    test[7] = ROW.format(label="foo")                  # no KDD attack type
    test[8] = ROW.format(label="snmpguess")            # an attack type the training file lacks (a 'types' class)
    folder = _kdd(tmp_path / "kdd", _rows(), test)
    d = load_dataset("kddcup99", data_dir=folder)
    assert len(d.X_test) == 7                           # snmpguess is r2l: kept as a category
    summary = d.summary()
    assert "2 test records with other than 42 fields dropped" in summary, summary
    assert "1 test records with unknown labels dropped (foo)" in summary, summary
    types = load_dataset("kddcup99:types", data_dir=folder)
    assert len(types.X_test) == 6
    assert "1 test records with attack types unseen in training dropped" in types.summary()


def test_kdd_training_rows_with_the_wrong_field_count_name_the_line(tmp_path):
    train = _rows()
    train[3] = ",".join(train[3].split(",")[:20])
    folder = _kdd(tmp_path / "kdd", train, _rows())
    with pytest.raises(DataError, match="kddcup.data_10_percent: line 4: fewer than 42 fields"):
        load_dataset("kddcup99", data_dir=folder)


# -- npz -----------------------------------------------------------------------------------------------------

def _npz(path: Path, X, y) -> str:
    np.savez(path, X_train=X, y_train=y, X_test=X[:6], y_test=y[:6])
    return f"npz:{path}"


def test_npz_labels_as_a_column_are_accepted(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.random((60, 5)), rng.integers(0, 3, (60, 1))
    proc = _cli("train", "--dataset", _npz(tmp_path / "col.npz", X, y), "--layers", "5,4,3", "--epochs", "1",
                "--batch-size", "10", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout


@pytest.mark.parametrize("X, what", [(np.array([["0.5", "x"]] * 12), "<U3"),
                                     (np.ones((12, 2)) + 1j, "complex128")], ids=["text", "complex"])
def test_npz_inputs_must_be_real_numbers(tmp_path, X, what):
    with pytest.raises(DataError, match=f"X_train must hold real numbers, got {what}"):
        load_dataset(_npz(tmp_path / "x.npz", X, np.zeros(12, int)))


def test_npz_labels_of_another_shape_are_named(tmp_path):
    with pytest.raises(DataError, match=r"y_train must hold one label per example, shape \(n,\) or \(n, 1\)"):
        load_dataset(_npz(tmp_path / "y.npz", np.ones((12, 2)), np.zeros((12, 2), int)))


# -- a link to a device is not "not found" ------------------------------------------------------------------

@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_link_to_a_device_is_named_as_such(tmp_path):
    (tmp_path / "d.npz").symlink_to("/dev/zero")
    with pytest.raises(DataError, match="a character device"):
        load_dataset(f"npz:{tmp_path / 'd.npz'}")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "train-images-idx3-ubyte").symlink_to("/dev/zero")
    with pytest.raises(DataError, match="train-images-idx3-ubyte: a character device"):
        load_dataset("mnist", data_dir=tmp_path / "m")
