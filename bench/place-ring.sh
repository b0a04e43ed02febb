#!/usr/bin/env bash
# place-ring.sh — balance and movement of placement on real rings (issue 11):
# for each placement (Chord successors, `--tokens 0`; token placement,
# `--tokens $TOKENS`), five kvnodes (N=3/W=2/R=2, ids from their endpoints
# as in any deployment), one dhtfs mount, SIZE_MB of files written through
# it (FILE_MB each, copies of one random file); then, once every copy is in
# place (status: no key under-replicated, exactly 3 copies of each):
#   max/mean   the largest node's stored bytes over the mean (dhtctl status
#              --json, per_node bytes)
# A sixth node joins; once the copies settle again:
#   moved      bytes the newcomer stores, over the ideal (its fair share,
#              1/6 of all stored bytes), and how many of the five old nodes
#              gave bytes
# Last, token placement with weights 1,1,1,1,2: the heavy node's bytes and
# primary keys over the mean of the others.
#
# Usage: bench/place-ring.sh [ROUNDS=1]. Environment: BUILD_DIR (default
# <repo>/build), SIZE_MB (1024), FILE_MB (16), TOKENS (64, kvnode's default), DATA_ROOT
# (/dev/shm when tmpfs), RESULTS_DIR (/tmp/bench/results: place-ring-<time>.md),
# SETTLE_S (300: the longest wait for copies to settle). Needs jq and
# /dev/fuse. Typical time: ~4 min per round at 1 GiB on 2 vCPUs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build
DHTFS_BIN=$BUILD_DIR/fs/dhtfs
bench_require place-ring.sh "$KVNODE" "$DHTCTL" "$DHTFS_BIN" "$FREEPORT"
ROUNDS=${1:-1}
SIZE_MB=${SIZE_MB:-1024}
FILE_MB=${FILE_MB:-16}
TOKENS=${TOKENS:-64}
SETTLE_S=${SETTLE_S:-300}
bench_data_root
bench_tmpdir place-ring "$DATA_ROOT"
MNT=
bench_pre_cleanup() {
    [ -n "$MNT" ] && fusermount3 -u "$MNT" 2>/dev/null || true
}
mkdir -p "$RESULTS_DIR"
OUT=$RESULTS_DIR/place-ring-$(date +%Y%m%d-%H%M%S).md
head -c $((FILE_MB << 20)) /dev/urandom >"$T/blob"

ctl() { "$DHTCTL" --timeout-ms 3000 "$@"; }

# ring_up TAG TOKENS WEIGHT... : one kvnode per weight; sets PORTS, NPIDS, EPS.
ring_up() {
    local tag=$1 tokens=$2 i=0 w args
    shift 2
    mapfile -t PORTS < <("$FREEPORT" 6)
    NPIDS=()
    EPS=
    for w in "$@"; do
        args=(--listen "tcp://127.0.0.1:${PORTS[$i]}" --data "$T/$tag.n$i.data" --log-level warn
            --weight "$w")
        args+=(--tokens "$tokens")
        ((i > 0)) && args+=(--join "tcp://127.0.0.1:${PORTS[0]}")
        "$KVNODE" "${args[@]}" </dev/null >"$T/$tag.n$i.log" 2>&1 &
        PIDS+=($!)
        NPIDS+=($!)
        EPS+=${EPS:+,}tcp://127.0.0.1:${PORTS[$i]}
        i=$((i + 1))
        sleep 0.3
    done
    for _ in $(seq 300); do
        [ "$(ctl --peer "127.0.0.1:${PORTS[0]}" status --json 2>/dev/null | jq '[.per_node[] | select(.keys != null)] | length')" = "$#" ] && return 0
        sleep 0.1
    done
    echo "place-ring: ring $tag did not form" >&2
    exit 1
}

# fill TAG: mount, write SIZE_MB of files, unmount (every byte is in the store).
fill() {
    local tag=$1 f
    MNT=$T/$tag.mnt
    mkdir -p "$MNT"
    "$DHTFS_BIN" --peer "$EPS" -f "$MNT" >"$T/$tag.dhtfs.log" 2>&1 &
    PIDS+=($!)
    local dpid=$!
    for _ in $(seq 100); do
        mountpoint -q "$MNT" && break
        sleep 0.1
    done
    mountpoint -q "$MNT" || { echo "place-ring: dhtfs did not mount" >&2; exit 1; }
    for ((f = 0; f < SIZE_MB / FILE_MB; f++)); do
        cp "$T/blob" "$MNT/f$f"
    done
    sync
    fusermount3 -u "$MNT"
    MNT=
    wait "$dpid" 2>/dev/null || true
}

