#!/usr/bin/env bash
# The prepared GPU check (enlcn/gpu_check.py): on one CUDA GPU, a few minutes; writes results/bench/gpu-check.json.
# Without CUDA it says what it would measure and exits 0; pass --require-cuda to make that an error.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
exec "$PY" -m enlcn.gpu_check "$@"
