#!/usr/bin/env bash
# fs-seq-ab.sh [ROUNDS=3] NAME=KVNODE[:DHTFS[:OPTS]] NAME=... [...] — what a
# sequential write and a cold sequential read through a mount cost the nodes,
# for several kvnode binaries side by side (the same dhtfs for all unless a
# variant names its own DHTFS binary and extra -o OPTS for it).
#
# Per round and binary: a fresh 3-node ring of that kvnode (bench/lib.sh
# bench_ring_dhtfs_up: N=3/W=2/R=2, data on tmpfs; BENCH_NODES and
# BENCH_SETTLE_S there for a larger ring) and build/fs/dhtfs mounted
# with -o cache_mb=16 (so the read reaches the nodes), then SIZE_MB of random
# data written with dd bs=1M conv=fsync, the page cache dropped (root), and
# the file read back with dd bs=1M. Around each step the nodes' CPU time
# (utime+stime, 10 ms ticks) and minor page faults are read from
# /proc/PID/stat. Binaries alternate within a round and their order is
# reversed every other round. Prints one line per run and the medians.
#
# Environment: BUILD_DIR (dhtfs, dhtctl, freeport; default build), SIZE_MB
# (default 256), DATA_ROOT (default /dev/shm if tmpfs).
set -euo pipefail
ROUNDS=${1:-3}
shift || true
[ $# -ge 2 ] || { echo "usage: fs-seq-ab.sh ROUNDS NAME=KVNODE NAME=KVNODE [...]" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build
DHTFS_BIN=$BUILD_DIR/fs/dhtfs
SIZE_MB=${SIZE_MB:-256}
bench_require fs-seq-ab "$DHTFS_BIN" "$DHTCTL" "$FREEPORT"
[ "$(id -u)" = 0 ] || { echo "fs-seq-ab: needs root (drop_caches)" >&2; exit 2; }
bench_data_root
bench_tmpdir fsseq "$DATA_ROOT"
NAMES=() BINS=() DFS=() DOPTS=()
for a in "$@"; do
    NAMES+=("${a%%=*}")
    IFS=: read -r kv dfs dop <<<"${a#*=}"
    BINS+=("$kv")
    DFS+=("${dfs:-$DHTFS_BIN}")
    DOPTS+=("${DHTFS_OPTS:-}${DHTFS_OPTS:+${dop:+,}}${dop:-}")
    for b in "$kv" "${dfs:-$DHTFS_BIN}"; do
        [ -x "$b" ] || { echo "fs-seq-ab: $b is not an executable" >&2; exit 2; }
    done
done
head -c "$((SIZE_MB << 20))" /dev/urandom >"$T/src"
DMNT=$T/mnt
mkdir -p "$DMNT"
# shellcheck disable=SC2317  # called from bench_cleanup
bench_pre_cleanup() {
    if mountpoint -q "$DMNT"; then fusermount3 -u "$DMNT" 2>/dev/null || umount -l "$DMNT"; fi
    return 0
}
sum_stat() { # FIELD PID...: the sum of /proc/PID/stat field FIELD (or utime+stime for "cpu")
    local f=$1 s=0 p
    shift
    for p in "$@"; do
        if [ "$f" = cpu ]; then s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat")))
        else s=$((s + $(awk -v f="$f" '{print $f}' "/proc/$p/stat"))); fi
    done
    echo "$s"
}
stop_ring() {
    fusermount3 -u "$DMNT"
    for _ in $(seq 100); do kill -0 "$DHTFS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${KV_PIDS[@]}" 2>/dev/null || true
    wait "${KV_PIDS[@]}" "$DHTFS_PID" 2>/dev/null || true
    PIDS=()
    rm -rf "$T"/n*.data
}
echo "== fs-seq-ab: $ROUNDS round(s), ${SIZE_MB} MiB, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A R=()
for ((r = 1; r <= ROUNDS; r++)); do
    order=$(seq 0 $(($# - 1)))
    ((r % 2 == 0)) && order=$(seq $(($# - 1)) -1 0)
    for i in $order; do
        KVNODE=${BINS[$i]} DHTFS_BIN=${DFS[$i]} DHTFS_OPTS=${DOPTS[$i]} bench_ring_dhtfs_up fs-seq-ab "$DMNT"
        c0=$(sum_stat cpu "${KV_PIDS[@]}") d0=$(sum_stat cpu "$DHTFS_PID") f0=$(sum_stat 10 "${KV_PIDS[@]}") t0=$EPOCHREALTIME
        wst=ok
        dd if="$T/src" of="$DMNT/f" bs=1M conv=fsync status=none || wst=FAILED
        t1=$EPOCHREALTIME c1=$(sum_stat cpu "${KV_PIDS[@]}") d1=$(sum_stat cpu "$DHTFS_PID") f1=$(sum_stat 10 "${KV_PIDS[@]}")
        sync
        echo 3 >/proc/sys/vm/drop_caches
        c2=$(sum_stat cpu "${KV_PIDS[@]}") d2=$(sum_stat cpu "$DHTFS_PID") f2=$(sum_stat 10 "${KV_PIDS[@]}") t2=$EPOCHREALTIME
        dd if="$DMNT/f" of=/dev/null bs=1M status=none
        t3=$EPOCHREALTIME c3=$(sum_stat cpu "${KV_PIDS[@]}") d3=$(sum_stat cpu "$DHTFS_PID") f3=$(sum_stat 10 "${KV_PIDS[@]}")
        n=${NAMES[$i]}
        line=$(awk -v s="$SIZE_MB" -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" \
            'BEGIN { printf "%.1f %.1f", s / (b - a), s / (d - c) }')
        read -r wmb rmb <<<"$line"
        printf '%-10s round %d: write %6s MiB/s (%s) nodes %4d ticks %7d faults client %4d ticks | read %6s MiB/s nodes %4d ticks %7d faults client %4d ticks | load %s\n' \
            "$n" "$r" "$wmb" "$wst" $((c1 - c0)) $((f1 - f0)) $((d1 - d0)) "$rmb" $((c3 - c2)) $((f3 - f2)) $((d3 - d2)) "$(cut -d' ' -f1 /proc/loadavg)"
        R[$n]+="$wmb $((c1 - c0)) $((f1 - f0)) $((d1 - d0)) $rmb $((c3 - c2)) $((f3 - f2)) $((d3 - d2))"$'\n'
        stop_ring
    done
done
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo "medians: name | write MiB/s, nodes ticks, faults, client ticks | read MiB/s, nodes ticks, faults, client ticks"
for n in "${NAMES[@]}"; do
    out=$n
    for col in 1 2 3 4 5 6 7 8; do out+=" $(printf '%s' "${R[$n]}" | awk -v c=$col 'NF {print $c}' | median)"; done
    echo "  $out"
done
