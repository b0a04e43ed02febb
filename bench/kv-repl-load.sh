#!/usr/bin/env bash
# kv-repl-load.sh — does replication keep up while the machine is busy?
#
# Starts a 3-node ring (N=3/W=2/R=2, the kvnode defaults: --stabilize-ms 250,
# --timeout-ms 1000) with its data on a disk (DATA_ROOT, default /var/tmp, not
# tmpfs: the group commit's fsync is part of what is measured), then a
# background load that competes for the 2 cores and the disk: LOAD_CPU shell
# spinners and LOAD_DISK loops of `dd bs=1M count=64 conv=fsync`. With that
# load running it writes with bench/kv-load (put, SIZE bytes, CONC in
# flight, KEYS keys, SECS seconds, --timeout-ms CLIENT_TIMEOUT_MS like
# dhtfs's default). If STOP_S > 0, one replica is SIGSTOPped for STOP_S
# seconds in the middle of the write load. Then the background load stops
# and `dhtctl status` is polled every 0.25 s until under_replicated is 0 (at
# most DRAIN_MAX s).
#
# Prints one RESULT line:
#   RESULT test=repl_load errors=.. timeouts=.. ops=.. lat_p50_us=..
#     lat_p99_us=.. max_under_during=.. max_missing_during=..
#     under_missing_at_stop=U/M drain_s=.. peers_failed=..
# (under: STATS under_replicated summed over the ring; missing: the true
# number of missing copies, 3 x keys - stored copies, sampled once a second
# during the load; drain_s: from the end of the load until both are 0.)
# (peers_failed: "peer ... failed" / "successor ... failed" lines in the
# nodes' logs — how often a busy node was taken for a dead one).
#
# Environment: BUILD_DIR (default <repo>/build), DATA_ROOT, SECS=30,
# CONC=32, SIZE=4096, KEYS=200000, LOAD_CPU=2, LOAD_DISK=1, STOP_S=0,
# DRAIN_MAX=120, CLIENT_TIMEOUT_MS=2000, KEEP=1 keeps the dir.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build
SECS=${SECS:-30}
CONC=${CONC:-32}
SIZE=${SIZE:-4096}
KEYS=${KEYS:-200000}
LOAD_CPU=${LOAD_CPU:-2}
LOAD_DISK=${LOAD_DISK:-1}
STOP_S=${STOP_S:-0}
DRAIN_MAX=${DRAIN_MAX:-120}
CLIENT_TIMEOUT_MS=${CLIENT_TIMEOUT_MS:-2000}
DATA_ROOT=${DATA_ROOT:-/var/tmp}
bench_require kv-repl-load "$KVNODE" "$DHTCTL" "$FREEPORT" "$BUILD_DIR/kvnode/libkvio.a"
bench_tmpdir dhtfs-repl-load "$DATA_ROOT"
KL=$BIN_DIR/kv-load
bench_build_kvload "$ROOT" "$BUILD_DIR" "$KL"

mapfile -t ports < <("$FREEPORT" 3)
NODE_PIDS=()
for i in 0 1 2; do
    args=(--listen "tcp://127.0.0.1:${ports[$i]}" --data "$T/n$i.data" --log-level info)
    ((i > 0)) && args+=(--join "tcp://127.0.0.1:${ports[0]}")
    "$KVNODE" "${args[@]}" 2>"$T/n$i.log" &
    PIDS+=($!)
    NODE_PIDS+=($!)
    TERM_PIDS[$!]=1
    sleep 0.3
done
peer=tcp://127.0.0.1:${ports[0]}
for _ in $(seq 100); do
    [ "$("$DHTCTL" --peer "$peer" ring --json 2>/dev/null | jq '.nodes | length')" = 3 ] && break
    sleep 0.2
done

load_pids=()
stop_load() {
    local p
    for p in "${load_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "${load_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    load_pids=()
    rm -f "$T"/dd.*
}
bench_pre_cleanup() { stop_load; }
for ((i = 0; i < LOAD_CPU; i++)); do
    (while :; do :; done) &
    load_pids+=($!)
done
for ((i = 0; i < LOAD_DISK; i++)); do
    (while :; do dd if=/dev/zero of="$T/dd.$i" bs=1M count=64 conv=fsync status=none; done) &
    load_pids+=($!)
done

if ((STOP_S > 0)); then
    (
        sleep $((SECS / 2))
        kill -STOP "${NODE_PIDS[2]}"
        sleep "$STOP_S"
        kill -CONT "${NODE_PIDS[2]}"
    ) &
    stopper=$!
fi
# Sample the ring once a second during the load: reported under_replicated
# and the true shortfall (3 nodes, N=3: every node should hold every key, so
# missing copies = 3 x keys - stored copies).
(
    while :; do
        "$DHTCTL" --peer "$peer" --timeout-ms 5000 status --json 2>/dev/null |
            jq -r '"\(.under_replicated) \(3 * .keys - .stored)"' || true
        sleep 1
    done
) >"$T/samples" &
sampler=$!
load_pids+=($sampler)
st=0
"$KL" --peer "$peer" --op put --size "$SIZE" --keys "$KEYS" --concurrency "$CONC" \
    --seconds "$SECS" --timeout-ms "$CLIENT_TIMEOUT_MS" --label dhtfs --test repl_load \
    >"$T/kvload.out" 2>"$T/kvload.err" || st=$?
[ -n "${stopper:-}" ] && wait "$stopper"
stop_load
grep -q '^RESULT' "$T/kvload.out" || {
    cat "$T/kvload.err" >&2
    exit 1
}
res=$(grep '^RESULT' "$T/kvload.out")
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$res"; }

max_under=$(awk 'BEGIN{m=0} $1>m{m=$1} END{print m}' "$T/samples")
max_missing=$(awk 'BEGIN{m=0} $2>m{m=$2} END{print m}' "$T/samples")
# "under missing": reported, and true missing copies
under() { "$DHTCTL" --peer "$peer" status --json 2>/dev/null | jq -r '"\(.under_replicated) \(3 * .keys - .stored)"'; }
t0=$(date +%s.%N)
u0=$(under)
drain=timeout
for _ in $(seq $((DRAIN_MAX * 4))); do
    if [ "$(under)" = "0 0" ]; then
        drain=$(echo "$(date +%s.%N) - $t0" | bc)
        break
    fi
    sleep 0.25
done
failed=$(cat "$T"/n*.log | grep -cE '(peer|successor) [0-9a-f]+ failed' || true)
echo "RESULT test=repl_load secs=$SECS conc=$CONC size=$SIZE stop_s=$STOP_S" \
    "ops=$(field n) errors=$(field errors) timeouts=$(field timeouts)" \
    "lat_p50_us=$(field lat_p50_us) lat_p99_us=$(field lat_p99_us)" \
    "max_under_during=$max_under max_missing_during=$max_missing" \
    "under_missing_at_stop=${u0// /\/} drain_s=$drain peers_failed=$failed kvload_exit=$st"
