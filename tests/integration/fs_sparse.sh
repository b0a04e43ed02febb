#!/usr/bin/env bash
# Cost follows what is stored: a file's chunk index lets truncate and rm
# touch only the chunks a file has, however large it claims to be.
#   - truncate -s 1T; append a byte; rm: bounded time, O(1) store keys added
#   - a byte at 1 PiB, then truncate -s 0: the same; and one at 2^62 - 1
#   - data at scattered offsets of a 5 GiB sparse file reads back right
#     after truncations down and up (cut bytes never reappear) and after a
#     remount; du counts the stored chunks, not the size
#   - a sequential write far into a sparse file (the index grows ahead of
#     a streaming writer) reads back, and its removal costs in proportion
#     to what it wrote
#   - two mounts writing one file at once: removal deletes both's chunks
# Keys are counted with `dhtctl status --json` (stored copies, tombstones
# included, divided by the 3 replicas).
source "$(dirname "$0")/fs_lib.sh"
fs_require jq
fs_ring
M=$T/mnt
CHUNK=65536
mount_fs "$M" -o chunk_kb=64

# stored_keys: keys in the ring (every copy of every record, tombstones
# too, over 3 replicas), once two readings 0.5 s apart agree.
stored_keys() {
    local a b i
    a=$(ctl --peer "127.0.0.1:${PORTS[0]}" status --json | jq -r .stored)
    for ((i = 0; i < 40; i++)); do
        sleep 0.5
        b=$(ctl --peer "127.0.0.1:${PORTS[0]}" status --json | jq -r .stored)
        if [ "$a" = "$b" ]; then
            echo $((b / 3))
            return 0
        fi
        a=$b
    done
    fail "store key count never settled (last $b copies)"
}

# timed WHAT CMD...: CMD under timeout 60; logs how long it took.
timed() {
    local what=$1 t0=$EPOCHREALTIME st=0
    shift
    timeout 60 "$@" 2>"$T/timed.err" || st=$?
    [ "$st" -ne 124 ] || fail "$what: did not finish within 60 s"
    [ "$st" -eq 0 ] || fail "$what: failed (exit $st): $(head -c 300 "$T/timed.err")"
    log "$what: $(since "$t0") s"
}

# at FILE OFFSET LEN: LEN bytes of FILE from OFFSET, as hex.
at() {
    dd if="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none | od -An -v -tx1 |
        tr -d ' \n'
}

# put FILE OFFSET STRING: write STRING at OFFSET without truncating.
put() {
    printf '%s' "$3" | dd of="$1" bs=1M oflag=seek_bytes seek="$2" conv=notrunc status=none ||
        fail "writing ${#3} bytes at $2 of $1 failed"
}

hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
zeros() { head -c "$1" /dev/zero | od -An -v -tx1 | tr -d ' \n'; }

# Let the volume's own keys (super, counter, root) settle first.
: >"$M/warmup"
rm "$M/warmup"
k0=$(stored_keys)

# --- 1 TiB hole, one byte, rm
timed "truncate -s 1T" truncate -s 1T "$M/tera"
timed "append a byte at 1 TiB" sh -c "printf x >>'$M/tera'"
check_eq "size after the append" "$(stat -c %s "$M/tera")" $((1 << 40 | 1))
check_eq "the byte at 1 TiB" "$(at "$M/tera" $((1 << 40)) 1)" "$(hex x)"
blocks=$(stat -c %b "$M/tera")
((blocks > 0 && blocks <= CHUNK / 512)) ||
    fail "st_blocks of a 1 TiB file holding one chunk: $blocks (expected 1..$((CHUNK / 512)))"
# Holes the index does not list are read without asking the store.
timed "read 1 GiB of holes" sh -c "dd if='$M/tera' iflag=skip_bytes skip=$((1 << 39)) bs=1M count=1024 status=none | cmp -s - /dev/zero -n $((1 << 30))"
timed "rm of the 1 TiB file" rm "$M/tera"
k1=$(stored_keys)
log "1 TiB sparse file: $((k1 - k0)) keys added (record and chunk tombstones)"
(((k1 - k0) <= 4)) || fail "truncate 1T, append, rm added $((k1 - k0)) keys (expected <= 4)"

# --- a byte at 1 PiB, truncate -s 0
timed "a byte at 1 PiB" sh -c "printf y | dd of='$M/peta' oflag=seek_bytes seek=$((1 << 50)) status=none"
check_eq "size after the write at 1 PiB" "$(stat -c %s "$M/peta")" $(((1 << 50) + 1))
timed "truncate -s 0 of the 1 PiB file" truncate -s 0 "$M/peta"
check_eq "size after truncate -s 0" "$(stat -c %s "$M/peta")" 0
check_eq "st_blocks after truncate -s 0" "$(stat -c %b "$M/peta")" 0
timed "rm of the emptied file" rm "$M/peta"
k2=$(stored_keys)
log "1 PiB sparse file: $((k2 - k1)) keys added"
(((k2 - k1) <= 4)) || fail "write at 1 PiB, truncate -s 0, rm added $((k2 - k1)) keys (expected <= 4)"

