#!/usr/bin/env bash
# Token placement on real rings (kvnode --tokens; docs/PLACEMENT.md step 2).
#
# Ring A: six nodes, written under Chord placement (--tokens 0) and
# restarted with the default token placement (64 tokens per node) on the
# same data (carried over: three copies of every key where the new
# placement puts them, all readable). Every node stores close to its fair
# share of the copies (largest over mean <= 1.3, where Chord placement
# gives 1.7-3 on rings this size), and every key's three copies sit on
# three distinct nodes. A seventh node joins: it receives about its share,
# from several nodes, and the extra copies the others held are dropped
# (exactly three copies of every key again); reads running all through the
# join find every key. A killed node: every key stays readable and
# writable, and its copies are made again on the others. A graceful leave:
# exit 0, and again three copies of everything, all readable.
#
# Ring B: weights 1,1,1,1,2 (zones: ring_netns, 3 zones of 2 hosts). A node
# with --tokens 0 (or with other probes) is refused at join, and --probes
# with --tokens 0 is a usage error.
# A pass compares every partition once per sync period (8 stabilize
# rounds): faster rounds settle the copies sooner.
STABILIZE_MS=${STABILIZE_MS:-50}
source "$(dirname "$0")/lib.sh"
KVLOAD=$BUILD_DIR/tests/kvload
# The default placement: 64 tokens per node, 21 probes.
TOK=()

# Flags: usage errors (exit 2) that name the flag.
bad_flag "--tokens must be" --tokens 4097
bad_flag "--tokens must be" --tokens x
bad_flag "--probes must be" --tokens 4 --probes 0
bad_flag "--probes does not go with --tokens 0" --tokens 0 --probes 3
log "bad --tokens/--probes refused with exit 2"

# load OP PREFIX KEYS PORT: kvload puts (or gets and checks) KEYS 1 KiB values, 0 errors.
load() {
    local st=0 errors
    "$KVLOAD" --peer "tcp://127.0.0.1:$4" --op "$1" --size 1024 --keys "$3" --concurrency 8 \
        --prefix "$2" --timeout-ms 4000 --label dhtfs --test "$2" \
        >"$T/$2.$1.out" 2>"$T/$2.$1.err" || st=$?
    grep -q '^RESULT' "$T/$2.$1.out" || fail "kvload $1 $2 printed no result: $(cat "$T/$2.$1.err")"
    errors=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' "$T/$2.$1.out")
    [ "$st" = 0 ] && [ "$errors" = 0 ] ||
        fail "kvload $1 $2: $errors client errors (exit $st): $(tail -3 "$T/$2.$1.err")"
}

# per_node PORT: "addr keys" per node that answered status.
per_node() {
    ctl --peer "127.0.0.1:$1" status --json | jq -r '.per_node[] | select(.keys != null) | "\(.addr) \(.keys)"'
}

# max_over_mean PORT: the largest node's stored copies over the mean.
max_over_mean() {
    ctl --peer "127.0.0.1:$1" status --json |
        jq '[.per_node[].keys | select(. != null)] | (max / (add / length))'
}

# field_of PORT ADDR_PORT FIELD: one node's per_node field from status.
field_of() {
    ctl --peer "127.0.0.1:$1" status --json |
        jq -r --arg a "tcp://127.0.0.1:$2" ".per_node[] | select(.addr == \$a) | .$3"
}

# ---------------------------------------------------------------- ring A
# a_up FLAG...: the six nodes of ring A on their ports and data directories.
a_up() {
    A_PIDS=()
    start_node a0 "${PORTS[0]}" "" "$@"
    A_PIDS+=("$NODE_PID")
    for i in 1 2 3 4 5; do
        sleep 0.2
        start_node "a$i" "${PORTS[$i]}" "${PORTS[0]}" "$@"
        A_PIDS+=("$NODE_PID")
    done
    wait_ring "${PORTS[0]}" 6 30
}
alloc_ports PORTS 7
KEYS=2000
# Written under Chord placement, then every node restarted on its data
# with token placement: the records are handed to where it puts them. A
# tombstone grace of 1 s makes every record older than the grace period by
# then: a hand-off must move those too (a hand-back to an authority skips
# them).
GRACE=(--tombstone-grace-s 1)
a_up --tokens 0 "${GRACE[@]}"
load put pa "$KEYS" "${PORTS[0]}"
wait_copies "${PORTS[0]}" "$KEYS" 60
sleep 2
ctl --peer "127.0.0.1:${PORTS[0]}" status --json | jq -e '.placement == {"kind":"chord"}' >/dev/null ||
    fail "status does not report Chord placement"
