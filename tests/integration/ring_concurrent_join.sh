#!/usr/bin/env bash
# Four nodes join through the same peer at the same moment; stabilize must
# sort out the races (the lecture's join alone would not).
source "$(dirname "$0")/lib.sh"

alloc_ports PORTS 9
start_node n0 "${PORTS[0]}" ""
sleep 0.3
for i in 1 2 3 4; do
    start_node "n$i" "${PORTS[$i]}" "${PORTS[0]}"
done
for i in 0 1 2 3 4; do
    wait_ring "${PORTS[$i]}" 5 30
done
log "4 concurrent joins converged"
# Four more, each through a different existing node.
for i in 5 6 7 8; do
    start_node "n$i" "${PORTS[$i]}" "${PORTS[$((i - 4))]}"
done
for i in 0 1 2 3 4 5 6 7 8; do
    wait_ring "${PORTS[$i]}" 9 30
done
for i in 0 4 8; do
    wait_fingers "${PORTS[$i]}" 30
done
log "4 more concurrent joins through different peers converged"
