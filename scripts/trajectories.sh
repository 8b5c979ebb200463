#!/usr/bin/env bash
# Usage: scripts/trajectories.sh DIR_WITH_RELEASE_EXAMPLES OUT_DIR (e.g. target/release/examples out/after)
# Trajectory capture for issue 11's behaviour check: OT_TRACE lines of bench_bo (10 seeds x 4
# functions x {gp, random}, 50 evals) and bench_sim (10 seeds x 3 methods, 40 trials), timing lines dropped.
set -euo pipefail
BIN=$(cd "$1" && pwd); mkdir -p "$2"; OUT=$(cd "$2" && pwd)
cd "$OUT"
OT_TRACE=1 "$BIN/bench_bo" --seeds 10 --evals 50 --timing "" --out "$OUT/bo.jsonl" 2> "$OUT/bo.trace.raw"
grep -v ' seeds in ' "$OUT/bo.trace.raw" > "$OUT/bo.trace"
python3 -c "
import json,sys
for l in open('$OUT/bo.jsonl'):
    d=json.loads(l); d.pop('ask_seconds',None); print(json.dumps(d,sort_keys=True))
" > "$OUT/bo.values"
OT_TRACE=1 "$BIN/bench_sim" --seeds 10 --trials 40 --methods tuner,tuner-no-reload-awareness,random --spread no > "$OUT/sim.table" 2> "$OUT/sim.trace"
sha256sum bo.trace bo.values sim.trace sim.table
