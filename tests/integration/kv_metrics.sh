#!/usr/bin/env bash
# kvnode --metrics: a 3-node ring, each node serving GET /metrics on its
# own free port. The text passes Prometheus's own `promtool check metrics`;
# request, latency and store counters move with the work dhtctl does;
# peers show up as healthy neighbours; an oversize write and a malformed
# message move the error counters; other paths get 404, other methods 405,
# a garbage request 400, an endless head 431, connections beyond the bound
# 503, and the node keeps serving scrapes and keys after all of it. A
# metrics address off loopback is refused on an unsecured node (served with
# --insecure or --key); SIGTERM
# with a scrape half sent still leaves gracefully (exit 0). n0 also runs
# the memcached front end, whose counters appear in its scrape.
source "$(dirname "$0")/lib.sh"
command -v promtool >/dev/null || fail "promtool missing (scripts/deps.sh test installs prometheus)"
command -v curl >/dev/null || fail "curl missing (scripts/deps.sh test installs it)"
WIREPOKE=$BUILD_DIR/tests/wirepoke

alloc_ports ALL 7
PORTS=("${ALL[@]:0:3}")
MPORTS=("${ALL[@]:3:3}")
MC=${ALL[6]}
start_node n0 "${PORTS[0]}" "" --metrics "127.0.0.1:${MPORTS[0]}" --memcached "127.0.0.1:$MC"
for i in 1 2; do
    sleep 0.2
    start_node "n$i" "${PORTS[$i]}" "${PORTS[0]}" --metrics "127.0.0.1:${MPORTS[$i]}"
done
for p in "${PORTS[@]}"; do
    wait_ring "$p" 3 20
done

# scrape I OUT: GET /metrics of node I into OUT; fail unless 200 and the
# Prometheus 0.0.4 content type.
scrape() {
    local code
    code=$(curl -s --max-time 5 -D "$2.head" -o "$2" -w '%{http_code}' \
        "http://127.0.0.1:${MPORTS[$1]}/metrics") || fail "scrape of n$1 failed (curl $?)"
    [ "$code" = 200 ] || fail "scrape of n$1: HTTP $code"
    grep -qi '^content-type: text/plain; version=0.0.4' "$2.head" ||
        fail "scrape of n$1: content type $(grep -i content-type "$2.head")"
}

# check_format FILE: promtool accepts it (lint included).
check_format() {
    promtool check metrics <"$1" >"$1.promtool" 2>&1 ||
        fail "promtool check metrics refused $1: $(cat "$1.promtool")"
}

# value FILE SERIES: the sample of exactly that series (name{labels}), 0 if absent.
value() {
    awk -v s="$2" '$1 == s { v = $2 } END { print (v == "" ? 0 : v) }' "$1"
}

# total SERIES PREFIX: the series summed over the three nodes' scrapes PREFIX.I.
total() {
    local i sum=0 v
    for i in 0 1 2; do
        v=$(value "$T/$2.$i" "$1")
        sum=$(awk -v a="$sum" -v b="$v" 'BEGIN { printf "%.0f", a + b }')
    done
    echo "$sum"
}

scrape_all() {
    local i
    for i in 0 1 2; do
        scrape "$i" "$T/$1.$i"
        check_format "$T/$1.$i"
    done
}

scrape_all before
log "three endpoints answer; promtool accepts the text"
[ "$(total 'kvnode_requests_total{type="KV_PUT"}' before)" = 0 ] || fail "puts counted before any"

KEYS=20
put_keys m "$KEYS"
check_keys m "$KEYS" "${PORTS[@]}"
wait_copies "${PORTS[0]}" "$KEYS" 30
scrape_all after

