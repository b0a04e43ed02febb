#!/usr/bin/env bash
# Two mounts of one volume on one ring see one file system: 150 creates
# from each mount into one directory at the same time lose no entry and
# give 300 distinct inode numbers; a file written and closed on one mount
# is read whole on the other (close-to-open), also after an overwrite;
# rename and unlink on one are seen by the other; a directory's times
# changed by a create on one are seen on the other, and a time set right
# after a create is not overwritten by them; chmod, chown and utimens of
# a file open with unflushed writes show at once on its mount and on the
# other after the close or an fsync; an rmdir of a name another mount
# replaced behind this mount's cache removes the directory now under it.
# --volume keeps two
# volumes on the same ring independent; a bad volume name is refused.
source "$(dirname "$0")/fs_lib.sh"
fs_require python3 getfattr
fs_ring
A=$T/a
B=$T/b
mount_fs "$A"
mount_fs "$B"
SETTLE=2 # the kernel caches entries and attributes for about a second

mkdir "$A/shared"
sleep "$SETTLE"
[ -d "$B/shared" ] || fail "directory made on mount a not visible on mount b after ${SETTLE}s"

# --- concurrent creates in one directory from both mounts
create_many() { # MOUNT PREFIX
    local i
    for i in $(seq 0 149); do
        echo "$2 $i" >"$1/shared/$2-$i" || return 1
    done
}
create_many "$A" a 2>"$T/create-a.err" &
pa=$!
create_many "$B" b 2>"$T/create-b.err" &
pb=$!
sta=0 stb=0
wait "$pa" || sta=$?
wait "$pb" || stb=$?
[ "$sta" = 0 ] || fail "creates on mount a failed: $(head -c 400 "$T/create-a.err")"
[ "$stb" = 0 ] || fail "creates on mount b failed: $(head -c 400 "$T/create-b.err")"
sleep "$SETTLE"
{
    seq 0 149 | sed 's/^/a-/'
    seq 0 149 | sed 's/^/b-/'
} | sort >"$T/expected"
for m in "$A" "$B"; do
    ls "$m/shared" | sort >"$T/listed"
    diff "$T/expected" "$T/listed" >"$T/ls.diff" ||
        fail "ls of $m/shared after concurrent creates: $(grep -c '^<' "$T/ls.diff") missing, $(grep -c '^>' "$T/ls.diff") extra: $(head -n 10 "$T/ls.diff" | tr '\n' ' ')"
    check_eq "ls $m/shared | wc -l" "$(ls "$m/shared" | wc -l)" 300
