#!/usr/bin/env bash
# copy_file_range inside a volume (64 KiB chunks), checked by checksums:
#   - a whole file with a hole (chunk-aligned: copied store to store); the
#     hole stays a hole (st_blocks equal), and another mount reads the copy
#   - an aligned copy into the middle of a larger file keeps the bytes
#     around it; a copy whose offsets do not line up (normal path)
#   - offsets that line up but start mid-chunk (edges by the normal path,
#     the middle chunk by chunk), and a copy out of the end of the source
#   - cp --reflink=never (which uses copy_file_range) of a file
source "$(dirname "$0")/fs_lib.sh"
fs_require python3
fs_ring
A=$T/a
B=$T/b
CHUNK=65536
mount_fs "$A" -o chunk_kb=64
mount_fs "$B" -o chunk_kb=64

# cfr SRC OFF_IN DST OFF_OUT LEN: os.copy_file_range until LEN bytes or EOF;
# prints how many bytes were copied. DST is created if missing, never truncated.
cfr() {
    python3 - "$@" <<'PY'
import os, sys
src, off_in, dst, off_out, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
fi = os.open(src, os.O_RDONLY)
fo = os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644)
done = 0
while done < n:
    c = os.copy_file_range(fi, fo, n - done, off_in + done, off_out + done)
    if c == 0:
        break
    done += c
os.close(fo)
os.close(fi)
print(done)
PY
}
# ref_copy SRC OFF_IN DST OFF_OUT LEN: the same with dd on local files.
ref_copy() {
    dd if="$1" of="$3" iflag=skip_bytes,count_bytes oflag=seek_bytes conv=notrunc \
        skip="$2" seek="$4" count="$5" status=none
}

# Source: chunks 0..9 data, 10..19 a hole, 20..39 data, then 1234 bytes.
SIZE=$((40 * CHUNK + 1234))
truncate -s $SIZE "$T/src"
head -c $((10 * CHUNK)) /dev/urandom | dd of="$T/src" conv=notrunc status=none
head -c $((20 * CHUNK + 1234)) /dev/urandom |
    dd of="$T/src" bs=$CHUNK seek=20 conv=notrunc status=none
cp --sparse=always "$T/src" "$A/src"
check_same_file "source on the mount" "$A/src" "$T/src"

# --- whole file, aligned
check_eq "bytes copied" "$(cfr "$A/src" 0 "$A/whole" 0 $((SIZE + 999)))" $SIZE
check_same_file "copy_file_range of a whole file" "$A/whole" "$T/src"
# 31 chunks hold data (the source's index may also list a writer's reservation).
check_eq "st_blocks of the copy (the hole stays a hole)" "$(stat -c %b "$A/whole")" \
    $((31 * CHUNK / 512))
check_same_file "the copy read on mount b" "$B/whole" "$T/src"

# --- aligned, into the middle of a larger file
head -c $((50 * CHUNK)) /dev/urandom >"$T/big"
cp "$T/big" "$A/big"
cfr "$A/src" $((2 * CHUNK)) "$A/big" $((30 * CHUNK)) $((15 * CHUNK)) >/dev/null
ref_copy "$T/src" $((2 * CHUNK)) "$T/big" $((30 * CHUNK)) $((15 * CHUNK))
check_same_file "aligned copy into the middle" "$A/big" "$T/big"
check_same_file "aligned copy into the middle, mount b" "$B/big" "$T/big"

# --- same alignment, starting mid-chunk; and offsets that do not line up
cfr "$A/src" $((CHUNK + 777)) "$A/big" $((3 * CHUNK + 777)) $((5 * CHUNK + 100)) >/dev/null
ref_copy "$T/src" $((CHUNK + 777)) "$T/big" $((3 * CHUNK + 777)) $((5 * CHUNK + 100))
check_same_file "mid-chunk aligned copy" "$A/big" "$T/big"
cfr "$A/src" 1000 "$A/big" 5000 $((3 * CHUNK)) >/dev/null
ref_copy "$T/src" 1000 "$T/big" 5000 $((3 * CHUNK))
check_same_file "unaligned copy" "$A/big" "$T/big"

# --- past the end of the source: only what is there
check_eq "bytes copied from the tail" "$(cfr "$A/src" $((SIZE - 10)) "$A/tail" 0 100)" 10
check_eq "copy from past the end" "$(cfr "$A/src" $((SIZE + 10)) "$A/tail" 0 100)" 0

# --- within one file, ranges apart
cp "$T/big" "$T/self"
cp "$T/big" "$A/self"
cfr "$A/self" 0 "$A/self" $((20 * CHUNK)) $((10 * CHUNK)) >/dev/null
ref_copy "$T/self" 0 "$T/self" $((20 * CHUNK)) $((10 * CHUNK))
check_same_file "copy within one file" "$A/self" "$T/self"

# --- cp
expect_ok cp --reflink=never "$A/src" "$A/cp"
check_same_file "cp --reflink=never" "$A/cp" "$T/src"
remount_fs "$A"
check_same_file "the whole-file copy after a remount" "$A/whole" "$T/src"
check_same_file "the middle copy after a remount" "$A/big" "$T/big"

echo PASS
