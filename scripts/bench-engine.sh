#!/usr/bin/env bash
# Engine benchmark of issue 2: this engine and random search (examples/bench_bo.rs) against
# Optuna's GPSampler and TPESampler (scripts/bench_optuna.py) on Branin, Hartmann6, a mixed
# integer Ackley and noisy Hartmann6; then the tables of BENCHMARKS.md.
#   scripts/bench-engine.sh [SEEDS] [EVALS]   (defaults 60 and 50)
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-60}
EVALS=${2:-50}
VENV=${VENV:-.venv-bench}
mkdir -p bench-out
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/python" -c 'import optuna, torch, scipy, greenlet' 2>/dev/null || \
  "$VENV/bin/pip" install --quiet optuna torch scipy greenlet
cargo build --release --example bench_bo
./target/release/examples/bench_bo --seeds "$SEEDS" --evals "$EVALS" --out bench-out/engine.jsonl --timing 50,200,500
OMP_NUM_THREADS=1 "$VENV/bin/python" scripts/bench_optuna.py --seeds "$SEEDS" --evals "$EVALS" --out bench-out/optuna.jsonl
python3 scripts/bench_summary.py bench-out/engine.jsonl bench-out/optuna.jsonl | tee bench-out/summary.md