done
stat -c %i "$A"/shared/* | sort | uniq -d >"$T/dup-ino"
[ ! -s "$T/dup-ino" ] || fail "inode numbers used twice among the 300 new files: $(head -n 5 "$T/dup-ino" | tr '\n' ' ')"
check_eq "distinct inode numbers seen from b" "$(stat -c %i "$B"/shared/* | sort -u | wc -l)" 300
for i in 0 77 149; do
    check_eq "file a-$i read on mount b" "$(cat "$B/shared/a-$i")" "a $i"
    check_eq "file b-$i read on mount a" "$(cat "$A/shared/b-$i")" "b $i"
done
log "300 concurrent creates from two mounts: all seen on both, inodes distinct"

# --- close-to-open: written and closed on one mount, read whole on the other
# c2o WHAT FILE REF: FILE (on the other mount) has REF's content right away;
# if not, that is recorded, and it must be right SETTLE s later.
c2o() {
    local want got
    want=$(sha_of "$3")
    got=$(sha_of "$2" || true)
    [ "$got" = "$want" ] && return 0
    soft_fail "close-to-open: $1: right after the close on the other mount, $2 reads '$got', expected sha $want"
    sleep "$SETTLE"
    got=$(sha_of "$2" || true)
    [ "$got" = "$want" ] || fail "$1: even ${SETTLE}s after the close, $2 reads '$got', expected sha $want"
}
head -c $((20 * 1048576 + 333)) /dev/urandom >"$T/big1"
cp "$T/big1" "$A/big"
c2o "new 20 MB file written on a, read on b" "$B/big" "$T/big1"
head -c $((20 * 1048576 + 333)) /dev/urandom >"$T/big2"
cp "$T/big2" "$A/big" # same size, new content; b has the old one cached
c2o "same-size overwrite on a, read on b (b had the old data cached)" "$B/big" "$T/big2"
head -c 5000000 /dev/urandom >"$T/grow"
cat "$T/grow" >>"$A/big"
cat "$T/big2" "$T/grow" >"$T/big3"
sleep "$SETTLE" # the size b's kernel cached may be a second old
check_eq "sha256 on b after a appended 5 MB" "$(sha_of "$B/big")" "$(sha_of "$T/big3")"
echo "from b" >"$B/small"
echo "from b" >"$T/small"
c2o "small file written on b, read on a" "$A/small" "$T/small"
log "close-to-open between mounts checked"

# --- rename and unlink seen by the other mount
mv "$A/shared/a-5" "$A/renamed"
rm "$A/shared/b-6"
sleep "$SETTLE"
[ ! -e "$B/shared/a-5" ] || fail "mount b still sees shared/a-5 ${SETTLE}s after a renamed it"
check_eq "renamed file on mount b" "$(cat "$B/renamed")" "a 5"
[ ! -e "$B/shared/b-6" ] || fail "mount b still sees shared/b-6 ${SETTLE}s after a removed it"
check_eq "entries on b after rename + unlink" "$(ls "$B/shared" | wc -l)" 298
log "rename/unlink across mounts ok"

# --- a directory's new times, written behind (fs_t touch_delay_ms), reach the
# other mount, and never over times set explicitly right after the change
mkdir "$A/times" "$A/times2"
sleep "$SETTLE"
t0=$(date +%s)
sleep 1.1
echo x >"$A/times/new"
rm "$A/times/new"
sleep "$SETTLE"
got=$(stat -c %Y "$B/times")
((got > t0)) || fail "mtime of times/ on mount b is $got, not after $t0 although mount a created and removed a name in it ${SETTLE}s ago"
echo x >"$A/times2/f"
touch -m -d '2001-02-03 04:05:06.123456789 +0000' "$A/times2"
sleep "$SETTLE"
check_eq "explicit mtime of a directory right after a create in it, on mount a" \
    "$(stat -c %y "$A/times2")" "2001-02-03 04:05:06.123456789 +0000"
check_eq "... and on mount b" "$(stat -c %y "$B/times2")" "2001-02-03 04:05:06.123456789 +0000"
remount_fs "$A"
check_eq "... and after remounting a" "$(stat -c %y "$A/times2")" "2001-02-03 04:05:06.123456789 +0000"
log "directory times written behind: seen on the other mount, explicit times kept"

# --- attribute changes on a file with unflushed writes ride with its flush
# (fs_node_defer_attrs; tar's futimens, fchown and fchmod after each write):
# this mount sees them at once, the other one after the close (or an fsync),
# and a write after a time was set gives the file the write's time
t0=$(date +%s)
OWNER="$(id -u) $(id -g)"
[ "$(id -u)" = 0 ] && OWNER="4321 8765"
python3 - "$A/attrs" "$A/later" "$A/synced" "$B/synced" <<'PY' || fail "attribute changes on files open with unflushed writes (above)"
import os, sys, time
attrs, later, synced, synced_b = sys.argv[1:5]
T = 981173106 * 10**9 + 123456789  # 2001-02-03 04:05:06.123456789 UTC
fd = os.open(attrs, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, b"a" * 100000)  # out of the record: flushed at once, so write again
os.write(fd, b"attrs\n")
os.utime(fd, ns=(T, T))
uid, gid = (4321, 8765) if os.geteuid() == 0 else (os.getuid(), os.getgid())  # chown: root only
os.fchown(fd, uid, gid)
os.fchmod(fd, 0o640)
os.setxattr(fd, "user.k", b"v")  # a record update of its own before the flush (as cp -a's ACL)
st = os.stat(attrs)
got = (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid, st.st_mtime_ns)
if got != (oct(0o640), uid, gid, T):
    sys.exit(f"attrs: before the close this mount shows {got}")
os.close(fd)
fd = os.open(later, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, b"one\n")
os.utime(fd, ns=(T, T))
os.write(fd, b"two\n")
os.close(fd)
fd = os.open(synced, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, b"synced\n")
os.fchmod(fd, 0o604)
os.fsync(fd)
time.sleep(2)  # mount b's kernel may hold the name's attributes from before for a second
st = os.stat(synced_b)
os.close(fd)
if st.st_mode & 0o7777 != 0o604:
    sys.exit(f"synced: after an fsync on a, mount b shows mode {oct(st.st_mode & 0o7777)}, not 0o604")
PY
sleep "$SETTLE"
check_eq "mode, owner and mtime set on a before its close, seen on b" \
    "$(stat -c '%a %u %g %y' "$B/attrs")" "640 $OWNER 2001-02-03 04:05:06.123456789 +0000"
check_eq "... and its data" "$(tail -c 6 "$B/attrs") $(stat -c %s "$B/attrs")" "attrs 100006"
check_eq "... and its xattr" "$(getfattr --absolute-names --only-values -n user.k "$B/attrs" 2>&1)" v
got=$(stat -c %Y "$B/later")
((got >= t0)) || fail "mtime of a file written after its time was set is $got on mount b, before $t0 (the set time won over the later write)"
remount_fs "$A"
check_eq "mode, owner and mtime after remounting a" \
    "$(stat -c '%a %u %g %y' "$A/attrs")" "640 $OWNER 2001-02-03 04:05:06.123456789 +0000"
log "attribute changes deferred to the flush: seen at once here, after close or fsync elsewhere"

# --- a rename trusts the leaf this mount cached only as far as its
# compare-and-set proves it current: here mount b replaced the file behind
# a's cache (a's leaf and kernel still name the old inode) just before a
# renames it over another name a has cached too
mkdir "$A/mv"
echo old >"$A/mv/s"
echo other >"$A/mv/t"
sleep "$SETTLE"
stat "$A/mv/s" "$A/mv/t" >/dev/null # a's lookups cache the leaf (and the kernel the names)
rm "$B/mv/s"
echo new >"$B/mv/s"
mv "$A/mv/s" "$A/mv/t" || fail "mv on mount a after mount b replaced the file failed"
sleep "$SETTLE"
check_eq "renamed file read on mount b (b's file, not the one a had cached)" "$(cat "$B/mv/t")" new
check_eq "... and on mount a" "$(cat "$A/mv/t")" new
[ ! -e "$B/mv/s" ] || fail "the old name is still there after the rename on mount a"
check_eq "names left in mv/" "$(ls "$B/mv" | tr '\n' ' ')" "t "
log "a rename on a stale cached leaf moved the current file"

# --- rmdir starts from the name this mount has cached (fs_ns_rmdir): here
# mount b moved the directory away and made a new one under the name just
# before a removes it, once with the old one emptied, once not: a removes
# the new directory, and the old one is left whole and usable
for full in 0 1; do
    mkdir -p "$A/rd$full/x"
    sleep "$SETTLE"
    stat "$A/rd$full/x" >/dev/null # a's kernel and leaf cache name x
    mv "$B/rd$full/x" "$B/rd$full/y"
    mkdir "$B/rd$full/x"
    ((full)) && echo f >"$B/rd$full/y/f"
    old=empty
    ((full)) && old="not empty"
    rmdir "$A/rd$full/x" || fail "rmdir on mount a of a directory mount b had just replaced (the old one $old) failed"
    sleep "$SETTLE"
    [ ! -e "$B/rd$full/x" ] || fail "rd$full/x still there on mount b after a removed it"
    echo g >"$B/rd$full/y/g" || fail "the moved directory rd$full/y takes no new file after a's rmdir of its old name"
    check_eq "entries of the moved directory rd$full/y" "$(ls "$A/rd$full/y" | tr '\n' ' ')" "$( ((full)) && echo 'f g ' || echo 'g ')"
done
# the claim starts from the buckets a has cached (just listed, empty): b's
# file made in between must make it fail, not vanish with the directory
mkdir "$A/rd2"
sleep "$SETTLE"
ls "$A/rd2" >/dev/null
echo f >"$B/rd2/f"
rmdir "$A/rd2" 2>"$T/rmdir.err" && fail "rmdir on mount a removed rd2 although mount b had just made rd2/f"
grep -q 'not empty' "$T/rmdir.err" || fail "rmdir of rd2 on mount a: expected 'Directory not empty', got: $(cat "$T/rmdir.err")"
check_eq "rd2/f read on mount a after the refused rmdir" "$(cat "$A/rd2/f")" f
# ... and one b removed already: a's rmdir fails, the parent's link count
# stays right
mkdir -p "$A/rd3/x"
sleep "$SETTLE"
stat "$A/rd3/x" >/dev/null
rmdir "$B/rd3/x"
rmdir "$A/rd3/x" 2>/dev/null && fail "rmdir on mount a of rd3/x succeeded although mount b had removed it"
sleep "$SETTLE"
check_eq "link count of rd3 after both mounts' rmdir of its only subdirectory" "$(stat -c %h "$B/rd3")" 2
log "rmdir of a name replaced behind this mount's cache removed the new directory only"

# --- volumes are independent
C=$T/c
mount_fs "$C" --volume second
check_eq "entries in a fresh volume" "$(ls -A "$C" | wc -l)" 0
mkdir "$C/shared"
echo "volume two" >"$C/shared/a-0"
echo "only two" >"$C/only2"
echo "only one" >"$A/only1"
sleep "$SETTLE"
check_eq "same name in the default volume" "$(cat "$A/shared/a-0")" "a 0"
check_eq "same name in volume second" "$(cat "$C/shared/a-0")" "volume two"
[ ! -e "$A/only2" ] || fail "file of volume 'second' visible in the default volume"
[ ! -e "$C/only1" ] || fail "file of the default volume visible in volume 'second'"
check_eq "entries of shared in volume second" "$(ls "$C/shared" | wc -l)" 1
remount_fs "$C"
check_eq "volume second after remount" "$(cat "$C/only2")" "only two"
[ ! -e "$C/big" ] || fail "default volume's file visible in volume 'second' after remount"
mkdir "$T/bad"
MOUNTS+=("$T/bad")
st=0
timeout 30 "$DHTFS" --peer "$FS_PEERS" --volume 'bad/name' -f "$T/bad" >"$T/bad.out" 2>&1 || st=$?
{ [ "$st" != 0 ] && [ "$st" != 124 ]; } || fail "dhtfs --volume 'bad/name' exited $st (expected a usage error)"
! is_mounted "$T/bad" || fail "dhtfs mounted with --volume 'bad/name'"
grep -qi volume "$T/bad.out" || fail "error for a bad volume name does not mention the volume: $(cat "$T/bad.out")"
log "volumes independent; bad volume name refused (exit $st: $(head -n 1 "$T/bad.out"))"

umount_fs "$C"
umount_fs "$B"
umount_fs "$A"
finish
