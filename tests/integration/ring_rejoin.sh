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
# 3. A node alone whose only live acquaintance is its --join seed rejoins
#    through the seed: ids placed so that C (joined through seed S) never
#    hears of S and S never hears of C, then every other node is killed at
#    once. Both are alone; neither's address book holds a live node; C
#    comes back through its seed (before, it tried its book only, forever).
source "$(dirname "$0")/lib.sh"

alloc_ports P 5
dead=${P[4]}
bits=(--id-bits 8)

# --- 1: B joins through a port nobody listens on (3 tries of 1 s each);
# C joins through B meanwhile.
start_node A "${P[0]}" "" "${bits[@]}" --id 10
wait_ring "${P[0]}" 1 10
start_node B "${P[1]}" "$dead" "${bits[@]}" --id 100 --timeout-ms 1000
PB=$NODE_PID
sleep 0.3
start_node C "${P[2]}" "${P[1]}" "${bits[@]}" --id 50 --timeout-ms 300
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
kill -KILL "${PIDS[@]}" 2>/dev/null || true

# --- 3: m = 8, N = 1 (a lookup answer names the owner only). S = 0; A1..A4
# fill S's successor list; X = 69 sits just before C = 70, so no UPDATE of
# C's join is applied by a node whose predecessor is S (the chain stops
# before S); Y..Z4 are C's successors and fingers; S's fingers never name C.
alloc_ports Q 12
one=("${bits[@]}" --replicas 1 --write-quorum 1 --read-quorum 1)
ids=(0 5 20 30 40 69 80 90 110 140 200)
names=(S A1 A2 A3 A4 X Y Z1 Z2 Z3 Z4)
start_node S "${Q[0]}" "" "${one[@]}" --id 0
PS=$NODE_PID
OTHERS=()
for ((i = 1; i < ${#ids[@]}; i++)); do
    sleep 0.2
    start_node "${names[i]}" "${Q[i]}" "${Q[0]}" "${one[@]}" --id "${ids[i]}"
    OTHERS+=("$NODE_PID")
done
wait_ring "${Q[0]}" 11 30
start_node C3 "${Q[11]}" "${Q[0]}" "${one[@]}" --id 70
wait_ring "${Q[0]}" 12 30
wait_fingers "${Q[11]}" 20
wait_fingers "${Q[0]}" 20
kill -KILL "${OTHERS[@]}"
log "killed every node but the seed S and C (joined through S)"
wait_ring "${Q[11]}" 2 60
wait_ring "${Q[0]}" 2 30
grep -q "rejoined the ring through tcp://127.0.0.1:${Q[0]}" "$T/C3.log" ||
    fail "C did not rejoin through its seed: $(grep -i rejoin "$T/C3.log" || true)"
kill -0 "$PS" || fail "the seed exited"
log "C, alone with only its seed alive, rejoined through the seed"
finish
