#!/usr/bin/env bash
# fs-lock.sh [N=300] — what a file lock costs on dhtfs (held in the store,
# so that it holds across mounts) against tmpfs (the kernel's own locks) as
# the reference, in the same run.
#
# Ring and mount as fs-bench.sh (bench_ring_dhtfs_up: 3 kvnodes, N=3 W=2
# R=2, data on tmpfs), the mount with attr_timeout=0 as SQLite across
# mounts needs. Measures, on each of dhtfs and tmpfs: N fcntl lock+unlock
# pairs (python3 fcntl.lockf, one process, uncontended), N flock
# LOCK_EX+LOCK_UN pairs, and N SQLite transactions (one INSERT each,
# journal_mode=DELETE, one writer). Prints the mean per pair/transaction
# and the ratio dhtfs / tmpfs.
# Environment: BUILD_DIR (default build/), DATA_ROOT (/dev/shm).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_paths build
N=${1:-300}
DHTFS_BIN=$BUILD_DIR/fs/dhtfs
bench_require fs-lock "$KVNODE" "$DHTCTL" "$DHTFS_BIN" "$FREEPORT"
for tool in python3 jq sqlite3; do
    command -v "$tool" >/dev/null || { echo "fs-lock: needs $tool" >&2; exit 2; }
done
bench_data_root
bench_tmpdir fslock "$DATA_ROOT"
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

# pairs KIND FILE: mean ms of one lock+unlock pair (KIND fcntl or flock).
pairs() {
    python3 - "$1" "$2" "$N" <<'PY'
import fcntl, os, sys, time
kind, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
t0 = time.monotonic()
for i in range(n):
    if kind == "fcntl":
        fcntl.lockf(fd, fcntl.LOCK_EX, 100, 0)
        fcntl.lockf(fd, fcntl.LOCK_UN, 100, 0)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX)
        fcntl.flock(fd, fcntl.LOCK_UN)
print("%.3f" % ((time.monotonic() - t0) / n * 1000))
PY
}

# sql DIR: mean ms of one SQLite transaction.
sql() {
    sqlite3 "$1/db" "PRAGMA journal_mode=DELETE; CREATE TABLE t(i INTEGER);" >/dev/null
    local s=$EPOCHREALTIME
    {
        for ((i = 0; i < N; i++)); do
            echo "BEGIN IMMEDIATE; INSERT INTO t VALUES($i); COMMIT;"
        done
    } | sqlite3 -bail "$1/db"
    [ "$(sqlite3 "$1/db" 'SELECT count(*) FROM t;')" = "$N" ] || { echo "fs-lock: rows lost in $1" >&2; exit 1; }
    awk -v a="$s" -v b="$EPOCHREALTIME" -v n="$N" 'BEGIN { printf "%.3f", (b - a) / n * 1000 }'
}

echo "== fs-lock: N=$N, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), scratch $T ($(stat -f -c %T "$T"))"
echo "   dhtfs $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
DHTFS_OPTS=attr_timeout=0 bench_ring_dhtfs_up fs-lock "$M"
for what in fcntl flock sqlite; do
    declare -A R=()
    for where in dhtfs tmpfs; do
        d=$M
        [ "$where" = tmpfs ] && d=$L
        if [ "$what" = sqlite ]; then
            R[$where]=$(sql "$d")
        else
            R[$where]=$(pairs "$what" "$d/f-$what")
        fi
    done
    ratio=$(awk -v a="${R[dhtfs]}" -v b="${R[tmpfs]}" 'BEGIN { printf "%.0f", a / b }')
    unit="ms per lock+unlock pair"
    [ "$what" = sqlite ] && unit="ms per transaction"
    echo "   $what: dhtfs ${R[dhtfs]}, tmpfs ${R[tmpfs]} $unit (dhtfs / tmpfs ${ratio}x)"
done
