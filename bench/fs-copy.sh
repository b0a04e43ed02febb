#!/usr/bin/env bash
# fs-copy.sh [ROUNDS=3] — copy_file_range against a read-write copy of one
# file inside a dhtfs volume, and the same two on tmpfs as the reference.
#
# Ring and mount as fs-bench.sh (bench_ring_dhtfs_up: 3 kvnodes, N=3 W=2
# R=2, data on tmpfs, default 1 MiB chunks). A SIZE_MB (256) file of random
# data is written and fsynced once; each round, in alternating order, copies
# it with python3 os.copy_file_range (chunk-aligned: store to store) and with
# a 1 MiB read/write loop, each followed by fsync of the copy and a check of
# the copy's checksum, with the page cache dropped before each (as root) so
# the read-write copy reads from the ring. Prints one line per copy and the
# medians in MiB/s, and the per-round ratio copy_file_range / read-write
# (median over rounds).
# Environment: BUILD_DIR (default build/), DATA_ROOT (/dev/shm), SIZE_MB.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_paths build
ROUNDS=${1:-3}
SIZE_MB=${SIZE_MB:-256}
DHTFS_BIN=$BUILD_DIR/fs/dhtfs
bench_require fs-copy "$KVNODE" "$DHTCTL" "$DHTFS_BIN" "$FREEPORT"
if ! command -v python3 >/dev/null || ! command -v jq >/dev/null; then
    echo "fs-copy: needs python3 and jq" >&2
    exit 2
fi
bench_data_root
bench_tmpdir fscopy "$DATA_ROOT"
M=$T/mnt
L=$T/local
mkdir -p "$M" "$L"
DHTFS_PID=

# shellcheck disable=SC2317  # called from bench_cleanup
bench_pre_cleanup() {
    if mountpoint -q "$M"; then
        for _ in 1 2 3 4 5; do
            fusermount3 -u "$M" 2>/dev/null && break
            sleep 1
        done
        mountpoint -q "$M" && umount -l "$M"
    fi
    if [ -n "$DHTFS_PID" ]; then
        for _ in $(seq 100); do kill -0 "$DHTFS_PID" 2>/dev/null || break; sleep 0.1; done
    fi
}

# copy HOW SRC DST: seconds taken by one copy including fsync of DST.
copy() {
    python3 - "$@" <<'PY'
import os, sys, time
how, src, dst = sys.argv[1:4]
fi = os.open(src, os.O_RDONLY)
fo = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
size = os.fstat(fi).st_size
t0 = time.monotonic()
done = 0
if how == "cfr":
    while done < size:
        n = os.copy_file_range(fi, fo, size - done)
        if n == 0:
            break
        done += n
else:
    while True:
        b = os.read(fi, 1 << 20)
        if not b:
            break
        os.write(fo, b)
        done += len(b)
os.fsync(fo)
os.close(fo)
t = time.monotonic() - t0
os.close(fi)
assert done == size, (done, size)
print("%.3f" % t)
PY
}

drop() {
    if [ "$(id -u)" = 0 ]; then
        sync
        echo 3 >/proc/sys/vm/drop_caches
    fi
}

echo "== fs-copy: $ROUNDS round(s), ${SIZE_MB} MiB, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), scratch $T ($(stat -f -c %T "$T"))"
echo "   dhtfs $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
bench_ring_dhtfs_up fs-copy "$M"
head -c $((SIZE_MB << 20)) /dev/urandom >"$L/src"
want=$(sha256sum <"$L/src" | cut -d' ' -f1)
cp "$L/src" "$M/src"
sync
declare -A T_=() R_=()
for ((r = 1; r <= ROUNDS; r++)); do
    order=(cfr rw)
    ((r % 2 == 0)) && order=(rw cfr)
    for how in "${order[@]}"; do
        for where in dhtfs tmpfs; do
            d=$M
            [ "$where" = tmpfs ] && d=$L
            rm -f "$d/dst"
            drop
            s=$(copy "$how" "$d/src" "$d/dst")
            drop
            got=$(sha256sum <"$d/dst" | cut -d' ' -f1)
            [ "$got" = "$want" ] || { echo "fs-copy: $where $how copy differs from the source" >&2; exit 1; }
            rate=$(awk -v s="$s" -v m="$SIZE_MB" 'BEGIN { printf "%.1f", m / s }')
            echo "   round $r $where $how: $s s, $rate MiB/s"
            T_[$where-$how]+="$rate "
            R_[$where-$how]=$rate
        done
    done
    for where in dhtfs tmpfs; do
        ratio=$(awk -v c="${R_[$where-cfr]}" -v w="${R_[$where-rw]}" 'BEGIN { printf "%.2f", c / w }')
        echo "   round $r $where copy_file_range / read-write: ${ratio}x"
        T_[$where-ratio]+="$ratio "
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "== medians (MiB/s)"
for k in dhtfs-cfr dhtfs-rw tmpfs-cfr tmpfs-rw; do
    echo "   $k $(median <<<"${T_[$k]}")"
done
for where in dhtfs tmpfs; do
    r=${T_[$where-ratio]}
    echo "   $where copy_file_range / read-write, median of per-round ratios: $(median <<<"$r")x (rounds: $r)"
done
