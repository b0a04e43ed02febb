#!/usr/bin/env bash
# Small writes into stored chunks go out as patches (only the bytes
# written), and the file stays exactly what a local file would be:
#   - a file of 40 chunks (64 KiB) is written through mount A; mount B,
#     whose chunk cache is empty, then makes 600 writes of 1 B–9 KiB at
#     random offsets inside it: some extend the range written before in
#     the same chunk (one patch), some land apart from it (the chunk is
#     read and made whole first), reads in between (inside and outside the
#     written ranges), an fsync every 25 writes — mirrored on a local copy
#   - B's reads agree with the copy at every step; after the last fsync B,
#     A (after reopening) and a fresh mount C read the copy's exact bytes
#   - B's exit log counts patches (> 0): the partial path was taken; and
#     the replicas applied patches to their copies (kvnode metrics), so
#     the coordinators sent them only the bytes, not whole chunks
#   - every replica of every chunk holds exactly the copy's bytes for that
#     chunk (`dhtctl replicas KEY --json`: one sha256 per replica), so a
#     patch applied wrongly on a replica that reads never reach shows too
#   - a patch whose coordinator stops right after stamping it (test hook
#     DHT_TEST_FREEZE_STAMPED, past the stall threshold) is not settled
#     there: the coordinator cannot tell whether another took the key over,
#     and answers "retry"; the mount's retry finds the patch applied, and
#     fsync succeeds (an "outcome unknown" answer would have failed it, EIO)
source "$(dirname "$0")/fs_lib.sh"
fs_require python3 curl
alloc_ports PORTS 3
alloc_ports MPORTS 3
MARK=dhtfs-patch-freeze:
export DHT_TEST_FREEZE_STAMPED=$MARK # a written value starting with this
NODE_PIDS=()
for i in 0 1 2; do
    start_node "n$i" "${PORTS[$i]}" "$( ((i)) && echo "${PORTS[0]}")" --metrics "127.0.0.1:${MPORTS[$i]}"
    NODE_PIDS+=("$NODE_PID")
    sleep 0.2
done
FS_PEERS=
for p in "${PORTS[@]}"; do
    wait_ring "$p" 3 20
    FS_PEERS+=${FS_PEERS:+,}tcp://127.0.0.1:$p
done
# replicas_match WHAT: every replica of each of the 40 chunks holds the copy's bytes.
replicas_match() {
    local c want json ino
    ino=$(printf '%x' "$(stat -c %i "$A/f")")
    for ((c = 0; c < 40; c++)); do
        want=$(dd if="$T/model" bs=65536 skip=$c count=1 status=none | sha256sum | cut -d' ' -f1)
        json=$(ctl --peer "tcp://127.0.0.1:${PORTS[0]}" replicas "v/default/c/$ino/$(printf '%x' $c)" --json) ||
            fail "$1: dhtctl replicas of chunk $c failed"
        jq -e --arg w "$want" '[.. | objects | select(has("value_sha")) | .value_sha] |
            length == 3 and all(. == $w)' <<<"$json" >/dev/null ||
            fail "$1: chunk $c: the replicas do not all hold the copy's bytes ($want): $json"
    done
}
A=$T/a
B=$T/b
C=$T/c
mount_fs "$A" -o chunk_kb=64
mount_fs "$B" -o chunk_kb=64,log_level=info

head -c $((40 * 65536 - 1000)) /dev/urandom >"$T/model"
expect_ok cp "$T/model" "$A/f"
expect_ok sync "$A/f"

cat >"$T/patch.py" <<'EOF'
import os, random, sys
path, model, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(seed)
fd = os.open(path, os.O_RDWR)
md = os.open(model, os.O_RDWR)
size = os.fstat(md).st_size
CH = 65536
last = None
def check(off, n):
    got, want = os.pread(fd, n, off), os.pread(md, n, off)
    if got != want:
        sys.exit("read %d bytes at %d: differs from the local copy" % (n, off))
