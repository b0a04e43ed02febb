#!/usr/bin/env bash
# SIGTERM makes a node leave gracefully: it exits 0 and its neighbours are
# linked to each other at once (no failure timeout needed).
source "$(dirname "$0")/lib.sh"

start_ring 5
wait_ring "${PORTS[0]}" 5 20
kill -TERM "${NODE_PIDS[1]}"
wait_exit "${NODE_PIDS[1]}" 10
[ "$EXIT_STATUS" = 0 ] || fail "leaving node exited with $EXIT_STATUS, expected 0"
log "leaving node exited 0"
for i in 0 2 3 4; do
    wait_ring "${PORTS[$i]}" 4 10
done
grep -q "left" "$T"/n*.log || fail "no neighbour logged the leave"
# Leaving one after another down to a single node.
for i in 2 3 4; do
    kill -TERM "${NODE_PIDS[$i]}"
    wait_exit "${NODE_PIDS[$i]}" 10
    [ "$EXIT_STATUS" = 0 ] || fail "node $i exited with $EXIT_STATUS"
done
wait_ring "${PORTS[0]}" 1 10
log "ring shrank to its last node"
