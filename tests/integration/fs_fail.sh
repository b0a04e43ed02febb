#!/usr/bin/env bash
# Without a quorum, dhtfs fails promptly instead of hanging: with 2 of the
# 3 kvnodes stopped (SIGSTOP), reading an uncached file, creating a file,
# mkdir and a write with fsync fail with EIO within 15 s each; the mount
# stays up; after SIGCONT the same operations succeed, and no broken entry
# is left behind.
source "$(dirname "$0")/fs_lib.sh"
fs_require
fs_ring
M=$T/mnt
mount_fs "$M"
head -c 2000000 /dev/urandom >"$T/cold"
cp "$T/cold" "$M/cold"
echo warm >"$M/warm"
mkdir "$M/dir"
remount_fs "$M" # a fresh client: nothing of cold is cached
check_eq "warm file before the failure" "$(cat "$M/warm")" warm
LIMIT=15

# timed_eio WHAT CMD...: CMD fails with "Input/output error" within LIMIT s.
timed_eio() {
    local what=$1 st=0 start=$EPOCHREALTIME el
    shift
    timeout 30 "$@" >"$T/eio.out" 2>"$T/eio.err" || st=$?
    el=$(since "$start")
    [ "$st" != 124 ] || fail "$what ($*) hung without a quorum (killed after 30 s); expected EIO within ${LIMIT}s"
    [ "$st" != 0 ] || fail "$what ($*) succeeded with 2 of 3 nodes stopped; expected EIO"
    grep -qF "Input/output error" "$T/eio.err" ||
        fail "$what ($*) failed (exit $st) with '$(head -c 300 "$T/eio.err")'; expected 'Input/output error'"
    less_than "$el" "$LIMIT" || fail "$what ($*) took ${el}s to fail with EIO; expected < ${LIMIT}s"
    log "without quorum: $what -> EIO in ${el}s"
}

kill -STOP "${NODE_PIDS[1]}" "${NODE_PIDS[2]}"
log "stopped kvnodes ${NODE_PIDS[1]} and ${NODE_PIDS[2]} (2 of 3)"
timed_eio "cat of an uncached file" cat "$M/cold"
timed_eio "create a file" sh -c 'echo x >"$1"' _ "$M/new1"
timed_eio "mkdir" mkdir "$M/newdir"
timed_eio "write + fsync" dd if=/dev/zero of="$M/warm" bs=64k count=16 conv=fsync,notrunc status=none
is_mounted "$M" || fail "the mount went away while the ring had no quorum"
kill -0 "$DHTFS_PID" 2>/dev/null || fail "dhtfs exited while the ring had no quorum"

kill -CONT "${NODE_PIDS[1]}" "${NODE_PIDS[2]}"
log "resumed the kvnodes"
for p in "${PORTS[@]}"; do
    wait_ring "$p" 3 60
done
start=$EPOCHREALTIME
ok=
for ((i = 0; i < 60; i++)); do
    if timeout 30 cat "$M/cold" >"$T/cold.back" 2>"$T/cat.err" && cmp -s "$T/cold.back" "$T/cold"; then
        ok=1
        break
    fi
    sleep 1
done
[ -n "$ok" ] || fail "after SIGCONT (ring whole again) cat of the file still fails after 60 s: $(head -c 300 "$T/cat.err")"
log "after SIGCONT: uncached read ok after $(since "$start")s"
echo x >"$M/new1" || fail "creating a file after SIGCONT failed"
check_eq "file created after recovery" "$(cat "$M/new1")" x
mkdir -p "$M/newdir" || fail "mkdir -p after SIGCONT failed"
[ -d "$M/newdir" ] || fail "newdir is not a directory after recovery"
dd if=/dev/zero of="$M/warm" bs=64k count=16 conv=fsync,notrunc status=none || fail "write + fsync after SIGCONT failed"
check_eq "size after the write" "$(stat -c %s "$M/warm")" $((64 * 1024 * 16))
find "$M" -mindepth 1 -exec stat -c '%n %s' {} + >"$T/stat.out" 2>"$T/stat.err" ||
    fail "entries left broken by the failed operations: $(head -c 400 "$T/stat.err")"
remount_fs "$M"
check_same_file "uncached file after the outage and a remount" "$M/cold" "$T/cold"
check_eq "created file after a remount" "$(cat "$M/new1")" x
umount_fs "$M"
finish
