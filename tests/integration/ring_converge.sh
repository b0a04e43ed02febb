#!/usr/bin/env bash
# A 5-node ring converges: every node agrees on the sorted successor order,
# and every finger table matches successor(start).
source "$(dirname "$0")/lib.sh"

start_ring 5
for port in "${PORTS[@]}"; do
    wait_ring "$port" 5 20
done
log "5 nodes agree on the ring"
for port in "${PORTS[@]}"; do
    wait_fingers "$port" 20
done
log "all finger tables correct"
ctl --peer "127.0.0.1:${PORTS[2]}" ring
