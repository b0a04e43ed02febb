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
source "$(dirname "$0")/lib.sh"

alloc_ports MC 3
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
owner=$(ctl --peer "127.0.0.1:${PORTS[0]}" lookup mc/item --json | jq -r .owner_addr)
a=-1
for i in 0 1 2; do
    [[ $owner == *":${PORTS[$i]}" ]] && a=$i
done
[ "$a" -ge 0 ] || fail "owner $owner of mc/item is none of the nodes"
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
owner=$(ctl --peer "127.0.0.1:${PORTS[0]}" lookup "$key" --json | jq -r .owner_addr)
a=-1
for i in 0 1 2; do
    [[ $owner == *":${PORTS[$i]}" ]] && a=$i
done
[ "$a" -ge 0 ] || fail "owner $owner of $key is none of the nodes"
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
"$DHTCTL" --peer "127.0.0.1:${PORTS[$a]}" --timeout-ms 30000 put "$key" c2 --if-version "$v1" \
    >"$T/cas.out" 2>&1 &
cas=$!
sleep 0.5
# A freezes with the read under way; B and C answer it into A's buffers.
kill -STOP "${NODE_PIDS[$a]}"
kill -CONT "${NODE_PIDS[$b]}" "${NODE_PIDS[$c]}"
log "n$a froze while reading the condition of a write (if-version $v1)"
wait_ring "${PORTS[$b]}" 2 30
ctl --peer "127.0.0.1:${PORTS[$b]}" put "$key" c3 >/dev/null || fail "put c3 through n$b failed"
kill -CONT "${NODE_PIDS[$a]}"
log "wrote c3 through n$b, thawed n$a"
st=0
wait "$cas" || st=$?
log "the conditional write of c2 ended with status $st: $(head -c 200 "$T/cas.out")"
for p in "${PORTS[@]}"; do
    wait_ring "$p" 3 30
done
sleep 1
for i in 0 1 2; do
    got=$(ctl --peer "127.0.0.1:${PORTS[$i]}" get "$key")
    [ "$got" = c3 ] ||
        fail "$key reads '$got' through n$i after the thaw, want c3 (a condition read before the freeze was applied after it)"
done
log "every node reads c3: the stale condition was not applied"
