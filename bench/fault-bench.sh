#!/usr/bin/env bash
# fault-bench.sh [ROUNDS=2] — dhtfs under faults and on real disks, measured.
#
# Part 1, disk vs tmpfs, side by side in one interleaved run: two 3-node
# rings (N=3/W=2/R=2), one with node data on tmpfs (/dev/shm), one on a
# disk directory ($DISK_ROOT, default /var/tmp), a dhtfs mount on each, then
# ../shared/bench/run-interleaved.sh ROUNDS over both (the fixed fio suite)
# with the ratio dhtfs_disk/dhtfs_tmpfs. PART1=0 skips it.
#
# Part 2, kills: a 5-node disk ring (N=3/W=2/R=2), one mount.
#   a) 4 KiB random writes with an fsync after each (fio, QD1, $LAT_S s), once
#      with every node up and once while one node is SIGKILLed and restarted
#      (killed 2 s in, restarted 5 s later): p50/p99/max completion latency of
#      both runs and their ratio.
#   b) $KILLS rounds: every round one node (in turn) is SIGKILLed, restarted
#      5 s later on its data directory, and the time until `dhtctl status`
#      shows under_replicated 0 is taken, while fio runs verify passes back to
#      back (--verify=crc32c --verify_fatal=1: 4 KiB random writes with fsync
#      every 32, and 1 MiB sequential; each block read back and checked).
#      Reports kills survived (all of them if no pass had an error, else 0),
#      bytes written and verified, and the drain time of each kill.
#
# Only processes it started are stopped (by PID); node data is thrown away.
# Output: RESULT lines (../shared/bench format) and a summary on stdout, raw
# fio json under $RESULTS_DIR/fault-bench-<timestamp>/.
#
# Environment: DISK_ROOT (/var/tmp), KILLS (4), LAT_S (20), ROUNDS via $1,
# BUILD_DIR (build/), RESULTS_DIR (/tmp/bench/results), KEEP=1 keeps scratch.
# Typical time: ~2 min per part-1 round (two dhtfs targets), ~2.5 min part 2.
set -euo pipefail
ROUNDS=${1:-2}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "usage: fault-bench.sh [ROUNDS]" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build
DHTFS_BIN=$BUILD_DIR/fs/dhtfs
DISK_ROOT=${DISK_ROOT:-/var/tmp}
KILLS=${KILLS:-4}
LAT_S=${LAT_S:-20}
PART1=${PART1:-1}
[ "$(id -u)" = 0 ] || { echo "fault-bench: needs root (FUSE mounts, drop_caches)" >&2; exit 2; }
for c in fio jq fusermount3; do command -v "$c" >/dev/null || { echo "fault-bench: $c missing" >&2; exit 2; }; done
bench_require fault-bench "$KVNODE" "$DHTCTL" "$DHTFS_BIN" "$FREEPORT"
case $(stat -f -c %T "$DISK_ROOT") in
tmpfs | ramfs) echo "fault-bench: DISK_ROOT=$DISK_ROOT is $(stat -f -c %T "$DISK_ROOT"), not a disk" >&2; exit 2 ;;
esac
bench_data_root
bench_tmpdir fltb "$DISK_ROOT"
SHM=$(mktemp -d "$DATA_ROOT/fltb-shm.XXXXXX")
RUN_DIR=$RESULTS_DIR/fault-bench-$(date +%Y%m%d-%H%M%S)
mkdir -p "$T/bin" "$RUN_DIR"
cp -p "$KVNODE" "$DHTCTL" "$DHTFS_BIN" "$T/bin/"
KVNODE=$T/bin/kvnode DHTCTL=$T/bin/dhtctl DHTFS_BIN=$T/bin/dhtfs
MOUNTS=()

# shellcheck disable=SC2317  # called from bench_cleanup
bench_pre_cleanup() {
    local m
    for m in "${MOUNTS[@]}"; do
        mountpoint -q "$m" || continue
        fusermount3 -u "$m" 2>/dev/null || umount -l "$m"
    done
    sleep 1
    rm -rf "$SHM"
}