puts=$(total 'kvnode_requests_total{type="KV_PUT"}' after)
reads=$(total 'kvnode_requests_total{type="KV_READ"}' after)
ok_puts=$(total 'kvnode_coordinated_request_duration_seconds_count{op="put",result="ok"}' after)
inf_puts=$(total 'kvnode_coordinated_request_duration_seconds_bucket{op="put",result="ok",le="+Inf"}' after)
repl=$(total 'kvnode_requests_total{type="REPL_PUT"}' after)
primary=$(total kvnode_primary_keys after)
stored=$(total kvnode_stored_keys after)
[ "$puts" -ge "$KEYS" ] || fail "KV_PUT requests $puts after $KEYS puts"
[ "$ok_puts" -ge "$KEYS" ] || fail "coordinated puts answered ok: $ok_puts after $KEYS puts"
[ "$inf_puts" = "$ok_puts" ] || fail "histogram +Inf bucket $inf_puts != _count $ok_puts"
[ "$reads" -ge "$KEYS" ] || fail "KV_READ (direct reads) $reads after $KEYS gets"
[ "$repl" -ge "$KEYS" ] || fail "REPL_PUT $repl after $KEYS puts (N=3, W=2)"
[ "$primary" = "$KEYS" ] || fail "primary keys summed over the ring: $primary, wanted $KEYS"
[ "$stored" = $((3 * KEYS)) ] || fail "stored keys summed over the ring: $stored, wanted $((3 * KEYS))"
[ "$(total kvnode_under_replicated_keys after)" = 0 ] || fail "under-replicated keys after settling"
bytes=$(total kvnode_stored_bytes after)
[ "$bytes" -gt 0 ] || fail "stored bytes $bytes"
log "after $KEYS puts and gets: KV_PUT $puts, REPL_PUT $repl, KV_READ $reads, ok puts $ok_puts, primary $primary, stored $stored, $bytes bytes"

for i in 0 1 2; do
    f=$T/after.$i
    [ "$(value "$f" kvnode_ring_successors)" = 2 ] || fail "n$i: successors $(value "$f" kvnode_ring_successors)"
    [ "$(value "$f" kvnode_ring_has_predecessor)" = 1 ] || fail "n$i: no predecessor"
    grep -q '^kvnode_members{state="up"} 3$' "$f" || fail "n$i: members: $(grep '^kvnode_members' "$f")"
    [ "$(grep -c '^kvnode_peer_suspect{' "$f")" = 3 ] || fail "n$i: not 3 neighbour lines: $(grep '^kvnode_peer_suspect' "$f")"
    ! grep -q '^kvnode_peer_suspect{.*} 1$' "$f" || fail "n$i: a neighbour is suspect: $(grep '^kvnode_peer_suspect' "$f")"
    grep -q "^kvnode_info{id=\"[0-9a-f]*\",listen=\"tcp://127.0.0.1:${PORTS[$i]}\"" "$f" || fail "n$i: kvnode_info: $(grep '^kvnode_info' "$f")"
    # Cumulative buckets never decrease.
    awk '/^kvnode_coordinated_request_duration_seconds_bucket/ {
            split($1, a, ",le="); if (a[1] == prev && $2 + 0 < last) bad = 1; prev = a[1]; last = $2 + 0 }
         END { exit bad }' "$f" || fail "n$i: histogram buckets not cumulative"
done
log "neighbours: 2 successors and a predecessor each, none suspect; buckets cumulative"

# n0's memcached front end: its counters join the node's.
exec {mfd}<>"/dev/tcp/127.0.0.1/$MC"
printf 'set mk 0 0 2\r\nhi\r\nget mk\r\nget absent\r\nquit\r\n' >&"$mfd"
mcout=$(timeout 10 cat <&"$mfd") || true
exec {mfd}<&-
grep -q "^STORED" <<<"$mcout" && grep -q "^VALUE mk 0 2" <<<"$mcout" ||
    fail "memcached set/get through n0: $mcout"
scrape 0 "$T/mc.0"
check_format "$T/mc.0"
[ "$(value "$T/mc.0" 'kvnode_memcached_commands_total{command="set"}')" = 1 ] ||
    fail "memcached sets: $(grep '^kvnode_memcached_commands' "$T/mc.0")"
[ "$(value "$T/mc.0" 'kvnode_memcached_results_total{command="get",result="hit"}')" = 1 ] ||
    fail "memcached get hits: $(grep '^kvnode_memcached_results' "$T/mc.0")"
[ "$(value "$T/mc.0" 'kvnode_memcached_results_total{command="get",result="miss"}')" = 1 ] ||
    fail "memcached get misses: $(grep '^kvnode_memcached_results' "$T/mc.0")"
! grep -q '^kvnode_memcached' "$T/after.1" || fail "n1 (no --memcached) exports memcached metrics"
log "memcached front end: set 1, get hit 1, miss 1"

