#!/usr/bin/env bash
# The measurements behind the project's performance targets (CPU, hybrid splits, naive serial, OpenCL on PoCL,
# MPI efficiency, DBN scaling, replica averaging), then a report. Run on an otherwise idle machine, from the
# repository root, with the real MNIST files: PGDBENCH_DATA=/path/to/mnist scripts/measure-targets.sh [OUT]
# Takes about 15 minutes on a 2-core machine. Epoch times are projected from 10,240 examples per point.
set -euo pipefail
R=${1:-results/targets}
mkdir -p "$R"
pgdbench peak --threads 1,2 | tee "$R/peak.txt"
pgdbench bench --backend numpy --backend torch --backend numba --backend threads --net net1h --net net2h \
  --batch-size 32,128,512,1024 --threads 1,2 --dataset mnist --max-examples 10240 --quiet \
  --results "$R/cpu.jsonl" | tee "$R/cpu.txt"
pgdbench bench --backend hybrid --threads 2 --net net2h --batch-size 256,1024 -o example_workers=1,2 \
  --dataset mnist --max-examples 10240 --quiet --results "$R/hybrid.jsonl" | tee "$R/hybrid.txt"
pgdbench bench --backend numpy --backend python --threads 1 --net net1h --batch-size 32 --max-examples 200 \
  --dataset mnist --quiet --results "$R/python.jsonl" | tee "$R/python.txt"
pgdbench bench --backend numpy --backend opencl --threads 1 --net net1h --batch-size 128,512 --max-examples 2048 \
  --dataset mnist --quiet --results "$R/opencl.jsonl" | tee "$R/opencl.txt"
pgdbench bench --ranks 1,2 --net net2h --batch-size 512,1024 --epochs 1 --results "$R/mpi.jsonl" | tee "$R/mpi.txt"
pgdbench dbn --scaling 1,2 --dataset mnist --epochs 2 --finetune-epochs 0 --results "$R/dbn.jsonl" | tee "$R/dbn.txt"
pgdbench bench --backend averaging --threads 1,2 -o combine=average,sum --net 784,128,10 --dataset mnist \
  --batch-size 16 --lr 0.5 --quiet --results "$R/avg.jsonl" | tee "$R/avg.txt"
pgdbench report "$R/cpu.jsonl" "$R/hybrid.jsonl" "$R/python.jsonl" "$R/opencl.jsonl" "$R/mpi.jsonl" "$R/dbn.jsonl" \
  "$R/avg.jsonl" --out "$R/report"
