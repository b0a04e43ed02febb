#!/usr/bin/env bash
# Replication keeps up under a sustained write load with every node up: a
# 3-node ring (N=3/W=2/R=2, 3 copies of every key on 3 nodes) takes a
# bounded closed-loop put load (kvload) with 0 client errors, and once it
# stops, under_replicated is 0 and every node holds every key within a
# short bound. Then the same with one replica SIGSTOPped for 3 s in the
# middle of the load: no client errors (W=2 still holds), and the stopped
# replica's missing copies arrive (hints, anti-entropy) soon after.
# No timing assertions on latency.
source "$(dirname "$0")/lib.sh"
# Failure detection as shipped: a 3 s pause is a busy peer, not a dead one.
TIMEOUT_MS=1000
STABILIZE_MS=250

start_ring 3
for port in "${PORTS[@]}"; do
    wait_ring "$port" 3 20
done
peer=tcp://127.0.0.1:${PORTS[0]}

# load PREFIX SECONDS: a put load of 4 KiB values, 16 in flight, over 3000 keys.
load() {
    kvload_ok "$1" --peer "$peer" --op put --size 4096 --keys 3000 --concurrency 16 \
        --seconds "$2" --prefix "$1" --timeout-ms 2000 --label dhtfs --test "$1"
}

# copies_ok: no key under-replicated and 3 copies of each (3 nodes, N=3).
copies_ok() {
    local out
    out=$(ctl --peer "127.0.0.1:${PORTS[0]}" status --json 2>/dev/null) || return 1
    jq -e '.under_replicated == 0 and .stored == 3 * .keys and .keys > 0' <<<"$out" >/dev/null
}

wait_copies_within() { # SECONDS WHAT
    local i
    for ((i = 0; i < $1 * 10; i++)); do
        copies_ok && return 0
        sleep 0.1
    done
    fail "$2: not fully replicated within $1 s: $(ctl --peer "127.0.0.1:${PORTS[0]}" status --json)"
}

load steady 8
wait_copies_within 10 "after a steady load"
log "steady load: 0 client errors, every key on 3 nodes right after"

(
    sleep 3
    kill -STOP "${NODE_PIDS[2]}"
    sleep 3
    kill -CONT "${NODE_PIDS[2]}"
) &
stopper=$!
load paused 10
wait "$stopper"
wait_copies_within 30 "after a 3 s SIGSTOP of one replica"
log "load with one replica paused 3 s: 0 client errors, its copies caught up"
if grep -qE '(peer|successor) [0-9a-f]+ failed' "$T"/n*.log; then
    log "note: a node was declared failed: $(grep -hE '(peer|successor) [0-9a-f]+ failed' "$T"/n*.log | head -2)"
fi