# Errors: an oversize KV_PUT (EFBIG) and a malformed REPL_GET (dropped).
"$WIREPOKE" "tcp://127.0.0.1:${PORTS[0]}" 4448011100000000000000010003616263000000000000000000000000000000000000 \
    "zeros:$((4 * 1024 * 1024 + 1))" >/dev/null || fail "no answer to an oversize KV_PUT"
"$WIREPOKE" "tcp://127.0.0.1:${PORTS[0]}" 4448011200000000000000010000 >/dev/null &&
    fail "REPL_GET with an empty key got a reply"
scrape 0 "$T/err.0"
check_format "$T/err.0"
e1=$(value "$T/after.0" 'kvnode_error_replies_total{code="EFBIG"}')
e2=$(value "$T/err.0" 'kvnode_error_replies_total{code="EFBIG"}')
[ "$e2" = $((e1 + 1)) ] || fail "EFBIG replies $e1 -> $e2 after one oversize put"
p1=$(value "$T/after.0" 'kvnode_request_errors_total{type="KV_PUT"}')
p2=$(value "$T/err.0" 'kvnode_request_errors_total{type="KV_PUT"}')
[ "$p2" -gt "$p1" ] || fail "KV_PUT errors $p1 -> $p2 after an oversize put"
m1=$(value "$T/after.0" kvnode_malformed_messages_total)
m2=$(value "$T/err.0" kvnode_malformed_messages_total)
[ "$m2" = $((m1 + 1)) ] || fail "malformed messages $m1 -> $m2 after one"
log "error counters: EFBIG $e1 -> $e2, KV_PUT errors $p1 -> $p2, malformed $m1 -> $m2"

