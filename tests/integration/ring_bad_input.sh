#!/usr/bin/env bash
# Bad input gets a clear error and the node keeps serving: flags, endpoints,
# ids, a dead bootstrap peer, configuration mismatches, id collisions, a
# locked data dir, garbage on the port, wrong protocol versions, malformed
# and multi-frame messages.
source "$(dirname "$0")/lib.sh"
WIREPOKE=$BUILD_DIR/tests/wirepoke

# expect_fail STATUS PATTERN CMD...: CMD exits STATUS and stderr matches.
expect_fail() {
    local want=$1 pattern=$2 st=0
    shift 2
    "$@" >"$T/out" 2>"$T/err" || st=$?
    [ "$st" = "$want" ] || fail "'$*' exited $st, expected $want: $(cat "$T/err")"
    grep -qE -- "$pattern" "$T/err" || fail "'$*' stderr lacks /$pattern/: $(cat "$T/err")"
}

alloc_ports P 6
D=$T/cli.data
expect_fail 2 "unknown or incomplete option '--bogus'" "$KVNODE" --bogus
expect_fail 2 "--listen is required" "$KVNODE" --data "$D"
expect_fail 2 "--data is required" "$KVNODE" --listen "127.0.0.1:${P[0]}"
expect_fail 2 "bad --listen endpoint 'nohost': expected HOST:PORT" "$KVNODE" --listen nohost --data "$D"
expect_fail 2 "port must be a number" "$KVNODE" --listen 127.0.0.1:70000 --data "$D"
expect_fail 2 "bad --join endpoint" "$KVNODE" --listen "127.0.0.1:${P[0]}" --join "udp://x:1" --data "$D"
expect_fail 2 "outside the 6-bit ring" "$KVNODE" --listen "127.0.0.1:${P[0]}" --data "$D" --id-bits 6 --id 64
expect_fail 2 "--id-bits must be a number from 3 to 64" "$KVNODE" --listen "127.0.0.1:${P[0]}" --data "$D" --id-bits 65
expect_fail 2 "quorums must satisfy" "$KVNODE" --listen "127.0.0.1:${P[0]}" --data "$D" --replicas 2 --write-quorum 3
expect_fail 2 "unknown command 'frobnicate'" "$DHTCTL" frobnicate
expect_fail 2 "bad peer endpoint" "$DHTCTL" --peer "tcp://" ring
expect_fail 2 "wrong number of arguments" "$DHTCTL" lookup
expect_fail 3 "no answer from" "$DHTCTL" --timeout-ms 300 --peer "127.0.0.1:${P[5]}" ring
log "command-line errors are reported with exit 2 (usage) / 3 (unavailable)"

# Joining a dead peer fails with exit 3 in bounded time.
start=$(date +%s)
expect_fail 3 "cannot join through" "$KVNODE" --listen "127.0.0.1:${P[0]}" --join "127.0.0.1:${P[5]}" \
    --data "$T/dead.data" --timeout-ms 300
(($(date +%s) - start < 10)) || fail "join to a dead peer took too long"
log "join through a dead peer: exit 3"

# A live ring of two.
start_node a "${P[0]}" ""
sleep 0.3
start_node b "${P[1]}" "${P[0]}"
wait_ring "${P[0]}" 2 10

# Mismatched configuration is refused, naming the difference.
expect_fail 1 "uses --replicas 3, this node 2" "$KVNODE" --listen "127.0.0.1:${P[2]}" \
    --join "127.0.0.1:${P[0]}" --data "$T/c.data" --replicas 2
expect_fail 1 "uses --id-bits 64, this node 16" "$KVNODE" --listen "127.0.0.1:${P[2]}" \
    --join "127.0.0.1:${P[0]}" --data "$T/c.data" --id-bits 16
a_id=$(ctl --peer "127.0.0.1:${P[0]}" ring --json | jq -r --arg a "tcp://127.0.0.1:${P[0]}" '.nodes[] | select(.addr == $a) | .id')
expect_fail 1 "already taken" "$KVNODE" --listen "127.0.0.1:${P[2]}" \
    --join "127.0.0.1:${P[0]}" --data "$T/c.data" --id "0x$a_id"
expect_fail 1 "in use by another kvnode" "$KVNODE" --listen "127.0.0.1:${P[3]}" --data "$T/a.data"
expect_fail 1 "cannot listen on" "$KVNODE" --listen "127.0.0.1:${P[0]}" --data "$T/d.data"
log "mismatched config, id collision, locked data dir and busy port refused"

# Garbage bytes on the node's TCP port (not even ZMTP).
exec 3<>"/dev/tcp/127.0.0.1/${P[0]}"
head -c 4096 /dev/urandom >&3 || true
exec 3>&-
# Garbage frames, a wrong version, truncated and multi-frame messages.
"$WIREPOKE" "tcp://127.0.0.1:${P[0]}" deadbeef >/dev/null && fail "garbage frame got a reply"
out=$("$WIREPOKE" "tcp://127.0.0.1:${P[0]}" 444802010000000000000001) ||
    fail "no reply to a version-2 message"
grep -q "protocol version 2 not supported" <<<"$out" || fail "wrong version reply: $out"
"$WIREPOKE" "tcp://127.0.0.1:${P[0]}" 44480104000000000000000100 >/dev/null &&
    fail "truncated FIND got a reply"
"$WIREPOKE" "tcp://127.0.0.1:${P[0]}" 444801010000000000000001 00 >/dev/null &&
    fail "PING with a value frame got a reply"
"$WIREPOKE" "tcp://127.0.0.1:${P[0]}" 444801010000000000000001 00 00 >/dev/null &&
    fail "three-frame message got a reply"
out=$("$WIREPOKE" "tcp://127.0.0.1:${P[0]}" 444801010000000000000001) || fail "PING got no reply"
[ "$out" = "reply PING_R" ] || fail "PING answered '$out'"
grep -q "dropped a malformed message" "$T/a.log" || fail "malformed message was not logged"
grep -q "dropped PING with an unexpected value frame" "$T/a.log" ||
    fail "PING with a value frame was not logged"
grep -q "dropped a message of 3 frames" "$T/a.log" || fail "three-frame message was not logged"
log "garbage, wrong version, truncated and multi-frame messages dropped with a log line"

# Still serving, ring intact.
kill -0 "${PIDS[0]}" || fail "node died"
wait_ring "${P[0]}" 2 10
wait_ring "${P[1]}" 2 10
log "node kept serving"
