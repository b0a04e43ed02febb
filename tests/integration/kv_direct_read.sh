#!/usr/bin/env bash
# A get asks R replicas itself (KV_READ) and keeps their answer only when
# the authority vouched for the others and all agree. Node n0 drops every
# write of "stale/" keys while saying it applied them
# (DHT_TEST_STORE_DROPS): for a key n0 is the authority of, the authority
# is the one stale replica, the case a reader must never take for the
# newest value. So a direct read of such a key must fall back to the
# coordinated read and return the newest value; a key whose replicas agree
# is answered directly; and with one replica frozen, reads still succeed.
source "$(dirname "$0")/lib.sh"
TIMEOUT_MS=500
KVNODE_EXTRA="--fail-after-ms 20000"

alloc_ports PORTS 3
NODE_PIDS=()
# Ids a third of the ring apart: the key's authority is its Chord owner, and
# with ids hashed from random ports n0's arc could be so small that none of
# the 200 keys searched below falls in it (about one run in a hundred).
ids=(0x0 0x5555555555555555 0xaaaaaaaaaaaaaaaa)
DHT_TEST_STORE_DROPS=stale/ start_node n0 "${PORTS[0]}" "" --id "${ids[0]}"
NODE_PIDS+=("$NODE_PID")
for i in 1 2; do
    sleep 0.2
    start_node "n$i" "${PORTS[$i]}" "${PORTS[0]}" --id "${ids[$i]}"
    NODE_PIDS+=("$NODE_PID")
done
for port in "${PORTS[@]}"; do
    wait_ring "$port" 3 20
done
wait_member_count 3 20 "${PORTS[@]}"
peer="127.0.0.1:${PORTS[0]}"

# reads_of FILE: "DIRECT FALLBACK" from a client's info log.
reads_of() {
    sed -n 's/.*reads: \([0-9]*\) answered by R replicas directly, \([0-9]*\) coordinated.*/\1 \2/p' "$1"
}

ctl --peer "$peer" put fresh/a one || fail "put fresh/a failed"
ctl --peer "$peer" put fresh/a two || fail "second put fresh/a failed"
out=$(ctl --peer "$peer" --log-level info get fresh/a 2>"$T/fresh.err") ||
    fail "get fresh/a failed: $(cat "$T/fresh.err")"
[ "$out" = two ] || fail "get fresh/a gave '$out', wanted 'two'"
[ "$(reads_of "$T/fresh.err")" = "1 0" ] ||
    fail "replicas that agree were not read directly: $(cat "$T/fresh.err")"
log "agreeing replicas: answered directly"

# A key n0 is the authority of.
key=""
for i in $(seq 0 199); do
    owner=$(ctl --peer "$peer" lookup "stale/$i" --json | jq -r .owner_addr) || fail "lookup failed"
    if [ "${owner##*:}" = "${PORTS[0]}" ]; then
        key=stale/$i
        break
    fi
done
[ -n "$key" ] || fail "no stale/ key has n0 as its authority"
ctl --peer "$peer" put "$key" one || fail "put $key failed"
ctl --peer "$peer" put "$key" two || fail "second put $key failed"
ctl --peer "$peer" replicas "$key" --json >"$T/stale.json" || fail "replicas $key failed"
# (Under token placement the replicas are listed primary first, not authority first.)
jq -e --arg a "tcp://127.0.0.1:${PORTS[0]}" '([.replicas[] | select(.addr == $a) | .version] == [null])
    and ([.replicas[] | select(.addr != $a) | .version != null] | all)' "$T/stale.json" >/dev/null ||
    fail "the hook did not leave the authority stale: $(cat "$T/stale.json")"
out=$(ctl --peer "$peer" --log-level info get "$key" 2>"$T/stale.err") ||
    fail "get $key failed: $(cat "$T/stale.err")"
[ "$out" = two ] || fail "get $key gave '$out', wanted 'two' (a stale authority's answer?)"
[ "$(reads_of "$T/stale.err")" = "0 1" ] ||
    fail "disagreeing replicas were not handed to the authority: $(cat "$T/stale.err")"
log "stale authority: the direct read fell back and returned the newest value"

# A frozen replica that is not the authority: the read is slower, not failed.
# (Under token placement the replicas are listed primary first, and the
# authority — the key's Chord successor — may be any of them.)
ctl --peer "$peer" put fresh/c three || fail "put fresh/c failed"
owner=$(ctl --peer "$peer" lookup fresh/c --json | jq -r .owner_addr) || fail "lookup fresh/c failed"
reps=$(ctl --peer "$peer" replicas fresh/c --json | jq -r '.replicas[].addr')
mapfile -t rep_addrs <<<"$reps"
victim=""
for a in "${rep_addrs[@]}"; do
    [ "${a##*:}" != "${owner##*:}" ] && { victim=$a; break; }
done
frozen=""
for i in "${!PORTS[@]}"; do
    [ "${victim##*:}" = "${PORTS[$i]}" ] && frozen=${NODE_PIDS[$i]}
done
[ -n "$frozen" ] || fail "no node for replica '$victim' (authority $owner)"
kill -STOP "$frozen"
rc=0
out=$(ctl --peer "127.0.0.1:${owner##*:}" --log-level info get fresh/c 2>"$T/frozen.err") || rc=$?
kill -CONT "$frozen"
[ "$rc" = 0 ] && [ "$out" = three ] ||
    fail "get with a frozen replica: rc $rc, '$out': $(cat "$T/frozen.err")"
log "frozen replica: get still answered ($(reads_of "$T/frozen.err"))"
finish
