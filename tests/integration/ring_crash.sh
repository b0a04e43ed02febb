#!/usr/bin/env bash
# kill -9 of one node of five: the survivors repair the ring to 4 nodes, and
# their finger tables stop pointing at the dead node.
source "$(dirname "$0")/lib.sh"

start_ring 5
wait_ring "${PORTS[0]}" 5 20
victim=2
kill -KILL "${NODE_PIDS[$victim]}"
log "killed node on port ${PORTS[$victim]}"
for i in 0 1 3 4; do
    wait_ring "${PORTS[$i]}" 4 20
done
for i in 0 1 3 4; do
    wait_fingers "${PORTS[$i]}" 20
done
log "ring repaired to 4 nodes"
# A second crash, of a neighbour this time, also repairs.
kill -KILL "${NODE_PIDS[3]}"
for i in 0 1 4; do
    wait_ring "${PORTS[$i]}" 3 20
done
log "ring repaired to 3 nodes"