log "Chord placement: $(per_node "${PORTS[0]}" | awk '{printf "%s ", $2}')copies per node"
for pid in "${A_PIDS[@]}"; do
    kill -KILL "$pid"
    wait_exit "$pid" 10
done
a_up "${TOK[@]}" "${GRACE[@]}"
ctl --peer "127.0.0.1:${PORTS[0]}" status --json |
    jq -e '.placement == {"kind":"tokens","tokens":64,"probes":21}' >/dev/null ||
    fail "status does not report the placement: $(ctl --peer "127.0.0.1:${PORTS[0]}" status --json | jq -c .placement)"
wait_copies "${PORTS[0]}" "$KEYS" 90
load get pa "$KEYS" "${PORTS[3]}"
log "restarted with token placement on the same data: three copies of every key, all readable"
ratio=$(max_over_mean "${PORTS[0]}")
log "6 nodes: largest node stores $ratio x the mean ($(per_node "${PORTS[0]}" | awk '{printf "%s ", $2}'))"
jq -e -n "$ratio <= 1.3" >/dev/null || soft_fail "largest node stores $ratio x the mean (> 1.3)"

# Every sampled key: three copies on three nodes, one value.
for i in $(seq 0 97 "$((KEYS - 1))"); do
    r=$(ctl --peer "127.0.0.1:${PORTS[$((i % 6))]}" replicas "pa-$i" --json)
    jq -e '(.replicas | length) == 3 and ([.replicas[].node] | unique | length) == 3
        and all(.replicas[]; .value_sha != null)
        and ([.replicas[].value_sha] | unique | length) == 1' <<<"$r" >/dev/null ||
        soft_fail "key pa-$i is not on three distinct nodes: $r"
done
log "sampled keys: three copies each, on three distinct nodes"

# A seventh node joins: about a seventh of the copies move to it, from many nodes.
# Reads run all through it (through the old nodes, in turn), and every one
# finds its key: a copy not moved yet is read where it was. A round reads a
# quarter of the keys (hashed, so from every node): rounds keep coming while
# the copies move, and the last one ends soon after they settle.
before=$(per_node "${PORTS[0]}")
(
    for r in $(seq 1 60); do
        [ -e "$T/stop-reads" ] && break
        "$KVLOAD" --peer "tcp://127.0.0.1:${PORTS[$((r % 6))]}" --op get --size 1024 \
            --keys $((KEYS / 4)) --concurrency 8 --prefix pa --timeout-ms 4000 --label dhtfs \
            --test pa >>"$T/join-reads.out" 2>>"$T/join-reads.err" || true
    done
) &
PIDS+=("$!")
READER=$!
sleep 0.5
start_node a6 "${PORTS[6]}" "${PORTS[0]}" "${TOK[@]}"
A_PIDS+=("$NODE_PID")
wait_ring "${PORTS[0]}" 7 30
# The moves start with the passes after the join: until the newcomer holds
# copies, three per key are still where they were.
for ((i = 0; i < 600; i++)); do
    [ "$(field_of "${PORTS[0]}" "${PORTS[6]}" keys)" -gt 0 ] 2>/dev/null && break
    sleep 0.1
done
wait_copies "${PORTS[0]}" "$KEYS" 90
# Two rounds at least, so one spans the moves however fast they were (a
# slow machine or a sanitizer build can take longer for a round than the
# join takes for its copies).
for ((i = 0; i < 600; i++)); do
    [ "$(grep -c '^RESULT' "$T/join-reads.out" 2>/dev/null)" -ge 2 ] 2>/dev/null && break
    kill -0 "$READER" 2>/dev/null || break
    sleep 0.1
done
touch "$T/stop-reads"
wait "$READER"
rounds=$(grep -c '^RESULT' "$T/join-reads.out" || true)
bad=$(grep '^RESULT' "$T/join-reads.out" | grep -vc ' errors=0 ' || true)
log "reads during the join: $rounds rounds of $((KEYS / 4)) keys, $bad with errors"
[ "$rounds" -ge 2 ] && [ "$bad" = 0 ] ||
    fail "reads during the join: $bad of $rounds rounds had errors: $(sort "$T/join-reads.err" | uniq -c | sort -rn | head -3)"
after=$(per_node "${PORTS[0]}")
got=$(field_of "${PORTS[0]}" "${PORTS[6]}" keys)
fair=$((3 * KEYS / 7))
gave=$(join <(sort <<<"$before") <(sort <<<"$after") | awk '$3 < $2 {n++} END {print n + 0}')
log "join: the newcomer stores $got copies (fair share $fair), taken from $gave of 6 nodes"
[ "$got" -ge $((fair * 2 / 3)) ] && [ "$got" -le $((fair * 4 / 3)) ] ||
    soft_fail "the newcomer stores $got copies, fair share $fair"
