# bench/lib.sh — what the bench scripts share (sourced): paths, the build
# check, the scratch directory with a cleanup trap for every process started,
# and building the small clients into BIN_DIR (nothing is added to CMake).
#
# After sourcing: HERE (bench/), ROOT (the repository), SHARED
# (../shared/bench). Processes a script starts go into PIDS; cleanup sends
# SIGKILL to them (their data is thrown away), except those also listed in
# TERM_PIDS (servers that should exit cleanly), which get SIGTERM and up to
# 3 s first. A function bench_pre_cleanup, if the script defines one, runs
# before any of that.

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=$(cd "$ROOT/../shared/bench" && pwd)

# bench_paths DEFAULT_BUILD_SUBDIR: BUILD_DIR, BIN_DIR, RESULTS_DIR and the
# binaries the scripts run (environment overrides win).
bench_paths() {
    BUILD_DIR=${BUILD_DIR:-$ROOT/$1}
    BIN_DIR=${BIN_DIR:-$BUILD_DIR/bench-bin}
    RESULTS_DIR=${RESULTS_DIR:-/tmp/bench/results}
    KVNODE=$BUILD_DIR/kvnode/kvnode
    DHTCTL=$BUILD_DIR/kvnode/dhtctl
    FREEPORT=$BUILD_DIR/tests/freeport
}

# bench_require NAME FILE...: exit 2 naming the first file missing.
bench_require() {
    local name=$1 f
    shift
    for f in "$@"; do
        [ -e "$f" ] || {
            echo "$name: $f missing; run scripts/build.sh $BUILD_DIR" >&2
            exit 2
        }
    done
}

# bench_data_root: DATA_ROOT = /dev/shm when it is tmpfs, else /tmp (unless set).
bench_data_root() {
    if [ -z "${DATA_ROOT:-}" ]; then
        DATA_ROOT=/tmp
        [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && DATA_ROOT=/dev/shm
    fi
}

bench_cleanup() {
    local rc=$? pid f
    trap - EXIT INT TERM
    # a script may define bench_pre_cleanup (unmount, stop what helper scripts
    # started) to run first, while the PIDs below are still alive
    if declare -F bench_pre_cleanup >/dev/null; then bench_pre_cleanup || true; fi
    exec 3>&2 2>/dev/null # no "Killed" job notices
    for pid in "${PIDS[@]}"; do
        if [ -n "${TERM_PIDS[$pid]:-}" ]; then
            kill -TERM "$pid" 2>/dev/null || true
        else
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    exec 2>&3 3>&-
    if [ "$rc" -ne 0 ]; then
        for f in "$T"/*.log; do
            [ -f "$f" ] && { echo "=== $f" >&2; tail -n 20 "$f" >&2; }
        done
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
    exit "$rc"
}

# bench_tmpdir PREFIX DIR: T = a fresh scratch dir, cleaned up on any exit.
bench_tmpdir() {
    T=$(mktemp -d "$2/$1.XXXXXX")
    PIDS=()
    declare -gA TERM_PIDS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# bench_build_kvload SRC_ROOT BUILD OUT: bench/kv-load.c against that tree's
# kvclient, rebuilt when a source or library is newer.
bench_build_kvload() {
    local src=$1 build=$2 out=$3
    if [ ! -x "$out" ] || [ "$HERE/kv-load.c" -nt "$out" ] ||
        [ "$build/kvnode/libkvio.a" -nt "$out" ] || [ "$build/ringlib/libring.a" -nt "$out" ]; then
        mkdir -p "$(dirname "$out")"
        cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -I "$src/kvnode" -I "$src/ringlib" -o "$out" \
            "$HERE/kv-load.c" "$build/kvnode/libkvio.a" "$build/ringlib/libring.a" \
            -lzmq -lsodium -lm
    fi
}

# bench_build_zmq_rtt OUT [SOURCE]: the shared ZeroMQ round-trip program.
bench_build_zmq_rtt() {
    local out=$1 src=${2:-$SHARED/zmq-rtt.c}
    if [ ! -x "$out" ] || [ "$src" -nt "$out" ]; then
        # shellcheck disable=SC2046  # pkg-config flags must split into words
        cc -O2 -Wall -o "$out" "$src" $(pkg-config --cflags --libs libzmq)
    fi
}
