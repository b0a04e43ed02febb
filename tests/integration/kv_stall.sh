#!/usr/bin/env bash
# A coordinator frozen (SIGSTOP) with a client's write already in its
# socket buffer must not apply that write when it resumes: the client gave
# up on it, retried through another node, and wrote a newer value since.
# The long-lived client here is node B's memcached front end (its kvclient
# keeps a connection to the coordinator A open across the freeze).
#
# Second case: a conditional write whose quorum read was answered while its
# coordinator was frozen must not be decided on those answers when it
# resumes: meanwhile another coordinator wrote a newer value, and the old
# condition still held against the stale answers (lost updates under
# kv_cas_history's freeze).
#
# Third case: the freeze lands inside the loop's callback that read a
# conditional write (the test hook DHT_TEST_FREEZE_SERVING stops the process
# there), not in poll(2): after the thaw the loop's cached clock still reads
# the time before the freeze, and a stall check made with it sees none.
#
# Fourth case: the freeze lands right after a conditional write's version is
# stamped (DHT_TEST_FREEZE_STAMPED); meanwhile another coordinator applies a
# second write under the same condition. The first, sent after the thaw,
# finds newer versions at the replicas: it must not be acknowledged too.
#
# Fifth case: the same freeze with nobody writing meanwhile: a quorum takes
# the write, but after a stall that long its node cannot tell whether it was
# taken over, so the answer is "outcome unknown", not success.
source "$(dirname "$0")/lib.sh"

# wait_stopped PID: until the process is stopped (state T), 10 s at most.
wait_stopped() {
    local i
    for ((i = 0; i < 100; i++)); do
        is_stopped "$1" && return 0
        sleep 0.1
    done
    return 1
}

# authority KEY: sets a to the index in PORTS of KEY's coordinator.
authority() {
    local owner i
    owner=$(ctl --peer "127.0.0.1:${PORTS[0]}" lookup "$1" --json | jq -r .owner_addr)
    a=-1
    for i in 0 1 2; do
        [[ $owner == *":${PORTS[$i]}" ]] && a=$i
    done
    [ "$a" -ge 0 ] || fail "owner $owner of $1 is none of the nodes"
}

# all_read KEY WANT WHY: once the ring is whole again, every node reads WANT.
all_read() {
    local p i got
    for p in "${PORTS[@]}"; do
        wait_ring "$p" 3 30
    done
    sleep 1
    for i in 0 1 2; do
        got=$(ctl --peer "127.0.0.1:${PORTS[$i]}" get "$1")
        [ "$got" = "$2" ] || fail "$1 reads '$got' through n$i after the thaw, want $2$3"
    done
}

# cas_bg OUT KEY VALUE VERSION: a conditional write through A in the
# background (cas: its pid), with a long budget: the client never gives up
# and retries elsewhere (which would stop that node too, or time out).
cas_bg() {
    "$DHTCTL" --peer "127.0.0.1:${PORTS[$a]}" --timeout-ms 120000 put "$2" "$3" --if-version "$4" \
        >"$1" 2>&1 &
    cas=$!
    PIDS+=("$cas") # stopped with the nodes if a check fails first
}

# cas_wait OUT VALUE: until cas_bg's client ends; st: its exit status.
cas_wait() {
    st=0
    wait "$cas" || st=$?
    log "the conditional write of $2 ended with status $st: $(head -c 300 "$1")"
}

alloc_ports MC 3
alloc_ports MPORTS 3
# (Values, not keys: the writes that take the key over must not stop too.)
export DHT_TEST_FREEZE_SERVING=d2 DHT_TEST_FREEZE_STAMPED=e2,f2
start_mc_ring

