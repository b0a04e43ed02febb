#!/usr/bin/env bash
# Unmount and remount keep everything: contents (sha256 of every file),
# types, modes, owners, sizes, mtimes/ctimes with nanoseconds, link counts,
# symlink targets, xattrs. The volume is created with -o chunk_kb=64 and
# keeps that chunk size when remounted with another chunk_kb; the mounts
# reach the ring through every form of peer the CLI accepts (a list, one
# HOST:PORT, $DHT_PEER).
source "$(dirname "$0")/fs_lib.sh"
fs_require getfattr setfattr
fs_ring
M=$T/mnt
VOL=rm1
mount_fs "$M" --volume "$VOL" -o chunk_kb=64

# --- a bit of everything
: >"$M/empty"
printf 1 >"$M/one"
for n in 65535 65536 65537 $((1048576 + 5)) 3000000; do
    head -c "$n" /dev/urandom >"$M/rand-$n"
done
head -c 200000 /dev/urandom >"$M/f200k"
dd if=/dev/urandom of="$M/sparse" bs=4k count=3 seek=2560 status=none
mkdir -p "$M/a/b/c" "$M/modes"
echo deep >"$M/a/b/c/deep"
ln -s ../one "$M/a/rel-link"
ln -s /nonexistent/target "$M/a/dangling"
ln "$M/one" "$M/a/b/hard"
mkfifo "$M/a/fifo"
install -m 0600 /dev/null "$M/modes/0600"
install -m 0755 /dev/null "$M/modes/0755"
mkdir -m 1777 "$M/modes/sticky"
if [ "$(id -u)" = 0 ]; then
    chown 4242:4343 "$M/modes/0600"
fi
touch -d "2001-02-03 04:05:06.123456789" "$M/modes/0755"
touch -h -d "1999-01-01 00:00:00.5" "$M/a/rel-link"
setfattr -n user.k1 -v v1 "$M/one"
setfattr -n user.k2 -v 0xdeadbeef "$M/a"
for i in $(seq 1 40); do
    echo "$i" >"$M/a/b/many-$i"
done

manifest() { # OUT
    meta_tree "$M" >"$1.meta"
    sha_tree "$M" >"$1.sha"
    (cd "$M" && getfattr -h -R -d -m 'user\.' -e hex .) >"$1.xattr" 2>"$T/getfattr.err" ||
        fail "getfattr -R on the mount failed: $(head -c 300 "$T/getfattr.err")"
}
compare() { # WHAT
    local k
    for k in meta sha xattr; do
        diff "$T/m0.$k" "$T/m1.$k" >"$T/m.diff" ||
            fail "$1: $k changed (path|type|mode|uid|gid|size|mtime|ctime|nlink|target for meta): $(head -n 12 "$T/m.diff")"
    done
}
manifest "$T/m0"
[ -s "$T/m0.xattr" ] || fail "getfattr -R found no xattrs at all"

# chunk layout: ino of a 200000-byte file -> chunks 0..3 of 64 KiB
chunk_key() { printf 'v/%s/c/%x/%x' "$VOL" "$(stat -c %i "$1")" "$2"; }
check_chunks() { # FILE WHAT
    ctl --peer "127.0.0.1:${PORTS[0]}" get "$(chunk_key "$1" 0)" >/dev/null 2>&1 || {
        log "chunk keys not found under st_ino of $1 (st_ino is not the store's inode number?); layout check skipped"
        return 0
    }
    ctl --peer "127.0.0.1:${PORTS[0]}" get "$(chunk_key "$1" 3)" >/dev/null ||
        fail "$2: no chunk 3 ($(chunk_key "$1" 3)) for a 200000-byte file with 64 KiB chunks"
    ! ctl --peer "127.0.0.1:${PORTS[0]}" get "$(chunk_key "$1" 4)" >/dev/null 2>&1 ||
        fail "$2: chunk 4 ($(chunk_key "$1" 4)) exists for a 200000-byte file with 64 KiB chunks"
    log "$2: 200000 bytes stored as 4 chunks of 64 KiB"
}
check_chunks "$M/f200k" "volume created with chunk_kb=64"

# --- remount 1: one peer as HOST:PORT, another chunk_kb (ignored: volume exists)
umount_fs "$M"
FS_PEERS=127.0.0.1:${PORTS[2]} mount_fs "$M" --volume "$VOL" -o chunk_kb=256
manifest "$T/m1"
compare "remount through 127.0.0.1:${PORTS[2]} with -o chunk_kb=256"
head -c 200000 /dev/urandom >"$T/g200k"
cp "$T/g200k" "$M/g200k"
check_chunks "$M/g200k" "existing volume remounted with chunk_kb=256"
rm "$M/g200k"
manifest "$T/m0" # the root changed: new baseline
log "remount 1 ok"

# --- remount 2: peer from $DHT_PEER
umount_fs "$M"
FS_PEERS='' DHT_PEER=tcp://127.0.0.1:${PORTS[1]} mount_fs "$M" --volume "$VOL"
manifest "$T/m1"
compare "remount through \$DHT_PEER"
check_eq "link count of a hard-linked file" "$(stat -c %h "$M/one")" 2
check_eq "nanosecond mtime after remounts" "$(stat -c %y "$M/modes/0755")" "2001-02-03 04:05:06.123456789 +0000"
check_eq "xattr after remounts" "$(getfattr --absolute-names --only-values -n user.k1 "$M/one")" v1
umount_fs "$M"
finish
