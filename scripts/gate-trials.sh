#!/usr/bin/env bash
# Proof that `pgdbench gate` decides right, measured: on a throw-away clone, two commits on top of the
# checkout's HEAD -- one makes the numpy backend's epoch about 10 % slower with real work, one changes only
# a comment -- then the documented gate, `pgdbench gate BASE CANDIDATE`, N times on each, alternating
# between the two so that the machine's load hits both alike. Writes every gate's output and results
# under OUT, and prints the detection rate, the false-alarm rate and the time per gate run.
#
#   scripts/gate-trials.sh [N] [OUT] [-- extra pgdbench gate options]     (from the repository root)
#
# With BUSY=K (default 0), K other jobs run beside the gate for the whole trial, each keeping one core busy
# with a 1-thread GEMM loop (and the memory traffic that goes with it): "other work running", made the same
# for every trial. The gate's own measure of the load it saw is in each run's output either way.
#
# With ASV_RUNS=K (default 0) it then runs asv's own comparison as docs/benchmarks.md gives it,
# `asv continuous --factor 1.05 -a rounds=4 -b time_step BASE CANDIDATE`, K times on the comment-only commit and once on
# the slower one (asv must be installed beside $PYTHON; `asv machine --yes` run once).
#
# The gate that runs is the clone's own code (the checkout's HEAD), with the interpreter $PYTHON (default:
# python3 on PATH: activate the environment pgdbench is installed in). Default N=20, OUT=results/gate-trials.
# Takes about 2 × N × 5 minutes. The slowdown's size is set by
# PGDBENCH_TRIAL_SLOWDOWN (percent of the epoch's examples whose forward pass is computed again; the
# default 12 makes a Net-1h epoch about 10 % slower: measured ratios 1.08 with 10, 1.12 with 15).
set -euo pipefail
N=${1:-20}
OUT=${2:-results/gate-trials}
shift $(( $# > 2 ? 2 : $# ))
[ "${1:-}" = "--" ] && shift
EXTRA=("$@")
FRACTION=${PGDBENCH_TRIAL_SLOWDOWN:-12}
PY=${PYTHON:-python3}
ROOT=$(git rev-parse --show-toplevel)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
BUSY_PIDS=()
trap 'kill "${BUSY_PIDS[@]}" 2>/dev/null; rm -rf "$WORK"' EXIT
git clone --quiet "$ROOT" "$WORK/clone"
cd "$WORK/clone"
git -c advice.detachedHead=false checkout --quiet "$(git -C "$ROOT" rev-parse HEAD)"
BASE=$(git rev-parse HEAD)

# The numpy backend's module, from its entry point: the edit follows the code wherever it lives.
MODULE=$(python3 - <<'PY'
import tomllib
target = tomllib.load(open("pyproject.toml", "rb"))["project"]["entry-points"]["pgdbench.implementations"]["numpy"]
module, cls = target.split(":")
print(module.replace(".", "/") + ".py", cls)
PY
)
read -r FILE CLASS <<<"$MODULE"

git checkout --quiet -b trial-slower "$BASE"
cat >> "$FILE" <<PY


# --- gate trial (scripts/gate-trials.sh): real work added to every epoch, the forward pass computed
# --- again over ${FRACTION} % of the epoch's examples (results unchanged, time about 10 % longer)
def _trial_slower(train_epoch):
    def slower(self, order, batch_size, learning_rate, progress=None):
        train_epoch(self, order, batch_size, learning_rate, progress)
        self.predict(self.X[order[: max(1, len(order) * ${FRACTION} // 100)]])
    return slower


${CLASS}.train_epoch = _trial_slower(${CLASS}.train_epoch)
PY
git commit --quiet -am "gate trial: numpy epoch about 10 % slower (forward pass again over ${FRACTION} % of it)"
SLOWER=$(git rev-parse HEAD)

git checkout --quiet -b trial-comment "$BASE"
sed -i '1a # (gate trial: a comment-only change)' "$FILE"
git commit --quiet -am "gate trial: a comment, nothing else"
COMMENT=$(git rev-parse HEAD)
git checkout --quiet "$BASE"

CPU=$(grep -m1 "model name" /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')
echo "trials: $N × (slower, comment-only) on ${CPU:-$(uname -m)}, $(nproc) CPUs; base $BASE" | tee "$OUT/trials.txt"
# Each revision's tree keeps its numba kernels once compiled (38 s on this machine under load, for each tree);
# a gate run on commits it has met before finds them. Compile them here, untimed: the trials measure the gate.
for REV in "$SLOWER" "$COMMENT"; do
  "$PY" -m pgdbench.cli gate "$BASE" "$REV" --backend numba --threads 1 --batch-size 32 --budget 60 --quiet \
    --results "$OUT/warm-up.jsonl" > /dev/null 2>&1 || true
done

for _ in $(seq 1 "${BUSY:-0}"); do
  OPENBLAS_NUM_THREADS=1 "$PY" -c "
import numpy as np
a = np.random.default_rng(0).random((512, 512), dtype=np.float32)
while True:
    a = (a @ a) / 512
" &
  BUSY_PIDS+=($!)
done
echo "other jobs keeping a core busy: ${BUSY:-0}" | tee -a "$OUT/trials.txt"

for i in $(seq 1 "$N"); do
  for kind in slower comment; do
    [ "$kind" = slower ] && REV=$SLOWER || REV=$COMMENT
    start=$(date +%s)
    set +e
    "$PY" -m pgdbench.cli gate "$BASE" "$REV" --quiet --results "$OUT/$kind.jsonl" "${EXTRA[@]}" \
      > "$OUT/$kind-$i.txt" 2>&1
    code=$?
    set -e
    echo "$kind $i exit=$code seconds=$(( $(date +%s) - start ))" | tee -a "$OUT/runs.txt"
  done
done
"$PY" - "$OUT" <<'PY' | tee -a "$OUT/trials.txt"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
runs = [line.split() for line in (out / "runs.txt").read_text().splitlines() if line.strip()]
for kind, want in (("slower", "1"), ("comment", "0")):
    mine = [r for r in runs if r[0] == kind]
    codes = [r[2].split("=")[1] for r in mine]
    secs = sorted(int(r[3].split("=")[1]) for r in mine)
    right = sum(c == want for c in codes)
    errors = sum(c not in ("0", "1") for c in codes)
    what = "caught" if kind == "slower" else "passed"
    print(f"{kind:8s}: {what} {right}/{len(mine)} (other exit codes {errors}); seconds per gate run: "
          f"median {secs[len(secs)//2] if secs else '-'}, max {secs[-1] if secs else '-'}")
    summaries = [json.loads(line) for line in (out / f"{kind}.jsonl").read_text().splitlines()
                 if '"gate_summary"' in line] if (out / f"{kind}.jsonl").exists() else []
    flagged = {}
    for s in summaries:
        for point in s["regressions"]:
            flagged[point] = flagged.get(point, 0) + 1
    undecided = sum(bool(s["undecided"]) for s in summaries)
    print(f"          points flagged (runs): {flagged or 'none'}; runs with undecided points: {undecided}")
    ratios = sorted(r["ratio"] for r in (json.loads(line) for line in (out / f"{kind}.jsonl").read_text().splitlines()
                                         if '"gate_point"' in line)
                    if r.get("backend") == "numpy" and r.get("threads") == 1 and r.get("ratio"))
    if ratios:
        print(f"          numpy 1-thread ratios measured: median {ratios[len(ratios) // 2]:.3f}, "
              f"range {ratios[0]:.3f}–{ratios[-1]:.3f}")
PY

ASV_RUNS=${ASV_RUNS:-0}
if [ "$ASV_RUNS" -gt 0 ]; then
  ASV="$(dirname "$PY")/asv"
  [ -x "$ASV" ] || ASV=asv
  for i in $(seq 0 "$ASV_RUNS"); do
    [ "$i" = 0 ] && { kind=slower; REV=$SLOWER; } || { kind=comment; REV=$COMMENT; }
    start=$(date +%s)
    set +e
    "$ASV" continuous --factor 1.05 -a rounds=4 -b time_step "$BASE" "$REV" > "$OUT/asv-$kind-$i.txt" 2>&1
    code=$?
    set -e
    flagged=$(grep -c "^| [+-] " "$OUT/asv-$kind-$i.txt" || true)
    echo "asv $kind $i exit=$code flagged=$flagged seconds=$(( $(date +%s) - start ))" | tee -a "$OUT/asv-runs.txt"
  done
fi
