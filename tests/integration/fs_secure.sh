#!/usr/bin/env bash
# dhtfs on a secured (CURVE) ring: a mount with a listed client key (--key,
# and -o key= as fstab writes it) does ordinary shell work; a mount without
# a key, or with an unlisted one, fails promptly with EACCES instead of
# hanging; revoking the mounted client's key (SIGHUP) makes its next
# request fail with EACCES while the mount stays up; a client key granted
# one volume mounts that volume and gets EACCES for any other; a plain
# address for a secured ring fails the mount with EACCES at once.
source "$(dirname "$0")/fs_lib.sh"
fs_require tar
K=$T/keys
mkdir -p "$K"
for k in n0 n1 n2 c1 c2 c3 stranger; do
    "$DHTCTL" keygen "$K/$k.key" >/dev/null 2>&1
done
cat "$K/n0.key.pub" "$K/n1.key.pub" "$K/n2.key.pub" >"$K/peers"
{
    cat "$K/c1.key.pub" "$K/c2.key.pub"
    echo "$(cat "$K/c3.key.pub") home # c3: volume home only"
} >"$K/clients"
alloc_ports PORTS 3
NPIDS=()
for i in 0 1 2; do
    args=(--listen "127.0.0.1:${PORTS[$i]}" --data "$T/n$i.data" --key "$K/n$i.key"
        --peer-keys "$K/peers" --client-keys "$K/clients"
        --stabilize-ms "$STABILIZE_MS" --timeout-ms "$TIMEOUT_MS")
    if ((i > 0)); then
        args+=(--join "127.0.0.1:${PORTS[0]}#$(cat "$K/n0.key.pub")")
    fi
    "$KVNODE" "${args[@]}" 2>>"$T/n$i.log" &
    PIDS+=("$!")
    NPIDS+=("$!")
    sleep 0.3
done
FS_PEERS=
for i in 0 1 2; do
    FS_PEERS+=${FS_PEERS:+,}tcp://127.0.0.1:${PORTS[$i]}#$(cat "$K/n$i.key.pub")
done
for ((i = 0; i < 100; i++)); do
    n=$("$DHTCTL" --key "$K/c1.key" --peer "${FS_PEERS%%,*}" status --json 2>/dev/null | jq -r .nodes) || true
    [ "$n" = 3 ] && break
    sleep 0.1
done
[ "$n" = 3 ] || fail "secured ring did not form"

# --- refused mounts fail promptly with EACCES
for how in none stranger plain other-volume; do
    mkdir -p "$T/bad-$how"
    extra=() peers=$FS_PEERS
    case $how in
    stranger) extra=(--key "$K/stranger.key") ;;
    plain) peers=127.0.0.1:${PORTS[0]} ;;
    other-volume) extra=(--key "$K/c3.key" --volume default) ;;
    esac
    t0=$(date +%s)
    st=0
    "$DHTFS" --peer "$peers" "${extra[@]}" -f "$T/bad-$how" >"$T/bad-$how.log" 2>&1 || st=$?
    (($(date +%s) - t0 < 10)) || fail "refused mount ($how) took $(($(date +%s) - t0)) s"
    [ "$st" != 0 ] || fail "mount with key '$how' succeeded"
    grep -q "EACCES" "$T/bad-$how.log" || fail "refused mount ($how) does not say EACCES: $(cat "$T/bad-$how.log")"
    ! is_mounted "$T/bad-$how" || fail "refused mount ($how) is mounted"
done
grep -q "requires CURVE" "$T/bad-plain.log" || fail "plain-address mount: $(cat "$T/bad-plain.log")"
log "mounts with no key, an unlisted key, a plain address or an ungranted volume fail promptly with EACCES"

