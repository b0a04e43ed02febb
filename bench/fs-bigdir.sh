#!/usr/bin/env bash
# fs-bigdir.sh [ENTRIES=100000] — does a create in a huge directory cost what
# it costs in an empty one, and does readdir of it stream?
#
# Mounts dhtfs on its embedded default (a private 3-node ring, data on tmpfs
# in a scratch dir), then, in one run:
#   1. creates 2,000 empty files in an empty directory (timed: the reference),
#   2. fills a second directory with ENTRIES files (4 writers in parallel),
#   3. creates 2,000 more files in the full directory (timed),
#   4. repeats 1 and 3 once more, interleaved, so drift shows up,
#   5. lists the full directory (readdir only) and times the first entry
#      (find -print -quit) and the whole listing (ls -f).
# Prints per-create latency in both directories and their ratio. Creates use
# the shell's own redirection (no fork per file).
# Environment: BUILD_DIR (default build/), SCRATCH (default /dev/shm).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_paths build
ENTRIES=${1:-100000}
DHTFS=$BUILD_DIR/fs/dhtfs
bench_require dhtfs "$DHTFS" "$KVNODE"
T=$(mktemp -d "${SCRATCH:-/dev/shm}/bigdir.XXXXXX")
M=$T/mnt
mkdir -p "$M"
cleanup_bigdir() {
    cd /
    if mountpoint -q "$M"; then fusermount3 -u "$M" || umount -l "$M" || true; fi
    # the embedded ring stops with the unmount; wait for it before removing its data
    for _ in $(seq 100); do pgrep -f -- "$T/data" >/dev/null || break; sleep 0.1; done
    rm -rf "$T"
}
trap cleanup_bigdir EXIT
DHTFS_DATA_DIR=$T/data "$DHTFS" "$M"

now() { date +%s.%N; }
# create DIR PREFIX N: N empty files, prints seconds
create() {
    local d=$1 p=$2 n=$3 i t0
    t0=$(now)
    for ((i = 0; i < n; i++)); do : >"$d/$p$i"; done
    echo "$(now) - $t0" | bc
}
mkdir "$M/empty1" "$M/empty2" "$M/big"
echo "== filling $M/big with $ENTRIES entries (4 writers)"
t0=$(now)
for w in 0 1 2 3; do
    (for ((i = w; i < ENTRIES; i += 4)); do : >"$M/big/f$i"; done) &
done
wait
fill=$(echo "$(now) - $t0" | bc)
printf 'fill: %d creates in %.1f s (%.0f/s with 4 writers)\n' "$ENTRIES" "$fill" \
    "$(echo "$ENTRIES / $fill" | bc -l)"

N=2000
declare -a small big
small+=("$(create "$M/empty1" a "$N")")
big+=("$(create "$M/big" a "$N")")
big+=("$(create "$M/big" b "$N")")
small+=("$(create "$M/empty2" b "$N")")
for k in 0 1; do
    printf 'round %d: create in empty dir %.0f us, in %d-entry dir %.0f us, ratio %.2f\n' "$k" \
        "$(echo "${small[$k]} * 1000000 / $N" | bc -l)" "$ENTRIES" \
        "$(echo "${big[$k]} * 1000000 / $N" | bc -l)" "$(echo "${big[$k]} / ${small[$k]}" | bc -l)"
done

sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
t0=$(now)
find "$M/big" -maxdepth 1 -print -quit >/dev/null
first=$(echo "$(now) - $t0" | bc)
t0=$(now)
count=$(ls -f "$M/big" | wc -l)
all=$(echo "$(now) - $t0" | bc)
printf 'readdir: first entry after %.1f ms; all %d entries (with . and ..) in %.2f s (%.0f entries/s)\n' \
    "$(echo "$first * 1000" | bc -l)" "$count" "$all" "$(echo "$count / $all" | bc -l)"
[ "$count" -eq $((ENTRIES + 2 * N + 2)) ] || { echo "!! expected $((ENTRIES + 2 * N + 2)) entries"; exit 1; }