M=${MPORTS[0]}
code() {
    curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$@" || echo "curl-$?"
}
[ "$(code "http://127.0.0.1:$M/")" = 404 ] || fail "/ was not 404"
[ "$(code "http://127.0.0.1:$M/metricsx")" = 404 ] || fail "/metricsx was not 404"
[ "$(code -X POST -d x "http://127.0.0.1:$M/metrics")" = 405 ] || fail "POST was not 405"
[ "$(code -I "http://127.0.0.1:$M/metrics")" = 200 ] || fail "HEAD was not 200"
[ "$(code "http://127.0.0.1:$M/metrics?x=1")" = 200 ] || fail "a query string was not ignored"

# raw BYTES-COMMAND: send what the command prints on a raw connection, print the status line.
raw() {
    local fd line
    exec {fd}<>"/dev/tcp/127.0.0.1/$M"
    eval "$1" >&"$fd" 2>/dev/null || true
    IFS= read -r -t 5 line <&"$fd" || line="no answer"
    exec {fd}<&-
    echo "${line%$'\r'}"
}
[ "$(raw "printf 'GARBAGE\r\n\r\n'")" = "HTTP/1.1 400 Bad Request" ] || fail "garbage request: $(raw "printf 'GARBAGE\r\n\r\n'")"
[ "$(raw "printf 'GET /metrics HTTP/9.9\r\n\r\n'")" = "HTTP/1.1 400 Bad Request" ] || fail "HTTP/9.9 accepted"
[ "$(raw "printf '\x00\x01\x02\xff\n\n'")" = "HTTP/1.1 400 Bad Request" ] || fail "binary request not 400"
[ "$(raw "head -c 20000 /dev/zero | tr '\0' x")" = "HTTP/1.1 431 Request Header Fields Too Large" ] ||
    fail "endless request head not 431"
log "404 for other paths, 405 for POST, 400 for garbage, 431 for an endless head"

# Connections beyond the bound (64) get 503; closing them frees the endpoint.
held=()
for ((i = 0; i < 64; i++)); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$M"
    held+=("$fd")
done
sleep 0.3
c=$(code "http://127.0.0.1:$M/metrics")
for fd in "${held[@]}"; do
    exec {fd}<&-
done
[ "$c" = 503 ] || fail "a connection beyond 64 open ones got $c, wanted 503"
ok=0
for ((i = 0; i < 50; i++)); do
    c=$(code "http://127.0.0.1:$M/metrics")
    [ "$c" = 200 ] && { ok=1; break; }
    sleep 0.1
done
[ "$ok" = 1 ] || fail "endpoint did not recover after the held connections closed: $c"
scrape 0 "$T/busy.0"
[ "$(value "$T/busy.0" http_metrics_refused_connections_total)" -ge 1 ] ||
    fail "refused connections not counted: $(grep '^http_metrics_refused' "$T/busy.0")"
log "65th connection refused with 503; served again once they closed"

# Many scrapes at once.
jobs_=()
for ((i = 0; i < 20; i++)); do
    curl -s --max-time 10 -o "$T/par.$i" -w '%{http_code}' "http://127.0.0.1:$M/metrics" >"$T/par.$i.code" &
    jobs_+=($!)
done
for j in "${jobs_[@]}"; do
    wait_job "$j" "a parallel scrape"
done
for ((i = 0; i < 20; i++)); do
    [ "$(cat "$T/par.$i.code")" = 200 ] || fail "parallel scrape $i: $(cat "$T/par.$i.code")"
done
check_format "$T/par.0"
check_keys m "$KEYS" "${PORTS[0]}"
kill -0 "${PIDS[0]}" || fail "n0 died"
log "20 parallel scrapes answered; n0 still serves keys"

# Off loopback on an unsecured node: refused at start-up, like --listen.
alloc_ports X 2
st=0
"$KVNODE" --listen "127.0.0.1:${X[0]}" --data "$T/x.data" --metrics "0.0.0.0:${X[1]}" 2>"$T/x.err" || st=$?
[ "$st" = 2 ] || fail "--metrics 0.0.0.0 on an unsecured node: exit $st"
grep -q "not a loopback address" "$T/x.err" || fail "refusal message: $(cat "$T/x.err")"
st=0
"$KVNODE" --listen "127.0.0.1:${X[0]}" --data "$T/x.data" --metrics "nonsense" 2>"$T/x.err" || st=$?
[ "$st" = 2 ] || fail "--metrics nonsense: exit $st"
log "off-loopback and malformed --metrics refused with exit 2"
# With --insecure (as with --key) the operator chose: any address is served.
"$KVNODE" --listen "127.0.0.1:${X[0]}" --data "$T/x.data" --insecure \
    --metrics "0.0.0.0:${X[1]}" 2>>"$T/x.log" &
PIDS+=($!)
c=000
for ((i = 0; i < 50; i++)); do
    c=$(code "http://127.0.0.1:${X[1]}/metrics")
    [ "$c" = 200 ] && break
    sleep 0.1
done
[ "$c" = 200 ] || fail "--insecure --metrics 0.0.0.0: scrape answered $c"
kill -TERM "${PIDS[-1]}"
wait_exit "${PIDS[-1]}" 20
log "--insecure: metrics on 0.0.0.0 served"
# A secured node (--key) may serve them off loopback too.
"$DHTCTL" keygen "$T/s.key" >/dev/null 2>&1 || fail "dhtctl keygen failed"
"$KVNODE" --listen "127.0.0.1:${X[0]}" --data "$T/s.data" --key "$T/s.key" \
    --metrics "0.0.0.0:${X[1]}" 2>>"$T/s.log" &
PIDS+=($!)
c=000
for ((i = 0; i < 50; i++)); do
    c=$(code "http://127.0.0.1:${X[1]}/metrics")
    [ "$c" = 200 ] && break
    sleep 0.1
done
[ "$c" = 200 ] || fail "--key --metrics 0.0.0.0: scrape answered $c"
kill -TERM "${PIDS[-1]}"
wait_exit "${PIDS[-1]}" 20
log "--key: metrics on 0.0.0.0 served"

# SIGTERM with a scrape connection still open: the graceful leave closes
# the endpoint with the rest and exits 0 (under ASan: no leak, no error).
exec {fd}<>"/dev/tcp/127.0.0.1/$M"
printf 'GET /metr' >&"$fd"
kill -TERM "${PIDS[0]}"
wait_exit "${PIDS[0]}" 40
exec {fd}<&-
[ "$EXIT_STATUS" = 0 ] || fail "n0 exited $EXIT_STATUS after SIGTERM with a connection open"
! grep -E "AddressSanitizer|LeakSanitizer|runtime error" "$T"/*.log "$T/x.err" >&2 ||
    fail "sanitizer reports in the logs"
log "SIGTERM with a connection open: exit 0"
finish
