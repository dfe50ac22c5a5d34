#!/usr/bin/env bash
# Issue 12's table: every CPU strategy before and after the issue (the old step selected by options), idiomatic
# PyTorch (torch-nn) and the torch backend, both nets, B = 32…1024, 1 and all threads, measured in ONE process,
# interleaved epoch by epoch (5 rounds), with the honest peak first. From the repository root, with the real MNIST
# files: PGDBENCH_DATA=/path/to/mnist scripts/issue12-table.sh [OUT]. About 15 minutes on an idle 2-core machine.
set -euo pipefail
R=${1:-results/issue12}
mkdir -p "$(dirname "$R")"
uptime | tee "$R.load"
pgdbench peak --repeats 3 | tee "$R.peak.txt"
pgdbench bench --interleave --epochs 5 --baseline torch-nn --baseline torch \
  --backend 'numpy[gemm=numpy,elementwise=numpy]' --backend numpy --backend 'numpy[gemm=mkl]' \
  --backend 'threads[gemm=numpy,elementwise=numpy]' --backend threads --backend 'threads[reduce=rows]' \
  --backend 'hybrid[gemm=numpy,elementwise=numpy]' --backend hybrid \
  --backend 'numba[gemm=numpy,exp=libm]' --backend numba --backend 'numba[update=rows]' \
  --net net1h --net net2h --batch-size 32,128,512,1024 --threads 1,2 --dataset mnist --max-examples 10240 \
  --results "$R.jsonl" --quiet | tee "$R.txt"
uptime | tee -a "$R.load"
pgdbench report "$R.jsonl" --out "$R-report"   # report.md: "Against torch-nn and torch", per thread count
