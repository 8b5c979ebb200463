#!/usr/bin/env bash
# e2e-llamacpp.sh - the real-engine end-to-end check CI runs after the unit tests: a real
# llama.cpp llama-server with the real Gemma 3 270M model, driven by the tuner.
#
#   scripts/e2e-llamacpp.sh
#
# Steps:
#   1. scripts/setup-llamacpp.sh provides llama-server and the model (cached: ~2 s).
#   2. cargo test --test llamacpp_e2e: a 6-trial study through the library's run loop, the
#      infeasible flash_attn=off + q8_0 V cache configuration, attach mode, no child left.
#   3. The CLI on the shipped study: `ollama-tuner run --space
#      search_spaces/llamacpp-gemma3-270m.toml --trials 8`, then checks of the journal (8 lines,
#      every ok trial with decode_tps > 0, the run stopped for budget), that no llama-server it
#      started still answers, and that `ollama-tuner status` works.
#   4. kill -9 of the tuner while it measures: the llama-server child must die with it
#      (PR_SET_PDEATHSIG), and `ollama-tuner resume` must finish the run.
#
# Environment:
#   E2E_PROFILE   release (default, what CI ships) or debug (quicker to build locally)
#   E2E_TRIALS    trials of the CLI run (default 8)
#   E2E_KEEP=1    keep the temporary state directory
# Budget: a few minutes on an idle 2-core machine, under 10 minutes on a loaded one (the
# release build itself takes minutes when the crate is not built yet).

set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd -P)

PROFILE=${E2E_PROFILE:-release}
TRIALS=${E2E_TRIALS:-8}
log() { printf '[e2e-llamacpp %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
T0=$SECONDS

command -v python3 >/dev/null || die "python3 is needed to check the journal"

log "step 1: engine and model (scripts/setup-llamacpp.sh)"
eval "$(scripts/setup-llamacpp.sh)"
export LLAMA_SERVER LLAMA_MODEL
log "LLAMA_SERVER=$LLAMA_SERVER"
log "LLAMA_MODEL=$LLAMA_MODEL"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/e2e-llamacpp.XXXXXX")
cleanup() {
    if [ "${E2E_KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

log "step 2: cargo test --test llamacpp_e2e (real engine)"
t=$SECONDS
cargo test --test llamacpp_e2e -- --nocapture --test-threads=1
log "step 2 passed in $((SECONDS - t)) s"

log "step 3: CLI run of search_spaces/llamacpp-gemma3-270m.toml ($TRIALS trials, $PROFILE build)"
t=$SECONDS
if [ "$PROFILE" = release ]; then
    cargo build --release --bin ollama-tuner
    BIN=$ROOT/target/release/ollama-tuner
else
    cargo build --bin ollama-tuner
    BIN=$ROOT/target/debug/ollama-tuner
fi
log "built $BIN in $((SECONDS - t)) s"
STATE=$TMP/state
t=$SECONDS
# Run from the temporary directory: the CLI copies the final report to ./reports/.
(cd "$TMP" && "$BIN" run --space "$ROOT/search_spaces/llamacpp-gemma3-270m.toml" \
    --state-dir "$STATE" --run-id e2e --trials "$TRIALS" --no-progress) \
    || die "ollama-tuner run exited with status $?"
log "CLI run took $((SECONDS - t)) s"

python3 - "$STATE/e2e" "$TRIALS" <<'EOF' || die "journal check"
import json, socket, sys
run, want = sys.argv[1], int(sys.argv[2])
lines = [l for l in open(f"{run}/trials.jsonl") if l.strip()]
assert len(lines) == want, f"trials.jsonl has {len(lines)} lines, expected {want}"
ok, ports = 0, set()
for line in lines:
    r = json.loads(line)
    args = r.get("notes", {}).get("llama_server_args") or []
    if "--port" in args:
        ports.add(int(args[args.index("--port") + 1]))
    if r["status"] == "ok":
        d = r["metrics"]["decode_tps"]["median"]
        assert d > 0, f"trial {r['trial']}: decode_tps {d}"
        assert all(s["decode_tps"] > 0 for s in r["samples"]), f"trial {r['trial']}: a sample without decode_tps"
        ok += 1
        print(f"trial {r['trial']:2d} ok      decode_tps {d:6.1f}  ttft {r['metrics']['ttft']['median']:.3f} s")
    else:
        assert r.get("error"), f"trial {r['trial']} failed without an error message"
        print(f"trial {r['trial']:2d} {r['failure']:<7} {r['error'].splitlines()[0][:90]}")
assert ok >= 1, "no trial succeeded"
meta = json.load(open(f"{run}/run.json"))
assert meta["backend"]["backend"] == "llamacpp", meta["backend"]
assert meta["stop_reason"] == "budget", meta.get("stop_reason")
for p in sorted(ports):
    s = socket.socket()
    s.settimeout(0.5)
    try:
        answered = s.connect_ex(("127.0.0.1", p)) == 0
    finally:
        s.close()
    assert not answered, f"port {p} of a llama-server the run started still answers"
print(f"journal ok: {want} trials, {ok} ok, engine {meta['backend'].get('server_version')}")
EOF

"$BIN" status "$STATE/e2e" | tee "$TMP/status.txt" || die "ollama-tuner status exited with status $?"
grep -q "trials: *$TRIALS trials.*(budget $TRIALS)" "$TMP/status.txt" || die "status does not report $TRIALS trials of a budget of $TRIALS"

log "step 4: kill -9 the tuner mid-trial: its llama-server must die with it (PR_SET_PDEATHSIG), and resume must finish the run"
(cd "$TMP" && exec "$BIN" run --space "$ROOT/search_spaces/llamacpp-gemma3-270m.toml" \
    --state-dir "$STATE" --run-id killed --trials 3 --no-progress) >"$TMP/killed.log" 2>&1 &
TUNER=$!
CHILD=
for _ in $(seq 1 600); do
    CHILD=$(pgrep -P "$TUNER" -f "llama-server.*--port" || true)
    [ -n "$CHILD" ] && break
    kill -0 "$TUNER" 2>/dev/null || break
    sleep 0.1
done
[ -n "$CHILD" ] || { cat "$TMP/killed.log" >&2; die "the tuner never started llama-server"; }
kill -KILL "$TUNER"
wait "$TUNER" 2>/dev/null || true
for _ in $(seq 1 50); do
    kill -0 "$CHILD" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$CHILD" 2>/dev/null; then
    kill -KILL "$CHILD" 2>/dev/null || true
    die "llama-server (pid $CHILD) outlived the killed tuner"
fi
log "llama-server pid $CHILD died with the tuner"
# --trials again: resume takes the budget from the frozen study file, not from the first
# command line.
(cd "$TMP" && "$BIN" resume "$STATE/killed" --trials 3 --no-progress) >>"$TMP/killed.log" 2>&1 \
    || { tail -n 20 "$TMP/killed.log" >&2; die "resume after kill -9 failed"; }
n=$(grep -c . "$STATE/killed/trials.jsonl")
[ "$n" = 3 ] || die "the resumed run has $n trials, expected 3"
log "resume finished the killed run (3 trials)"

log "all steps passed in $((SECONDS - T0)) s"
