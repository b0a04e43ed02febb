#!/usr/bin/env bash
# The embedded default: `dhtfs MOUNTPOINT` with no --peer and no $DHT_PEER
# starts its own 3-node ring (data under $DHTFS_DATA_DIR here, never
# /var/lib/dhtfs), returns once mounted, and stops the ring on unmount; the
# next plain `dhtfs MOUNTPOINT` finds the same files. Also in the
# foreground (-f), where dhtfs must exit 0 after fusermount3 -u.
source "$(dirname "$0")/fs_lib.sh"
fs_require
unset DHT_PEER
export DHTFS_DATA_DIR=$T/emb
M=$T/mnt
mkdir -p "$M"
MOUNTS+=("$M")
varlib_before=absent
[ ! -e /var/lib/dhtfs ] || varlib_before=present

emb_nodes() { # the kvnodes of the embedded ring
    { pgrep -f -- "$DHTFS_DATA_DIR" 2>/dev/null || true; } | while read -r pid; do
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q kvnode; then
            echo "$pid"
        fi
    done
}

# daemon_mount: plain `dhtfs MOUNTPOINT`, which must return 0 once mounted.
daemon_mount() {
    local st=0 start=$EPOCHREALTIME
    echo "--- $(date +%T.%N) dhtfs $M" >>"$T/dhtfs-emb.log"
    timeout 60 "$DHTFS" "$M" >>"$T/dhtfs-emb.log" 2>&1 || st=$?
    [ "$st" != 124 ] || fail "plain 'dhtfs $M' did not return within 60 s"
    [ "$st" = 0 ] || fail "plain 'dhtfs $M' exited $st: $(tail -n 20 "$T/dhtfs-emb.log")"
    is_mounted "$M" || fail "'dhtfs $M' returned 0 but $M is not mounted"
    log "plain dhtfs mounted in $(since "$start")s"
}

# stopped_after_umount WHAT: unmount; dhtfs and all embedded kvnodes are
# gone within 20 s.
stopped_after_umount() {
    local i
    fusermount3 -u "$M" || fail "fusermount3 -u $M failed ($1)"
    for ((i = 0; i < 200; i++)); do
        if [ -z "$(emb_nodes)" ] && [ -z "$(pgrep -f -- "dhtfs.* $M\$")" ]; then
            return 0
        fi
        sleep 0.1
    done
    fail "20 s after unmounting ($1): still running: $(ps -o pid=,args= -p "$(emb_nodes | tr '\n' ',')$(pgrep -f -- "dhtfs.* $M\$" | tr '\n' ',')0" 2>/dev/null)"
}

# --- first mount: a new volume on a new embedded ring
daemon_mount
n=$(emb_nodes | wc -l)
[ "$n" = 3 ] || fail "expected 3 kvnode processes with $DHTFS_DATA_DIR on their command line, found $n: $(pgrep -af kvnode | head -n 5)"
head -c 3000000 /dev/urandom >"$T/f1"
cp "$T/f1" "$M/f1"
mkdir "$M/dir"
echo small >"$M/dir/small"
# The embedded ring is secured: its keys live in the data dir, private.
KD=$DHTFS_DATA_DIR/keys
[ "$(stat -c %a "$KD")" = 700 ] || fail "keys dir mode $(stat -c %a "$KD")"
for k in node client; do
    [ "$(stat -c %a "$KD/$k.key")" = 600 ] || fail "$k.key mode $(stat -c %a "$KD/$k.key")"
done
port0=$(awk '$1 == "node" && $2 == 0 {print $3}' "$DHTFS_DATA_DIR/ring.conf")
EMB_SEED="tcp://127.0.0.1:$port0#$(cat "$KD/node.key.pub")"
[ "$("$DHTCTL" --key "$KD/client.key" --peer "$EMB_SEED" status --json | jq -r .secured)" = true ] ||
    fail "the embedded ring does not say it is secured"
