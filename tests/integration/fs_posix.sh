#!/usr/bin/env bash
# POSIX surface on a real dhtfs mount: rename (a directory holding files,
# over an existing file, RENAME_NOREPLACE, RENAME_EXCHANGE, into its own
# subdirectory), hard links, symlinks (also dangling), chmod/chown, utimens
# with nanoseconds, permission checks for another user (allow_other +
# default_permissions), ownership of new files, xattrs, FIFOs, sockets and
# device nodes.
source "$(dirname "$0")/fs_lib.sh"
fs_require setpriv getfattr setfattr
fs_require_root
fs_helper
fs_ring
chmod 755 "$T" # other users must reach the mount point
M=$T/mnt
mount_fs "$M"

# --- rename a directory holding files
mkdir -p "$M/d1/sub"
for i in $(seq 1 10); do
    echo "file $i" >"$M/d1/f$i"
    echo "sub $i" >"$M/d1/sub/s$i"
done
mv "$M/d1" "$M/d2" || fail "mv of a directory failed"
[ ! -e "$M/d1" ] || fail "old directory name d1 still exists after mv d1 d2"
check_eq "entries of the renamed directory" "$(ls "$M/d2" | wc -l)" 11
check_eq "file in the renamed directory" "$(cat "$M/d2/f7")" "file 7"
check_eq "file in a subdirectory of the renamed directory" "$(cat "$M/d2/sub/s9")" "sub 9"
expect_err "No such file or directory" cat "$M/d1/f7"
mkdir "$M/other"
mv "$M/d2/sub" "$M/other/moved"
check_eq "subdirectory moved to another parent" "$(cat "$M/other/moved/s3")" "sub 3"
check_eq "'..' of the moved directory" "$(stat -c %i "$M/other/moved/..")" "$(stat -c %i "$M/other")"
expect_err "Invalid argument" "$FSPROBE" rename2 none "$M/other" "$M/other/moved/inside"
log "directory rename ok"

# --- rename over existing targets
echo new >"$M/a"
echo old >"$M/b"
ln "$M/b" "$M/b-link"
mv "$M/a" "$M/b"
check_eq "target after rename over it" "$(cat "$M/b")" new
[ ! -e "$M/a" ] || fail "source still exists after rename over a file"
check_eq "other hard link of the replaced file" "$(cat "$M/b-link")" old
check_eq "link count of the replaced file" "$(stat -c %h "$M/b-link")" 1
mkdir "$M/e1" "$M/e2" "$M/full"
echo x >"$M/e1/x"
touch "$M/full/y"
mv -T "$M/e1" "$M/e2" || fail "rename of a directory over an empty directory failed"
check_eq "directory renamed over an empty one" "$(cat "$M/e2/x")" x
expect_err "Directory not empty" "$FSPROBE" rename2 none "$M/e2" "$M/full"
expect_err "Is a directory" "$FSPROBE" rename2 none "$M/b" "$M/full"
expect_err "Not a directory" "$FSPROBE" rename2 none "$M/e2" "$M/b"
log "rename over existing targets ok"

# --- renameat2 flags
echo one >"$M/n1"
echo two >"$M/n2"
expect_err "File exists" "$FSPROBE" rename2 noreplace "$M/n1" "$M/n2"
check_eq "target after a refused RENAME_NOREPLACE" "$(cat "$M/n2")" two
check_eq "source after a refused RENAME_NOREPLACE" "$(cat "$M/n1")" one
expect_ok "$FSPROBE" rename2 noreplace "$M/n1" "$M/n3"
check_eq "RENAME_NOREPLACE to a free name" "$(cat "$M/n3")" one
[ ! -e "$M/n1" ] || fail "n1 still exists after RENAME_NOREPLACE n1 n3"
expect_ok "$FSPROBE" rename2 exchange "$M/n2" "$M/n3"
check_eq "n2 after RENAME_EXCHANGE" "$(cat "$M/n2")" one
check_eq "n3 after RENAME_EXCHANGE" "$(cat "$M/n3")" two
mkdir "$M/xdir"
echo inx >"$M/xdir/inside"
expect_ok "$FSPROBE" rename2 exchange "$M/n2" "$M/xdir"
check_eq "file side of a file<->directory exchange" "$(cat "$M/n2/inside")" inx
check_eq "directory side of a file<->directory exchange" "$(cat "$M/xdir")" one
expect_err "No such file or directory" "$FSPROBE" rename2 exchange "$M/n3" "$M/nothere"
log "RENAME_NOREPLACE / RENAME_EXCHANGE ok"