# ring NAME N DIR: N kvnodes with data under DIR/NAME.K; sets
# RING_PORTS_<NAME>, RING_PIDS_<NAME> (arrays) and RING_EPS_<NAME>.
ring() {
    local name=$1 n=$2 dir=$3 i eps= p
    local -a ports pids
    mapfile -t ports < <("$FREEPORT" "$n")
    [ "${#ports[@]}" = "$n" ] || { echo "fault-bench: no free ports" >&2; exit 1; }
    for ((i = 0; i < n; i++)); do
        node_start "$name" "$i" "$dir" "${ports[$i]}" "${ports[0]}"
        pids[i]=$NODE_PID
        eps+=${eps:+,}tcp://127.0.0.1:${ports[$i]}
        sleep 0.2
    done
    for ((w = 0; ; w++)); do
        p=$("$DHTCTL" --peer "127.0.0.1:${ports[0]}" --timeout-ms 1000 ring --json 2>/dev/null | jq '.nodes | length' 2>/dev/null) || p=0
        [ "$p" = "$n" ] && break
        ((w < 300)) || { echo "fault-bench: ring $name did not form" >&2; exit 1; }
        sleep 0.1
    done
    declare -ga "RING_PORTS_$name=(${ports[*]})" "RING_PIDS_$name=(${pids[*]})"
    declare -g "RING_EPS_$name=$eps"
}
# node_start NAME I DIR PORT JOIN_PORT: one kvnode (joins unless it is JOIN_PORT).
node_start() {
    local name=$1 i=$2 dir=$3 port=$4 join=$5
    local args=(--listen "tcp://127.0.0.1:$port" --data "$dir/$name.$i" --log-level warn
        --replicas 3 --write-quorum 2 --read-quorum 2)
    [ "$port" = "$join" ] || args+=(--join "tcp://127.0.0.1:$join")
    "$KVNODE" "${args[@]}" </dev/null >>"$T/$name.$i.log" 2>&1 &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    TERM_PIDS["$NODE_PID"]=1
}
# mount_on EPS DIR: dhtfs -f on the ring; waits until mounted.
mount_on() {
    local eps=$1 mnt=$2
    mkdir -p "$mnt"
    "$DHTFS_BIN" --peer "$eps" -f "$mnt" </dev/null >"$T/dhtfs-$(basename "$mnt").log" 2>&1 &
    PIDS+=($!)
    TERM_PIDS[$!]=1
    MOUNTS+=("$mnt")
    for ((w = 0; w < 300; w++)); do
        mountpoint -q "$mnt" && return 0
        sleep 0.1
    done
    echo "fault-bench: dhtfs not mounted on $mnt" >&2
    exit 1
}
under_replicated() { # PORT
    "$DHTCTL" --peer "127.0.0.1:$1" --timeout-ms 3000 status --json 2>/dev/null | jq -r '.under_replicated' 2>/dev/null || echo '?'
}

echo "== fault-bench: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); disk $T ($(stat -f -c %T "$T")), tmpfs $SHM"
echo "   dhtfs $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"

