#!/usr/bin/env bash
# The two neighbours of a crashed node notice the crash at different times.
# The one that notices first must not take the dead node back as its
# successor just because the other still names it as its predecessor
# (stabilize adopts the successor's predecessor): that put lookups and
# writes back on a dead node for another detection period (seen as a
# kv_memcached failure under ASan).
source "$(dirname "$0")/lib.sh"

alloc_ports P 3
# Ring order p(16) -> x(32) -> s(48) -> p. p drops a dead successor after
# three missed deadlines; s keeps a silent predecessor for 6 s.
start_node p "${P[0]}" "" --id-bits 8 --id 16 --fail-after-ms 300
sleep 0.2
start_node x "${P[1]}" "${P[0]}" --id-bits 8 --id 32
X_PID=$NODE_PID
sleep 0.2
start_node s "${P[2]}" "${P[0]}" --id-bits 8 --id 48 --fail-after-ms 6000
wait_ring "${P[0]}" 3 20

kill -KILL "$X_PID"
log "killed x (id 32)"
for ((i = 0; i < 100; i++)); do
    grep -q "successor 20 failed" "$T/p.log" && break
    sleep 0.1
done
grep -q "successor 20 failed" "$T/p.log" || fail "p did not notice that its successor died"
log "p dropped x"
# Two seconds during which s still names x its predecessor: p's successor
# must stay s.
sleep 2
! grep -q "peer 20 failed" "$T/s.log" || fail "s dropped x too early for this test to check anything"
readmitted=$(sed -n '/successor 20 failed/,$p' "$T/p.log" | grep -c "successor is now 20" || true)
[ "$readmitted" = 0 ] ||
    fail "p took the dead x back as its successor $readmitted time(s) after dropping it"
wait_ring "${P[0]}" 2 20
wait_ring "${P[2]}" 2 20
log "ring repaired to 2 nodes without readmitting the dead node"

# A node that comes back at the same id is taken back as soon as it answers.
start_node x2 "${P[1]}" "${P[0]}" --id-bits 8 --id 32
wait_ring "${P[0]}" 3 20
log "x restarted and is back in the ring"
