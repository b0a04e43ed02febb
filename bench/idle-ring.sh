#!/usr/bin/env bash
# idle-ring.sh [ROUNDS=2] NAME=BUILD_DIR... — what a settled ring costs when
# nobody uses it: the requests its nodes serve each other per second
# (anti-entropy, stabilize, member probes), A/B between builds.
#
# For each round and each build (in turn, the order alternating by round):
# NODES (5) kvnodes at default settings (N=3/W=2/R=2, --stabilize-ms 250,
# token placement unless KVNODE_ARGS says otherwise) with --metrics, KEYS
# (2,000) puts of 1 KiB by the build's tests/kvload, SETTLE seconds (15) of
# quiet, then the sum over the nodes of `kvnode_requests_total` across SECS
# seconds (20), divided by SECS.
#
# Output: RESULT lines (../shared/bench format) and a table of medians.
# Environment: NODES, KEYS, SETTLE, SECS, KVNODE_ARGS (extra kvnode flags,
# e.g. "--tokens 0"), DATA_ROOT, KEEP=1. Example:
#   bench/idle-ring.sh 2 before=/tmp/before/build after=build
set -euo pipefail
ROUNDS=${1:-2}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] && [ $# -ge 2 ] ||
    { echo "usage: idle-ring.sh ROUNDS NAME=BUILD_DIR..." >&2; exit 2; }
shift
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build
NODES=${NODES:-5}
KEYS=${KEYS:-2000}
SETTLE=${SETTLE:-15}
SECS=${SECS:-20}
read -r -a EXTRA <<<"${KVNODE_ARGS:-}"
bench_data_root
bench_require idle-ring "$FREEPORT"
bench_tmpdir idle-ring "$DATA_ROOT"
command -v curl >/dev/null || { echo "idle-ring: needs curl" >&2; exit 2; }
NAMES=() DIRS=()
for spec in "$@"; do
    NAMES+=("${spec%%=*}")
    DIRS+=("$(cd "${spec#*=}" && pwd)")
    bench_require idle-ring "${DIRS[-1]}/kvnode/kvnode" "${DIRS[-1]}/kvnode/dhtctl" \
        "${DIRS[-1]}/tests/kvload"
done

# requests_now PORT...: the sum of kvnode_requests_total over the nodes' scrapes.
requests_now() {
    local p sum=0 v
    for p in "$@"; do
        v=$(curl -fsS "http://127.0.0.1:$p/metrics" |
            awk '/^kvnode_requests_total/ { s += $2 } END { printf "%d", s }')
        sum=$((sum + v))
    done
    echo "$sum"
}

# one NAME DIR ROUND: one ring of that build; prints requests per second.
one() {
    local name=$1 dir=$2 round=$3 i
    local -a ports node_pids=()
    mapfile -t ports < <("$FREEPORT" $((2 * NODES)))
    for ((i = 0; i < NODES; i++)); do
        local args=(--listen "tcp://127.0.0.1:${ports[$i]}" --data "$T/$name.$round.n$i.data"
            --metrics "127.0.0.1:${ports[$((NODES + i))]}" --log-level warn "${EXTRA[@]}")
        ((i > 0)) && args+=(--join "tcp://127.0.0.1:${ports[0]}")
        "$dir/kvnode/kvnode" "${args[@]}" </dev/null >"$T/$name.$round.n$i.log" 2>&1 &
        PIDS+=($!)
        node_pids+=($!)
        sleep 0.2
    done
    local ctl=("$dir/kvnode/dhtctl" --peer "127.0.0.1:${ports[0]}")
    for ((i = 0; i < 300; i++)); do
        [ "$("${ctl[@]}" ring --json 2>/dev/null | jq '.nodes | length' 2>/dev/null)" = "$NODES" ] && break
        sleep 0.1
    done
    "$dir/tests/kvload" --peer "tcp://127.0.0.1:${ports[0]}" --op put --size 1024 \
        --keys "$KEYS" --concurrency 8 --prefix idle --timeout-ms 4000 --label idle \
        --test idle >"$T/$name.$round.load" 2>&1
    sleep "$SETTLE"
    local scrape=("${ports[@]:NODES}") a b
    a=$(requests_now "${scrape[@]}")
    sleep "$SECS"
    b=$(requests_now "${scrape[@]}")
    kill -KILL "${node_pids[@]}" 2>/dev/null || true
    wait "${node_pids[@]}" 2>/dev/null || true
    rm -rf "$T/$name.$round".n*.data
    echo $(((b - a) / SECS))
}

declare -A RES=()
for ((r = 1; r <= ROUNDS; r++)); do
    order=()
    for ((k = 0; k < ${#NAMES[@]}; k++)); do order+=("$k"); done
    ((r % 2 == 0)) && mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
    for k in "${order[@]}"; do
        v=$(one "${NAMES[$k]}" "${DIRS[$k]}" "$r")
        echo "RESULT idle-ring build=${NAMES[$k]} round=$r requests_per_s=$v"
        RES[${NAMES[$k]}]+="$v "
    done
done
echo
echo "| build | requests/s (median of $ROUNDS) |"
echo "|---|---:|"
for name in "${NAMES[@]}"; do
    # shellcheck disable=SC2086  # a list of numbers
    med=$(printf '%s\n' ${RES[$name]} | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    echo "| $name | $med |"
done