# settle: until no key is under-replicated and every key has exactly 3 copies.
settle() {
    local s
    for ((s = 0; s < SETTLE_S * 5; s++)); do
        ctl --peer "127.0.0.1:${PORTS[0]}" status --json 2>/dev/null |
            jq -e '.keys > 0 and .under_replicated == 0 and .stored == 3 * .keys' >/dev/null && return 0
        sleep 0.2
    done
    echo "place-ring: copies did not settle within ${SETTLE_S}s" >&2
    ctl --peer "127.0.0.1:${PORTS[0]}" status >&2 || true
    exit 1
}

status_json() { ctl --peer "127.0.0.1:${PORTS[0]}" status --json; }

# ring_down TAG: stop ring TAG's nodes and free their data (3 copies of SIZE_MB).
ring_down() {
    local pid
    for pid in "${NPIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${NPIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$T/$1".n*.data
}

{
    echo "# place-ring $(date -u +%FT%TZ), $(git -C "$ROOT" rev-parse --short HEAD), SIZE_MB=$SIZE_MB FILE_MB=$FILE_MB TOKENS=$TOKENS"
    echo
    echo "| round | placement | max/mean bytes (5 nodes) | newcomer / ideal | nodes that gave | max/mean (6 nodes) | load1 |"
    echo "|---:|---|---:|---:|---:|---:|---:|"
} >"$OUT"
for ((r = 1; r <= ROUNDS; r++)); do
    for tokens in 0 "$TOKENS"; do
        tag=r$r.t$tokens
        ring_up "$tag" "$tokens" 1 1 1 1 1
        fill "$tag"
        settle
        before=$(status_json)
        ratio5=$(jq '[.per_node[].bytes] | max / (add / length)' <<<"$before")
        args=(--listen "tcp://127.0.0.1:${PORTS[5]}" --data "$T/$tag.n5.data" --log-level warn
            --join "tcp://127.0.0.1:${PORTS[0]}")
        args+=(--tokens "$tokens")
        "$KVNODE" "${args[@]}" </dev/null >"$T/$tag.n5.log" 2>&1 &
        PIDS+=($!)
        NPIDS+=($!)
        for _ in $(seq 300); do
            [ "$(status_json 2>/dev/null | jq '[.per_node[] | select(.keys != null)] | length')" = 6 ] && break
            sleep 0.1
        done
        sleep 2 # the copies move; settle() waits for the end of it
        settle
        after=$(status_json)
        newaddr=tcp://127.0.0.1:${PORTS[5]}
        moved=$(jq --arg a "$newaddr" '([.per_node[] | select(.addr == $a) | .bytes] | add)
            / (([.per_node[].bytes] | add) / 6)' <<<"$after")
        gave=$(jq -n --argjson b "$before" --argjson a "$after" '
            [$b.per_node[] as $o | $a.per_node[] | select(.addr == $o.addr and .bytes < $o.bytes)] | length')
        ratio6=$(jq '[.per_node[].bytes] | max / (add / length)' <<<"$after")
        name=$([ "$tokens" = 0 ] && echo "Chord successors" || echo "tokens $tokens")
        printf '| %d | %s | %.3f | %.3f | %d of 5 | %.3f | %s |\n' "$r" "$name" "$ratio5" "$moved" \
            "$gave" "$ratio6" "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$OUT"
        ring_down "$tag"
    done
    tag=r$r.w
    ring_up "$tag" "$TOKENS" 1 1 1 1 2
    fill "$tag"
    settle
    st=$(status_json)
    heavy=tcp://127.0.0.1:${PORTS[4]}
    jq -r --arg a "$heavy" --arg r "$r" '
        ([.per_node[] | select(.addr == $a)][0]) as $h
        | [.per_node[] | select(.addr != $a)] as $o
        | "weights 1,1,1,1,2 (round \($r)): heavy node bytes \($h.bytes / ([$o[].bytes] | add / length) * 1000 | round / 1000) x the mean of the others, primary keys \($h.primary / ([$o[].primary] | add / length) * 1000 | round / 1000) x"' \
        <<<"$st" | tee -a "$OUT"
    ring_down "$tag"
done
echo "results: $OUT"
