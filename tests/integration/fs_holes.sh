#!/usr/bin/env bash
# Holes on a real mount (64 KiB chunks, so chunk arithmetic is cheap to hit):
#   - fallocate -l grows a file without storing data (st_blocks stays 0);
#     --keep-size leaves the size alone
#   - fallocate -p (punch) over whole and partial chunks: the range reads as
#     zeros, the bytes around it survive, du shrinks; the same on a file
#     whose data is still in the write-back cache; another mount reads the
#     zeros after it reopens the file (close-to-open)
#   - fallocate -z zeroes a range (and grows the file without --keep-size)
#   - an unsupported mode (COLLAPSE_RANGE) answers EOPNOTSUPP
#   - SEEK_DATA / SEEK_HOLE (python3 os.lseek) give the stored chunks
#   - cp --sparse=always keeps a sparse file sparse
#   - fio with fallocate=native and =keep lays out, writes and verifies
source "$(dirname "$0")/fs_lib.sh"
fs_require python3 fallocate fio
fs_ring
A=$T/a
B=$T/b
CHUNK=65536
mount_fs "$A" -o chunk_kb=64
mount_fs "$B" -o chunk_kb=64

blocks() { stat -c %b "$1"; }
# zeros_at FILE OFF LEN: the LEN bytes of FILE at OFF are all zero.
zeros_at() {
    cmp -s -n "$3" <(dd if="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none) \
        /dev/zero
}
# same_at FILE REF OFF LEN: FILE and REF agree on LEN bytes at OFF.
same_at() {
    cmp -s <(dd if="$1" iflag=skip_bytes,count_bytes skip="$3" count="$4" status=none) \
        <(dd if="$2" iflag=skip_bytes,count_bytes skip="$3" count="$4" status=none)
}

# --- fallocate -l: size without data
expect_ok fallocate -l $((10 * CHUNK)) "$A/pre"
check_eq "size after fallocate -l" "$(stat -c %s "$A/pre")" $((10 * CHUNK))
check_eq "st_blocks after fallocate -l (nothing stored)" "$(blocks "$A/pre")" 0
zeros_at "$A/pre" 0 $((10 * CHUNK)) || fail "a preallocated file does not read as zeros"
expect_ok fallocate --keep-size -l $((20 * CHUNK)) "$A/pre"
check_eq "size after fallocate --keep-size" "$(stat -c %s "$A/pre")" $((10 * CHUNK))
# Preallocating inside the file changes nothing.
printf 'abc' | dd of="$A/pre" bs=1 seek=5 conv=notrunc status=none
expect_ok fallocate -o 0 -l 100 "$A/pre"
check_eq "size after fallocate inside the file" "$(stat -c %s "$A/pre")" $((10 * CHUNK))
check_eq "data after fallocate inside the file" "$(dd if="$A/pre" bs=1 skip=5 count=3 status=none)" abc

# --- fallocate -p: 16 chunks of random data; punch 1.5 .. 9.25 chunks
head -c $((16 * CHUNK)) /dev/urandom >"$T/ref"
cp "$T/ref" "$A/punch"
sync
b0=$(blocks "$A/punch")
check_eq "st_blocks of 16 full chunks" "$b0" $((16 * CHUNK / 512))
P0=$((CHUNK + CHUNK / 2))
PL=$((8 * CHUNK - CHUNK / 4))
expect_ok fallocate -p -o $P0 -l $PL "$A/punch"
check_eq "size after punching" "$(stat -c %s "$A/punch")" $((16 * CHUNK))
zeros_at "$A/punch" $P0 $PL || fail "the punched range does not read as zeros"
same_at "$A/punch" "$T/ref" 0 $P0 || fail "bytes before the punched range changed"
same_at "$A/punch" "$T/ref" $((P0 + PL)) $((16 * CHUNK - P0 - PL)) ||
    fail "bytes after the punched range changed"
b1=$(blocks "$A/punch")
# Chunks 2..8 are whole inside the range: 7 chunks fewer.
check_eq "st_blocks after punching 7 whole chunks" "$b1" $((9 * CHUNK / 512))
du_k=$(du -k "$A/punch" | cut -f1)
check_eq "du after punching" "$du_k" $((9 * CHUNK / 1024))
# Another mount opens it afresh and sees the zeros.
zeros_at "$B/punch" $P0 $PL || fail "mount b does not read the punched range as zeros"
same_at "$B/punch" "$T/ref" 0 $P0 || fail "mount b: bytes before the punched range differ"
# Still zeros after a remount (nothing cached).
remount_fs "$A"
zeros_at "$A/punch" $P0 $PL || fail "the punched range is not zeros after a remount"
check_eq "st_blocks after a remount" "$(blocks "$A/punch")" "$b1"
# Punching past the end is fine and changes nothing.
expect_ok fallocate -p -o $((20 * CHUNK)) -l $CHUNK "$A/punch"
check_eq "size after punching past the end" "$(stat -c %s "$A/punch")" $((16 * CHUNK))
# Punching to the end of the file drops its last chunks.
expect_ok fallocate -p -o $((12 * CHUNK)) -l $((4 * CHUNK)) "$A/punch"
check_eq "st_blocks after punching the tail" "$(blocks "$A/punch")" $((5 * CHUNK / 512))
check_eq "size after punching the tail" "$(stat -c %s "$A/punch")" $((16 * CHUNK))

# --- punching data still in the write-back cache (written, not closed)
python3 - "$A/wb" "$CHUNK" <<'PY' || fail "punching a file with unflushed writes failed"
import os, sys, ctypes
path, chunk = sys.argv[1], int(sys.argv[2])
libc = ctypes.CDLL(None, use_errno=True)
PUNCH, KEEP = 0x02, 0x01
fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b"x" * (4 * chunk))
r = libc.fallocate(fd, PUNCH | KEEP, ctypes.c_long(chunk // 2), ctypes.c_long(2 * chunk))
if r != 0:
    sys.exit("fallocate: %s" % os.strerror(ctypes.get_errno()))
os.close(fd)
data = open(path, "rb").read()
want = b"x" * (chunk // 2) + bytes(2 * chunk) + b"x" * (chunk + chunk // 2)
if data != want:
    sys.exit("content after punching unflushed data is wrong")
PY
sync
check_eq "st_blocks after punching unflushed data" "$(blocks "$A/wb")" $((3 * CHUNK / 512))

# --- fallocate -z
head -c $((4 * CHUNK)) /dev/urandom >"$T/zref"
cp "$T/zref" "$A/zero"
expect_ok fallocate -z -o 100 -l $((2 * CHUNK)) "$A/zero"
zeros_at "$A/zero" 100 $((2 * CHUNK)) || fail "the zeroed range does not read as zeros"
same_at "$A/zero" "$T/zref" 0 100 || fail "bytes before the zeroed range changed"
same_at "$A/zero" "$T/zref" $((2 * CHUNK + 100)) $((2 * CHUNK - 100)) ||
    fail "bytes after the zeroed range changed"
expect_ok fallocate -z -o $((3 * CHUNK)) -l $((3 * CHUNK)) "$A/zero"
check_eq "size after zeroing past the end" "$(stat -c %s "$A/zero")" $((6 * CHUNK))
zeros_at "$A/zero" $((3 * CHUNK)) $((3 * CHUNK)) || fail "zeroed tail is not zeros"

# --- an unsupported mode
python3 - "$A/zero" <<'PY' || fail "COLLAPSE_RANGE was not refused with EOPNOTSUPP"
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDWR)
r = libc.fallocate(fd, 0x08, ctypes.c_long(0), ctypes.c_long(65536))  # COLLAPSE_RANGE
e = ctypes.get_errno()
sys.exit(0 if r == -1 and e == errno.EOPNOTSUPP else "got %d, errno %d" % (r, e))
PY

# --- SEEK_DATA / SEEK_HOLE: data in chunks 3 and 7..8 of a 12-chunk file
rm -f "$A/sparse"
truncate -s $((12 * CHUNK)) "$A/sparse"
printf 'three' | dd of="$A/sparse" bs=1 seek=$((3 * CHUNK + 10)) conv=notrunc status=none
head -c $((2 * CHUNK)) /dev/urandom | dd of="$A/sparse" bs=$CHUNK seek=7 conv=notrunc status=none
python3 - "$A/sparse" "$CHUNK" <<'PY' || fail "SEEK_DATA/SEEK_HOLE offsets are wrong"
import errno, os, sys
path, c = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDONLY)
def seek(off, how):
    try:
        return os.lseek(fd, off, how)
    except OSError as e:
        return -e.errno
D, H = os.SEEK_DATA, os.SEEK_HOLE
checks = [
    (0, D, 3 * c), (0, H, 0), (3 * c + 5, D, 3 * c + 5), (3 * c + 5, H, 4 * c),
    (4 * c, D, 7 * c), (7 * c + 1, H, 9 * c), (9 * c, D, -errno.ENXIO),
    (9 * c, H, 9 * c), (12 * c, D, -errno.ENXIO), (12 * c, H, -errno.ENXIO),
]
bad = [(o, w, want, seek(o, w)) for o, w, want in checks if seek(o, w) != want]
sys.exit("; ".join("lseek(%d, %s) = %d, expected %d" % (o, "DATA" if w == D else "HOLE", got, want)
                   for o, w, want, got in bad) if bad else 0)
PY

# --- cp --sparse=always keeps it sparse
expect_ok cp --sparse=always "$A/sparse" "$A/sparse-copy"
check_same_file "sparse copy" "$A/sparse-copy" "$A/sparse"
sb=$(blocks "$A/sparse-copy")
((sb > 0 && sb <= 3 * CHUNK / 512)) ||
    fail "cp --sparse=always made a copy of $sb blocks (the original stores 3 chunks)"
expect_ok cp --sparse=always "$A/sparse" "$T/sparse-local"
check_same_file "sparse copy out of the mount" "$T/sparse-local" "$A/sparse"

# --- fio lays its files out with fallocate (not disabled), then writes and verifies
for how in native keep; do
    expect_ok fio --name=falloc-$how --directory="$A" --filename=fio-$how.dat --size=8M \
        --bs=64k --rw=randwrite --fallocate=$how --verify=crc32c --do_verify=1 \
        --ioengine=psync --randseed=1234 --verify_state_save=0
    grep -q 'err= 0' "$T/expect.out" || fail "fio --fallocate=$how: $(grep -m1 'err=' "$T/expect.out")"
done

echo PASS
