#!/usr/bin/env bash
# A mount on a 3-node ring whose nodes keep their data on a real disk, while
# another process writes to the same disk with fsync: operations may slow
# down but must not fail. Copy /usr/include/linux in and diff it; a 5 GiB
# sparse file, truncated; fio random 64 KiB writes (96 MiB, crc32c verified,
# end_fsync) and random 4 KiB writes with an fsync every 32: 0 errors; all
# of it verified again from a fresh mount.
source "$(dirname "$0")/faults_lib.sh"
fs_require fio diff
SRC=${FS_TREE_SRC:-/usr/include/linux}
[ -d "$SRC" ] || fail "$SRC is missing"
BUDGET=220 # seconds for the whole test (ctest TIMEOUT is 300)
disk_ring 3
M=$T/mnt
mount_fs "$M"
load_start
sleep 2 # let the load reach the disk

# --- a real tree in and compared
nfiles=$(find "$SRC" -type f | wc -l)
start=$EPOCHREALTIME
timeout 120 cp -a "$SRC" "$M/tree" 2>"$T/cp.err" ||
    fail "cp -a $SRC (${nfiles} files) under disk load failed after $(since "$start")s: $(head -c 600 "$T/cp.err"); dhtfs: $(dhtfs_errors "$M")"
log "cp -a of $nfiles files took $(since "$start")s"
timeout 60 diff -r --no-dereference "$SRC" "$M/tree" >"$T/diff.out" 2>&1 ||
    fail "diff -r $SRC $M/tree under disk load: $(head -n 20 "$T/diff.out")"
log "diff -r of the copy ok"

# --- a 5 GiB sparse file, then truncated
head -c 4096 /dev/urandom >"$T/block"
start=$EPOCHREALTIME
timeout 60 dd if="$T/block" of="$M/sparse" bs=4k count=1 seek=$((5 * 1024 * 1024 / 4)) conv=notrunc,fsync status=none 2>"$T/dd.err" ||
    fail "4 KiB write at 5 GiB (with fsync) failed after $(since "$start")s: $(cat "$T/dd.err")"
check_eq "size of the sparse file" "$(stat -c %s "$M/sparse")" $((5 * 1024 * 1024 * 1024 + 4096))
dd if="$M/sparse" bs=4k skip=$((5 * 1024 * 1024 / 4)) count=1 status=none >"$T/block.back"
check_same_file "block at 5 GiB" "$T/block.back" "$T/block"
start=$EPOCHREALTIME
timeout 60 truncate -s 1000000 "$M/sparse" 2>"$T/trunc.err" ||
    fail "truncate of the 5 GiB sparse file to 1000000 failed after $(since "$start")s: $(cat "$T/trunc.err"); dhtfs: $(dhtfs_errors "$M")"
trunc_s=$(since "$start")
check_eq "size after truncate" "$(stat -c %s "$M/sparse")" 1000000
head -c 1000000 /dev/zero >"$T/zeros"
check_same_file "truncated sparse file reads as zeros" "$M/sparse" "$T/zeros"
timeout 60 truncate -s 0 "$M/sparse" || fail "truncate to 0 failed"
log "5 GiB sparse file written, read, truncated in ${trunc_s}s"

# --- fio with verification
mkdir "$M/fio"
run_fio() { # NAME fio-args...
    local name=$1 st=0 start=$EPOCHREALTIME left=$((BUDGET - SECONDS))
    shift
    ((left > 20)) || fail "out of time (${BUDGET}s) before fio $name"
    timeout "$left" fio --name="$name" --directory="$M/fio" --ioengine=psync --fallocate=none \
        --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
        --group_reporting "$@" >"$T/fio-$name.out" 2>&1 || st=$?
    [ "$st" != 124 ] || fail "fio $name $* did not finish in ${left}s (under disk load): $(tail -n 5 "$T/fio-$name.out")"
    [ "$st" = 0 ] ||
        fail "fio $name $* exited $st after $(since "$start")s: $(grep -iE 'verify|error|err=' "$T/fio-$name.out" | head -n 10 | tr '\n' ' '); dhtfs: $(dhtfs_errors "$M")"
    grep -q 'err= 0' "$T/fio-$name.out" || fail "fio $name reported errors: $(grep -E 'err=' "$T/fio-$name.out" | head -n 4)"
    log "fio $name ok in $(since "$start")s ($(grep -E '^ +(WRITE|READ):' "$T/fio-$name.out" | sed 's/^ *//; s/ (.*//' | tr '\n' ' '))"
}
run_fio rand64k --rw=randwrite --bs=64k --size=96m --end_fsync=1
run_fio rand4k --rw=randwrite --bs=4k --size=16m --numjobs=2 --fsync=32
nodes_alive
kill -0 "$DHTFS_PID" 2>/dev/null || fail "dhtfs exited during the test"
# What fio verified may have come from the client's caches: verify the
# same data again from a fresh mount, i.e. from the nodes' disks.
remount_fs "$M"
run_fio rand64k --rw=randwrite --bs=64k --size=96m --verify_only
run_fio rand4k --rw=randwrite --bs=4k --size=16m --numjobs=2 --verify_only
timeout 60 diff -r --no-dereference "$SRC" "$M/tree" >"$T/diff.out" 2>&1 ||
    fail "diff -r $SRC $M/tree after a remount: $(head -n 20 "$T/diff.out")"
umount_fs "$M"
load_stop
log "whole test under disk load: ${SECONDS}s"
finish
