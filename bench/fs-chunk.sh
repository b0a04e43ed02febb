#!/usr/bin/env bash
# fs-chunk.sh [ROUNDS=2] [CHUNK_KB...] — how the chunk size of a volume
# trades sequential throughput against small random writes.
#
# Mounts dhtfs on its embedded default (a private 3-node ring, data on tmpfs
# in a scratch dir). For each round and each chunk size (default 16 32 64 128
# 1024 KiB, in rotating order) it makes a fresh volume with that chunk size
# and runs on it: fio seq write 1 MiB x SEQ_SIZE (end_fsync), cold seq read
# (drop_caches), 4 KiB random writes over the first half with fsync every
# 32 writes for RUNTIME s — the same jobs as ../shared/bench/fio-suite.sh.
# Prints one line per run and the medians per chunk size.
# Environment: BUILD_DIR (default build/), SCRATCH (/dev/shm), SEQ_SIZE (512M),
# RUNTIME (8).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_paths build
ROUNDS=${1:-2}
shift || true
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(16 32 64 128 1024)
SEQ_SIZE=${SEQ_SIZE:-512M}
RUNTIME=${RUNTIME:-8}
DHTFS=$BUILD_DIR/fs/dhtfs
bench_require dhtfs "$DHTFS" "$KVNODE"
command -v fio >/dev/null && command -v jq >/dev/null || { echo "fs-chunk: needs fio and jq" >&2; exit 2; }
T=$(mktemp -d "${SCRATCH:-/dev/shm}/fschunk.XXXXXX")
M=$T/mnt
mkdir -p "$M"
MPID=
cleanup_chunk() {
    cd /
    local d
    for d in "$T/mnt2" "$M"; do
        if mountpoint -q "$d"; then fusermount3 -u "$d" || umount -l "$d" || true; fi
    done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup_chunk EXIT
# The ring outlives the volumes: a first mount starts it, each run mounts a new volume on it.
DHTFS_DATA_DIR=$T/data "$DHTFS" -f "$M" >"$T/embedded.log" 2>&1 &
for _ in $(seq 100); do mountpoint -q "$M" && break; sleep 0.1; done
mountpoint -q "$M" || { cat "$T/embedded.log" >&2; exit 1; }
# The embedded ring is secured: each address carries the nodes' public key, and mounts present
# the embedded client key.
NODE_PUB=$(cat "$T/data/keys/node.key.pub")
PEERS=$(awk -v k="$NODE_PUB" '/^node/ {printf "%stcp://127.0.0.1:%s#%s", (n++ ? "," : ""), $3, k}' "$T/data/ring.conf")
mkdir -p "$T/mnt2"
RES=$T/results
: >"$RES"
fio_json() { fio --output-format=json --ioengine=psync --filename="$T/mnt2/f" "$@"; }
for ((r = 0; r < ROUNDS; r++)); do
    for ((k = 0; k < ${#SIZES[@]}; k++)); do
        c=${SIZES[$(((k + r) % ${#SIZES[@]}))]}
        "$DHTFS" --peer "$PEERS" --key "$T/data/keys/client.key" --volume "c${c}r$r" -f \
            -o chunk_kb="$c" "$T/mnt2" >"$T/m.log" 2>&1 &
        MPID=$!
        for _ in $(seq 100); do mountpoint -q "$T/mnt2" && break; sleep 0.1; done
        mountpoint -q "$T/mnt2" || { cat "$T/m.log" >&2; exit 1; }
        w=$(fio_json --name=w --rw=write --bs=1M --size="$SEQ_SIZE" --end_fsync=1 | jq '.jobs[0].write.bw_bytes/1048576|round')
        sync
        echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
        rd=$(fio_json --name=r --rw=read --bs=1M --size="$SEQ_SIZE" | jq '.jobs[0].read.bw_bytes/1048576|round')
        rw=$(fio_json --name=rw --rw=randwrite --bs=4k --size=$(( ${SEQ_SIZE%M} / 2 ))M --fsync=32 \
            --time_based --runtime="$RUNTIME" | jq '.jobs[0].write.iops|round')
        rm -f "$T/mnt2/f"
        fusermount3 -u "$T/mnt2"
        wait "$MPID" || true
        MPID=
        echo "round=$r chunk_kb=$c seqwrite_MiBps=$w seqread_MiBps=$rd randwrite_iops=$rw load1=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$RES"
    done
done
echo
echo "| chunk | seq write MiB/s | seq read MiB/s | 4 KiB rand write IOPS (fsync/32) |"
echo "|---:|---:|---:|---:|"
for c in "${SIZES[@]}"; do
    med() { grep " chunk_kb=$c " "$RES" | sed "s/.* $1=\([0-9]*\).*/\1/" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
    echo "| $c KiB | $(med seqwrite_MiBps) | $(med seqread_MiBps) | $(med randwrite_iops) |"
done
