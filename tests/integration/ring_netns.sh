#!/usr/bin/env bash
# Several hosts: mount-scripts/cluster.sh --netns puts each of 6 nodes in its
# own network namespace (own address, joined by veth pairs to a bridge), in
# 3 zones of 2 hosts (--zones 3). The ring forms across them, the store
# works through every host, every key's copies sit in 3 distinct zones, a
# whole zone stopped (both its hosts killed) leaves every key readable and
# writable, the crashed hosts' nodes restart on their data, and stop
# removes every namespace, link and bridge. Needs root; skipped (77)
# otherwise.
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

"$CLUSTER" start 6 --netns --secure --zones 3 >"$T/start.log" 2>&1 ||
    fail "cluster start failed: $(cat "$T/start.log")"
[ "$(ip netns list | grep -c "^$DHTFS_NETNS_PREFIX-n")" = 6 ] || fail "expected 6 namespaces"
# cluster.sh --secure: each host's node is reached with its key,
# and dhtctl presents the operator key it made.
peer() { echo "tcp://$SUB.$((10 + $1)):7000#$(cat "$DHTFS_CLUSTER_DIR/keys/node$1.key.pub")"; }
export DHT_KEY=$DHTFS_CLUSTER_DIR/keys/admin.key
for ((i = 0; i < 100; i++)); do
    out=$(ctl --peer "$(peer 0)" ring --json 2>/dev/null) || out=
    if [ -n "$out" ] && jq -e --arg s "tcp://$SUB." \
        '.nodes | length == 6 and all(.addr | startswith($s))' <<<"$out" >/dev/null; then
        break
    fi
    sleep 0.1
done
jq -e '.nodes | length == 6' <<<"$out" >/dev/null || fail "no 6-host ring: $out"
log "6 nodes on 6 hosts ($SUB.10-15) formed one ring"
[ "$(ctl --peer "$(peer 1)" status --json | jq -r .secured)" = true ] || fail "cluster ring not secured"
st=0
DHT_KEY= "$DHTCTL" --timeout-ms 2000 --peer "$(peer 1)" get x >/dev/null 2>&1 || st=$?
[ "$st" = 3 ] || fail "a keyless client got through to the cluster (exit $st)"
log "the cluster is secured (keys made and distributed by cluster.sh); keyless clients refused"

for k in 0 1 2 3 4 5 6 7 8; do
    ctl --peer "$(peer $((k % 6)))" put "host-key-$k" "v$k" || fail "put through host $((k % 6)) failed"
done
for k in 0 1 2 3 4 5 6 7 8; do
    [ "$(ctl --peer "$(peer $(((k + 1) % 6)))" get "host-key-$k")" = "v$k" ] ||
        fail "get host-key-$k through another host failed"
done
log "writes through one host are read back through the others"

# load OP PREFIX KEYS HOST: kvload puts (or gets and checks) KEYS 1 KiB
# values through HOST and the next one, 0 errors.
KVLOAD=$BUILD_DIR/tests/kvload
load() {
    local st=0 errors
    "$KVLOAD" --peer "$(peer "$4"),$(peer $((($4 + 1) % 6)))" --key "$DHT_KEY" --op "$1" \
        --size 1024 --keys "$3" --concurrency 8 --prefix "$2" --timeout-ms 4000 --label dhtfs \
        --test "$2" >"$T/$2.$1.out" 2>"$T/$2.$1.err" || st=$?
    errors=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' "$T/$2.$1.out")
    [ "$st" = 0 ] && [ "$errors" = 0 ] ||
        fail "kvload $1 $2: errors '$errors' (exit $st): $(tail -3 "$T/$2.$1.err")"
}

# Zones: node K is in zone zK%3, so hosts 2 and 5 make zone z2.
load put zk 600 0
for ((i = 0; i < 300; i++)); do
    out=$(ctl --peer "$(peer 0)" status --json 2>/dev/null) || out=
    if [ -n "$out" ] && jq -e '.keys == 609 and .under_replicated == 0 and .stored == 3 * .keys' \
        <<<"$out" >/dev/null; then
        break
    fi
    sleep 0.1
done
jq -e '.under_replicated == 0 and .stored == 3 * .keys' <<<"$out" >/dev/null ||
    fail "copies never settled at three per key: $out"
ratio=$(jq '[.per_node[].keys] | max / (add / length)' <<<"$out")
jq -e -n "$ratio <= 1.3" >/dev/null || fail "with zones the largest host stores $ratio x the mean copies"
zone_of=$(ctl --peer "$(peer 0)" members --json | jq -c '[.members[] | {(.id): .zone}] | add')
for i in $(seq 0 37 599); do
    # replicas reads every copy straight from its node: a peer's key does that.
    r=$(DHT_KEY=$DHTFS_CLUSTER_DIR/keys/node0.key ctl --peer "$(peer $((i % 6)))" replicas "zk-$i" --json)
    jq -e --argjson z "$zone_of" '(.replicas | length) == 3
        and ([.replicas[] | $z[.node]] | unique | length) == 3
        and all(.replicas[]; .value_sha != null)' <<<"$r" >/dev/null ||
        fail "key zk-$i is not in three zones: $r"
done
log "600 keys: three copies each, the largest host $ratio x the mean; sampled keys' copies in zones z0, z1 and z2"

# A whole zone stops, as a rack losing power would: both its hosts killed.
kill -KILL "$(cat "$T/cluster/node2/pid")" "$(cat "$T/cluster/node5/pid")"
[ "$(ctl --peer "$(peer 0)" get host-key-2)" = v2 ] || fail "read with zone z2 down failed"
load get zk 600 0
load put zw 200 1
load get zw 200 3
log "zone z2 (hosts 2 and 5) stopped: every key readable, new keys written and read"

"$CLUSTER" start 6 --netns >>"$T/start.log" 2>&1 || fail "restart failed"
for ((i = 0; i < 100; i++)); do
    if ctl --peer "$(peer 2)" ring --json 2>/dev/null | jq -e '.nodes | length == 6' >/dev/null; then
        break
    fi
    sleep 0.2
done
[ "$(ctl --peer "$(peer 2)" get host-key-7)" = v7 ] || fail "restarted host cannot read"
[ "$(ctl --peer "$(peer 5)" members --json | jq -r --arg id "$(ctl --peer "$(peer 5)" ring --json |
    jq -r --arg a "$SUB.15" '.nodes[] | select(.addr | contains($a)) | .id')" \
    '.members[] | select(.id == $id) | .zone')" = z2 ] || fail "restarted host 5 is not in zone z2"
log "the crashed hosts' nodes restarted on their data (still in zone z2) and rejoined"

"$CLUSTER" stop >"$T/stop.log" 2>&1 || fail "cluster stop failed"
[ "$(ip netns list | grep -c "^$DHTFS_NETNS_PREFIX-n")" = 0 ] || fail "namespaces left behind"
ip link show "$DHTFS_NETNS_PREFIX-br" >/dev/null 2>&1 && fail "bridge left behind"
log "stop removed every namespace, link and bridge"
