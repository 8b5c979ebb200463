#!/usr/bin/env bash
# Soak test of issue 4: a long run on the simulator (default 2,000 trials), sampling the
# daemon's resident memory every second, then the time per ask and the RSS by trial range.
#   scripts/soak.sh [TRIALS]     run, then print the tables
#   scripts/soak.sh DIR          print the tables again for the state DIR a soak printed
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d "${1:-}" ]; then
    DIR=$1
else
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
        mem=$(awk '/VmRSS/ {r=$2} /VmHWM/ {h=$2} END {print r "\t" h}' "/proc/$PID/status" 2>/dev/null || printf '0\t0')
        printf '%s\t%s\n' "$n" "$mem" >> "$DIR/rss.tsv"
        sleep 1
    done
    wait "$PID"
fi
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
# RSS samples (trials done, RSS KiB, peak RSS KiB) while the daemon ran; a sample can land in a
# report refresh or an ask, so each trial range shows the spread, and the trend uses medians.
rows = [tuple(map(int, l.split())) for l in open(f"{d}/rss.tsv") if len(l.split()) == 3]
rows = [r for r in rows if r[1] > 0]
print()
print("| trials | RSS samples | RSS min (MiB) | RSS median (MiB) | RSS max (MiB) |")
print("|---|---|---|---|---|")
medians = []
for a in range(0, len(recs), step):
    rss = sorted(r / 1024 for n, r, _ in rows if a <= n < a + step)
    if rss:
        medians.append((a + step / 2, statistics.median(rss)))
        print(f"| {a}-{a + step - 1} | {len(rss)} | {rss[0]:.1f} | {statistics.median(rss):.1f} | {rss[-1]:.1f} |")
if rows:
    print(f"\npeak RSS of the whole run (VmHWM): {rows[-1][2] / 1024:.1f} MiB")
half = [(x, m) for x, m in medians if x >= len(recs) / 2]
if len(half) >= 2:
    mx = sum(x for x, _ in half) / len(half)
    my = sum(m for _, m in half) / len(half)
    slope = sum((x - mx) * (m - my) for x, m in half) / sum((x - mx) ** 2 for x, _ in half)
    print(f"median RSS: {medians[0][1]:.1f} MiB in the first range, {medians[-1][1]:.1f} MiB in the last; "
          f"trend over the second half {slope * 1000:+.2f} MiB per 1,000 trials (least squares on the medians)")
PY
echo "state: $DIR"
