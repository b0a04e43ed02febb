#!/usr/bin/env bash
# fs-rand-ab.sh [ROUNDS=3] NAME=BUILD_DIR NAME=BUILD_DIR [...] — A/B of builds
# (kvnode + dhtfs) on small random I/O through a mount, the fio suite's
# random jobs: for each build, the benchmark ring and mount of
# bench_ring_dhtfs_up (lib.sh: 3 kvnodes N=3/W=2/R=2 on tmpfs, one dhtfs),
# all up side by side, each with a RAND_SIZE file written sequentially once.
# Then ROUNDS rounds in which every build in turn (order reversed every other
# round) runs fio 4 KiB random writes (psync, buffered, fsync every 32) and
# 4 KiB random reads (O_DIRECT), RUNTIME s each, as
# ../shared/bench/fio-suite.sh does. Prints per build the median IOPS, the
# median fsync latency, and each build's ratio to the first.
#
# AGED_MB=N: before its file, each ring writes and deletes N MiB, as the fio
# suite's later rounds find it after the earlier rounds deleted their files
# (the nodes' data files then hold mostly free pages: the LMDB free-list
# slide, docs/BENCHMARKS.md).
#
# Environment: RUNTIME=8, RAND_SIZE=256M, AGED_MB=0, DATA_ROOT (default /dev/shm if
# tmpfs), RESULTS_DIR (default /tmp/bench/results; fs-rand-ab-<time>.md),
# DHTFS_OPTS (passed to each mount), KEEP=1 keeps the scratch dir.
# Typical time: ~20 s per build per round, plus ~15 s setup each.
set -euo pipefail
ROUNDS=${1:-3}
shift || true
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_ab_args fs-rand-ab "$ROUNDS" $#
bench_paths build
RUNTIME=${RUNTIME:-8}
RAND_SIZE=${RAND_SIZE:-256M}
AGED_MB=${AGED_MB:-0}
[[ $AGED_MB =~ ^[0-9]+$ ]] || { echo "fs-rand-ab: AGED_MB must be a number of MiB" >&2; exit 2; }
bench_need fs-rand-ab fio jq
bench_data_root
bench_tmpdir fs-rand-ab "$DATA_ROOT"
mkdir -p "$RESULTS_DIR"

# each build's ring gets a RAND_SIZE file, written sequentially once (after
# AGED_MB written and deleted)
ab_after_up() {
    if ((AGED_MB > 0)); then
        dd if=/dev/zero of="$2/aged" bs=1M count="$AGED_MB" conv=fsync status=none
        rm "$2/aged"
    fi
    fio --name=fill --ioengine=psync --filename="$2/f" --rw=write --bs=1M \
        --size="$RAND_SIZE" --end_fsync=1 --output-format=terse >/dev/null
}
bench_ab_rings_up fs-rand-ab "$@"

rfio() { fio --name="$1" --ioengine=psync --filename="$2" --bs=4k --size="$RAND_SIZE" \
    --time_based --runtime="$RUNTIME" --output-format=json "${@:3}"; }
for ((r = 1; r <= ROUNDS; r++)); do
    mapfile -t order < <(bench_ab_order "$r")
    for i in "${order[@]}"; do
        f=$T/${NAMES[$i]}/mnt/f
        w=$(rfio rw "$f" --rw=randwrite --fsync=32 |
            jq -r '"\(.jobs[0].write.iops|round) \(.jobs[0].sync.lat_ns.mean/1000|round)"')
        rd=$(rfio rr "$f" --rw=randread --direct=1 | jq -r '.jobs[0].read.iops|round')
        echo "${NAMES[$i]} $w $rd $(cut -d' ' -f1 /proc/loadavg)" >>"$T/results.txt"
        echo "round $r ${NAMES[$i]}: randwrite IOPS, fsync us, randread IOPS, load1: $w $rd" >&2
    done
done

out=$RESULTS_DIR/fs-rand-ab-$(date +%Y%m%d-%H%M%S).md
{
    echo "ROUNDS=$ROUNDS RUNTIME=$RUNTIME RAND_SIZE=$RAND_SIZE AGED_MB=$AGED_MB DHTFS_OPTS=${DHTFS_OPTS:-} (medians of rounds)"
    echo
    echo "| build | randwrite IOPS (fsync/32) | fsync mean, us | randread IOPS (direct) | randwrite / ${NAMES[0]} | randread / ${NAMES[0]} | load1 |"
    echo "|---|---:|---:|---:|---:|---:|---|"
    w0=$(bench_ab_col "${NAMES[0]}" 2)
    r0=$(bench_ab_col "${NAMES[0]}" 4)
    for n in "${NAMES[@]}"; do
        w=$(bench_ab_col "$n" 2)
        s=$(bench_ab_col "$n" 3)
        rd=$(bench_ab_col "$n" 4)
        l=$(bench_ab_list "$n" 5)
        printf '| %s | %.0f | %.0f | %.0f | %.2f | %.2f | %s |\n' "$n" "$w" "$s" "$rd" \
            "$(echo "$w / $w0" | bc -l)" "$(echo "$rd / $r0" | bc -l)" "$l"
    done
} | tee "$out"
