#!/usr/bin/env bash
# A node must never be left alone by a join that could not last, and a node
# left alone must come back.
#
# 1. A joiner must not join a node that has not joined yet itself: ring_churn
#    once started c11 through c10 while c10 was still looking for its own
#    (crashed) bootstrap; c10 answered the lookup as a ring of one, c11
#    "joined" it, c10 gave up and exited, and c11 was left alone for good,
#    knowing no live node. Now the half-joined node refuses the lookup
#    (EAGAIN), the joiner waits for it, and gives up cleanly (exit 3) when
#    it never finishes.
# 2. The brief's case: A; B joins A; C joins through B; B is killed as soon
#    as C has joined. C must end in one ring with A.
source "$(dirname "$0")/lib.sh"

alloc_ports P 5
dead=${P[4]}
bits=(--id-bits 8)

# --- 1: B joins through a port nobody listens on (3 tries of 2 s each);
# C joins through B meanwhile.
start_node A "${P[0]}" "" "${bits[@]}" --id 10
wait_ring "${P[0]}" 1 10
start_node B "${P[1]}" "$dead" "${bits[@]}" --id 100 --timeout-ms 2000
PB=$NODE_PID
sleep 0.3
start_node C "${P[2]}" "${P[1]}" "${bits[@]}" --id 50
PC=$NODE_PID
wait_exit "$PB" 30
[ "$EXIT_STATUS" = 3 ] || fail "B (bootstrap dead) exited $EXIT_STATUS, wanted 3"
if grep -q "joined:" "$T/C.log"; then
    fail "C joined through B, which had not joined any ring: $(grep joined: "$T/C.log")"
fi
wait_exit "$PC" 60
[ "$EXIT_STATUS" = 3 ] || fail "C (bootstrap never joined) exited $EXIT_STATUS, wanted 3"
grep -q "still joining" "$T/C.log" || fail "C's log does not say its bootstrap was still joining"
log "a joiner waits for a half-joined bootstrap and gives up cleanly when it dies"

# --- 2: C joins through B and B dies at once.
start_node B2 "${P[1]}" "${P[0]}" "${bits[@]}" --id 100
PB=$NODE_PID
wait_ring "${P[0]}" 2 20
start_node C2 "${P[2]}" "${P[1]}" "${bits[@]}" --id 200
for ((i = 0; i < 500; i++)); do
    grep -q "joined:" "$T/C2.log" 2>/dev/null && break
    sleep 0.01
done
kill -KILL "$PB"
log "killed B right after C joined through it"
wait_ring "${P[2]}" 2 30
wait_ring "${P[0]}" 2 30
log "C and A form one ring"
finish