# --- hard links
echo shared >"$M/h1"
mkdir "$M/hd"
ln "$M/h1" "$M/hd/h2" || fail "ln (hard link) failed"
check_eq "link count after ln" "$(stat -c %h "$M/h1")" 2
check_eq "same inode for both links" "$(stat -c %i "$M/hd/h2")" "$(stat -c %i "$M/h1")"
echo more >>"$M/hd/h2"
check_eq "content written through one link, read through the other" "$(cat "$M/h1")" $'shared\nmore'
rm "$M/h1"
check_eq "other link after unlink" "$(cat "$M/hd/h2")" $'shared\nmore'
check_eq "link count after unlink" "$(stat -c %h "$M/hd/h2")" 1
ln "$M/hd/h2" "$M/h3"
mv "$M/h3" "$M/h4"
check_eq "link count after ln + mv" "$(stat -c %h "$M/hd/h2")" 2
expect_err "File exists" ln "$M/hd/h2" "$M/h4"
log "hard links ok"

# --- symlinks
echo target >"$M/t"
ln -s t "$M/sl"
check_eq "readlink" "$(readlink "$M/sl")" t
check_eq "read through a symlink" "$(cat "$M/sl")" target
check_eq "symlink type" "$(stat -c %F "$M/sl")" "symbolic link"
check_eq "symlink size" "$(stat -c %s "$M/sl")" 1
ln -s does/not/exist "$M/dangling"
check_eq "readlink of a dangling link" "$(readlink "$M/dangling")" does/not/exist
expect_err "No such file or directory" cat "$M/dangling"
[ -L "$M/dangling" ] || fail "dangling symlink is not a symlink"
ln -s other/moved "$M/dirlink"
check_eq "directory through a symlink" "$(cat "$M/dirlink/s1")" "sub 1"
long=$(printf 'p%.0s/' {1..1500})end
ln -s "$long" "$M/longlink"
check_eq "readlink of a 3003-byte target" "$(readlink "$M/longlink")" "$long"
ln -s /etc/hostname "$M/abs"
check_eq "absolute symlink leaving the mount" "$(cat "$M/abs")" "$(cat /etc/hostname)"
log "symlinks ok"

# --- chmod, chown, times with nanoseconds
echo m >"$M/perm"
chmod 0640 "$M/perm"
check_eq "mode after chmod 0640" "$(stat -c %a "$M/perm")" 640
chmod 4755 "$M/perm"
check_eq "mode after chmod 4755" "$(stat -c %a "$M/perm")" 4755
chmod 1777 "$M/other"
check_eq "directory mode after chmod 1777" "$(stat -c %a "$M/other")" 1777
chown 1234:5678 "$M/perm"
check_eq "owner after chown 1234:5678" "$(stat -c %u:%g "$M/perm")" 1234:5678
chown -h 42:43 "$M/sl"
check_eq "owner of a symlink after chown -h" "$(stat -c %u:%g "$M/sl")" 42:43
check_eq "symlink target owner untouched by chown -h" "$(stat -c %u:%g "$M/t")" 0:0
touch -d "2001-02-03 04:05:06.123456789" "$M/perm"
check_eq "mtime with nanoseconds" "$(stat -c %y "$M/perm")" "2001-02-03 04:05:06.123456789 +0000"
touch -a -d "1999-12-31 23:59:59.987654321" "$M/perm"
check_eq "atime with nanoseconds" "$(stat -c %x "$M/perm")" "1999-12-31 23:59:59.987654321 +0000"
check_eq "mtime kept by touch -a" "$(stat -c %y "$M/perm")" "2001-02-03 04:05:06.123456789 +0000"
# cp -a sets the times while the new file is still open (before close)
for n in 100 8192 100000; do
    head -c "$n" /dev/urandom >"$T/cpa-$n"
    touch -d "2001-02-03 04:05:06.123456789" "$T/cpa-$n"
    cp -a "$T/cpa-$n" "$M/cpa-$n"
    got=$(stat -c %y "$M/cpa-$n")
    [ "$got" = "2001-02-03 04:05:06.123456789 +0000" ] ||
        soft_fail "mtime of a $n-byte file after cp -a (times set before close): got $got, expected 2001-02-03 04:05:06.123456789 +0000"
done
before=$(stat -c %Y "$M/t")
sleep 1.1
echo again >>"$M/t"
after=$(stat -c %Y "$M/t")
((after > before)) || fail "mtime did not advance on write: $before -> $after"
log "chmod/chown/utimens ok"

