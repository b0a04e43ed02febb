#!/usr/bin/env bash
# fio with data verification on a dhtfs mount: random 4 KiB writes and
# sequential 1 MiB writes from 4 jobs at once (crc32c in every block, read
# back and checked by fio), then the same data verified again from a fresh
# mount (--verify_only), so what was checked is the store, not a cache;
# then four jobs writing one file under a 1 MiB dirty limit.
source "$(dirname "$0")/fs_lib.sh"
fs_require fio
fs_ring
M=$T/mnt
mount_fs "$M"
mkdir "$M/fio"
BUDGET=480 # seconds for all fio runs, well inside ctest's 600

# run_fio NAME [fio args...]: bounded, output in $T/fio-NAME.out.
run_fio() {
    local name=$1 st=0 start=$EPOCHREALTIME left=$((BUDGET - SECONDS))
    shift
    ((left > 20)) || fail "out of time (${BUDGET}s) before fio $name $*"
    timeout "$left" fio --name="$name" --directory="$M/fio" --numjobs=4 --size=32M \
        --ioengine=psync --fallocate=none --verify=crc32c --do_verify=1 \
        --verify_fatal=1 --verify_state_save=0 --group_reporting "$@" >"$T/fio-$name.out" 2>&1 || st=$?
    [ "$st" != 124 ] || fail "fio $name $* did not finish within the ${BUDGET}s budget (${left}s left): $(tail -n 5 "$T/fio-$name.out")"
    [ "$st" = 0 ] ||
        fail "fio $name $* exited $st: $(grep -iE 'verify|error|err=' "$T/fio-$name.out" | head -n 10)"
    log "fio $name $*: ok in $(since "$start")s ($(grep -E '^ +(WRITE|READ):' "$T/fio-$name.out" | sed 's/^ *//; s/ (.*//' | tr '\n' ' '))"
}

run_fio rand --rw=randwrite --bs=4k --end_fsync=1
run_fio seq --rw=write --bs=1M
run_fio randbig --rw=randwrite --bs=64k --size=16M
run_fio mixed --rw=randrw --bs=16k --size=8M

remount_fs "$M"
run_fio rand --rw=randwrite --bs=4k --verify_only
run_fio seq --rw=write --bs=1M --verify_only
run_fio randbig --rw=randwrite --bs=64k --size=16M --verify_only
umount_fs "$M"

# Write-back under a tight dirty limit with few puts in flight: four jobs
# stream into one file at once, so writers of one file wait for its puts
# (wb_throttle) and finished puts start the next chunks (wb_pump).
M=$T/mnt2
mount_fs "$M" -o dirty_mb=1,wb_puts=2
rm -rf "$M/fio" && mkdir "$M/fio"
run_fio shared --rw=write --bs=1M --size=8M --filename=shared --offset_increment=8M
remount_fs "$M"
run_fio shared --rw=write --bs=1M --size=8M --filename=shared --offset_increment=8M --verify_only
umount_fs "$M"
finish
