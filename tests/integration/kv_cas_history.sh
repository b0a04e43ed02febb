#!/usr/bin/env bash
# Read-modify-write counters (get, then put-if-version) from concurrent
# clients while the ring changes under them: a node is killed and restarted,
# a new node joins (keys change authority), a node is frozen and thawed.
# No acknowledged increment may be lost or applied twice (kvhist --cas).
# This is what guards the coordinator's shortcut for conditional writes
# (a known newest version checked against its own copy, kv_coord.c): it
# must hold across authority changes, failed writes and retries.
source "$(dirname "$0")/lib.sh"
KVHIST=$BUILD_DIR/tests/kvhist

start_ring 4
for port in "${PORTS[@]}"; do
    wait_ring "$port" 4 20
done
alloc_ports EXTRA 1
peers=$(printf 'tcp://127.0.0.1:%s,' "${PORTS[@]}")
"$KVHIST" --peer "${peers%,}" --clients 6 --keys 3 --seconds 22 --cas --log "$T/history.log" \
    >"$T/kvhist.out" 2>&1 &
hist=$!
sleep 3
kill -KILL "${NODE_PIDS[2]}"
log "killed the node on ${PORTS[2]}"
sleep 4
start_node n2 "${PORTS[2]}" "${PORTS[0]}"
log "restarted it"
sleep 3
start_node n4 "${EXTRA[0]}" "${PORTS[1]}"
log "a fifth node joins on ${EXTRA[0]}"
sleep 4
kill -STOP "${NODE_PIDS[3]}"
log "froze the node on ${PORTS[3]}"
sleep 3
kill -CONT "${NODE_PIDS[3]}"
log "thawed it"
st=0
wait "$hist" || st=$?
cat "$T/kvhist.out"
[ "$st" = 0 ] || fail "the counters' history check failed (exit $st)"
grep -q " 0 failed" "$T/kvhist.out" || fail "the history checker reported violations"
acked=$(awk '/acknowledged increments/ {s += $4} END {print s + 0}' "$T/kvhist.out")
[ "$acked" -ge 100 ] || fail "only $acked increments acknowledged: the load did not run"
log "$acked acknowledged increments, none lost or doubled"
finish
