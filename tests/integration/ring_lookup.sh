#!/usr/bin/env bash
# lookup agrees with the sorted ring for 1,000 random keys, in both modes,
# asked of different nodes (one dhtctl per 100 keys: lookup takes several):
# on a ring with the default token placement and on one with Chord
# placement (--tokens 0). The owner (the key's coordinator) is the first id
# at or after the key's position under both; the replicas are the owner and
# the next two ids under Chord placement, three distinct ring nodes under
# token placement.
source "$(dirname "$0")/lib.sh"

# lookups NAME FLAG...: a 5-node ring with these flags; 1,000 lookups in 10
# batches (100 through each node in each mode) into $T/NAME.jsonl, the
# ring's sorted ids in $T/NAME.ids; the nodes are stopped afterwards.
lookups() {
    local name=$1 b k port mode pids=() keys
    shift
    alloc_ports PORTS 5
    for ((k = 0; k < 5; k++)); do
        start_node "$name$k" "${PORTS[$k]}" "$([ "$k" = 0 ] || echo "${PORTS[0]}")" "$@"
        pids+=("$NODE_PID")
        sleep 0.2
    done
    for port in "${PORTS[@]}"; do
        wait_ring "$port" 5 20
        wait_fingers "$port" 20
    done
    ctl --peer "127.0.0.1:${PORTS[0]}" ring --json | jq -c '[.nodes[].id] | sort' >"$T/$name.ids"
    for ((b = 0; b < 10; b++)); do
        port=${PORTS[$((b % 5))]}
        mode=--recursive
        if ((b >= 5)); then mode=--iterative; fi
        keys=()
        for ((k = 0; k < 100; k++)); do
            keys+=("key-$RANDOM-$b-$k")
        done
        ctl --peer "127.0.0.1:$port" lookup "${keys[@]}" "$mode" --json >>"$T/$name.jsonl" ||
            fail "$name: lookup through $port $mode failed"
    done
    [ "$(wc -l <"$T/$name.jsonl")" = 1000 ] ||
        fail "$name: $(wc -l <"$T/$name.jsonl") answers to 1000 lookups"
    kill -KILL "${pids[@]}"
}

# disagree NAME CHORD: how many of NAME's lookups disagree with its sorted
# ring (CHORD true: replicas are the owner and the next two ids).
disagree() {
    jq -s --argjson ids "$(cat "$T/$1.ids")" --argjson chord "$2" '
        [ .[] | . as $l
          | ([$ids[] | select(. >= $l.pos)] | first // $ids[0]) as $owner
          | ($ids | index($owner)) as $o
          | [range(0; 3) | $ids[($o + .) % ($ids | length)]] as $succ
          | (if $chord then $l.replicas == $succ
             else ($l.replicas | unique | length) == 3
                  and all($l.replicas[]; . as $r | $ids | index($r) != null) end) as $reps_ok
          | select($l.owner != $owner or ($reps_ok | not) or $l.hops > 4) ] | length' \
        "$T/$1.jsonl"
}

lookups tok
lookups chord --tokens 0
for ring in tok:false chord:true; do
    bad=$(disagree "${ring%%:*}" "${ring#*:}")
    [ "$bad" = 0 ] || {
        head -3 "$T/${ring%%:*}.jsonl" >&2
        fail "${ring%%:*}: $bad of 1000 lookups disagree with the sorted ring"
    }
done
# Token placement does move copies off the successors: most sets differ.
moved=$(disagree tok true)
((moved > 300)) || fail "only $moved of 1000 token-placed replica sets differ from Chord's"
log "1000 lookups (recursive and iterative) on each ring agree with the sorted ring; $moved of 1000 token-placed sets are not the successors"
jq -s 'group_by(.mode) | map({mode: .[0].mode, avg_hops: (map(.hops) | add / length)})' \
    "$T/tok.jsonl" "$T/chord.jsonl"