# --- permission checks as another user (uid 65534)
echo secret >"$M/rootfile"
chmod 0644 "$M/rootfile"
check_eq "other user reads a 0644 file" "$("${AS_NOBODY[@]}" cat "$M/rootfile")" secret
expect_err "Permission denied" "${AS_NOBODY[@]}" sh -c 'echo x >>"$1"' _ "$M/rootfile"
expect_err "Permission denied" "${AS_NOBODY[@]}" touch "$M/newbyother"
expect_err "Permission denied" "${AS_NOBODY[@]}" rm -f "$M/rootfile"
expect_err "Operation not permitted" "${AS_NOBODY[@]}" chmod 0666 "$M/rootfile"
check_eq "root file after the refused writes" "$(cat "$M/rootfile")" secret
chmod 0600 "$M/rootfile"
expect_err "Permission denied" "${AS_NOBODY[@]}" cat "$M/rootfile"
mkdir -m 0777 "$M/pub"
"${AS_NOBODY[@]}" sh -c 'echo mine >"$1/byother"' _ "$M/pub" || fail "other user cannot create in a 0777 directory"
check_eq "owner of a file created by uid 65534" "$(stat -c %u:%g "$M/pub/byother")" 65534:65534
"${AS_NOBODY[@]}" mkdir "$M/pub/otherdir" || fail "other user cannot mkdir in a 0777 directory"
check_eq "owner of a directory created by uid 65534" "$(stat -c %u:%g "$M/pub/otherdir")" 65534:65534
mkdir "$M/sgid"
chown 0:4321 "$M/sgid"
chmod 2777 "$M/sgid"
"${AS_NOBODY[@]}" touch "$M/sgid/f" || fail "other user cannot create in a 2777 directory"
check_eq "group of a file in a setgid directory" "$(stat -c %u:%g "$M/sgid/f")" 65534:4321
chmod 1777 "$M/pub"
echo rootowned >"$M/pub/rootowned"
expect_err "Operation not permitted" "${AS_NOBODY[@]}" rm -f "$M/pub/rootowned"
log "permission checks ok"

# --- what a write, truncate or chown takes away (set-id bits, file
# capabilities), as the kernel's VFS does (tmpfs on the same kernel): dhtfs
# does it on its side (FUSE_HANDLE_KILLPRIV_V2), so that writes are not
# each preceded by a GETXATTR of security.capability. A second mount M2
# (log at info: it says whether the kernel took the flag; names trusted
# for 30 s: its negative entry below must still be trusted).
M2=$T/m2
mount_fs "$M2" -o attr_timeout=30,log_level=info
if ! grep -q "FUSE_HANDLE_KILLPRIV_V2" "$T/dhtfs-m2.log"; then
    read -r kmaj kmin _ < <(uname -r | tr '.-' '  ')
    ((kmaj < 5 || (kmaj == 5 && kmin < 11))) ||
        fail "Linux $(uname -r) offers FUSE_HANDLE_KILLPRIV_V2, but the mount did not take it: $(tail -5 "$T/dhtfs-m2.log")"
    log "Linux $(uname -r) has no FUSE_HANDLE_KILLPRIV_V2: the kernel takes set-id bits itself (not checked)"
    umount_fs "$M2"
