#!/usr/bin/env bash
# Direct reads under token placement, on a ring larger than N (5 nodes,
# N=3/W=2/R=2): a key's replica set is not its authority's successors and
# need not include the authority. A client that reads many keys learns
# each partition's set from the authority's answers and then reads R of its
# members directly, asking the authority only to vouch when it holds no
# copy; so after one read per partition nearly every get is answered
# directly, and every value read is the newest one (every key is written
# twice; kvload checks each value read against the second write).
# Then a node leaves under a reading client: the sets it learned go stale;
# reads still return the newest values, and are direct again afterwards.
source "$(dirname "$0")/lib.sh"
KEYS=300

start_ring 5
for port in "${PORTS[@]}"; do
    wait_ring "$port" 5 30
done
peer=tcp://127.0.0.1:${PORTS[0]}

# load OP NAME [ARGS...]: kvload over KEYS 1 KiB keys, the values of
# generation SEED (default 2); 0 client errors (for a get: no value missing
# or other than the generation's).
load() {
    kvload_ok "$2" --peer "$peer" --op "$1" --size 1024 --keys "$KEYS" --concurrency 1 \
        --prefix dp --seed "${SEED:-2}" --timeout-ms 2000 --label dhtfs --test "$2" "${@:3}"
}

# field NAME KEY: a number from kvload NAME's RESULT line.
field() {
    sed -n "s/^RESULT.* $2=\([0-9]*\).*/\1/p" "$T/$1.out"
}

# wait_direct SECONDS: until a fresh client's 1000 gets are nearly all
# answered directly. Authorities vouch once the copies have settled where
# the placement puts them (a few sync periods after the last join or leave:
# until then reads ask the old sets too, through the authority), so
# earlier rounds may be coordinated.
wait_direct() {
    local i direct=0 coord=0
    for ((i = 0; i < $1; i++)); do
        load get probe --ops 1000 >/dev/null
        direct=$(field probe direct)
        coord=$(field probe coordinated)
        # At most one coordinated read per partition before its set is known.
        ((coord <= KEYS && direct >= 650)) && return 0
        sleep 1
    done
    fail "gets not answered directly within $1 s: $direct direct, $coord coordinated"
}

SEED=1 load put fill
load put fill2
wait_copies "${PORTS[0]}" "$KEYS" 30
wait_direct 40
# 3000 gets (and the warm-up) over 300 keys: one coordinated read per
# partition at most, before its set is known (a guess of the authority and
# its successor is right for some), then direct ones. Reads of the
# authority and its successors would be coordinated for most keys of a
# 5-node ring (the old client: 38 % direct). Gets not tried directly (a
# node that stalled past the 50 ms hedge is not read directly for 5 s)
# count as neither.
load get warm --ops 3000
direct=$(field warm direct)
coord=$(field warm coordinated)
log "5 nodes, tokens: $direct gets answered directly, $coord coordinated"
((coord <= KEYS)) || fail "$coord gets were coordinated ($direct direct): partition sets not learned"
((direct >= 1000 && direct * 10 >= 8 * (direct + coord))) ||
    fail "of the gets tried directly, $direct were answered directly, $coord coordinated"

# A node leaves under a reading client: the sets it learned go stale. Every
# get still returns the newest value (a set the authority no longer vouches
# for falls back to the coordinated read, and is learned anew).
load get leave_load --seconds 8 &
loader=$!
sleep 3
kill -TERM "${NODE_PIDS[4]}"
wait_exit "${NODE_PIDS[4]}" 30
[ "$EXIT_STATUS" = 0 ] || fail "leaving node exited with $EXIT_STATUS"
wait "$loader" || fail "the reads across the leave failed"
log "across the leave: $(field leave_load direct) direct, $(field leave_load coordinated) coordinated"
PORTS=("${PORTS[@]:0:4}")
for port in "${PORTS[@]}"; do
    wait_ring "$port" 4 30
done
wait_copies "${PORTS[0]}" "$KEYS" 60
wait_direct 60
log "4 nodes after the leave: $(field probe direct) gets answered directly, $(field probe coordinated) coordinated"
finish
