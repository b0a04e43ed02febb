#!/usr/bin/env bash
# Member tables (docs/PLACEMENT.md step 1): five nodes with different
# weights and zones; every node's table converges to one epoch listing all
# five with the right weight and zone (dhtctl members, and status's
# per_node); a node that leaves gracefully is marked left everywhere; a
# killed node stays listed as up, and comes back with a newer incarnation
# when restarted. Also the flags' refusals.
source "$(dirname "$0")/lib.sh"

# Bad --weight / --zone: usage errors (exit 2) that name the flag, also from --config.
bad_flag "--weight must be" --weight 0
bad_flag "--weight must be" --weight 65
bad_flag "--weight must be" --weight x2
bad_flag "--weight must be" --weight ""
bad_flag "--zone must be" --zone ""
bad_flag "--zone must be" --zone "rack 1"
bad_flag "--zone must be" --zone "$(printf 'z%.0s' {1..32})"
printf 'weight = 0\n' >"$T/bad.conf"
bad_flag "bad.conf:1: --weight must be" --config "$T/bad.conf"
log "bad --weight/--zone refused with exit 2"

WEIGHTS=(1 2 1 4 1)
ZONES=(za zb zc za "")
alloc_ports PORTS 5
NODE_PIDS=()
for i in 0 1 2 3 4; do
    extra=(--weight "${WEIGHTS[$i]}")
    [ -n "${ZONES[$i]}" ] && extra+=(--zone "${ZONES[$i]}")
    if [ "$i" = 0 ]; then
        start_node n0 "${PORTS[0]}" "" "${extra[@]}"
    else
        sleep 0.2
        start_node "n$i" "${PORTS[$i]}" "${PORTS[0]}" "${extra[@]}"
    fi
    NODE_PIDS+=("$NODE_PID")
done
wait_ring "${PORTS[0]}" 5 30

# The expected table: addr -> [weight, zone or null, state].
expect() {
    local i out='{}' live=("$@")
    for i in 0 1 2 3 4; do
        out=$(jq -c --arg a "tcp://127.0.0.1:${PORTS[$i]}" --argjson w "${WEIGHTS[$i]}" \
            --arg z "${ZONES[$i]}" --arg s "${live[$i]}" \
            '. + {($a): [$w, (if $z == "" then null else $z end), $s]}' <<<"$out")
    done
    echo "$out"
}

# members_ok WANT PORT...: each node's table is WANT, and all have one epoch.
members_ok() {
    local want=$1 port json epochs=()
    shift
    for port in "$@"; do
        json=$(ctl --peer "127.0.0.1:$port" members --json 2>/dev/null) || return 1
        jq -e --argjson w "$want" \
            '([.members[] | {(.addr): [.weight, .zone, .state]}] | add) == $w' \
            <<<"$json" >/dev/null || return 1
        epochs+=("$(jq -r .epoch <<<"$json")")
    done
    [ "$(printf '%s\n' "${epochs[@]}" | sort -u | wc -l)" = 1 ]
}

wait_members() {
    local secs=$1 want=$2 i port
    shift 2
    for ((i = 0; i < secs * 5; i++)); do
        if members_ok "$want" "$@"; then
            return 0
        fi
        sleep 0.2
    done
    for port in "$@"; do
        ctl --peer "127.0.0.1:$port" members >&2 || true
    done
    fail "member tables did not converge to $want within ${secs}s"
}

WANT=$(expect up up up up up)
wait_members 30 "$WANT" "${PORTS[@]}"
log "5 tables converged to one epoch with every weight and zone"

# status shows each node's own weight and zone, and the same epoch everywhere.
st=$(ctl --peer "127.0.0.1:${PORTS[2]}" status --json)
jq -e --argjson w "$WANT" '
    (.per_node | length) == 5
    and all(.per_node[]; $w[.addr][0] == .weight and $w[.addr][1] == .zone and .members == 5)
    and ([.per_node[].epoch] | unique | length) == 1' <<<"$st" >/dev/null ||
    fail "status per_node lacks the right weight/zone/epoch: $st"
ctl --peer "127.0.0.1:${PORTS[2]}" status | grep -q "weight 4  zone za" ||
    fail "status text lacks 'weight 4  zone za'"
log "status per_node: weight, zone and one epoch"

# A graceful leave: marked left on every remaining node.
kill -TERM "${NODE_PIDS[1]}"
wait_exit "${NODE_PIDS[1]}" 15
[ "$EXIT_STATUS" = 0 ] || fail "leaving node exited $EXIT_STATUS"
wait_ring "${PORTS[0]}" 4 20
WANT=$(expect up left up up up)
wait_members 30 "$WANT" "${PORTS[0]}" "${PORTS[2]}" "${PORTS[3]}" "${PORTS[4]}"
log "the leaver is marked left everywhere"

# A crash: the killed node stays listed, still up, once the ring has healed.
kill -KILL "${NODE_PIDS[3]}"
wait_exit "${NODE_PIDS[3]}" 10
wait_ring "${PORTS[0]}" 3 30
sleep 1
wait_members 30 "$WANT" "${PORTS[0]}" "${PORTS[2]}" "${PORTS[4]}"
log "the killed node stays listed as up"

# The killed node restarts on its data: a newer incarnation of the same
# entry, still up, and every table agrees again (the left one stays left).
inc_before=$(ctl --peer "127.0.0.1:${PORTS[0]}" members --json |
    jq -r --arg a "tcp://127.0.0.1:${PORTS[3]}" '.members[] | select(.addr == $a) | .incarnation')
start_node n3 "${PORTS[3]}" "${PORTS[0]}" --weight "${WEIGHTS[3]}" --zone "${ZONES[3]}"
NODE_PIDS[3]=$NODE_PID
wait_ring "${PORTS[0]}" 4 30
wait_members 30 "$WANT" "${PORTS[0]}" "${PORTS[2]}" "${PORTS[3]}" "${PORTS[4]}"
inc_after=$(ctl --peer "127.0.0.1:${PORTS[0]}" members --json |
    jq -r --arg a "tcp://127.0.0.1:${PORTS[3]}" '.members[] | select(.addr == $a) | .incarnation')
[ "$inc_after" -gt "$inc_before" ] ||
    fail "restarted node's incarnation did not grow ($inc_before -> $inc_after)"
log "the restarted node is up again with a newer incarnation, tables agree"
