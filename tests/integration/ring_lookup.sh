#!/usr/bin/env bash
# lookup agrees with the sorted ring for 1,000 random keys, in both modes,
# asked of different nodes (one dhtctl per 100 keys: lookup takes several).
source "$(dirname "$0")/lib.sh"

start_ring 5
for port in "${PORTS[@]}"; do
    wait_ring "$port" 5 20
    wait_fingers "$port" 20
done
ids=$(ctl --peer "127.0.0.1:${PORTS[0]}" ring --json | jq -c '[.nodes[].id] | sort')
# 1,000 keys in 10 batches: 100 through each node in each mode.
for ((b = 0; b < 10; b++)); do
    port=${PORTS[$((b % 5))]}
    mode=--recursive
    if ((b >= 5)); then mode=--iterative; fi
    keys=()
    for ((k = 0; k < 100; k++)); do
        keys+=("key-$RANDOM-$b-$k")
    done
    ctl --peer "127.0.0.1:$port" lookup "${keys[@]}" "$mode" --json >>"$T/lookups.jsonl" ||
        fail "lookup through $port $mode failed"
done
[ "$(wc -l <"$T/lookups.jsonl")" = 1000 ] || fail "$(wc -l <"$T/lookups.jsonl") answers to 1000 lookups"
# One jq pass checks them all: owner = first id >= pos (wrapping), replicas
# = owner and the next two, hops within log2(N) + 1.
bad=$(jq -s --argjson ids "$ids" '
    [ .[] | . as $l
      | ([$ids[] | select(. >= $l.pos)] | first // $ids[0]) as $owner
      | ($ids | index($owner)) as $o
      | [range(0; 3) | $ids[($o + .) % ($ids | length)]] as $reps
      | select($l.owner != $owner or $l.replicas != $reps or $l.hops > 4) ] | length' \
    "$T/lookups.jsonl")
[ "$bad" = 0 ] || {
    head -3 "$T/lookups.jsonl" >&2
    fail "$bad of 1000 lookups disagree with the sorted ring"
}
log "1000 lookups (recursive and iterative) agree with the sorted ring"
jq -s 'group_by(.mode) | map({mode: .[0].mode, avg_hops: (map(.hops) | add / length)})' \
    "$T/lookups.jsonl"