else
    mkdir -m 0777 "$M/kp"
    setid() { # setid MODE NAME: a root-owned file NAME with mode MODE
        echo x >"$M/kp/$2"
        chmod "$1" "$M/kp/$2"
    }
    setid 6755 rootw
    echo more >>"$M/kp/rootw"
    check_eq "set-id bits after a write by root (CAP_FSETID)" "$(stat -c %a "$M/kp/rootw")" 6755
    setid 6777 otherw
    "${AS_NOBODY[@]}" sh -c 'echo more >>"$1"' _ "$M/kp/otherw" || fail "uid 65534 cannot write a 6777 file"
    check_eq "set-id bits after a write by another user" "$(stat -c %a "$M/kp/otherw")" 777
    check_eq "the write by another user" "$(cat "$M/kp/otherw")" $'x\nmore'
    # Set-group-ID without group execute goes unless the writer is in the file's group (Linux 6.2 on).
    setid 2767 sgidw
    "${AS_NOBODY[@]}" sh -c 'echo more >>"$1"' _ "$M/kp/sgidw" || fail "uid 65534 cannot write a 2767 file"
    check_eq "set-group-ID without group execute after a write from outside the group" "$(stat -c %a "$M/kp/sgidw")" 767
    setid 2767 sgidg
    chgrp 65534 "$M/kp/sgidg"
    chmod 2767 "$M/kp/sgidg"
    "${AS_NOBODY[@]}" sh -c 'echo more >>"$1"' _ "$M/kp/sgidg" || fail "uid 65534 cannot write a 2767 file"
    check_eq "set-group-ID without group execute after a write from its group" "$(stat -c %a "$M/kp/sgidg")" 2767
    setid 4777 othert
    "${AS_NOBODY[@]}" truncate -s 1 "$M/kp/othert" || fail "uid 65534 cannot truncate a 4777 file"
    check_eq "set-user-ID after a truncate by another user" "$(stat -c %a "$M/kp/othert")" 777
    check_eq "size after the truncate" "$(stat -c %s "$M/kp/othert")" 1
    setid 6777 othero
    "${AS_NOBODY[@]}" sh -c ': >"$1"' _ "$M/kp/othero" || fail "uid 65534 cannot open a 6777 file with O_TRUNC"
    check_eq "set-id bits after an O_TRUNC open by another user" "$(stat -c %a "$M/kp/othero")" 777
    setid 6777 othere
    : >"$M/kp/othere"
    chmod 6777 "$M/kp/othere"
    "${AS_NOBODY[@]}" sh -c ': >"$1"' _ "$M/kp/othere" || fail "uid 65534 cannot open an empty 6777 file with O_TRUNC"
    check_eq "set-id bits after an O_TRUNC open of an empty file by another user" "$(stat -c %a "$M/kp/othere")" 777
    setid 4777 otherc
    "${AS_NOBODY[@]}" /usr/bin/python3 -c 'import os, sys
src, dst = os.open(sys.argv[1], os.O_RDONLY), os.open(sys.argv[2], os.O_WRONLY)
assert os.copy_file_range(src, dst, 1, 0, 0) == 1' "$M/pub/byother" "$M/kp/otherc" ||
        fail "uid 65534 cannot copy_file_range into a 4777 file"
    check_eq "set-user-ID after a copy_file_range by another user" "$(stat -c %a "$M/kp/otherc")" 777
    setid 4777 otherf
    "${AS_NOBODY[@]}" fallocate -l 8192 "$M/kp/otherf" || fail "uid 65534 cannot fallocate a 4777 file"
    check_eq "set-user-ID after a fallocate by another user" "$(stat -c %a "$M/kp/otherf")" 777
    setid 6755 chowned
    chown 65534 "$M/kp/chowned"
    check_eq "set-id bits after a chown" "$(stat -c %a "$M/kp/chowned")" 755
    # Another mount: an O_TRUNC open that the kernel sends as a create (its
    # negative entry still trusted) finds the file the first mount made.
    [ ! -e "$M2/kp/race" ] || fail "kp/race exists before it was made"
    setid 4777 race
    "${AS_NOBODY[@]}" sh -c ': >"$1"' _ "$M2/kp/race" || fail "uid 65534 cannot open a 4777 file with O_TRUNC"
    check_eq "set-user-ID after an O_TRUNC open through another mount" "$(stat -c %a "$M2/kp/race")" 777
    check_eq "size after it" "$(stat -c %s "$M2/kp/race")" 0
    # ... and the file's own permissions still hold there (the directory's are not enough).
    [ ! -e "$M2/kp/locked" ] || fail "kp/locked exists before it was made"
    echo secret >"$M/kp/locked"
    chmod 0644 "$M/kp/locked"
    expect_err "Permission denied" "${AS_NOBODY[@]}" sh -c ': >"$1"' _ "$M2/kp/locked"
    check_eq "a 0644 file after another user's refused O_TRUNC open through another mount" \
        "$(cat "$M/kp/locked")" secret
    # A capability set through the other mount goes with a write through this one.
    setid 0755 capx
    setfattr -n security.capability -v 0x0000000200200000000000000000000000000000 "$M2/kp/capx"
    echo more >>"$M/kp/capx"
    expect_err "No such attribute" getfattr --absolute-names -n security.capability "$M/kp/capx"
    sleep 1.2 # until this mount's cached view of kp/race (an attribute timeout) has expired
    # A file capability (CAP_NET_RAW permitted, VFS_CAP_REVISION_2) goes with a write, even root's.
    setid 0755 capw
    setfattr -n security.capability -v 0x0000000200200000000000000000000000000000 "$M/kp/capw" ||
        fail "setfattr security.capability failed"
    echo more >>"$M/kp/capw"
    expect_err "No such attribute" getfattr --absolute-names -n security.capability "$M/kp/capw"
    setid 0755 capt
    setfattr -n security.capability -v 0x0000000200200000000000000000000000000000 "$M/kp/capt"
    truncate -s 0 "$M/kp/capt"
    expect_err "No such attribute" getfattr --absolute-names -n security.capability "$M/kp/capt"
    log "set-id bits and file capabilities taken away as by the VFS"
    # ... and so 500 writes cost no GETXATTR each (Linux 5.11 and later offer it)
    dd if=/dev/zero of="$M2/small" bs=512 count=500 status=none || fail "dd of 500 writes failed"
    umount_fs "$M2"
    gx=$(sed -n 's/.* getxattr *\([0-9]*\) requests.*/\1/p' "$T/dhtfs-m2.log")
    ((${gx:-0} < 50)) || fail "500 writes cost $gx GETXATTR requests (the kernel asks before each write)"
    cr=$(sed -n 's/.* create *\([0-9]*\) requests.*/\1/p' "$T/dhtfs-m2.log")
    ((${cr:-0} >= 3)) || fail "M2 made ${cr:-0} CREATE requests, want 3: the O_TRUNC opens of kp/race and kp/locked were not sent as creates"
    log "500 writes: ${gx:-0} GETXATTR requests"
