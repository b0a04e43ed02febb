#!/usr/bin/env bash
# The memcached front end: a 3-node ring (N=3, W=2, R=2), each node with
# --memcached on its own loopback port. libmemcached's tools (memaslap with
# its data verification among them) and a
# pymemcache script (kv_memcached.py) check every command, errors that
# leave the connection usable, any node answering for any key, reads with
# one node killed (-9), and items surviving a restart of the whole ring.
source "$(dirname "$0")/lib.sh"
PY=$(dirname "$0")/kv_memcached.py
# Debian's python3 (python3-pymemcache installs there), not one found first on PATH.
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3
"$PYTHON" -c 'import pymemcache' 2>/dev/null || fail "python3-pymemcache missing (scripts/deps.sh test)"
command -v memccp >/dev/null && command -v memcaslap >/dev/null ||
    fail "libmemcached-tools missing (scripts/deps.sh test)"

alloc_ports MC 3

# mc_up PORT: the memcached port answers "version" within 10 s.
mc_up() {
    local i
    for ((i = 0; i < 100; i++)); do
        if "$PYTHON" - "$1" <<'PYEOF' 2>/dev/null; then return 0; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"version\r\n")
assert s.recv(100).startswith(b"VERSION ")
PYEOF
        sleep 0.1
    done
    fail "memcached port $1 never answered"
}

start_mc_ring
for p in "${MC[@]}"; do
    mc_up "$p"
done
log "3-node ring up, memcached on ${MC[*]}"

# Refused: a memcached port that is not loopback without --insecure.
alloc_ports XP 1
st=0
"$KVNODE" --listen "tcp://127.0.0.1:${XP[0]}" --data "$T/refused.data" \
    --memcached "0.0.0.0:${XP[0]}" 2>"$T/refused.err" || st=$?
[ "$st" = 2 ] || fail "--memcached 0.0.0.0 without --insecure: status $st, want 2"
grep -q "no authentication" "$T/refused.err" || fail "refusal does not say why: $(cat "$T/refused.err")"

# libmemcached's command-line tools.
printf 'file body\n' >"$T/memfile"
(cd "$T" && timeout 20 memccp --servers="127.0.0.1:${MC[0]}" memfile) ||
    fail "memccp failed"
v=$(timeout 20 memccat --servers="127.0.0.1:${MC[2]}" memfile) || fail "memccat failed"
[ "$v" = "file body" ] || fail "memccat read '$v'"
timeout 20 memcrm --servers="127.0.0.1:${MC[1]}" memfile || fail "memcrm failed"
if timeout 20 memccat --servers="127.0.0.1:${MC[0]}" memfile >/dev/null 2>&1; then
    fail "memccat found a removed key"
fi
timeout 20 memcstat --servers="127.0.0.1:${MC[1]}" >"$T/memcstat.out" || fail "memcstat failed"
grep -q "curr_connections" "$T/memcstat.out" || fail "memcstat: $(head -c 300 "$T/memcstat.out")"
log "memccp/memccat/memcrm/memcstat work"

timeout 120 "$PYTHON" "$PY" basic "${MC[@]}" || fail "protocol checks failed"
timeout 180 "$PYTHON" "$PY" race "${MC[@]}" || fail "concurrent updates lost"
timeout 60 "$PYTHON" "$PY" flood "${MC[2]}" "${NODE_PIDS[2]}" || fail "flood checks failed"

# The store's namespace: the items are keys under mc/ (dhtctl sees them).
v=$(ctl --peer "127.0.0.1:${PORTS[1]}" get "mc/greeting" | head -c 100 | tr -d '\0' | tail -c 2)
[ "$v" = "v2" ] || fail "mc/greeting in the store ends in '$v'"

# Kill one node with SIGKILL: W=2/R=2 of 3 still answer through the others.
timeout 60 "$PYTHON" "$PY" seed "${MC[0]}" || fail "seeding failed"
kill -KILL "${NODE_PIDS[1]}"
wait "${NODE_PIDS[1]}" 2>/dev/null || true
log "killed n1 (-9)"
timeout 90 "$PYTHON" "$PY" check "${MC[0]}" "${MC[2]}" || fail "items lost with one node down"

# Restart the whole ring on the same addresses and data dirs: the items are
# still there. (New addresses would be three new nodes, the old three
# crashed members for ever: not a restart.)
kill -KILL "${NODE_PIDS[0]}" "${NODE_PIDS[2]}"
for p in "${NODE_PIDS[0]}" "${NODE_PIDS[2]}"; do
    wait "$p" 2>/dev/null || true
done
log "killed the ring; restarting it on the same addresses and data"
start_mc_ring restart
for p in "${MC[@]}"; do
    mc_up "$p"
done
timeout 90 "$PYTHON" "$PY" check "${MC[@]}" || fail "items lost across a restart of the ring"

# A short memcslap run (libmemcached's load tool) must end without errors.
if command -v memcslap >/dev/null; then
    timeout 60 memcslap --servers="127.0.0.1:${MC[0]}" --concurrency=4 --execute-number=200 \
        --test=set >"$T/slap.out" 2>&1 || fail "memcslap: $(tail -n 5 "$T/slap.out")"
    timeout 60 memcslap --servers="127.0.0.1:${MC[1]}" --concurrency=4 --execute-number=200 \
        --test=get >>"$T/slap.out" 2>&1 || fail "memcslap get: $(tail -n 5 "$T/slap.out")"
    log "memcslap: $(grep 'Time to' "$T/slap.out" | tr -s ' ' | tr '\n' ';' || true)"
