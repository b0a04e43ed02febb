#!/usr/bin/env bash
# Exactly-once writes: several clients increment one counter with
# read-modify-write conditional puts while the first answer of half their
# writes is thrown away (kvclient's test hook DHT_TEST_LOSE_PUT_ANSWER_PCT)
# and the write retried with the same identity. Each retry must be
# recognised as the write it repeats: the counter ends at exactly the
# number of increments the clients saw applied (without deduplication the
# retry of an applied increment fails its condition, the client re-reads
# and increments again, and the counter overshoots).
source "$(dirname "$0")/lib.sh"
KVCOUNT=$BUILD_DIR/tests/kvcount

start_ring 3
for port in "${PORTS[@]}"; do
    wait_ring "$port" 3 20
done
peers=$(printf 'tcp://127.0.0.1:%s,' "${PORTS[@]}")
peers=${peers%,}

procs=3 clients=2 incs=25
cpids=()
for p in $(seq 1 "$procs"); do
    DHT_TEST_LOSE_PUT_ANSWER_PCT=50 "$KVCOUNT" --peer "$peers" --counter counter \
        --clients "$clients" --increments "$incs" >"$T/count$p.out" 2>"$T/count$p.log" &
    cpids+=($!)
    PIDS+=($!)
done
total=0
for p in $(seq 1 "$procs"); do
    st=0
    wait "${cpids[$((p - 1))]}" || st=$?
    out=$(cat "$T/count$p.out")
    log "client process $p: $out"
    [ "$st" = 0 ] || { cat "$T/count$p.log" >&2; fail "client process $p exited $st"; }
    grep -q "test hook" "$T/count$p.log" || fail "the lost-answer hook was not active"
    n=$(awk '{print $2}' <<<"$out")
    total=$((total + n))
done
[ "$total" = $((procs * clients * incs)) ] || fail "clients report $total increments applied"
final=$("$KVCOUNT" --peer "$peers" --counter counter --read)
log "counter is $final after $total increments"
[ "$final" = "$total" ] || fail "counter $final != $total increments: a retried write applied twice"

# put-if-absent whose answer is lost: the retry reports success, not EEXIST.
for k in $(seq 1 10); do
    DHT_TEST_LOSE_PUT_ANSWER_PCT=100 "$KVCOUNT" --peer "$peers" --counter "fresh$k" \
        --clients 1 --increments 1 >"$T/fresh.out" 2>"$T/fresh.log" ||
        { cat "$T/fresh.log" >&2; fail "put-if-absent with a lost answer failed"; }
    v=$("$KVCOUNT" --peer "$peers" --counter "fresh$k" --read)
    [ "$v" = 1 ] || fail "fresh$k is $v after one put-if-absent with a lost answer"
done
log "put-if-absent with a lost answer: applied once, reported as success"

# A coordinator that never saw the first attempt (as after an authority
# change) — test hook DHT_TEST_COORD_FORGETS keeps no table — must still
# not apply a retried write twice: the retry finds its own identity on the
# stored version. One client, so no other writer comes in between.
for i in "${!NODE_PIDS[@]}"; do
    kill -KILL "${NODE_PIDS[$i]}"
done
for i in "${!NODE_PIDS[@]}"; do
    wait "${NODE_PIDS[$i]}" 2>/dev/null || true
done
rm -rf "$T"/n*.data
export DHT_TEST_COORD_FORGETS=1
start_ring 3
for port in "${PORTS[@]}"; do
    wait_ring "$port" 3 20
done
peers=$(printf 'tcp://127.0.0.1:%s,' "${PORTS[@]}")
peers=${peers%,}
out=$(DHT_TEST_LOSE_PUT_ANSWER_PCT=100 "$KVCOUNT" --peer "$peers" --counter solo --clients 1 \
    --increments 30 2>"$T/solo.log") || { cat "$T/solo.log" >&2; fail "solo counter: $out"; }
final=$("$KVCOUNT" --peer "$peers" --counter solo --read)
log "without the coordinator's table: $out, counter $final"
[ "$final" = 30 ] || fail "counter $final after 30 increments with a forgetful coordinator"
