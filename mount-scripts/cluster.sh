#!/usr/bin/env bash
# cluster.sh start [N] | stop | status — a local N-node dhtfs ring on loopback.
#
# Nodes listen on tcp://127.0.0.1:BASE..BASE+N-1 (BASE=7000, so the default
# --peer of dhtctl and dhtfs reaches node 0). Data, logs and pid files live
# in DIR/nodeK (root: /var/lib/dhtfs/cluster, others:
# $XDG_DATA_HOME/dhtfs/cluster); restarting on the same DIR keeps the data.
#
# Environment: DHTFS_CLUSTER_DIR, DHTFS_BASE_PORT, DHTFS_BIN (dir holding
# kvnode and dhtctl), KVNODE_ARGS (extra flags, e.g. "--replicas 3").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${DHTFS_BIN:-}" ]; then
    bin=$DHTFS_BIN
elif [ -x "$here/../build/kvnode/kvnode" ]; then
    bin=$here/../build/kvnode
else
    bin=$(dirname "$(command -v kvnode || echo /usr/local/bin/kvnode)")
fi
if [ "$(id -u)" -eq 0 ]; then
    default_dir=/var/lib/dhtfs/cluster
else
    default_dir=${XDG_DATA_HOME:-$HOME/.local/share}/dhtfs/cluster
fi
dir=${DHTFS_CLUSTER_DIR:-$default_dir}
base=${DHTFS_BASE_PORT:-7000}

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

alive() {
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

start() {
    local n=${1:-3} i
    [[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 64)) || die "node count must be 1..64, got '$n'"
    [ -x "$bin/kvnode" ] || die "kvnode not found in $bin (build first, or set DHTFS_BIN)"
    mkdir -p "$dir"
    for ((i = 0; i < n; i++)); do
        local d=$dir/node$i port=$((base + i)) join=()
        mkdir -p "$d"
        if alive "$d/pid"; then
            echo "node$i already running (pid $(cat "$d/pid"))"
            continue
        fi
        if ((i > 0)); then
            join=(--join "tcp://127.0.0.1:$base")
        fi
        # shellcheck disable=SC2086
        setsid "$bin/kvnode" --listen "tcp://127.0.0.1:$port" "${join[@]}" --data "$d/data" \
            ${KVNODE_ARGS:-} </dev/null >>"$d/log" 2>&1 &
        echo $! >"$d/pid"
        echo "node$i: tcp://127.0.0.1:$port pid $! (log $d/log)"
        sleep 0.3
        kill -0 "$(cat "$d/pid")" 2>/dev/null || die "node$i exited at once; see $d/log"
    done
    # Wait until the ring has all nodes linked (bounded).
    for ((i = 0; i < 100; i++)); do
        local count
        count=$("$bin/dhtctl" --peer "tcp://127.0.0.1:$base" --timeout-ms 500 ring --json 2>/dev/null |
            grep -o '"addr"' | wc -l || true)
        if [ "$count" = "$n" ]; then
            echo "ring of $n nodes is up"
            return 0
        fi
        sleep 0.1
    done
    echo "cluster.sh: ring not yet converged to $n nodes; check 'cluster.sh status'" >&2
}

stop() {
    local any=0 f
    for f in "$dir"/node*/pid; do
        [ -f "$f" ] || continue
        if alive "$f"; then
            local pid
            pid=$(cat "$f")
            kill -TERM "$pid"
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
            echo "stopped $(basename "$(dirname "$f")") (pid $pid)"
            any=1
        fi
        rm -f "$f"
    done
    [ "$any" = 1 ] || echo "no node running under $dir"
}

status() {
    local f running=0
    for f in "$dir"/node*/pid; do
        [ -f "$f" ] || continue
        if alive "$f"; then
            echo "$(basename "$(dirname "$f")"): running (pid $(cat "$f"))"
            running=$((running + 1))
        else
            echo "$(basename "$(dirname "$f")"): stopped"
        fi
    done
    if ((running > 0)); then
        "$bin/dhtctl" --peer "tcp://127.0.0.1:$base" ring || true
    else
        echo "no node running under $dir"
        return 3
    fi
}

case "${1:-}" in
start) start "${2:-3}" ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: cluster.sh start [N] | stop | status" >&2
    exit 2
    ;;
esac
