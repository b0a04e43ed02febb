#!/usr/bin/env bash
# Kill loop: a mount on 5 disk-backed nodes (N=3, W=2, R=2); fio writes
# with crc32c verification (2 jobs of random 4 KiB writes with an fsync
# every 16, 1 job of sequential 1 MiB writes; bounded by size and runtime)
# (each job writes its file and verifies it, over and over, for 50 s)
# while one node at a time is killed with SIGKILL every 10 s and restarted
# on its data dir 5 s later (4 rounds). fio must see 0 errors; afterwards
# every file reads back, under_replicated drains to 0 within 120 s, and an
# unmount + remount shows identical checksums.
source "$(dirname "$0")/faults_lib.sh"
fs_require fio
N=5 ROUNDS=4
disk_ring "$N"
M=$T/mnt
mount_fs "$M"
mkdir "$M/fio"
TL=$T/timeline.log
tl() { echo "$(date +%T.%N) $*" >>"$TL"; log "$*"; }

FIO_JOBS=(--ioengine=psync --fallocate=none --verify=crc32c --do_verify=1 --verify_fatal=1
    --verify_state_save=0 --directory="$M/fio"
    --loops=50 --runtime=50
    --name=rand --rw=randwrite --bs=4k --size=16m --fsync=16 --numjobs=2
    --name=seq --rw=write --bs=1M --size=48m --numjobs=1)
start=$EPOCHREALTIME
timeout 200 fio "${FIO_JOBS[@]}" >"$T/fio.out" 2>&1 &
FIO_PID=$!
tl "fio started (pid $FIO_PID)"
sleep 3
for ((r = 1; r <= ROUNDS; r++)); do
    v=$((r % N))
    kill -0 "$FIO_PID" 2>/dev/null || { tl "fio already finished before round $r"; break; }
    kill_node "$v"
    tl "round $r: SIGKILL node $v (port ${PORTS[$v]})"
    sleep 5
    restart_node "$v"
    tl "round $r: restarted node $v on its data dir (pid ${NODE_PIDS[$v]})"
    sleep 5
done
st=0
wait "$FIO_PID" || st=$?
fio_s=$(since "$start")
tl "fio exited $st after ${fio_s}s"
[ "$st" != 124 ] || fail "fio did not finish within 200 s during the kill loop: $(tail -n 5 "$T/fio.out")"
if [ "$st" != 0 ] || ! grep -q 'err= 0' "$T/fio.out" || grep -qE 'err= *[1-9]' "$T/fio.out"; then
    fail "fio during the kill loop exited $st after ${fio_s}s: $(grep -iE 'verify|error|err=|bad' "$T/fio.out" | head -n 12 | tr '\n' ' '); dhtfs: $(dhtfs_errors "$M"); timeline: $(tr '\n' ';' <"$TL")"
fi
log "fio: 0 errors through $ROUNDS kill/restart rounds ($(grep -E '^ +(WRITE|READ):' "$T/fio.out" | sed 's/^ *//; s/ (.*//' | tr '\n' ' '))"

nodes_alive
for p in "${PORTS[@]}"; do
    wait_ring "$p" "$N" 60
done
# Every file reads back whole.
find "$M/fio" -type f | sort >"$T/files"
[ -s "$T/files" ] || fail "no fio files in $M/fio"
while read -r f; do
    timeout 60 cat "$f" >/dev/null 2>"$T/cat.err" || fail "reading $f back after the kill loop failed: $(cat "$T/cat.err")"
done <"$T/files"
sha_tree "$M" >"$T/before.sha"
log "$(wc -l <"$T/files") files read back"
wait_drained "${PORTS[0]}" 120
remount_fs "$M"
sha_tree "$M" >"$T/after.sha"
diff "$T/before.sha" "$T/after.sha" >"$T/sha.diff" ||
    fail "checksums differ after unmount + remount: $(head -n 10 "$T/sha.diff" | tr '\n' ' ')"
log "after remount: identical checksums"
umount_fs "$M"
finish
