#!/usr/bin/env bash
# Basic file operations on a real dhtfs mount over a 3-node ring: small
# files, names of 255/256 bytes and odd bytes, mkdir/rmdir (non-empty ->
# ENOTEMPTY), rm -r, O_EXCL, append (>> and two O_APPEND writers), truncate
# (shrink into a chunk, extend: zeros, not old data), a sparse write at
# 5 GiB (holes read as zeros, apparent vs allocated size), statfs; then a
# remount must read every file back unchanged.
source "$(dirname "$0")/fs_lib.sh"
fs_require
fs_helper
fs_ring
M=$T/mnt
mount_fs "$M"

# --- small files, overwrite, empty file
echo hello >"$M/hello"
check_eq "read back a small file" "$(cat "$M/hello")" hello
echo "hello again" >"$M/hello"
check_eq "overwrite with O_TRUNC" "$(cat "$M/hello")" "hello again"
: >"$M/empty"
check_eq "size of an empty file" "$(stat -c %s "$M/empty")" 0
check_eq "type of a regular file" "$(stat -c %F "$M/hello")" "regular file"
check_eq "type of the root" "$(stat -c %F "$M")" "directory"
head -c 3000000 /dev/urandom >"$T/ref3m"
cp "$T/ref3m" "$M/three"
check_same_file "3 MB file copied in" "$M/three" "$T/ref3m"
expect_ok "$FSPROBE" excl "$M/excl"
expect_err "File exists" "$FSPROBE" excl "$M/excl"
expect_err "File exists" "$FSPROBE" excl "$M/hello"
log "small files, overwrite, O_EXCL ok"

# --- names: 255 bytes work, 256 fail, any byte but / and NUL
n255=$(printf 'n%.0s' {1..255})
n256=$(printf 'n%.0s' {1..256})
echo long >"$M/$n255"
check_eq "read a file with a 255-byte name" "$(cat "$M/$n255")" long
ls "$M" >"$T/ls"
grep -qx "$n255" "$T/ls" || fail "255-byte name not listed by ls"
mkdir "$M/d$(printf 'x%.0s' {1..254})" || fail "mkdir with a 255-byte name failed"
expect_err "File name too long" touch "$M/$n256"
expect_err "File name too long" mkdir "$M/$n256"
expect_err "File name too long" mv "$M/hello" "$M/$n256"
expect_err "File name too long" ln -s x "$M/$n256"
[ -e "$M/hello" ] || fail "failed rename to a 256-byte name lost the source"
odd=$'odd name\twith\nnewline \xff\x01 ü *?'
echo odd >"$M/$odd"
check_eq "read a file with an odd name" "$(cat "$M/$odd")" odd
[ "$(find "$M" -maxdepth 1 -name 'odd name*' -printf x)" = x ] ||
    fail "odd name not found exactly once by find: $(ls -b "$M")"
log "255-byte names ok, 256 -> ENAMETOOLONG, odd bytes ok"

# --- directories
mkdir "$M/d"
expect_err "File exists" mkdir "$M/d"
echo x >"$M/d/f"
expect_err "Directory not empty" rmdir "$M/d"
expect_err "Not a directory" mkdir "$M/d/f/sub"
expect_err "No such file or directory" cat "$M/d/missing"
rm "$M/d/f"
rmdir "$M/d" || fail "rmdir of an emptied directory failed"
[ ! -e "$M/d" ] || fail "$M/d still exists after rmdir"
mkdir -p "$M/tree"
for i in $(seq 1 5); do
    mkdir -p "$M/tree/a$i/b/c"
    for j in $(seq 1 20); do
        echo "$i $j" >"$M/tree/a$i/b/c/f$j"
    done
    echo top >"$M/tree/a$i/top"
    ln -s top "$M/tree/a$i/link"
done
check_eq "files in the tree" "$(find "$M/tree" -type f | wc -l)" 105
check_eq "entries of tree/a3/b/c" "$(ls "$M/tree/a3/b/c" | wc -l)" 20
check_eq "a file deep in the tree" "$(cat "$M/tree/a4/b/c/f17")" "4 17"
expect_err "Directory not empty" rmdir "$M/tree"
rm -r "$M/tree" || fail "rm -r of a tree failed"
[ ! -e "$M/tree" ] || fail "tree still exists after rm -r"
ls "$M" >"$T/ls"
! grep -qx tree "$T/ls" || fail "tree still listed after rm -r"
log "mkdir/rmdir/ENOTEMPTY/rm -r ok"

# --- append: >> and two O_APPEND writers taking turns
for i in 1 2 3; do
    echo "line $i" >>"$M/app"
done
check_eq "append with >>" "$(cat "$M/app")" $'line 1\nline 2\nline 3'
exec 3>>"$M/app2" 4>>"$M/app2"
echo one >&3
echo two >&4
echo three >&3
head -c 100000 /dev/zero | tr '\0' a >&4
echo four >&3
exec 3>&- 4>&-
{
    printf 'one\ntwo\nthree\n'
    head -c 100000 /dev/zero | tr '\0' a
    echo four
} >"$T/app2.ref"
check_same_file "two O_APPEND writers" "$M/app2" "$T/app2.ref"
(for i in $(seq 1 50); do echo "A$i"; done >>"$M/app3") &
wait $!
(for i in $(seq 1 50); do echo "B$i"; done >>"$M/app3") &
wait $!
{
    seq 1 50 | sed 's/^/A/'
    seq 1 50 | sed 's/^/B/'
} >"$T/app3.ref"
check_same_file "appends from two processes in turn" "$M/app3" "$T/app3.ref"
log "append ok"