st=0
"$DHTCTL" --timeout-ms 2000 --peer "$EMB_SEED" get x >/dev/null 2>"$T/nokey.err" || st=$?
[ "$st" = 3 ] && grep -q "access denied" "$T/nokey.err" ||
    fail "a client without the ring's key was not refused (exit $st): $(cat "$T/nokey.err")"
st=0
"$DHTCTL" --timeout-ms 2000 --peer "tcp://127.0.0.1:$port0" get x >/dev/null 2>&1 || st=$?
[ "$st" = 3 ] || fail "a plain client got through to the embedded ring (exit $st)"
log "embedded ring secured: keys 0600 in a 0700 dir; keyless and plain clients refused"
stopped_after_umount "first mount"
[ -n "$(ls -A "$DHTFS_DATA_DIR")" ] || fail "$DHTFS_DATA_DIR is empty after the first mount"
log "first mount: files written, ring stopped on unmount"

# --- second mount, in the foreground: same files
FS_PEERS='' mount_fs "$M"
check_same_file "f1 after restarting the embedded ring" "$M/f1" "$T/f1"
check_eq "dir/small after restarting the embedded ring" "$(cat "$M/dir/small")" small
echo second >"$M/f2"
umount_fs "$M"
[ -z "$(emb_nodes)" ] || fail "kvnodes of the embedded ring still running after the -f dhtfs exited"
log "second mount (-f): files there; dhtfs exited 0, ring stopped"

# --- third mount, daemon again
daemon_mount
check_same_file "f1 on the third mount" "$M/f1" "$T/f1"
check_eq "f2 on the third mount" "$(cat "$M/f2")" second

# A second dhtfs while the ring is mounted is refused at once, naming the holder.
M2=$T/mnt2
mkdir -p "$M2"
st=0
out=$(timeout 20 "$DHTFS" "$M2" 2>&1) || st=$?
[ "$st" = 1 ] || fail "a second dhtfs on the mounted embedded ring exited $st (want 1): $out"
grep -q "in use by another dhtfs (pid [0-9]*, mounted on $M)" <<<"$out" ||
    fail "the refusal does not name the mount holding the ring: $out"
! is_mounted "$M2" || fail "the refused dhtfs mounted $M2 anyway"

# The README's `fusermount3 -u M; dhtfs M` right after heavy work: the new
# dhtfs waits for the old one to finish (background frees of a removed
# file, stopping the nodes) instead of failing.
head -c 48000000 /dev/urandom >"$M/big"
mkdir "$M/many"
for i in $(seq 1 300); do echo "$i" >"$M/many/$i"; done
rm -r "$M/big" "$M/many"
# One node frozen: the old dhtfs needs its full grace period to stop it.
frozen=$(emb_nodes | sed -n 1p)
kill -STOP "$frozen"
fusermount3 -u "$M" || fail "fusermount3 -u $M failed (before the quick remount)"
(sleep 4 && kill -CONT "$frozen" 2>/dev/null) &
daemon_mount
wait
grep -q "waiting for the previous dhtfs" "$T/dhtfs-emb.log" ||
    fail "the immediate remount did not wait for the previous dhtfs (with a frozen node it must have)"
check_same_file "f1 after an unmount and an immediate mount" "$M/f1" "$T/f1"
[ ! -e "$M/big" ] || fail "big is back after the immediate remount"
grep -q "after unmounting $M: finished [0-9]* background operations" "$DHTFS_DATA_DIR/dhtfs.log" ||
    fail "the previous dhtfs did not report its background work in $DHTFS_DATA_DIR/dhtfs.log: $(tail -n 5 "$DHTFS_DATA_DIR/dhtfs.log" 2>&1)"
log "an immediate remount waited for the previous dhtfs: $(grep -c waiting "$T/dhtfs-emb.log") wait(s)"
stopped_after_umount "fourth mount"

if [ "$varlib_before" = absent ] && [ -e /var/lib/dhtfs ]; then
    fail "DHTFS_DATA_DIR was set, but /var/lib/dhtfs was created"
fi
finish