# mc PORT CMD...: one memcached exchange; prints the reply's first line.
mc() {
    local port=$1 line
    shift
    exec 7<>"/dev/tcp/127.0.0.1/$port"
    printf '%b' "$*" >&7
    IFS= read -r -t 15 line <&7 || line="(no reply)"
    exec 7>&-
    printf '%s\n' "${line%$'\r'}"
}
mc_get() {
    local port=$1 line val
    exec 7<>"/dev/tcp/127.0.0.1/$port"
    printf 'get %s\r\n' "$2" >&7
    IFS= read -r -t 15 line <&7 || line=
    val=
    if [[ $line == VALUE* ]]; then
        IFS= read -r -t 15 val <&7
        val=${val%$'\r'}
    fi
    exec 7>&-
    printf '%s\n' "$val"
}

# A: the coordinator of the item; B: a node whose front end we use.
authority mc/item
b=$(((a + 1) % 3))
log "coordinator of mc/item: n$a; writing through n$b's front end"

[ "$(mc "${MC[$b]}" 'set item 0 0 2\r\nv1\r\n')" = STORED ] || fail "first set not stored"
kill -STOP "${NODE_PIDS[$a]}"
log "froze n$a"
# B's front end sends this to A over the connection it opened before the
# freeze: the request sits in A's socket buffer; B gives up on it (and
# stores it elsewhere, or answers an error) and goes on.
r2=$(mc "${MC[$b]}" 'set item 0 0 2\r\nv2\r\n')
log "set v2 while n$a is frozen: $r2"
for p in "${PORTS[@]}"; do
    [ "$p" = "${PORTS[$a]}" ] && continue
    wait_ring "$p" 2 30
done
[ "$(mc "${MC[$b]}" 'set item 0 0 2\r\nv3\r\n')" = STORED ] || fail "set v3 not stored"
[ "$(mc_get "${MC[$b]}" item)" = v3 ] || fail "v3 not read back before the thaw"
kill -CONT "${NODE_PIDS[$a]}"
log "thawed n$a"
for p in "${PORTS[@]}"; do
    wait_ring "$p" 3 30
done
sleep 2
for i in 0 1 2; do
    got=$(mc_get "${MC[$i]}" item)
    [ "$got" = v3 ] || fail "item reads '$got' through n$i after the thaw, want v3 (a write abandoned during the freeze was applied late)"
done
grep -q "resumed after a [0-9]* ms stall" "$T/n$a.log" || fail "n$a did not notice its stall"
log "every node reads v3: the abandoned write was not applied"

# --- the second case: a condition read before the freeze, decided after it
key=stall-cas
authority "$key"
b=$(((a + 1) % 3))
c=$(((a + 2) % 3))
# c1 reaches A and B only (C frozen): A does not know it as every
# replica's newest, so the conditional write below reads a quorum first
# (kv_known's shortcut would check A's own copy and skip the read).
kill -STOP "${NODE_PIDS[$c]}"
v1=$(ctl --peer "127.0.0.1:${PORTS[$a]}" put "$key" c1 --json | jq -r .version)
sleep 1
# B stops answering too: A's read of the condition waits for it.
kill -STOP "${NODE_PIDS[$b]}"
cas_bg "$T/cas.out" "$key" c2 "$v1"
sleep 0.5
# A freezes with the read under way; B and C answer it into A's buffers.
kill -STOP "${NODE_PIDS[$a]}"
kill -CONT "${NODE_PIDS[$b]}" "${NODE_PIDS[$c]}"
log "n$a froze while reading the condition of a write (if-version $v1)"
wait_ring "${PORTS[$b]}" 2 30
ctl --peer "127.0.0.1:${PORTS[$b]}" put "$key" c3 >/dev/null || fail "put c3 through n$b failed"
kill -CONT "${NODE_PIDS[$a]}"
log "wrote c3 through n$b, thawed n$a"
cas_wait "$T/cas.out" c2
all_read "$key" c3 " (a condition read before the freeze was applied after it)"
log "every node reads c3: the stale condition was not applied"