fi

# --- extended attributes
echo x >"$M/xa"
setfattr -n user.color -v blue "$M/xa" || fail "setfattr user.color failed"
setfattr -n user.size -v 0x000102ff "$M/xa" || fail "setfattr of a binary value failed"
check_eq "getfattr user.color" "$(getfattr --absolute-names --only-values -n user.color "$M/xa")" blue
check_eq "binary xattr value" "$(getfattr --absolute-names -e hex -n user.size "$M/xa" | grep '^user.size')" "user.size=0x000102ff"
check_eq "xattr names" "$(getfattr --absolute-names -m - "$M/xa" | grep -v '^#' | grep . | sort | tr '\n' ' ')" "user.color user.size "
setfattr -n user.color -v red "$M/xa"
check_eq "xattr after replace" "$(getfattr --absolute-names --only-values -n user.color "$M/xa")" red
setfattr -x user.color "$M/xa" || fail "setfattr -x failed"
expect_err "No such attribute" getfattr --absolute-names -n user.color "$M/xa"
expect_err "No such attribute" setfattr -x user.nothere "$M/xa"
mkdir "$M/xadir"
setfattr -n user.dir -v yes "$M/xadir"
check_eq "xattr on a directory" "$(getfattr --absolute-names --only-values -n user.dir "$M/xadir")" yes
big=$(head -c 3000 /dev/zero | tr '\0' v)
setfattr -n user.big -v "$big" "$M/xa"
check_eq "3000-byte xattr value" "$(getfattr --absolute-names --only-values -n user.big "$M/xa")" "$big"
log "xattrs ok"

# --- special files
mkfifo "$M/fifo"
check_eq "FIFO type" "$(stat -c %F "$M/fifo")" fifo
timeout 10 sh -c 'echo through-fifo >"$1"' _ "$M/fifo" &
fifo_writer=$!
check_eq "data through a FIFO on the mount" "$(timeout 10 cat "$M/fifo")" through-fifo
wait "$fifo_writer"
mknod "$M/null" c 1 3
check_eq "device node type and numbers" "$(stat -c '%F %t %T' "$M/null")" "character special file 1 3"
expect_ok "$FSPROBE" sock "$M/sock"
check_eq "socket type" "$(stat -c %F "$M/sock")" socket
log "special files ok"

# --- all of it survives a remount
meta_tree "$M" >"$T/meta.before"
sha_tree "$M" >"$T/sha.before"
remount_fs "$M"
meta_tree "$M" >"$T/meta.after"
sha_tree "$M" >"$T/sha.after"
diff "$T/meta.before" "$T/meta.after" >&2 || fail "metadata changed across a remount (diff above: path|type|mode|uid|gid|size|mtime|ctime|nlink|target)"
diff "$T/sha.before" "$T/sha.after" >&2 || fail "file contents changed across a remount (diff above)"
check_eq "xattr after remount" "$(getfattr --absolute-names -e hex -n user.size "$M/xa" | grep "^user.size")" "user.size=0x000102ff"
umount_fs "$M"
log "remount ok"
finish
