#!/usr/bin/env bash
# The store refuses what it cannot hold, clearly, and keeps serving: values
# over 4 MiB (from dhtctl and raw on the wire), keys over 480 bytes, bad
# versions; and a full disk makes writes fail with "no space" while reads
# of what is stored keep working (root only: the disks are small tmpfs).
source "$(dirname "$0")/lib.sh"
WIREPOKE=$BUILD_DIR/tests/wirepoke

start_ring 3
for port in "${PORTS[@]}"; do
    wait_ring "$port" 3 20
done
P0=${PORTS[0]}
ctl --peer "127.0.0.1:$P0" put small ok || fail "put failed"

st=0
head -c $((4 * 1024 * 1024 + 1)) /dev/zero | ctl --peer "127.0.0.1:$P0" put big 2>"$T/err" || st=$?
[ "$st" = 2 ] || fail "4 MiB + 1 value: exit $st"
grep -q "larger than 4 MiB" "$T/err" || fail "oversize message: $(cat "$T/err")"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$T/max"
ctl --peer "127.0.0.1:$P0" put max <"$T/max" || fail "a 4 MiB value was refused"
ctl --peer "127.0.0.1:${PORTS[1]}" get max >"$T/max.out" || fail "get of the 4 MiB value failed"
cmp -s "$T/max" "$T/max.out" || fail "4 MiB value came back different"
log "4 MiB values stored and read back; 4 MiB + 1 refused with exit 2"

long=$(head -c 481 /dev/zero | tr '\0' k)
st=0
ctl --peer "127.0.0.1:$P0" put "$long" v 2>"$T/err" || st=$?
[ "$st" = 2 ] || fail "481-byte key: exit $st"
grep -q "keys are 1 to 480 bytes" "$T/err" || fail "long key message: $(cat "$T/err")"
ok=$(head -c 480 /dev/zero | tr '\0' k)
ctl --peer "127.0.0.1:$P0" put "$ok" v || fail "480-byte key refused"
st=0
ctl --peer "127.0.0.1:$P0" put small x --if-version nonsense 2>/dev/null || st=$?
[ "$st" = 2 ] || fail "bad --if-version: exit $st"
log "481-byte keys and malformed versions refused with exit 2"

# A raw KV_PUT carrying 4 MiB + 1 bytes: an EFBIG error, not a crash.
out=$("$WIREPOKE" "tcp://127.0.0.1:$P0" 4448011100000000000000010003616263000000000000000000000000000000000000 \
    "zeros:$((4 * 1024 * 1024 + 1))") || fail "no answer to an oversize KV_PUT"
grep -q "larger than the" <<<"$out" || fail "oversize KV_PUT answered: $out"
# A KV_PUT without its value frame, and a REPL_GET with an empty key: dropped.
"$WIREPOKE" "tcp://127.0.0.1:$P0" 4448011100000000000000010003616263000000000000000000000000000000000000 \
    >/dev/null && fail "KV_PUT without a value frame got a reply"
"$WIREPOKE" "tcp://127.0.0.1:$P0" 4448011200000000000000010000 >/dev/null &&
    fail "REPL_GET with an empty key got a reply"
# A request of a type this node does not know (a newer peer's, type 0x1b):
# answered with EOPNOTSUPP (95) at once, so the sender need not wait out a timeout.
out=$("$WIREPOKE" "tcp://127.0.0.1:$P0" 4448011b0000000000000007) || fail "no answer to an unknown request type"
[[ $out == "error 95 "*"not supported"* ]] || fail "unknown request type answered: $out"
# An unknown reply type is not answered (no error ping-pong between nodes).
"$WIREPOKE" "tcp://127.0.0.1:$P0" 4448019b0000000000000007 >/dev/null &&
    fail "an unknown reply type got a reply"
[ "$(ctl --peer "127.0.0.1:$P0" get small)" = ok ] || fail "node stopped serving"
log "malformed and oversize store messages refused, unknown request types answered EOPNOTSUPP; node still serving"

if [ "$(id -u)" -ne 0 ]; then
    log "full-disk check skipped: needs root to mount small tmpfs disks"
    exit 0
fi
# Full disk: a second ring whose nodes each have a 12 MiB tmpfs.
alloc_ports F 3
umount_all() {
    local i
    for i in 0 1 2; do umount -l "$T/full$i.data" 2>/dev/null || true; done
}
on_exit umount_all
for i in 0 1 2; do
    mkdir -p "$T/full$i.data"
    mount -t tmpfs -o size=12m tmpfs "$T/full$i.data"
done
start_node full0 "${F[0]}" ""
sleep 0.3
start_node full1 "${F[1]}" "${F[0]}"
start_node full2 "${F[2]}" "${F[0]}"
wait_ring "${F[0]}" 3 20
ctl --peer "127.0.0.1:${F[0]}" put keep kept || fail "first put on the small disks failed"
head -c $((1024 * 1024)) /dev/urandom >"$T/mb"
full=0
for ((i = 0; i < 40; i++)); do
    st=0
    ctl --peer "127.0.0.1:${F[$((i % 3))]}" put "fill-$i" <"$T/mb" 2>"$T/err" || st=$?
    if [ "$st" != 0 ]; then
        [ "$st" = 3 ] || fail "write to a full disk exited $st: $(cat "$T/err")"
        grep -q "no space" "$T/err" || fail "full-disk error does not say so: $(cat "$T/err")"
        full=1
        break
    fi
done
[ "$full" = 1 ] || fail "40 MiB went into 12 MiB disks without an error"
log "full disks: write refused after $i MiB with '$(cut -c1-80 "$T/err")'"
[ "$(ctl --peer "127.0.0.1:${F[1]}" get keep)" = kept ] || fail "read failed on full disks"
ctl --peer "127.0.0.1:${F[2]}" get fill-0 >/dev/null || fail "read of an earlier value failed"
for i in 0 1 2; do
    ring_ok "${F[$i]}" 3 || fail "node on ${F[$i]} stopped serving after the disk filled"
done
log "reads keep working and every node stays up"