# --- the third case: frozen inside a callback, with the write's condition known
key=stall-hook
authority "$key"
b=$(((a + 1) % 3))
# Every replica takes d1: A knows it as the key's newest version, so the
# conditional write below checks A's own copy instead of reading a quorum.
v1=$(ctl --peer "127.0.0.1:${PORTS[$a]}" put "$key" d1 --json | jq -r .version)
sleep 0.5 # the third replica's answer too: only then is d1 known as every copy's
cas_bg "$T/hook.out" "$key" d2 "$v1"
wait_stopped "${NODE_PIDS[$a]}" || fail "n$a did not stop itself serving the write of d2 (test hook)"
log "n$a stopped itself serving a write of $key if-version $v1"
wait_ring "${PORTS[$b]}" 2 30
ctl --peer "127.0.0.1:${PORTS[$b]}" put "$key" d3 >/dev/null || fail "put d3 through n$b failed"
kill -CONT "${NODE_PIDS[$a]}"
log "wrote d3 through n$b, thawed n$a"
cas_wait "$T/hook.out" d2
[ "$st" = 1 ] && grep -q "version mismatch" "$T/hook.out" ||
    fail "the write of d2 if-version $v1 ended with status $st, want 1 (version mismatch: d3 replaced $v1)"
all_read "$key" d3 " (a condition checked against knowledge from before the freeze was applied after it)"
log "every node reads d3: the freeze inside a callback was noticed"

# --- the fourth case: frozen right after the stamp; the key written meanwhile
key=stall-stamp
authority "$key"
b=$(((a + 1) % 3))
v1=$(ctl --peer "127.0.0.1:${PORTS[$a]}" put "$key" e1 --json | jq -r .version)
sleep 0.5
cas_bg "$T/stamp.out" "$key" e2 "$v1"
wait_stopped "${NODE_PIDS[$a]}" || fail "n$a did not stop itself after stamping the write of e2 (test hook)"
log "n$a stopped itself right after stamping a write of $key if-version $v1"
wait_ring "${PORTS[$b]}" 2 30
ctl --peer "127.0.0.1:${PORTS[$b]}" put "$key" e3 --if-version "$v1" >/dev/null ||
    fail "put e3 if-version $v1 through n$b failed"
kill -CONT "${NODE_PIDS[$a]}"
log "wrote e3 if-version $v1 through n$b, thawed n$a"
cas_wait "$T/stamp.out" e2
[ "$st" != 0 ] ||
    fail "both e2 and e3 were acknowledged as written if-version $v1: one of them is lost"
[ "$st" = 3 ] && grep -q "outcome unknown" "$T/stamp.out" ||
    fail "the write of e2 ended with status $st, want 3 (outcome unknown)"
all_read "$key" e3
log "every node reads e3, and e2 was not acknowledged"

# --- the fifth case: frozen right after the stamp, past the stall threshold;
# nobody writes meanwhile, but the node cannot tell (in a larger ring its
# own copy and one replica the other write had not reached yet would make a
# quorum): the outcome is unknown, and the write is there.
key=stall-ack
authority "$key"
v1=$(ctl --peer "127.0.0.1:${PORTS[$a]}" put "$key" f1 --json | jq -r .version)
sleep 0.5
cas_bg "$T/ack.out" "$key" f2 "$v1"
wait_stopped "${NODE_PIDS[$a]}" || fail "n$a did not stop itself after stamping the write of f2 (test hook)"
# Past the stall threshold (stabilize + timeout/2), twice over.
frozen_s=$(((2 * (STABILIZE_MS + TIMEOUT_MS / 2) + 999) / 1000))
sleep "$frozen_s"
kill -CONT "${NODE_PIDS[$a]}"
log "n$a stopped itself for $frozen_s s right after stamping a write of $key if-version $v1"
cas_wait "$T/ack.out" f2
[ "$st" = 3 ] && grep -q "outcome unknown" "$T/ack.out" ||
    fail "the write of f2 ended with status $st, want 3 (outcome unknown: its node stalled after the stamp)"
all_read "$key" f2
log "f2 was written and answered as an unknown outcome"
overtaken=$(metric_sum kvnode_writes_overtaken_total)
((overtaken >= 2)) ||
    fail "kvnode_writes_overtaken_total sums to $overtaken over the nodes, want at least 2 (e2, f2)"
log "the nodes counted both overtaken writes"