[ "$gave" -ge 4 ] || soft_fail "the newcomer's copies came from $gave nodes, not many"
load get pa "$KEYS" "${PORTS[6]}"
log "after the join every key reads back (through the newcomer)"

# A crash: a5 killed; every key readable, new writes work, copies remade.
kill -KILL "${A_PIDS[5]}"
wait_exit "${A_PIDS[5]}" 10
load get pa "$KEYS" "${PORTS[1]}"
load put pb 300 "${PORTS[2]}"
wait_copies "${PORTS[0]}" $((KEYS + 300)) 90
log "a killed node: every key read and written, three live copies of each again"

# A graceful leave: a3 hands its copies over and exits 0.
kill -TERM "${A_PIDS[3]}"
wait_exit "${A_PIDS[3]}" 40
[ "$EXIT_STATUS" = 0 ] || fail "leaving node exited $EXIT_STATUS"
wait_copies "${PORTS[0]}" $((KEYS + 300)) 90
load get pa "$KEYS" "${PORTS[4]}"
load get pb 300 "${PORTS[0]}"
log "a graceful leave: three copies of every key, all readable"
for pid in "${A_PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
done

# ---------------------------------------------------------------- ring B
# Weights 1,1,1,1,2: the heavy node is the primary of about twice the keys,
# and stores twice the copies of the others: with three copies on five nodes
# its fair share (3 x 2/6) is one copy of every key, so it is in every set
# (ring_place's capped weights) and the others share the other two copies.
# The copies are exact; the primaries follow the tokens' arcs, which depend
# on the (random) node ids: with 64 tokens a node's arc share varies by
# about 12 %, the ratio of the heavy node's primaries to the others' mean
# by about 0.2 around 2 (1.49-2.38 seen in CI and seven runs), so its band
# is 1.3-2.8 (about three standard deviations).
WEIGHTS=(1 1 1 1 2)
alloc_ports PORTS 6
start_node c0 "${PORTS[0]}" "" "${TOK[@]}" --weight "${WEIGHTS[0]}"
for i in 1 2 3 4; do
    sleep 0.2
    start_node "c$i" "${PORTS[$i]}" "${PORTS[0]}" "${TOK[@]}" --weight "${WEIGHTS[$i]}"
done
wait_ring "${PORTS[0]}" 5 30
load put pw 1500 "${PORTS[0]}"
wait_copies "${PORTS[0]}" 1500 60
st=$(ctl --peer "127.0.0.1:${PORTS[0]}" status --json)
heavy=$(jq --arg a "tcp://127.0.0.1:${PORTS[4]}" '.per_node[] | select(.addr == $a)' <<<"$st")
others=$(jq --arg a "tcp://127.0.0.1:${PORTS[4]}" '[.per_node[] | select(.addr != $a)]
    | {primary: ([.[].primary] | add / length), keys: ([.[].keys] | add / length)}' <<<"$st")
log "weights 1,1,1,1,2: heavy node $(jq -c '{primary, keys}' <<<"$heavy"), others on average $(jq -c . <<<"$others")"
jq -e -n --argjson h "$heavy" --argjson o "$others" \
    '$h.primary >= 1.3 * $o.primary and $h.primary <= 2.8 * $o.primary
     and $h.keys >= 1.8 * $o.keys' \
    >/dev/null || soft_fail "the weight-2 node is not weighted: $heavy against $others"

# A node with another placement is refused at join.
rc=0
"$KVNODE" --listen "tcp://127.0.0.1:${PORTS[5]}" --join "tcp://127.0.0.1:${PORTS[0]}" \
    --data "$T/chord.data" --timeout-ms "$TIMEOUT_MS" --tokens 0 2>"$T/chord.err" || rc=$?
[ "$rc" = 1 ] && grep -q -- "--tokens 64, this node 0" "$T/chord.err" ||
    soft_fail "a Chord-placement node joining a token ring: exit $rc, $(cat "$T/chord.err")"
rc=0
"$KVNODE" --listen "tcp://127.0.0.1:${PORTS[5]}" --join "tcp://127.0.0.1:${PORTS[0]}" \
    --data "$T/probes.data" --timeout-ms "$TIMEOUT_MS" --probes 5 2>"$T/probes.err" || rc=$?
[ "$rc" = 1 ] && grep -q -- "--probes 21, this node 5" "$T/probes.err" ||
    soft_fail "a node with other probes: exit $rc, $(cat "$T/probes.err")"
log "nodes with another placement are refused at join"
finish
