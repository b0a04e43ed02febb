#!/usr/bin/env bash
# Churn: for 8 rounds, a node crashes (kill -9) or leaves (SIGTERM) while
# two others join at once through different live nodes, with never more
# than one failure per failure-detection period and never fewer than 4 alive
# (the conditions under which the successor lists and N = 3 replicas are
# meant to carry the ring and the data; the ring is not given time to
# settle otherwise). Afterwards every live node must agree on the sorted
# successor order, and every key written before the churn is readable.
source "$(dirname "$0")/lib.sh"

alloc_ports POOL 16
declare -A PID_OF=()
live=()
spawn() { # spawn INDEX JOIN_PORT
    start_node "c$1" "${POOL[$1]}" "$2"
    PID_OF[$1]=$NODE_PID
    live+=("$1")
}
remove_live() {
    local keep=() x
    for x in "${live[@]}"; do [ "$x" != "$1" ] && keep+=("$x"); done
    live=("${keep[@]}")
}

spawn 0 ""
sleep 0.3
for i in 1 2 3 4 5; do spawn "$i" "${POOL[0]}"; done
PORTS=("${POOL[0]}" "${POOL[1]}" "${POOL[2]}")
wait_ring "${POOL[0]}" 6 30
for ((k = 0; k < 40; k++)); do
    ctl --peer "127.0.0.1:${POOL[$((k % 6))]}" put "churn-$k" "v$k" || fail "initial put $k failed"
done
log "6 nodes, 40 keys; churning"

next=6
RANDOM=$$
for round in $(seq 1 8); do
    if ((${#live[@]} > 4)); then
        out=${live[$((RANDOM % ${#live[@]}))]}
        if ((round % 2)); then
            kill -KILL "${PID_OF[$out]}" 2>/dev/null || true
        else
            kill -TERM "${PID_OF[$out]}" 2>/dev/null || true
        fi
        remove_live "$out"
    fi
    for _ in 1 2; do
        if ((next < 16)); then
            via=${live[$((RANDOM % ${#live[@]}))]}
            spawn "$next" "${POOL[$via]}"
            next=$((next + 1))
        fi
    done
    sleep 2.$((RANDOM % 5))
done
# A joiner may still have failed (e.g. its bootstrap crashed under it): count
# only processes that run.
sleep 1
alive=()
for x in "${live[@]}"; do
    if kill -0 "${PID_OF[$x]}" 2>/dev/null; then alive+=("$x"); fi
done
live=("${alive[@]}")
log "churn over: ${#live[@]} nodes alive (${live[*]})"
for x in "${live[@]}"; do
    wait_ring "${POOL[$x]}" "${#live[@]}" 60
done
log "every live node agrees on the ring"
# holders KEY: the live nodes whose own store holds KEY (a raw REPL_GET to
# each), to tell a key misread (copies there) from one lost (none left).
holders() {
    local x key
    key=$(printf '%04x' "${#1}")$(printf '%s' "$1" | od -An -tx1 | tr -d ' \n')
    for x in "${live[@]}"; do
        if "$BUILD_DIR/tests/wirepoke" "tcp://127.0.0.1:${POOL[$x]}" \
            "444801120000000000000001${key}01" 2>/dev/null | grep -q "found 1"; then
            printf '%s ' "$x"
        fi
    done
}
for ((k = 0; k < 40; k++)); do
    x=${live[$((k % ${#live[@]}))]}
    v=$(ctl --peer "127.0.0.1:${POOL[$x]}" get "churn-$k" 2>"$T/err") ||
        fail "churn-$k unreadable after churn: $(cat "$T/err"); live nodes holding a copy: $(holders "churn-$k")"
    [ "$v" = "v$k" ] || fail "churn-$k = '$v'"
done
log "all 40 keys readable after churn"
