#!/usr/bin/env bash
# check-sim-client.sh - start the Ollama simulator and check it with the OFFICIAL `ollama`
# Python client (scripts/check_sim_with_ollama_client.py). Exits with the check's status.
#
#   scripts/check-sim-client.sh
#   OLLAMA_TUNER_BIN=target/release/ollama-tuner scripts/check-sim-client.sh
#
# The server is, in order of preference:
#   * $OLLAMA_TUNER_BIN sim --port P --profile NAME --seed S --time-scale X   (when set)
#   * the example binary `sim_server`, built with `cargo build --example sim_server` in the
#     cargo profile $SIM_CARGO_PROFILE (default: release; "dev" reuses a debug build).
#
# Environment:
#   VENV        virtualenv to create/reuse        (default: target/py-sim-check)
#   PROFILE     simulator profile                 (default: gemma3-4b)
#   SEED        simulator seed                    (default: 1)
#   TIME_SCALE  simulator time scale              (default: 0.01)
#   PORT        TCP port                          (default: a free one)
#   PYTHON      interpreter that creates the venv (default: python3)
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-target/py-sim-check}
PROFILE=${PROFILE:-gemma3-4b}
SEED=${SEED:-1}
TIME_SCALE=${TIME_SCALE:-0.01}
PYTHON=${PYTHON:-python3}
SIM_CARGO_PROFILE=${SIM_CARGO_PROFILE:-release}

log() { printf 'check-sim-client: %s\n' "$*" >&2; }

# 1. A virtualenv with the official client (created once, reused afterwards).
if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import ollama, httpx' 2>/dev/null; then
    log "installing the ollama Python client into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check ollama httpx
fi
log "ollama client $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("ollama"))')"

# 2. The server command.
PORT=${PORT:-$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
SIM_ARGS=(--port "$PORT" --profile "$PROFILE" --seed "$SEED" --time-scale "$TIME_SCALE")
if [ -n "${OLLAMA_TUNER_BIN:-}" ]; then
    SERVER=("$OLLAMA_TUNER_BIN" sim "${SIM_ARGS[@]}")
else
    log "building the sim_server example (cargo profile $SIM_CARGO_PROFILE)"
    cargo build --quiet --profile "$SIM_CARGO_PROFILE" --example sim_server
    dir=$SIM_CARGO_PROFILE
    [ "$dir" = dev ] && dir=debug
    SERVER=("target/$dir/examples/sim_server" "${SIM_ARGS[@]}")
fi

# 3. Start it in the background; stop it (by its pid) however this script ends.
LOG=$(mktemp "${TMPDIR:-/tmp}/sim-server.XXXXXX.log")
log "starting: ${SERVER[*]} (log: $LOG)"
"${SERVER[@]}" >"$LOG" 2>&1 &
SERVER_PID=$!
cleanup() {
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

# 4. Wait until /api/version answers (or the server dies).
HOST="http://127.0.0.1:$PORT"
ready=0
for _ in $(seq 1 150); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "the server exited early; its log:"
        cat "$LOG" >&2
        exit 1
    fi
    if "$VENV/bin/python" -c "import httpx, sys; sys.exit(0 if httpx.get('$HOST/api/version', timeout=1).status_code == 200 else 1)" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.2
done
if [ "$ready" != 1 ]; then
    log "no answer from $HOST/api/version after 30 s; server log:"
    cat "$LOG" >&2
    exit 1
fi

# 5. The check itself.
status=0
"$VENV/bin/python" scripts/check_sim_with_ollama_client.py --host "$HOST" || status=$?
if [ "$status" != 0 ]; then
    log "check FAILED (status $status); server log: $LOG"
else
    rm -f "$LOG"
fi
exit "$status"
