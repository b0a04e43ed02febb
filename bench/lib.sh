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

# bench_need NAME CMD...: exit 2 naming the first command missing from PATH.
bench_need() {
    local name=$1 c
    shift
    for c in "$@"; do
        command -v "$c" >/dev/null || {
            echo "$name: needs $c" >&2
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

# bench_keys DIR: CURVE keys for bench_ring_dhtfs_up's BENCH_KEYS: node0..2.key,
# client.key (and their .pub), peers.list, clients.list. Needs DHTCTL.
bench_keys() {
    local i
    mkdir -p "$1"
    for i in 0 1 2; do "$DHTCTL" keygen "$1/node$i.key" >/dev/null; done
    "$DHTCTL" keygen "$1/client.key" >/dev/null
    cat "$1"/node?.key.pub >"$1/peers.list"
    cp "$1/client.key.pub" "$1/clients.list"
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

# bench_ring_dhtfs_up NAME MOUNTPOINT: the benchmark ring and its mount, shared
# by fs-bench.sh and fs-work.sh so both measure the same setup: 3 kvnodes
# (--replicas 3 --write-quorum 2 --read-quorum 2, data under $T, ids pinned to
# k*2^64/3, logs $T/kvnode<i>.log), then $DHTFS_BIN --peer <all three> -f
# [-o $DHTFS_OPTS] MOUNTPOINT (log $T/dhtfs.log; kvnodes at --log-level
# ${KV_LOG_LEVEL:-warn}). Needs KVNODE, DHTCTL,
# DHTFS_BIN, FREEPORT and bench_tmpdir. Sets PORTS, EPS, KV_PIDS, DHTFS_PID;
# every process goes into PIDS (dhtfs into TERM_PIDS, so it can unmount).
# Exits 1 naming NAME if the ring does not converge or dhtfs does not mount.
# RING_TAG (default empty) prefixes the data dirs and logs, so a script can
# start two rings; with BENCH_KEYS=DIR (from bench_keys) the ring is secured
# with CURVE: node i runs with DIR/node<i>.key and the lists, dhtfs with
# DIR/client.key. BENCH_NODES=K (default 3; not with BENCH_KEYS) starts K
# nodes (ids k*2^64/K) with the same N=3/W=2/R=2, and BENCH_SETTLE_S=S
# waits S seconds before mounting: on a ring larger than N the authorities
# vouch for direct reads only once the copies have settled after the joins
# (some sync periods; the first ~15 s of a fresh 5-node ring read through
# the authorities).
bench_ring_dhtfs_up() {
    local name=$1 mnt=$2 i w args port json ep first='' dopts=() ctl_key=()
    local nodes=${BENCH_NODES:-3}
    if [ -n "${BENCH_KEYS:-}" ] && [ "$nodes" != 3 ]; then
        echo "$name: BENCH_KEYS (bench_keys) has keys for 3 nodes, not BENCH_NODES=$nodes" >&2
        exit 2
    fi
    # the address (with its key on a secured ring) of the node on port $1
    ep_of() { tr ',' '\n' <<<"$EPS" | grep -E "127\.0\.0\.1:$1(#|\$)" | head -n 1; }
    mapfile -t PORTS < <("$FREEPORT" "$nodes")
    EPS=
    KV_PIDS=()
    for ((i = 0; i < nodes; i++)); do
        args=(--listen "tcp://127.0.0.1:${PORTS[$i]}" --data "$T/${RING_TAG:-}n$i.data"
            --log-level "${KV_LOG_LEVEL:-warn}" --replicas 3 --write-quorum 2 --read-quorum 2)
        ep=tcp://127.0.0.1:${PORTS[$i]}
        if [ -n "${BENCH_KEYS:-}" ]; then
            args+=(--key "$BENCH_KEYS/node$i.key" --peer-keys "$BENCH_KEYS/peers.list"
                --client-keys "$BENCH_KEYS/clients.list")
            ep+="#$(cat "$BENCH_KEYS/node$i.key.pub")"
        fi
        ((i > 0)) && args+=(--join "$first")
        # shellcheck disable=SC2017  # 2^64/K without overflow, as kv-bench.sh
        args+=(--id "$(printf '0x%x' $((i * (0x7fffffffffffffff / nodes * 2 + 1))))")
        "$KVNODE" "${args[@]}" </dev/null >"$T/${RING_TAG:-}kvnode$i.log" 2>&1 &
        PIDS+=($!)
        KV_PIDS[i]=$!
        ((i > 0)) || first=$ep
        EPS+=${EPS:+,}$ep
        sleep 0.2
    done
    [ -n "${BENCH_KEYS:-}" ] && ctl_key=(--key "$BENCH_KEYS/client.key") && dopts+=(--key "$BENCH_KEYS/client.key")
    for ((w = 0; ; w++)); do
        # every node sees all nodes with consistent successor/predecessor
        local ok=1
        for port in "${PORTS[@]}"; do
            json=$("$DHTCTL" "${ctl_key[@]}" --peer "$(ep_of "$port")" --timeout-ms 1000 ring --json 2>/dev/null) || { ok=0; break; }
            jq -e --argjson n "$nodes" '.nodes as $a | ($a | length) == $n
                and all(range(0; $n); . as $i | $a[$i].succ == $a[($i + 1) % $n].id
                        and $a[$i].pred == $a[($i + $n - 1) % $n].id)' <<<"$json" >/dev/null || { ok=0; break; }
        done
        ((ok)) && break
        ((w < 300)) || { echo "$name: the $nodes-node ring did not converge within 30 s" >&2; exit 1; }
        sleep 0.1
    done
    sleep "${BENCH_SETTLE_S:-0}"
    [ -n "${DHTFS_OPTS:-}" ] && dopts+=(-o "$DHTFS_OPTS")
    "$DHTFS_BIN" --peer "$EPS" -f "${dopts[@]}" "$mnt" </dev/null >"$T/${RING_TAG:-}dhtfs.log" 2>&1 &
    DHTFS_PID=$!
    PIDS+=("$DHTFS_PID")
    TERM_PIDS["$DHTFS_PID"]=1
    for ((w = 0; ; w++)); do
        mountpoint -q "$mnt" && break
        kill -0 "$DHTFS_PID" 2>/dev/null || { echo "$name: dhtfs exited before mounting" >&2; exit 1; }
        ((w < 300)) || { echo "$name: dhtfs not mounted on $mnt within 30 s" >&2; exit 1; }
        sleep 0.1
    done
}

# bench_ab_rings_up WHAT NAME=BUILD_DIR...: for A/B scripts. Sets NAMES and
# BUILDS; for each build, under $T/NAME, copies its binaries (so a rebuild
# during the run does not matter) and brings up bench_ring_dhtfs_up's ring
# and mount on $T/NAME/mnt, then runs the caller's optional per-build hook
# `ab_after_up NAME MNT`. Unmounts them all on exit (bench_pre_cleanup).
bench_ab_rings_up() {
    local what=$1 spec i b top=$T
    shift
    NAMES=() BUILDS=()
    for spec in "$@"; do
        NAMES+=("${spec%%=*}")
        BUILDS+=("${spec#*=}")
    done
    # shellcheck disable=SC2317  # called from bench_cleanup
    bench_pre_cleanup() {
        local m
        for m in "$T"/*/mnt; do
            mountpoint -q "$m" 2>/dev/null && fusermount3 -u "$m" 2>/dev/null
        done
        return 0
    }
    for i in "${!NAMES[@]}"; do
        b=${BUILDS[$i]}
        bench_require "$what" "$b/kvnode/kvnode" "$b/fs/dhtfs" "$b/kvnode/dhtctl" "$b/tests/freeport"
        T=$top/${NAMES[$i]}
        mkdir -p "$T/mnt" "$T/bin"
        cp "$b/kvnode/kvnode" "$b/kvnode/dhtctl" "$b/fs/dhtfs" "$b/tests/freeport" "$T/bin/"
        # shellcheck disable=SC2034  # read by bench_ring_dhtfs_up
        KVNODE=$T/bin/kvnode DHTCTL=$T/bin/dhtctl DHTFS_BIN=$T/bin/dhtfs FREEPORT=$T/bin/freeport
        bench_ring_dhtfs_up "${NAMES[$i]}" "$T/mnt"
        if declare -F ab_after_up >/dev/null; then
            ab_after_up "${NAMES[$i]}" "$T/mnt"
        fi
    done
    T=$top
}

# ---- helpers of the A/B scripts (fs-rand-ab.sh, sqlite-ab.sh, work-ab.sh)

# bench_ab_args WHAT ROUNDS NARGS: exit 2 with the usage unless ROUNDS is a
# positive number and at least two NAME=BUILD_DIR arguments follow.
bench_ab_args() {
    if ! [[ $2 =~ ^[1-9][0-9]*$ ]] || (($3 < 2)); then
        echo "usage: $1.sh ROUNDS NAME=BUILD_DIR NAME=BUILD_DIR [...]" >&2
        exit 2
    fi
}

# bench_ab_order R: the indexes of NAMES in round R's order (reversed every
# other round), one per line.
bench_ab_order() {
    if (($1 % 2 == 0)); then
        printf '%s\n' "${!NAMES[@]}" | tac
    else
        printf '%s\n' "${!NAMES[@]}"
    fi
}

# bench_ab_col NAME COL: the median of column COL over NAME's lines of
# $T/results.txt (one line per build and round, the name first).
bench_ab_col() {
    awk -v n="$1" -v c="$2" '$1 == n {print $c}' "$T/results.txt" |
        sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

# bench_ab_list NAME COL: column COL of NAME's lines, comma-separated (load1 per round).
bench_ab_list() {
    awk -v n="$1" -v c="$2" '$1 == n {printf "%s%s", (k++ ? "," : ""), $c}' "$T/results.txt"
}

# bench_ab_exit_logs: unmount every build's dhtfs and give them time to write
# their exit logs (request counts, at -o log_level=info).
bench_ab_exit_logs() {
    local n
    for n in "${NAMES[@]}"; do
        fusermount3 -u "$T/$n/mnt"
    done
    sleep 2
}

# bench_ab_exit_log_print NAME: NAME's exit log (one line per FUSE request
# type and the mount's store totals), indented, under a "NAME: dhtfs exit
# log" heading; nothing when the mount did not log them (below level info).
bench_ab_exit_log_print() {
    grep -qE ' fs: .*requests, mean' "$T/$1/dhtfs.log" 2>/dev/null || return 0
    echo
    echo "$1: dhtfs exit log"
    echo
    sed -n 's/.* fs: \(.*requests, mean .*\|store operations: .*\|stat-ahead: .*\)/    \1/p' "$T/$1/dhtfs.log"
}

# bench_ab_req NAME KIND COL: from NAME's exit log, for FUSE requests of KIND,
# column COL of its line (6 count, 9 mean µs, 15 serial store round trips).
bench_ab_req() {
    awk -v k="$2" -v c="$3" '$4 == "fs:" && $5 == k {print $c}' "$T/$1/dhtfs.log" | tail -n 1
}