# --- the last byte below 2^62, then ftruncate to 0 (chunk 2^46 - 1)
timed "a byte at 2^62 - 1" sh -c "printf z | dd of='$M/huge' oflag=seek_bytes seek=$(((1 << 62) - 1)) status=none"
check_eq "size after the write below 2^62" "$(stat -c %s "$M/huge")" $((1 << 62))
check_eq "the byte below 2^62" "$(at "$M/huge" $(((1 << 62) - 1)) 1)" "$(hex z)"
timed "truncate -s 0 of the 2^62 file" truncate -s 0 "$M/huge"
timed "rm of the 2^62 file" rm "$M/huge"
k2b=$(stored_keys)
log "2^62 file: $((k2b - k2)) keys added"
(((k2b - k2) <= 4)) || fail "write below 2^62, truncate -s 0, rm added $((k2b - k2)) keys (expected <= 4)"
k2=$k2b

# --- scattered data in a 5 GiB sparse file, truncated both ways, remounted
S=$M/scatter
G=$((1 << 30))
A=$(head -c 100 /dev/urandom | od -An -v -tx1 | tr -d ' \n')
put_hex() { printf '%s' "$3" | xxd -r -p | dd of="$1" bs=1M oflag=seek_bytes seek="$2" conv=notrunc status=none; }
command -v xxd >/dev/null || fail "xxd is missing"
put_hex "$S" 0 "$A"
put "$S" $((CHUNK - 6)) "across-chunks" # 13 bytes over the boundary of chunks 0 and 1
C=$(head -c 4096 /dev/urandom | od -An -v -tx1 | tr -d ' \n')
put_hex "$S" $((3 * G + 5)) "$C"
put "$S" $((5 * G - 10)) "0123456789" # ends at exactly 5 GiB
check_scatter() { # WHAT
    check_eq "$1: size" "$(stat -c %s "$S")" $((5 * G))
    check_eq "$1: data at 0" "$(at "$S" 0 100)" "$A"
    check_eq "$1: data across chunks 0/1" "$(at "$S" $((CHUNK - 6)) 13)" "$(hex across-chunks)"
    check_eq "$1: data at 3 GiB + 5" "$(at "$S" $((3 * G + 5)) 4096)" "$C"
    check_eq "$1: data at the end" "$(at "$S" $((5 * G - 10)) 10)" "$(hex 0123456789)"
    check_eq "$1: hole at 1 GiB" "$(at "$S" "$G" 64)" "$(zeros 64)"
    check_eq "$1: hole at 4 GiB" "$(at "$S" $((4 * G)) 64)" "$(zeros 64)"
}
check_scatter "written"
# Chunks 0, 1, the one or two at 3 GiB + 5, the last: du counts those.
blocks=$(stat -c %b "$S")
((blocks >= 4 * 8 && blocks <= 5 * CHUNK / 512)) ||
    fail "st_blocks of the scattered file: $blocks (expected 4 chunks' worth, <= $((5 * CHUNK / 512)))"
du_k=$(du -k "$S" | cut -f1)
check_eq "du -k agrees with st_blocks" "$du_k" $(((blocks + 1) / 2))
check_eq "du --apparent-size" "$(du -b --apparent-size "$S" | cut -f1)" $((5 * G))
remount_fs "$M"
check_scatter "after a remount"