fi

# Keys with control bytes, as memcached 1.6 takes them: written through one
# node, read through another, stored under mc/ with their bytes unchanged;
# a NUL in a key is refused and the connection goes on.
r=$("$PYTHON" - "${MC[0]}" "${MC[2]}" <<'PYEOF'
import socket, sys
def talk(port, req, end):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=15)
    s.sendall(req)
    out = b""
    while not out.endswith(end):
        d = s.recv(1000)
        if not d:
            break
        out += d
    return out
k = b"c\x01\x10\x7f\xff\tk\rz"
a = talk(sys.argv[1], b"set " + k + b" 5 0 2\r\nhi\r\nset x\0y 0 0 1\r\nZ\r\nversion\r\n", b"\r\nVERSION 1.6.0-dhtfs\r\n")
b = talk(sys.argv[2], b"get " + k + b"\r\n", b"END\r\n")
print(repr(a), repr(b))
PYEOF
)
[ "$r" = "b'STORED\\r\\nCLIENT_ERROR bad command line format\\r\\nVERSION 1.6.0-dhtfs\\r\\n' b'VALUE c\\x01\\x10\\x7f\\xff\\tk\\rz 5 2\\r\\nhi\\r\\nEND\\r\\n'" ] ||
    fail "control-byte keys: $r"
v=$(ctl --peer "127.0.0.1:${PORTS[1]}" get $'mc/c\x01\x10\x7f\xff\tk\rz' | tail -c 2)
[ "$v" = "hi" ] || fail "the control-byte key is not mc/ + its bytes in the store: '$v'"
log "keys with control bytes work across nodes; a NUL in a key is refused"

# memaslap (libmemcached's load generator, memcaslap in Debian) with data
# verification, over the three nodes: its keys carry binary bytes. It exits
# 0 whatever the server answers, so its counters are checked.
timeout 60 memcaslap -s "127.0.0.1:${MC[0]},127.0.0.1:${MC[1]},127.0.0.1:${MC[2]}" \
    -T 3 -c 6 -t 5s -v 0.2 >"$T/memaslap.out" 2>&1 || fail "memaslap: $(tail -n 5 "$T/memaslap.out")"
count() { sed -n "s/^$1: \([0-9]*\)\$/\1/p" "$T/memaslap.out"; }
[ "$(count cmd_set)" -gt 0 ] && [ "$(count cmd_get)" -gt 0 ] &&
    [ "$(count get_misses)" = 0 ] && [ "$(count verify_misses)" = 0 ] &&
    [ "$(count verify_failed)" = 0 ] && ! grep -q _ERROR "$T/memaslap.out" ||
    fail "memaslap: $(grep -E '^(cmd_|get_m|verify_)|_ERROR' "$T/memaslap.out" | head -n 12)"
log "memaslap: $(grep -E '^(cmd_set|cmd_get|verify_failed)' "$T/memaslap.out" | tr '\n' ' ')"

# A secured node (CURVE): its front end reaches the store with the node's own
# key; the port must still be loopback (memcached has no authentication).
K=$T/keys
mkdir -p "$K"
"$DHTCTL" keygen "$K/s.key" >/dev/null 2>&1 || fail "keygen"
cp "$K/s.key.pub" "$K/peers"
: >"$K/clients"
alloc_ports SP 2
st=0
"$KVNODE" --listen "127.0.0.1:${SP[0]}" --data "$T/sec-refused.data" --key "$K/s.key" \
    --peer-keys "$K/peers" --client-keys "$K/clients" --memcached "0.0.0.0:${SP[1]}" \
    2>"$T/sec-refused.err" || st=$?
[ "$st" = 2 ] || fail "secured node with --memcached 0.0.0.0: status $st, want 2"
start_node sec "${SP[0]}" "" --replicas 1 --write-quorum 1 --read-quorum 1 --key "$K/s.key" \
    --peer-keys "$K/peers" --client-keys "$K/clients" --memcached "127.0.0.1:${SP[1]}"
mc_up "${SP[1]}"
r=$("$PYTHON" - "${SP[1]}" <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
s.sendall(b"set sk 0 0 6\r\nsecret\r\nget sk\r\n")
out = b""
while not out.endswith(b"END\r\n"):
    d = s.recv(1000)
    if not d:
        break
    out += d
print(out.decode().replace("\r\n", "|"))
PYEOF
)
[ "$r" = "STORED|VALUE sk 0 6|secret|END|" ] || fail "secured node's memcached: '$r'"
log "secured node: memcached on loopback works, 0.0.0.0 refused"
# SIGTERM with clients connected: the node leaves and exits 0 (the front end
# closes its connections; the sanitizer build checks for leaks here).
"$PYTHON" - "${SP[1]}" <<'PYEOF' &
import socket, sys, time
conns = [socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) for _ in range(5)]
for s in conns:
    s.sendall(b"get sk a b c\r\nset half 0 0 10\r\nabc")
time.sleep(3)
PYEOF
HOLD=$!
sleep 1
kill -TERM "$NODE_PID"
wait_exit "$NODE_PID" 20
[ "$EXIT_STATUS" = 0 ] || fail "SIGTERM with memcached clients: exit $EXIT_STATUS ($(tail -n 5 "$T/sec.log"))"
wait "$HOLD" || true
finish
