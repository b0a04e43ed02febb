#!/usr/bin/env bash
# The lecture's m = 6 example on real daemons: peers at 8, 16, 32, 40, 48, 61;
# peer 7 joins at 2. Its join sends update(i=5) to 32 (passed to 16: no
# update needed) and update(i=4) to 48 (passed to 40: no update needed); the
# final tables of 32 and 48 are the slides'. Fix-fingers is slowed down so
# that the tables checked right after the join come from the update messages.
source "$(dirname "$0")/lib.sh"
STABILIZE_MS=200

ids=(8 16 32 40 48 61)
alloc_ports P 7
start_node "p8" "${P[0]}" "" --id-bits 6 --id 8 --log-level debug
sleep 0.3
for k in 1 2 3 4 5; do
    start_node "p${ids[$k]}" "${P[$k]}" "${P[0]}" --id-bits 6 --id "${ids[$k]}" --log-level debug
    wait_ring "${P[0]}" $((k + 1)) 20
done
for k in 0 1 2 3 4 5; do
    wait_fingers "${P[$k]}" 20
done
log "ring 8 16 32 40 48 61 converged"

start_node "p2" "${P[6]}" "${P[3]}" --id-bits 6 --id 2 --log-level debug
wait_ring "${P[6]}" 7 20

table_dec() {
    ctl --peer "127.0.0.1:$1" fingers --json | jq -r '.fingers[] | "\(.start) \(.node)"' |
        while read -r s n; do printf '%d->%d ' "$((16#$s))" "$((16#$n))"; done
}
expect_table() { # PORT EXPECTED
    local i got
    for ((i = 0; i < 50; i++)); do
        got=$(table_dec "$1")
        [ "$got" = "$2 " ] && return 0
        sleep 0.1
    done
    fail "fingers of port $1: got '$got', expected '$2'"
}
expect_table "${P[6]}" "3->8 4->8 6->8 10->16 18->32 34->40"
expect_table "${P[2]}" "33->40 34->40 36->40 40->40 48->48 0->2"
expect_table "${P[4]}" "49->61 50->61 52->61 56->61 0->2 16->16"
log "tables of 2, 32 and 48 as on the slides (entry 5 of 2: successor(34) = 40)"

# expect_update NODE I NEXT: NODE applied update(i=I) from 2 and passed it to
# NEXT (ids in hex), which answered "no update needed", as on the slides — or
# NODE's own fix-fingers (one lookup per 200 ms tick) had already set that
# entry to 2 in the moments between 2's join and the update's arrival (the
# lecture's join allows it; a loaded machine sometimes shows it), and then
# nothing is passed on.
expect_update() {
    local node=$1 i=$2 next=$3
    if grep -q "update(i=$i, new-peer=02): applied, passed to $next" "$T/p$node.log"; then
        grep -q "update(i=$i, new-peer=02): no update needed" "$T/p$((16#$next)).log" ||
            fail "$((16#$next)) did not answer update(i=$i) with no update needed"
        return 0
    fi
    grep -q "update(i=$i, new-peer=02): no update needed (finger $i is 02)" "$T/p$node.log" ||
        fail "$node did not apply update(i=$i) and pass it to $((16#$next))"
    log "$node: fix-fingers had already set entry $i to 2 when the update came"
}
expect_update 32 5 10
expect_update 48 4 28
grep -q "update(target=22, new-peer=02) i=5 sent to 20" "$T/p2.log" ||
    fail "newcomer did not send update(target=34) for i=5 to 32"
grep -q "update(target=32, new-peer=02) i=4 sent to 30" "$T/p2.log" ||
    fail "newcomer did not send update(target=50) for i=4 to 48"
log "update messages: 32 applies i=5 and warns 16; 48 applies i=4 and warns 40"
