#!/usr/bin/env bash
# Several hosts: mount-scripts/cluster.sh --netns puts each of 3 nodes in its
# own network namespace (own address, joined by veth pairs to a bridge).
# The ring forms across them, the store works through every host, a crashed
# host's node restarts on its data, and stop removes every namespace, link
# and bridge. Needs root; skipped (77) otherwise.
source "$(dirname "$0")/lib.sh"
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null; then
    log "skipped: needs root and iproute2 for network namespaces"
    exit 77
fi
CLUSTER=$(cd "$(dirname "$0")/../../mount-scripts" && pwd)/cluster.sh
export DHTFS_CLUSTER_DIR=$T/cluster DHTFS_BIN=$BUILD_DIR/kvnode
export DHTFS_NETNS_PREFIX=dt$$ DHTFS_NETNS_SUBNET=10.231.$((RANDOM % 200 + 20))
export KVNODE_ARGS="--stabilize-ms 100 --timeout-ms 600"
SUB=$DHTFS_NETNS_SUBNET
netns_cleanup() {
    local ns
    "$CLUSTER" stop >/dev/null 2>&1
    for ns in $(ip netns list | awk '{print $1}' | grep "^$DHTFS_NETNS_PREFIX-n"); do
        ip netns del "$ns"
    done
    ip link del "$DHTFS_NETNS_PREFIX-br" 2>/dev/null
    return 0
}
on_exit netns_cleanup

"$CLUSTER" start 3 --netns --secure >"$T/start.log" 2>&1 || fail "cluster start failed: $(cat "$T/start.log")"
[ "$(ip netns list | grep -c "^$DHTFS_NETNS_PREFIX-n")" = 3 ] || fail "expected 3 namespaces"
# cluster.sh --secure: each host's node is reached with its key,
# and dhtctl presents the operator key it made.
peer() { echo "tcp://$SUB.$((10 + $1)):7000#$(cat "$DHTFS_CLUSTER_DIR/keys/node$1.key.pub")"; }
export DHT_KEY=$DHTFS_CLUSTER_DIR/keys/admin.key
for ((i = 0; i < 100; i++)); do
    out=$(ctl --peer "$(peer 0)" ring --json 2>/dev/null) || out=
    if [ -n "$out" ] && jq -e --arg s "tcp://$SUB." \
        '.nodes | length == 3 and all(.addr | startswith($s))' <<<"$out" >/dev/null; then
        break
    fi
    sleep 0.1
done
jq -e '.nodes | length == 3' <<<"$out" >/dev/null || fail "no 3-host ring: $out"
log "3 nodes on 3 hosts ($SUB.10-12) formed one ring"
[ "$(ctl --peer "$(peer 1)" status --json | jq -r .secured)" = true ] || fail "cluster ring not secured"
st=0
DHT_KEY= "$DHTCTL" --timeout-ms 2000 --peer "$(peer 1)" get x >/dev/null 2>&1 || st=$?
[ "$st" = 3 ] || fail "a keyless client got through to the cluster (exit $st)"
log "the cluster is secured (keys made and distributed by cluster.sh); keyless clients refused"

for k in 0 1 2 3 4 5 6 7 8; do
    ctl --peer "$(peer $((k % 3)))" put "host-key-$k" "v$k" || fail "put through host $((k % 3)) failed"
done
for k in 0 1 2 3 4 5 6 7 8; do
    [ "$(ctl --peer "$(peer $(((k + 1) % 3)))" get "host-key-$k")" = "v$k" ] ||
        fail "get host-key-$k through another host failed"
done
log "writes through one host are read back through the others"

# Kill node 2 (as a host crash would) and restart it on its data.
kill -KILL "$(cat "$T/cluster/node2/pid")"
[ "$(ctl --peer "$(peer 0)" get host-key-2)" = v2 ] || fail "read with one host down failed"
"$CLUSTER" start 3 --netns >>"$T/start.log" 2>&1 || fail "restart failed"
for ((i = 0; i < 100; i++)); do
    if ctl --peer "$(peer 2)" ring --json 2>/dev/null | jq -e '.nodes | length == 3' >/dev/null; then
        break
    fi
    sleep 0.2
done
[ "$(ctl --peer "$(peer 2)" get host-key-7)" = v7 ] || fail "restarted host cannot read"
log "a crashed host's node restarted on its data and rejoined"

"$CLUSTER" stop >"$T/stop.log" 2>&1 || fail "cluster stop failed"
[ "$(ip netns list | grep -c "^$DHTFS_NETNS_PREFIX-n")" = 0 ] || fail "namespaces left behind"
ip link show "$DHTFS_NETNS_PREFIX-br" >/dev/null 2>&1 && fail "bridge left behind"
log "stop removed every namespace, link and bridge"
