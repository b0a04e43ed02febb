#!/usr/bin/env bash
# mount-scripts/cluster.sh grant/revoke on a secured 3-node loopback
# cluster: grant makes a client key restricted to volumes (or not), lists
# it in clients.list and has the running nodes re-read it; dhtctl status
# counts the keys; the key works in its volumes only; re-granting changes
# the volumes; revoke shuts it out while the others go on; names, volumes
# and an unsecured cluster are refused.
source "$(dirname "$0")/lib.sh"
CLUSTER=$(cd "$(dirname "$0")/../../mount-scripts" && pwd)/cluster.sh

# Three consecutive free ports (cluster.sh uses BASE..BASE+2).
base=
for ((try = 0; try < 20; try++)); do
    alloc_ports B 1
    p=${B[0]}
    if ! ss -Hltn "( sport = :$p or sport = :$((p + 1)) or sport = :$((p + 2)) )" | grep -q .; then
        base=$p
        break
    fi
done
[ -n "$base" ] || fail "no 3 consecutive free ports"
export DHTFS_CLUSTER_DIR=$T/cluster DHTFS_BIN=$BUILD_DIR/kvnode DHTFS_BASE_PORT=$base
export KVNODE_ARGS="--stabilize-ms $STABILIZE_MS --timeout-ms $TIMEOUT_MS"
on_exit '"$CLUSTER" stop >/dev/null 2>&1'
K=$DHTFS_CLUSTER_DIR/keys

# Unsecured cluster: nothing to grant.
"$CLUSTER" start 1 >"$T/start.log" 2>&1 || fail "plain start failed: $(cat "$T/start.log")"
st=0
"$CLUSTER" grant ann home >"$T/out" 2>&1 || st=$?
[ "$st" = 1 ] && grep -q "need a secured cluster" "$T/out" || fail "grant on a plain cluster: exit $st: $(cat "$T/out")"
"$CLUSTER" stop >/dev/null
rm -rf "$DHTFS_CLUSTER_DIR"

"$CLUSTER" start 3 --secure >"$T/start.log" 2>&1 || fail "cluster start failed: $(cat "$T/start.log")"
PEER="tcp://127.0.0.1:$base#$(cat "$K/node0.key.pub")"
as() { # KEYNAME dhtctl-args...
    local key=$1
    shift
    "$DHTCTL" --timeout-ms 2000 --peer "$PEER" --key "$K/$key.key" "$@"
}
for ((i = 0; i < 100; i++)); do
    [ "$(as admin status --json 2>/dev/null | jq -r .nodes)" = 3 ] && break
    sleep 0.1
done
[ "$(as admin status --json | jq -r .nodes)" = 3 ] || fail "secured cluster did not form"

"$CLUSTER" grant ann home >"$T/grant.log" 2>&1 || fail "grant ann home failed: $(cat "$T/grant.log")"
grep -q "3 running node(s) re-read the lists" "$T/grant.log" || fail "grant did not reload 3 nodes: $(cat "$T/grant.log")"
[ "$(stat -c %a "$K/ann.key")" = 600 ] || fail "ann.key missing or not 0600"
grep -qxF "$(cat "$K/ann.key.pub") home # ann" "$K/clients.list" || fail "clients.list lacks ann's line: $(cat "$K/clients.list")"
"$CLUSTER" grant bob >/dev/null 2>&1 || fail "grant bob failed"
st=$(as admin status --json)
jq -e '.client_keys == 3 and .restricted_client_keys == 1 and .peer_keys == 3' <<<"$st" >/dev/null ||
    fail "status after two grants: $st"
as ann put v/home/f one || fail "ann cannot write in volume home"
[ "$(as ann get v/home/f)" = one ] || fail "ann cannot read in volume home"
st=0
as ann put v/proj/f x 2>/dev/null || st=$?
[ "$st" = 3 ] || fail "ann wrote outside her volume (exit $st)"
as bob put anything y || fail "bob (every volume) cannot write"
log "grant: keys made, listed, re-read by every node; restricted to the volumes given; status counts them"

"$CLUSTER" grant ann home proj >/dev/null 2>&1 || fail "re-grant ann home proj failed"
[ "$(grep -cF "$(cat "$K/ann.key.pub")" "$K/clients.list")" = 1 ] || fail "re-grant left two lines for ann"
as ann put v/proj/f two || fail "ann cannot write in her new volume"
log "re-grant replaces the volumes"

for bad in "ann a/b" "ann ''" "admin" "node1 home" "../x"; do
    st=0
    eval "\"\$CLUSTER\" grant $bad" >/dev/null 2>&1 || st=$?
    [ "$st" = 2 ] || fail "grant $bad exited $st, wanted 2"
done
st=0
"$CLUSTER" revoke nobody >/dev/null 2>&1 || st=$?
[ "$st" = 1 ] || fail "revoke of an unknown name exited $st, wanted 1"
log "bad names and volumes refused (exit 2); unknown name on revoke (exit 1)"

cp "$K/ann.key" "$T/ann.key" # to try it once revoked
"$CLUSTER" revoke ann >"$T/revoke.log" 2>&1 || fail "revoke ann failed: $(cat "$T/revoke.log")"
[ ! -e "$K/ann.key" ] && [ ! -e "$K/ann.key.pub" ] || fail "revoke left ann's key files"
grep -q "# ann" "$K/clients.list" && fail "revoke left ann's line: $(cat "$K/clients.list")"
st=0
"$DHTCTL" --timeout-ms 2000 --peer "$PEER" --key "$T/ann.key" get v/home/f >/dev/null 2>&1 || st=$?
[ "$st" = 3 ] || fail "the revoked key still reads (exit $st)"
st=$(as admin status --json)
jq -e '.client_keys == 2 and .restricted_client_keys == 0' <<<"$st" >/dev/null || fail "status after revoke: $st"
[ "$(as bob get anything)" = y ] || fail "bob lost access when ann was revoked"
log "revoke: line and key gone, every node re-read, others go on"
finish