# ---- part 1: the fio suite on a tmpfs ring and on a disk ring, interleaved
if [ "$PART1" = 1 ]; then
    ring shm 3 "$SHM"
    ring disk 3 "$T"
    mount_on "$RING_EPS_shm" "$T/mnt/shm"
    mount_on "$RING_EPS_disk" "$T/mnt/disk"
    RESULTS_DIR=$RUN_DIR/suite RATIOS="dhtfs_disk/dhtfs_tmpfs" "$SHARED/run-interleaved.sh" "$ROUNDS" \
        dhtfs_tmpfs="$T/mnt/shm" dhtfs_disk="$T/mnt/disk" || echo "!! run-interleaved.sh exited $?"
    for m in "$T/mnt/shm" "$T/mnt/disk"; do fusermount3 -u "$m"; done
    MOUNTS=()
    # shellcheck disable=SC2154  # set by ring()
    for p in "${RING_PIDS_shm[@]}" "${RING_PIDS_disk[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 3
    rm -rf "$SHM"/* "$T"/disk.* "$T"/shm.*
fi

# ---- part 2: kills on a 5-node disk ring
ring k 5 "$T"
# shellcheck disable=SC2154
PORTS=("${RING_PORTS_k[@]}") KPIDS=("${RING_PIDS_k[@]}")
M=$T/mnt/k
mount_on "$RING_EPS_k" "$M"
kill_node() { kill -KILL "${KPIDS[$1]}"; wait "${KPIDS[$1]}" 2>/dev/null || true; }
restart_node() {
    local via=0
    (($1 != 0)) || via=1
    node_start k "$1" "$T" "${PORTS[$1]}" "${PORTS[$via]}"
    KPIDS[$1]=$NODE_PID
}
lat_run() { # LABEL KILL(0|1)
    local label=$1 kill=$2 out=$RUN_DIR/lat-$1.json
    fio --name="lat_$label" --directory="$M" --filename="lat_$label" --rw=randwrite --bs=4k --size=64m \
        --ioengine=psync --fsync=1 --time_based --runtime="$LAT_S" --output-format=json --output="$out" &
    local fpid=$!
    if [ "$kill" = 1 ]; then
        sleep 2
        kill_node 4
        sleep 5
        restart_node 4
    fi
    local st=0
    wait "$fpid" || st=$?
    # A write(2) only dirties the client's cache; the fsync after it is what
    # reaches the replicas: its latency is the one reported (write(2) beside it).
    jq -r --arg l "$label" --arg st "$st" '.jobs[0] as $j | $j.sync.lat_ns as $f | $j.write.clat_ns as $w |
        "RESULT label=dhtfs_disk5 run=1 fstype=fuse test=write4k_fsync_\($l) unit=IOPS value=\($j.write.iops | floor)" +
        " lat_mean_us=\($f.mean / 1000 | floor) lat_p99_us=\($f.percentile["99.000000"] / 1000 | floor)" +
        " lat_p50_us=\($f.percentile["50.000000"] / 1000 | floor) lat_max_us=\($f.max / 1000 | floor)" +
        " write_p50_us=\($w.percentile["50.000000"] / 1000 | floor) write_p99_us=\($w.percentile["99.000000"] / 1000 | floor)" +
        " errors=\($j.error) fio_exit=\($st)"' "$out" | tee -a "$RUN_DIR/results.kv"
}
echo "== part 2a: 4 KiB writes with fsync, all nodes up vs one node killed and restarted"
lat_run steady 0
sleep 5
lat_run kill 1

echo "== part 2b: fio --verify=crc32c while a node is killed every round ($KILLS rounds)"
# The kills run in the background; fio runs size-bounded verify passes (write,
# then read back and check every block) one after the other until they end.
(
    for ((r = 0; r < KILLS; r++)); do
        k=$((1 + r % 4)) # node 0 is the mount's first peer: kill the others in turn
        sleep 5
        kill_node "$k"
        sleep 5
        restart_node "$k"
        echo "${KPIDS[$k]}" >"$T/restarted.$k"
        start=$EPOCHREALTIME d=timeout
        for ((w = 0; w < 60; w++)); do
            [ "$(under_replicated "${PORTS[0]}")" = 0 ] && { d=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}'); break; }
            sleep 0.5
        done
        echo "$d" >>"$T/drains"
        echo "   round $((r + 1)): node $k killed and restarted; under_replicated 0 after ${d}s"
    done
) &
KILLER=$!
PIDS+=("$KILLER")
pass=0 written=0 verified=0 errors=0 st=0
while kill -0 "$KILLER" 2>/dev/null; do
    pass=$((pass + 1))
    out=$RUN_DIR/verify-$pass.json
    st=0
    fio --directory="$M" --verify=crc32c --verify_fatal=1 --verify_state_save=0 --ioengine=psync \
        --output-format=json \
        --output="$out" --name=rand4k --rw=randwrite --bs=4k --size=24m --fsync=32 \
        --name=seq1m --rw=write --bs=1m --size=64m >/dev/null 2>>"$T/verify.err" || st=$?
    read -r w v e < <(jq -r '[([.jobs[].write.io_bytes] | add), ([.jobs[].read.io_bytes] | add),
        ([.jobs[].error] | add)] | @tsv' "$out" 2>/dev/null || echo "0 0 1")
    written=$((written + w)) verified=$((verified + v)) errors=$((errors + e + (st != 0)))
done
wait "$KILLER" || true
# the restarted nodes were started in the subshell: hand their PIDs to cleanup
for f in "$T"/restarted.*; do [ -e "$f" ] && PIDS+=("$(cat "$f")") && TERM_PIDS["$(cat "$f")"]=1; done
drains=$(paste -sd, "$T/drains" 2>/dev/null || echo none)
survived=$KILLS
((errors == 0)) || survived=0
echo "RESULT label=dhtfs_disk5 run=1 fstype=fuse test=kill_verify unit=kills value=$survived kills=$KILLS" \
    "passes=$pass written_MiB=$((written >> 20)) verified_MiB=$((verified >> 20)) errors=$errors drain_s=$drains" |
    tee -a "$RUN_DIR/results.kv"
[ -s "$T/verify.err" ] && { echo "   fio stderr:"; tail -n 5 "$T/verify.err" | sed 's/^/   /'; }
echo "== raw results: $RUN_DIR"
