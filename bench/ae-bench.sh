#!/usr/bin/env bash
# ae-bench.sh [ROUNDS=2] NAME=BUILD_DIR... — what anti-entropy costs a ring
# that holds many keys while it is being written, A/B between builds.
#
# For each round and each build (in turn, the order alternating by round):
# a 3-node ring (N=3/W=2/R=2, kvnode defaults: anti-entropy every 2 s) with
# data on DATA_ROOT (tmpfs by default); KEYS keys of 128 bytes loaded and
# replicated (under_replicated 0); then SECS seconds of 1 KiB puts to other
# keys (kv-load, CONC in flight). During those seconds the replicas' range
# digests rarely agree (writes are in flight), so each anti-entropy round
# finds a difference: a build that offers the whole range then streams
# every stored key, one that narrows by sub-range digests only the spans
# the load touched. Measured: puts/s of the load, the nodes' CPU seconds
# (utime+stime from /proc) over it, and the keys offered (the nodes' "sync
# to" log lines, where the build logs them).
#
# Output: RESULT lines (../shared/bench format) and a table of medians.
# Environment: KEYS (300000), SECS (20), CONC (16), DATA_ROOT, KEEP=1.
# Example: ae-bench.sh 2 before=/tmp/ae/before-build after=build
set -euo pipefail
ROUNDS=${1:-2}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] && [ $# -ge 2 ] ||
    { echo "usage: ae-bench.sh ROUNDS NAME=BUILD_DIR..." >&2; exit 2; }
shift
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build
KEYS=${KEYS:-300000}
SECS=${SECS:-20}
CONC=${CONC:-16}
bench_data_root
bench_require ae-bench "$FREEPORT"
bench_tmpdir ae-bench "$DATA_ROOT"
NAMES=() DIRS=()
for spec in "$@"; do
    name=${spec%%=*} dir=$(cd "${spec#*=}" && pwd)
    bench_require ae-bench "$dir/kvnode/kvnode" "$dir/kvnode/dhtctl" "$dir/kvnode/libkvio.a"
    mkdir -p "$T/bin-$name"
    cp -p "$dir/kvnode/kvnode" "$dir/kvnode/dhtctl" "$T/bin-$name/"
    # kv-load linked with that build's client library (this tree's headers:
    # the kvclient API it uses is the same in the builds compared).
    bench_build_kvload "$ROOT" "$dir" "$T/bin-$name/kv-load"
    NAMES+=("$name") DIRS+=("$dir")
done

cpu_ticks() { # sum of utime+stime of the given pids
    local p sum=0 f
    for p in "$@"; do
        read -ra f <"/proc/$p/stat"
        sum=$((sum + f[13] + f[14]))
    done
    echo "$sum"
}

# one NAME ROUND: one ring of that build, loaded, measured, stopped.
one() {
    local name=$1 run=$2 bin=$T/bin-$1 d=$T/$1-$2 i peer
    local -a ports pids=()
    mkdir -p "$d"
    mapfile -t ports < <("$FREEPORT" 3)
    for i in 0 1 2; do
        local args=(--listen "tcp://127.0.0.1:${ports[$i]}" --data "$d/n$i.data" --log-level info)
        ((i > 0)) && args+=(--join "tcp://127.0.0.1:${ports[0]}")
        "$bin/kvnode" "${args[@]}" 2>"$d/n$i.log" &
        PIDS+=($!) pids+=($!)
        sleep 0.3
    done
    peer=tcp://127.0.0.1:${ports[0]}
    for _ in $(seq 100); do
        [ "$("$bin/dhtctl" --peer "$peer" ring --json 2>/dev/null | jq '.nodes | length')" = 3 ] && break
        sleep 0.1
    done
    local eps=tcp://127.0.0.1:${ports[0]},tcp://127.0.0.1:${ports[1]},tcp://127.0.0.1:${ports[2]}
    "$bin/kv-load" --peer "$eps" --op put --size 128 --keys "$KEYS" --ops "$KEYS" \
        --concurrency 64 --prefix base --label "$name" >"$d/preload.out" 2>&1 ||
        { echo "ae-bench: preload of $name failed: $(tail -n 3 "$d/preload.out")" >&2; exit 1; }
    local t0=$SECONDS under=1
    while ((SECONDS - t0 < 180)); do
        under=$("$bin/dhtctl" --peer "$peer" status --json 2>/dev/null | jq '.under_replicated') || under=1
        [ "$under" = 0 ] && break
        sleep 0.5
    done
    [ "$under" = 0 ] || { echo "ae-bench: $name did not drain after the preload" >&2; exit 1; }
    sleep 3 # one more anti-entropy round on a quiet ring
    for i in 0 1 2; do echo "--- load starts" >>"$d/n$i.log"; done
    local c0 c1 hz
    hz=$(getconf CLK_TCK)
    c0=$(cpu_ticks "${pids[@]}")
    "$bin/kv-load" --peer "$eps" --op put --size 1024 --keys 50000 --seconds "$SECS" \
        --concurrency "$CONC" --prefix hot --label "$name" --run "$run" \
        --test "put_1KiB_c${CONC}_over_${KEYS}" >"$d/load.out" 2>&1 ||
        { echo "ae-bench: load of $name failed: $(tail -n 3 "$d/load.out")" >&2; exit 1; }
    c1=$(cpu_ticks "${pids[@]}")
    local offered syncs ops
    offered=$(cat "$d"/n*.log | sed -n '/--- load starts/,$p' | grep -o '[0-9]* offered' |
        awk '{s += $1} END {print s + 0}')
    syncs=$(cat "$d"/n*.log | sed -n '/--- load starts/,$p' | grep -c 'sync to' || true)
    ops=$(grep -o 'value=[0-9.]*' "$d/load.out" | head -n 1 | cut -d= -f2)
    local cpu
    cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}')
    grep '^RESULT' "$d/load.out"
    echo "RESULT label=$name run=$run fstype=- test=node_cpu_during_load unit=s value=$cpu" \
        "offered=$offered syncs_logged=$syncs puts_per_s=$ops keys=$KEYS load1=$(cut -d' ' -f1 /proc/loadavg)"
    for i in 0 1 2; do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
    for i in 0 1 2; do wait "${pids[$i]}" 2>/dev/null || true; done
    [ "${KEEP:-0}" = 1 ] || rm -rf "$d"
}

out=$T/results.txt
for ((r = 1; r <= ROUNDS; r++)); do
    order=("${!NAMES[@]}")
    ((r % 2 == 0)) && order=($(printf '%s\n' "${order[@]}" | tac))
    for k in "${order[@]}"; do
        echo "== round $r: ${NAMES[$k]}" >&2
        one "${NAMES[$k]}" "$r" | tee -a "$out"
    done
done
echo
echo "| build | puts/s (median) | node CPU s over ${SECS}s (median) | CPU ms per put | keys offered (median) |"
echo "|---|---:|---:|---:|---:|"
for name in "${NAMES[@]}"; do
    grep "label=$name " "$out" | grep 'test=node_cpu' | awk '{
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        print v["value"], v["puts_per_s"], v["offered"] }' | sort -n >"$T/m-$name"
    n=$(wc -l <"$T/m-$name")
    mid=$(((n + 1) / 2))
    read -r cpu ops offered < <(sed -n "${mid}p" "$T/m-$name")
    awk -v n="$name" -v c="$cpu" -v o="$ops" -v f="$offered" -v s="$SECS" \
        'BEGIN {printf "| %s | %.0f | %.2f | %.3f | %s |\n", n, o, c, (o > 0 ? c * 1000 / (o * s) : 0), f}'
done