# --- ordinary shell work with a listed key
M=$T/mnt
mount_fs "$M" --key "$K/c1.key"
mkdir -p "$M/src/sub"
echo "secured hello" >"$M/src/hello.txt"
head -c 300000 /dev/urandom >"$T/blob"
cp "$T/blob" "$M/src/sub/blob"
check_same_file "blob through CURVE" "$M/src/sub/blob" "$T/blob"
mv "$M/src/hello.txt" "$M/src/sub/renamed.txt"
(cd "$M" && tar cf "$T/src.tar" src)
mkdir "$M/copy"
tar xf "$T/src.tar" -C "$M/copy"
check_same_file "tar round trip" "$M/copy/src/sub/blob" "$T/blob"
check_eq "renamed file" "$(cat "$M/copy/src/sub/renamed.txt")" "secured hello"
rm -r "$M/copy"
[ ! -e "$M/copy" ] || fail "rm -r left the copy"
# A second mount with the key as a FUSE-style option (fstab, mount -t fuse.dhtfs).
M2=$T/mnt2
mount_fs "$M2" -o "key=$K/c2.key"
check_eq "second mount sees the first's file" "$(cat "$M2/src/sub/renamed.txt")" "secured hello"
log "mkdir, cp, mv, tar, rm -r on a secured ring; -o key= mounts too"
# A key granted volume "home" mounts it and works in it; the others' files stay out of reach.
M3=$T/mnt3
mount_fs "$M3" --key "$K/c3.key" --volume home
mkdir "$M3/ann"
cp "$T/blob" "$M3/ann/blob"
check_same_file "blob in the granted volume" "$M3/ann/blob" "$T/blob"
[ ! -e "$M3/src" ] || fail "volume home shows the default volume's files"
umount_fs "$M3"
log "a key granted volume home mounts and uses it"

# --- mount.dhtfs (mount -t fuse.dhtfs, fstab) with secured endpoints: EP#KEY
# sources and -o key=. A made-up key full of the Z85 digits that shells and
# parsers trip on ('#', '$', '&', '/', ...) must reach dhtfs unchanged.
HELPER=$(cd "$(dirname "$0")/../.." && pwd)/mount-scripts/mount.dhtfs
odd='0123456789abcdefghij#$&:+=^!/*?<>()[]{}@'
DHTFS_BIN=$DHTFS bash "$HELPER" "dhtfs#tcp://10.0.0.1:7000#$odd,10.0.0.2:7000#$odd" /mnt/x -f \
    -o "rw,_netdev,key=/etc/dhtfs/m.key,volume=v" >"$T/helper.out" 2>&1 ||
    fail "mount.dhtfs refused an EP#KEY source: $(cat "$T/helper.out")"
grep -qF -- "--peer tcp://10.0.0.1:7000#$odd,10.0.0.2:7000#$odd --volume v -o rw,key=/etc/dhtfs/m.key /mnt/x" \
    "$T/helper.out" || fail "mount.dhtfs made: $(cat "$T/helper.out")"
M4=$T/mnt4
mkdir -p "$M4"
MOUNTS+=("$M4")
DHTFS_BIN=$DHTFS bash "$HELPER" "$FS_PEERS" "$M4" -o "rw,_netdev,key=$K/c1.key" \
    >"$T/helper-mount.out" 2>&1 || fail "mount.dhtfs with EP#KEY peers: $(cat "$T/helper-mount.out")"
check_eq "mount.dhtfs mount sees the files" "$(cat "$M4/src/sub/renamed.txt")" "secured hello"
fusermount3 -u "$M4"
log "mount.dhtfs passes EP#KEY sources and key= to dhtfs; such a mount works"

# --- revoke c2: its next request fails with EACCES, c1 goes on
cat "$K/c1.key.pub" >"$K/clients"
kill -HUP "${NPIDS[@]}"
for i in 0 1 2; do
    for ((j = 0; j < 50; j++)); do
        grep -q "key lists re-read" "$T/n$i.log" && break
        sleep 0.1
    done
done
st=0
(echo revoked >"$M2/after-revoke") 2>"$T/revoked.err" || st=$?
[ "$st" != 0 ] || fail "revoked mount could still create a file"
grep -q "Permission denied" "$T/revoked.err" || fail "revoked write: $(cat "$T/revoked.err")"
is_mounted "$M2" || fail "the revoked mount went away"
echo still >"$M/after-revoke"
check_eq "c1 still writes" "$(cat "$M/after-revoke")" still
log "revoked key: next request EACCES, mount stays; the other client goes on"
umount_fs "$M2"
umount_fs "$M"
log "PASS"
