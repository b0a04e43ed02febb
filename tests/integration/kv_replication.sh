#!/usr/bin/env bash
# The quorum store on a 5-node ring (N=3, W=2, R=2): 250 keys written and
# read through different nodes; kill -9 of a node: reads and new writes go
# on; restarted on its data dir it rejoins and under-replication returns to
# 0; a graceful leave loses nothing; kill -9 of every node and a restart of
# all of them brings every acknowledged key back. status --json's per_node
# names every ring node once and its copies add up to the totals.
source "$(dirname "$0")/lib.sh"

# check_per_node PORT NODES: per_node has NODES entries, the ring's ids, each
# once, every node answering with copies; keys and bytes sum to stored/bytes.
check_per_node() {
    local port=$1 n=$2 st ring
    st=$(ctl --peer "127.0.0.1:$port" status --json) || fail "status through $port failed"
    ring=$(ctl --peer "127.0.0.1:$port" ring --json) || fail "ring through $port failed"
    jq -e --argjson n "$n" '
        (.per_node | length) == $n and .nodes == $n
        and (.per_node | map(.id) | unique | length) == $n
        and (.per_node | map(.addr) | unique | length) == $n
        and (.per_node | all(.keys > 0 and .bytes > 0))
        and (.per_node | map(.keys) | add) == .stored
        and (.per_node | map(.bytes) | add) == .bytes' <<<"$st" >/dev/null ||
        fail "per_node inconsistent with the totals: $st"
    [ "$(jq -c '.per_node | map(.id) | sort' <<<"$st")" = "$(jq -c '.nodes | map(.id) | sort' <<<"$ring")" ] ||
        fail "per_node ids are not the ring's: $st vs $ring"
}

start_ring 5
ORIG=("${PORTS[@]}")
for port in "${PORTS[@]}"; do
    wait_ring "$port" 5 20
done
put_keys a 250
check_keys a 250 "${PORTS[@]}"
wait_replicated "${PORTS[0]}" 250 30
log "250 keys written and read back through 5 nodes, 3 copies each"

kill -KILL "${NODE_PIDS[3]}"
PORTS=("${ORIG[0]}" "${ORIG[1]}" "${ORIG[2]}" "${ORIG[4]}")
check_keys a 250 "${PORTS[@]}"
put_keys b 60
check_keys b 60 "${PORTS[@]}"
log "after kill -9 of one node: all reads and new writes succeed"
wait_ring "${PORTS[0]}" 4 20
wait_replicated "${PORTS[0]}" 310 30
log "survivors re-replicated every key to 3 copies"

start_node n3 "${ORIG[3]}" "${ORIG[0]}"
NODE_PIDS[3]=$NODE_PID
PORTS=("${ORIG[@]}")
wait_ring "${ORIG[3]}" 5 20
wait_replicated "${ORIG[0]}" 310 30
check_keys a 250 "${ORIG[3]}"
log "restarted node rejoined on its data dir; nothing under-replicated"
wait_copies "${ORIG[0]}" 310 40
log "extra copies left by the restart were handed back and dropped: 3 x 310 stored"
check_per_node "${ORIG[0]}" 5
check_per_node "${ORIG[2]}" 5
log "status per_node: 5 nodes once each, copies and bytes add up to 3 x 310 and the total bytes"

kill -TERM "${NODE_PIDS[1]}"
wait_exit "${NODE_PIDS[1]}" 40
[ "$EXIT_STATUS" = 0 ] || fail "leaving node exited $EXIT_STATUS"
PORTS=("${ORIG[0]}" "${ORIG[2]}" "${ORIG[3]}" "${ORIG[4]}")
wait_ring "${PORTS[0]}" 4 20
check_keys a 250 "${PORTS[@]}"
check_keys b 60 "${PORTS[@]}"
wait_replicated "${PORTS[0]}" 310 30
log "graceful leave handed every key on"

for i in 0 2 3 4; do
    kill -KILL "${NODE_PIDS[$i]}"
done
sleep 0.5
start_node n0 "${ORIG[0]}" ""
sleep 0.3
for i in 2 3 4; do
    start_node "n$i" "${ORIG[$i]}" "${ORIG[0]}"
done
wait_ring "${ORIG[0]}" 4 30
check_keys a 250 "${PORTS[@]}"
check_keys b 60 "${PORTS[@]}"
wait_replicated "${ORIG[0]}" 310 30
wait_copies "${ORIG[0]}" 310 40
log "kill -9 of every node and restart: every acknowledged key is back, 3 copies each"