# --- truncate: shrink into the middle of a chunk, extend (zeros), again
head -c $((4 * 1048576)) /dev/urandom >"$T/trunc.src"
cp "$T/trunc.src" "$M/trunc"
s1=$((3 * 1048576 + 12345))
truncate -s "$s1" "$M/trunc"
check_eq "size after shrink" "$(stat -c %s "$M/trunc")" "$s1"
head -c "$s1" "$T/trunc.src" >"$T/trunc.ref"
check_same_file "content after shrink" "$M/trunc" "$T/trunc.ref"
truncate -s $((4 * 1048576)) "$M/trunc"
head -c $((4 * 1048576 - s1)) /dev/zero >>"$T/trunc.ref"
check_same_file "extend after shrink (tail must be zeros, not old data)" "$M/trunc" "$T/trunc.ref"
truncate -s 100 "$M/trunc"
truncate -s $((6 * 1048576 + 7)) "$M/trunc"
{
    head -c 100 "$T/trunc.src"
    head -c $((6 * 1048576 + 7 - 100)) /dev/zero
} >"$T/trunc.ref"
check_same_file "shrink to 100 then extend to 6 MiB+7" "$M/trunc" "$T/trunc.ref"
printf 'XYZ' | dd of="$M/trunc" bs=1 seek=$((5 * 1048576)) conv=notrunc status=none
printf 'XYZ' | dd of="$T/trunc.ref" bs=1 seek=$((5 * 1048576)) conv=notrunc status=none
check_same_file "write into the extended region" "$M/trunc" "$T/trunc.ref"
cp "$T/trunc.src" "$M/trunc0"
truncate -s 0 "$M/trunc0"
check_eq "size after truncate to 0" "$(stat -c %s "$M/trunc0")" 0
truncate -s 70000 "$M/trunc0"
head -c 70000 /dev/zero >"$T/trunc0.ref"
check_same_file "truncate to 0 then extend" "$M/trunc0" "$T/trunc0.ref"
# ftruncate through an open descriptor while writing after it
head -c 200000 /dev/urandom >"$T/ft.src"
cp "$T/ft.src" "$M/ft"
exec 5<>"$M/ft"
truncate -s 50000 "$M/ft"
exec 5>&-
head -c 50000 "$T/ft.src" >"$T/ft.ref"
check_same_file "truncate of an open file" "$M/ft" "$T/ft.ref"
log "truncate ok"

# --- sparse file with a block at 5 GiB
head -c 4096 /dev/urandom >"$T/block"
dd if="$T/block" of="$M/sparse" bs=4k count=1 seek=$((5 * 1024 * 1024 / 4)) conv=notrunc status=none ||
    fail "dd at 5 GiB failed"
want=$((5 * 1024 * 1024 * 1024 + 4096))
check_eq "size of the sparse file" "$(stat -c %s "$M/sparse")" "$want"
check_eq "apparent size (du -b)" "$(du -b "$M/sparse" | cut -f1)" "$want"
head -c 1048576 /dev/zero >"$T/zero1m"
for off_mb in 0 1 4095 4096 5119; do
    dd if="$M/sparse" bs=1M skip="$off_mb" count=1 status=none >"$T/hole" ||
        fail "reading the hole at ${off_mb} MiB failed"
    check_same_file "hole at ${off_mb} MiB reads as zeros" "$T/hole" "$T/zero1m"
done
dd if="$M/sparse" bs=4k skip=$((5 * 1024 * 1024 / 4)) count=1 status=none >"$T/block.back"
check_same_file "4 KiB block written at 5 GiB" "$T/block.back" "$T/block"
check_eq "bytes after 5 GiB - 1 MiB" "$(tail -c $((1048576 + 4096)) "$M/sparse" | sha256sum)" \
    "$({ head -c 1048576 /dev/zero; cat "$T/block"; } | sha256sum)"
log "sparse 5 GiB file ok (allocated size checked at the end)"

# --- statfs
df -P "$M" >"$T/df" || fail "df of the mount failed"
blocks=$(stat -f -c %b "$M")
((blocks > 0)) || fail "statfs reports $blocks blocks"
log "statfs ok: $(tail -n 1 "$T/df")"

# --- everything is still there after a remount
sha_tree "$M" ! -name sparse >"$T/before.sha"
remount_fs "$M"
sha_tree "$M" ! -name sparse >"$T/after.sha"
diff "$T/before.sha" "$T/after.sha" >&2 || fail "sha256 of files differ after remount (diff above)"
check_eq "sparse size after remount" "$(stat -c %s "$M/sparse")" "$want"
dd if="$M/sparse" bs=4k skip=$((5 * 1024 * 1024 / 4)) count=1 status=none >"$T/block.back"
check_same_file "block at 5 GiB after remount" "$T/block.back" "$T/block"
dd if="$M/sparse" bs=1M skip=4000 count=1 status=none >"$T/hole"
check_same_file "hole at 4000 MiB after remount" "$T/hole" "$T/zero1m"
check_eq "odd name after remount" "$(cat "$M/$odd")" odd
alloc=$(du -k "$M/sparse" | cut -f1)
((alloc < 16384)) || soft_fail "sparse file with 4 KiB of data at 5 GiB: du -k reports ${alloc} KiB allocated (st_blocks=$(stat -c %b "$M/sparse")); expected < 16384 KiB (holes must not count as allocated)"
log "sparse file: ${alloc} KiB allocated"
umount_fs "$M"
finish