timed "truncate 5 GiB to 3 GiB + 1000" truncate -s $((3 * G + 1000)) "$S"
check_eq "size after the cut" "$(stat -c %s "$S")" $((3 * G + 1000))
check_eq "data before the cut" "$(at "$S" $((3 * G + 5)) 995)" "${C:0:1990}"
check_eq "nothing past the cut" "$(at "$S" $((3 * G + 1000)) 16 | wc -c)" 0
timed "truncate back up to 4 GiB" truncate -s $((4 * G)) "$S"
check_eq "cut bytes do not come back" "$(at "$S" $((3 * G + 1000)) 3101)" "$(zeros 3101)"
check_eq "data at 0 after the cuts" "$(at "$S" 0 100)" "$A"
check_eq "old end stays a hole" "$(at "$S" $((4 * G - 10)) 10)" "$(zeros 10)"
blocks=$(stat -c %b "$S")
((blocks <= 3 * CHUNK / 512)) || fail "st_blocks after the cut: $blocks (at most 3 chunks stored)"
timed "truncate into chunk 1" truncate -s $((CHUNK + 3)) "$S"
timed "truncate up to 1 MiB" truncate -s $((1 << 20)) "$S"
check_eq "kept part across chunks 0/1" "$(at "$S" $((CHUNK - 6)) 9)" "$(hex across-ch)"
check_eq "cut part across chunks 0/1" "$(at "$S" $((CHUNK + 3)) 4)" "$(zeros 4)"
remount_fs "$M"
check_eq "after a remount: size" "$(stat -c %s "$S")" $((1 << 20))
check_eq "after a remount: data at 0" "$(at "$S" 0 100)" "$A"
check_eq "after a remount: kept part" "$(at "$S" $((CHUNK - 6)) 13)" "$(hex across-ch)$(zeros 4)"
check_eq "after a remount: 3 GiB data gone" "$(at "$S" $((3 * G)) 16 | wc -c)" 0
timed "rm of the scattered file" rm "$S"
k3=$(stored_keys)
log "scattered 5 GiB file: $((k3 - k2)) keys added"
(((k3 - k2) <= 12)) || fail "the scattered file left $((k3 - k2)) keys (expected <= 12)"

# --- a stream far into a sparse file: the index reserves ahead of it
head -c $((20 << 20)) /dev/urandom >"$T/stream"
timed "20 MiB written at 5 GiB" dd if="$T/stream" of="$M/stream" bs=1M oflag=seek_bytes seek=$((5 * G)) status=none
check_eq "stream: size" "$(stat -c %s "$M/stream")" $((5 * G + (20 << 20)))
dd if="$M/stream" iflag=skip_bytes skip=$((5 * G)) bs=1M status=none >"$T/stream.back"
check_same_file "stream read back" "$T/stream.back" "$T/stream"
blocks=$(stat -c %b "$M/stream")
check_eq "stream: st_blocks" "$blocks" $(((20 << 20) / 512))
timed "truncate the stream to 5 GiB + 1 MiB" truncate -s $((5 * G + (1 << 20))) "$M/stream"
check_eq "stream: st_blocks after the cut" "$(stat -c %b "$M/stream")" $(((1 << 20) / 512))
timed "rm of the stream" rm "$M/stream"
k4=$(stored_keys)
# 320 chunks written: their tombstones, plus at most the reservation past the end.
log "20 MiB stream at 5 GiB: $((k4 - k3)) keys added for 320 chunks"
(((k4 - k3) <= 2 * 320 + 8)) || fail "the stream left $((k4 - k3)) keys (expected <= $((2 * 320 + 8)))"

# --- two mounts write one file at once: neither drops the other's chunks
# from the index, so removing the file deletes both (their keys read as absent).
M2=$T/mnt2
mount_fs "$M2" -o chunk_kb=64
printf s >"$M/shared"
ino=$(printf '%x' "$(stat -c %i "$M/shared")")
head -c $((3 * CHUNK)) /dev/urandom >"$T/part1"
head -c $((3 * CHUNK)) /dev/urandom >"$T/part2"
dd if="$T/part1" of="$M/shared" bs=64k oflag=seek_bytes seek=$((10 * G)) conv=notrunc status=none &
w1=$!
dd if="$T/part2" of="$M2/shared" bs=64k oflag=seek_bytes seek=$((20 * G)) conv=notrunc status=none &
w2=$!
wait "$w1" || fail "the writer on the first mount failed"
wait "$w2" || fail "the writer on the second mount failed"
first1=$((10 * G / CHUNK))
first2=$((20 * G / CHUNK))
for idx in $first1 $((first1 + 2)) $first2 $((first2 + 2)); do
    ctl --peer "127.0.0.1:${PORTS[0]}" get "v/default/c/$ino/$(printf '%x' "$idx")" >/dev/null ||
        fail "chunk $idx of the shared file is not in the store after both writers closed"
done
check_eq "shared file size seen by a fresh open" "$(stat -c %s "$M2/shared")" $((20 * G + 3 * CHUNK))
dd if="$M2/shared" iflag=skip_bytes skip=$((10 * G)) bs=64k count=3 status=none >"$T/back1"
check_same_file "first mount's part read on the second" "$T/back1" "$T/part1"
rm "$M/shared"
sleep 1 # the free runs in the background
for idx in $first1 $((first1 + 1)) $((first1 + 2)) $first2 $((first2 + 1)) $((first2 + 2)); do
    if ctl --peer "127.0.0.1:${PORTS[0]}" get "v/default/c/$ino/$(printf '%x' "$idx")" >/dev/null 2>&1; then
        fail "chunk $idx of the removed shared file is still stored: the index lost it"
    fi
done
log "two mounts writing one file: all 6 chunks listed and deleted"

finish
