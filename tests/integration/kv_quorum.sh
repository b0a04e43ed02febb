#!/usr/bin/env bash
# With 2 of a key's 3 replicas stopped (SIGSTOP), get and put fail with exit
# 3 within a bounded time; after SIGCONT they succeed again.
source "$(dirname "$0")/lib.sh"
# A replica request times out after 0.5 s, but a silent peer is only taken
# as failed (and routed around) after 20 s: the checks below see the
# quorum lost, not a ring that already moved on.
TIMEOUT_MS=500
KVNODE_EXTRA="--fail-after-ms 20000"

start_ring 5
for port in "${PORTS[@]}"; do
    wait_ring "$port" 5 20
done
ctl --peer "127.0.0.1:${PORTS[0]}" put q before || fail "initial put failed"
reps=$(ctl --peer "127.0.0.1:${PORTS[0]}" replicas q --json | jq -r '.replicas[].addr')
mapfile -t rep_addrs <<<"$reps"
[ "${#rep_addrs[@]}" = 3 ] || fail "expected 3 replicas, got: $reps"
# Stop the two replicas after the owner; ask through a node that is not stopped.
stopped=()
for a in "${rep_addrs[1]}" "${rep_addrs[2]}"; do
    port=${a##*:}
    for i in "${!PORTS[@]}"; do
        if [ "${PORTS[$i]}" = "$port" ]; then
            kill -STOP "${NODE_PIDS[$i]}"
            stopped+=("${NODE_PIDS[$i]}")
        fi
    done
done
ask=${rep_addrs[0]##*:}
start=$(date +%s)
st=0
# A client retries "no quorum" until its budget (4 x its timeout, at least
# 5 s) is spent: slow replicas look like absent ones.
"$DHTCTL" --timeout-ms 1000 --peer "127.0.0.1:$ask" get q >/dev/null 2>"$T/err" || st=$?
[ "$st" = 3 ] || fail "get without a read quorum exited $st: $(cat "$T/err")"
st=0
"$DHTCTL" --timeout-ms 1000 --peer "127.0.0.1:$ask" put q during 2>"$T/err" || st=$?
[ "$st" = 3 ] || fail "put without a write quorum exited $st: $(cat "$T/err")"
elapsed=$(($(date +%s) - start))
((elapsed < 20)) || fail "failing without a quorum took ${elapsed}s"
log "no quorum: get and put exit 3 in ${elapsed}s ($(head -c 120 "$T/err"))"
for pid in "${stopped[@]}"; do
    kill -CONT "$pid"
done
for ((i = 0; i < 100; i++)); do
    if ctl --peer "127.0.0.1:$ask" put q after 2>/dev/null; then
        break
    fi
    sleep 0.2
done
[ "$(ctl --peer "127.0.0.1:$ask" get q)" = after ] || fail "store did not recover after SIGCONT"
log "after SIGCONT: put and get succeed again"
