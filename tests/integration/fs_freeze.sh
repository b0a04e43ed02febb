#!/usr/bin/env bash
# A frozen node: on a 3-node disk-backed ring (N=3, W=2, R=2, so any one
# node may be away), one kvnode is stopped with SIGSTOP for 15 s while a
# client keeps reading (files this mount has never read), writing with
# fsync, creating directories and stat'ing through the mount. No operation
# may fail; each is timed and the maximum is reported. SIGCONT afterwards,
# and the ring and the files are whole.
source "$(dirname "$0")/faults_lib.sh"
fs_require
FREEZE_S=15
disk_ring 3
M=$T/mnt
mount_fs "$M"
mkdir "$M/pre" "$M/new"
for i in $(seq 1 80); do
    head -c 262144 /dev/urandom >"$T/pre-$i"
    cp "$T/pre-$i" "$M/pre/f$i"
done
remount_fs "$M" # a fresh client: none of pre/ is cached
OPS=$T/ops.log

# op_loop: until $T/stop, one round = read an unread file, write one with
# fsync, mkdir, stat; "OK|FAIL secs what [error]" per op in $OPS. Exits 1
# if anything failed (after going on to the end, to time everything).
op() {
    local what=$1 st=0 start=$EPOCHREALTIME el
    shift
    timeout 120 "$@" >"$T/op.out" 2>"$T/op.err" || st=$?
    el=$(since "$start")
    if [ "$st" = 0 ]; then
        echo "OK $el $what" >>"$OPS"
    else
        echo "FAIL $el $what exit=$st $(head -c 200 "$T/op.err" | tr '\n' ' ')" >>"$OPS"
        return 1
    fi
}
op_loop() {
    local i=0 bad=0 n
    while [ ! -e "$T/stop" ]; do
        i=$((i + 1))
        n=$(((i - 1) % 80 + 1))
        op "$(date +%T.%N) read pre/f$n" cmp "$M/pre/f$n" "$T/pre-$n" || bad=1
        op "$(date +%T.%N) write+fsync new/w$i" dd if="$T/pre-$n" of="$M/new/w$i" bs=64k conv=fsync status=none || bad=1
        op "$(date +%T.%N) mkdir new/d$i" mkdir "$M/new/d$i" || bad=1
        op "$(date +%T.%N) stat new/w$i" stat "$M/new/w$i" || bad=1
    done
    return "$bad"
}
op_loop &
LOOP=$!
sleep 4
victim=1
kill -STOP "${NODE_PIDS[$victim]}"
frozen_at=$EPOCHREALTIME
echo "--- $(date +%T.%N) SIGSTOP" >>"$T/n$victim.log"
log "froze node $victim (pid ${NODE_PIDS[$victim]}) with SIGSTOP for ${FREEZE_S}s"
sleep "$FREEZE_S"
kill -CONT "${NODE_PIDS[$victim]}"
echo "--- $(date +%T.%N) SIGCONT" >>"$T/n$victim.log"
log "SIGCONT after $(since "$frozen_at")s"
sleep 5
touch "$T/stop"
st=0
wait "$LOOP" || st=$?
total=$(wc -l <"$OPS")
nfail=$(grep -c '^FAIL' "$OPS" || true)
max=$(sort -k2,2 -g "$OPS" | tail -n 1)
log "$total operations, $nfail failed; slowest: $max"
if [ "$st" != 0 ] || ((nfail > 0)); then
    fail "$nfail of $total operations failed while a node was frozen for ${FREEZE_S}s; first: $(grep -m1 '^FAIL' "$OPS"); slowest: $max; dhtfs: $(dhtfs_errors "$M")"
fi
nodes_alive
for p in "${PORTS[@]}"; do
    wait_ring "$p" 3 60
done
remount_fs "$M"
for i in $(seq 1 80); do
    check_same_file "pre/f$i after the freeze and a remount" "$M/pre/f$i" "$T/pre-$i"
done
umount_fs "$M"
finish
