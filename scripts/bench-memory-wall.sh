#!/usr/bin/env bash
# bench-memory-wall.sh - the issue 13 command-backend benchmark: N seeds of
# examples/functions/memory_wall.toml (an LLM-like black box with a memory wall), then the
# summary of scripts/bench_memory_wall.py.
#
#   scripts/bench-memory-wall.sh [SEEDS] [STATE_DIR] [BINARY]   # defaults: 15, bench-mem, target/release/ollama-tuner
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="${1:-15}"
state="${2:-bench-mem}"
bin="${3:-target/release/ollama-tuner}"
[ -x "$bin" ] || cargo build --release --bin ollama-tuner
rm -rf "$state"
for seed in $(seq 1 "$seeds"); do
  OLLAMA_TUNER_LOG=error "$bin" run --space examples/functions/memory_wall.toml \
    --state-dir "$state" --run-id "seed-$seed" --seed "$seed" --no-progress >/dev/null || true
done
python3 scripts/bench_memory_wall.py "$state"
