#!/usr/bin/env bash
# Read-modify-write counters (get, then put-if-version) from concurrent
# clients while the ring changes under them: a node is killed and restarted,
# a new node joins (keys change authority), and the authority of a counter
# is frozen long enough for its successor to take its range over, then
# thawed. No acknowledged increment may be lost or applied twice (kvhist
# --cas). This guards the coordinator's shortcut for conditional writes (a
# known newest version checked against its own copy, ringlib/kv_known.h):
# it must not outlive an authority change, a freeze or a failed write.
source "$(dirname "$0")/lib.sh"
KVHIST=$BUILD_DIR/tests/kvhist

start_ring 4
for port in "${PORTS[@]}"; do
    wait_ring "$port" 4 20
done
alloc_ports EXTRA 1
declare -A PID_OF=()
for i in "${!PORTS[@]}"; do PID_OF[${PORTS[$i]}]=${NODE_PIDS[$i]}; done

# authority_port KEY: the port of the node that coordinates KEY now (its
# Chord successor; under token placement not necessarily the first replica).
authority_port() {
    ctl --peer "127.0.0.1:${PORTS[0]}" lookup "$1" --json | jq -r .owner_addr | sed 's/.*://'
}

victim=${PORTS[2]}
[ "$(authority_port hist-key-0)" != "$victim" ] || victim=${PORTS[3]}
peers=$(printf 'tcp://127.0.0.1:%s,' "${PORTS[@]}")
"$KVHIST" --peer "${peers%,}" --clients 6 --keys 3 --seconds 24 --cas --log "$T/history.log" \
    >"$T/kvhist.out" 2>&1 &
hist=$!
sleep 3
kill -KILL "${PID_OF[$victim]}"
log "killed the node on $victim"
sleep 3
start_node "n-$victim" "$victim" "${PORTS[0]}"
PID_OF[$victim]=$NODE_PID
log "restarted it"
sleep 3
start_node n4 "${EXTRA[0]}" "${PORTS[1]}"
PID_OF[${EXTRA[0]}]=$NODE_PID
log "a fifth node joins on ${EXTRA[0]}"
sleep 3
frozen=$(authority_port hist-key-0)
[ -n "${PID_OF[$frozen]:-}" ] || fail "no node of ours is the authority of hist-key-0 ($frozen)"
kill -STOP "${PID_OF[$frozen]}"
log "froze the authority of hist-key-0 ($frozen) for 5 s (timeout ${TIMEOUT_MS} ms)"
sleep 5
kill -CONT "${PID_OF[$frozen]}"
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
