#!/usr/bin/env bash
# Concurrent clients put and get a handful of keys while a node is killed
# and restarted; the recorded history must show no stale or invented reads.
source "$(dirname "$0")/lib.sh"
KVHIST=$BUILD_DIR/tests/kvhist

start_ring 5
for port in "${PORTS[@]}"; do
    wait_ring "$port" 5 20
done
peers=$(printf 'tcp://127.0.0.1:%s,' "${PORTS[@]}")
"$KVHIST" --peer "${peers%,}" --clients 6 --keys 4 --seconds 14 --log "$T/history.log" \
    >"$T/kvhist.out" 2>&1 &
hist=$!
sleep 3
kill -KILL "${NODE_PIDS[2]}"
log "killed node on ${PORTS[2]} during the run"
sleep 4
start_node n2 "${PORTS[2]}" "${PORTS[0]}"
log "restarted it"
st=0
wait "$hist" || st=$?
cat "$T/kvhist.out"
[ "$st" = 0 ] || fail "history check failed (exit $st)"
grep -q " 0 failed" "$T/kvhist.out" || fail "history checker reported violations"