for i in range(600):
    r = rnd.random()
    n = rnd.randint(1, 9216)
    if last and r < 0.3:
        off = last  # right after the previous write: extends its range
    elif last and r < 0.4:
        off = (last // CH) * CH + rnd.randrange(CH)  # same chunk, apart or overlapping
    else:
        off = rnd.randrange(size)
    n = min(n, size - off)
    if n <= 0:
        continue
    data = os.urandom(n)
    assert os.pwrite(fd, data, off) == n and os.pwrite(md, data, off) == n
    last = off + n
    if rnd.random() < 0.2:
        # inside the range just written, or anywhere (outside it)
        check(off, n) if rnd.random() < 0.5 else check(rnd.randrange(size), 4096)
    if i % 25 == 24:
        os.fsync(fd)
os.fsync(fd)
check(0, size)
os.close(fd)
EOF
expect_ok python3 "$T/patch.py" "$B/f" "$T/model" 7
check_same_file "B after the writes" "$B/f" "$T/model"
check_same_file "A, reopened" "$A/f" "$T/model"
mount_fs "$C" -o chunk_kb=64
check_same_file "a fresh mount" "$C/f" "$T/model"

umount_fs "$B"
patches=$(sed -n 's/.*store operations: .* (.* conflicts, \([0-9]*\) patches).*/\1/p' "$T/dhtfs-b.log")
[ -n "$patches" ] || fail "B's exit log has no store operation counts"
((patches > 0)) || fail "B wrote no patches (every small write rewrote its whole chunk)"
replicas_match "after the writes"
applied=$(metric_sum kvnode_replica_patches_total)
((applied > 0)) || fail "no replica applied a patch (every copy was sent whole)"
log "B sent $patches patches; replicas applied $applied patches to their copies"

# A patch whose coordinator stops right after the stamp (its value starts
# with MARK), past the stall threshold.
{
    printf '%s' "$MARK"
    head -c $((65536 - ${#MARK})) /dev/zero
} >"$T/g.model"
expect_ok cp "$T/g.model" "$A/g"
expect_ok sync "$A/g"
printf 'patched' | dd of="$T/g.model" bs=1 seek=1000 conv=notrunc status=none
python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, b"patched", 1000)
os.fsync(fd)
' "$C/g" 2>"$T/g.err" &
writer=$!
PIDS+=("$writer")
# Every node stops at the first such patch it stamps: the mount's retry
# through another node while the first is stopped may stop that one too.
# Each is thawed (a node left stopped would be a failure this case does
# not mean to make): those stopped now after the stall, any later at once.
stopped=
for ((t = 0; t < 100; t++)); do
    for i in 0 1 2; do
        is_stopped "${NODE_PIDS[$i]}" && stopped=$i
    done
    [ -n "$stopped" ] && break
    sleep 0.1
done
[ -n "$stopped" ] || fail "no node stopped itself after stamping the patch (test hook)"
sleep "$(((2 * (STABILIZE_MS + TIMEOUT_MS / 2) + 999) / 1000))"
thaw_all() {
    local i
    for i in 0 1 2; do
        if is_stopped "${NODE_PIDS[$i]}"; then
            kill -CONT "${NODE_PIDS[$i]}"
            thawed+=" n$i"
        fi
    done
}
thawed=
thaw_all
log "n$stopped stopped itself right after stamping the patch, past the stall threshold; thawed:$thawed"
for ((t = 0; t < 1200 && $(kill -0 "$writer" 2>/dev/null && echo 1 || echo 0); t++)); do
    thaw_all
    sleep 0.1
done
! kill -0 "$writer" 2>/dev/null ||
    fail "pwrite + fsync through C still blocked 120 s after the thaw (thawed:$thawed)"
thaw_all # one that stopped as the writer ended
log "thawed in all:$thawed"
st=0
wait "$writer" || st=$?
[ "$st" = 0 ] || fail "pwrite + fsync through C failed (status $st): $(cat "$T/g.err")"
check_same_file "the patched file through C" "$C/g" "$T/g.model"
check_same_file "the patched file through A, reopened" "$A/g" "$T/g.model"
grep -q "test hook DHT_TEST_FREEZE_STAMPED" "$T/n$stopped.log" ||
    fail "n$stopped's log does not show the hook"
overtaken=$(metric_sum kvnode_writes_overtaken_total)
((overtaken >= 1)) || fail "kvnode_writes_overtaken_total is $overtaken after the stamped patch's stall, want >= 1"
log "the patch was retried and applied once; fsync succeeded"
finish
