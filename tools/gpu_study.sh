#!/usr/bin/env bash
# The one-shot GPU study (book/protocol.md, "Pre-registered: the one-shot GPU setting"; enlcn/study/gpu/).
# Run from the repository root on the lent GPU with the device image's Python (no installs):
#   tools/gpu_study.sh [--device cuda|cpu] [--budget-s 480] [--out DIR (default $OUT)] [--workers P]
# It calibrates, fixes the step count S by the Protocol's formula, trains the chosen tiers concurrently,
# scores them and writes the bundle (at most 8 files, 64 MiB) under DIR, ending inside the budget
# (a `timeout` 30 s past it is the last guard). The commit is taken from $ENLCN_COMMIT, else from the
# file .enlcn-commit the caller wrote in the repository root, else git ("unknown" without one).
# Test only: ENLCN_GPU_STUDY_TINY=1 shrinks the model, data and constants (tests/test_gpu_study.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export ENLCN_T0="${ENLCN_T0:-$(date +%s.%N)}"   # B counts from here
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export ENLCN_NATIVE="${ENLCN_NATIVE:-0}"        # the CPU kernels are never built on the device
PY="${PY:-python3}"
budget=480
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [[ "${args[$i]}" == "--budget-s" ]]; then budget="${args[$((i + 1))]}"; fi
  if [[ "${args[$i]}" == --budget-s=* ]]; then budget="${args[$i]#--budget-s=}"; fi
done
exec timeout -k 5 "$(( ${budget%.*} + 30 ))" "$PY" -m enlcn.study.gpu "$@"
