#!/usr/bin/env bash
# fs-curve-ab.sh [ROUNDS=3] — the cost of CURVE on the filesystem: the fixed
# fio suite (../shared/bench/fio-suite.sh through run-interleaved.sh) on two
# dhtfs mounts of the same build side by side, one on a plain 3-node ring and
# one on a secured one (node keys, a client key, peer and client lists:
# bench_keys), rounds interleaved (A B, B A, ...), with the ratio
# dhtfs_curve / dhtfs per line.
#
# Both rings are bench_ring_dhtfs_up's (N=3/W=2/R=2, ids pinned, data on
# tmpfs); they run at the same time, so the idle one's stabilization costs
# both alike. Environment: RUNTIME, MD_FILES, SEQ_SIZE, RAND_SIZE (passed to
# fio-suite.sh; defaults there 10, 5000, 512M, 256M), DHTFS_OPTS, BUILD_DIR,
# RESULTS_DIR (default /tmp/bench/results), DATA_ROOT, KEEP=1.
# Needs fio, jq (the suite's own check names what is missing).
# Short plumbing check: RUNTIME=3 MD_FILES=300 SEQ_SIZE=64M RAND_SIZE=32M bench/fs-curve-ab.sh 1
set -euo pipefail
ROUNDS=${1:-3}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "usage: fs-curve-ab.sh [ROUNDS]" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build
DHTFS_BIN=$BUILD_DIR/fs/dhtfs
bench_require fs-curve-ab "$KVNODE" "$DHTCTL" "$DHTFS_BIN" "$FREEPORT"
bench_data_root
bench_tmpdir fscab "$DATA_ROOT"
RUN_DIR=$RESULTS_DIR/fs-curve-ab-$(date +%Y%m%d-%H%M%S)
mkdir -p "$T/bin" "$T/mnt/plain" "$T/mnt/curve" "$RUN_DIR"
cp -p "$KVNODE" "$DHTCTL" "$DHTFS_BIN" "$T/bin/"
KVNODE=$T/bin/kvnode DHTCTL=$T/bin/dhtctl DHTFS_BIN=$T/bin/dhtfs
# shellcheck disable=SC2317  # called from bench_cleanup
bench_pre_cleanup() {
    local m
    for m in "$T/mnt/plain" "$T/mnt/curve"; do
        if mountpoint -q "$m"; then fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; fi
    done
    return 0
}
echo "== fs-curve-ab: $ROUNDS round(s), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)," \
    "dhtfs $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'), -o ${DHTFS_OPTS:-(none)}"
bench_keys "$T/keys"
RING_TAG=plain- bench_ring_dhtfs_up fs-curve-ab "$T/mnt/plain"
echo "   plain ring $EPS"
RING_TAG=curve- BENCH_KEYS=$T/keys bench_ring_dhtfs_up fs-curve-ab "$T/mnt/curve"
echo "   secured ring $(sed 's/#[^,]*//g' <<<"$EPS") (CURVE)"
rc=0
RESULTS_DIR=$RUN_DIR RATIOS="dhtfs_curve/dhtfs" "$SHARED/run-interleaved.sh" "$ROUNDS" \
    dhtfs="$T/mnt/plain" dhtfs_curve="$T/mnt/curve" || rc=$?
[ $rc = 0 ] || echo "!! run-interleaved.sh exited $rc"
echo "== raw results: $RUN_DIR"
exit "$rc"
