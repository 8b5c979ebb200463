#!/usr/bin/env bash
# Soak test of issue 4: a long run on the simulator (default 2,000 trials), sampling the
# daemon's resident memory every 5 s, then the time per ask by trial range and the RSS trend.
#   scripts/soak.sh [TRIALS]
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-2000}
cargo build --release --bin ollama-tuner
DIR=$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")
sed -e "s/{MODEL}/gemma3:4b/; s/{PROFILE}/gemma3-4b/; s/{TIME_SCALE}/0.0005/; s/{SEED}/5/; s/{TRIALS}/$TRIALS/" \
    -e 's/^wall_time = .*/wall_time = "24h"/; s/^repeats = 3 /repeats = 1 /; s/^warmup = 1 /warmup = 0 /; s/^num_predict = 128 /num_predict = 16 /' \
    -e 's/^max_consecutive_failures = 10/max_consecutive_failures = 1000/' -e '/^constraints = /d' \
    search_spaces/demo-simulator.toml > "$DIR/soak.toml"
OLLAMA_TUNER_LOG=warn ./target/release/ollama-tuner run --space "$DIR/soak.toml" --state-dir "$DIR/state" --run-id soak --no-progress &
PID=$!
: > "$DIR/rss.tsv"
while kill -0 "$PID" 2>/dev/null; do
    n=$(wc -l < "$DIR/state/soak/trials.jsonl" 2>/dev/null || echo 0)
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo 0)
    printf '%s\t%s\n' "$n" "$rss" >> "$DIR/rss.tsv"
    sleep 5
done
wait "$PID"
python3 - "$DIR" <<'PY'
import json, sys, statistics
d = sys.argv[1]
recs = [json.loads(l) for l in open(f"{d}/state/soak/trials.jsonl")]
print(f"trials: {len(recs)}")
print("| trials | ask median (ms) | ask p95 (ms) | ask max (ms) |")
print("|---|---|---|---|")
step = max(1, len(recs) // 8)
for a in range(0, len(recs), step):
    asks = sorted(r["notes"].get("ask_s", 0) * 1e3 for r in recs[a:a + step])
    print(f"| {a}-{a + len(asks) - 1} | {statistics.median(asks):.1f} | {asks[int(0.95 * (len(asks) - 1))]:.1f} | {asks[-1]:.1f} |")
rows = [tuple(map(int, l.split())) for l in open(f"{d}/rss.tsv") if l.strip()]
print()
print("| trials done | RSS (MiB) |")
print("|---|---|")
for n, rss in rows[:: max(1, len(rows) // 10)] + rows[-1:]:
    print(f"| {n} | {rss / 1024:.1f} |")
PY
echo "state: $DIR"
