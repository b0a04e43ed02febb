#!/usr/bin/env bash
# A network partition: 3 nodes, each its own host (network namespace, via
# mount-scripts/cluster.sh --netns), data on disk. Node 2's veth is taken
# down, cutting it off from the other two. The minority side must refuse
# writes and quorum reads (dhtctl exit 3, never a stale value); the
# majority goes on (after failure detection); kvhist clients on the
# majority run through the partition and the heal. After the link is up
# again: no acknowledged write is lost, no stale value is read (kvhist's
# history check), and the healed node serves the majority's writes.
# Needs root and iproute2 (skipped, 77, otherwise); every namespace, veth
# and bridge is removed whatever happens.
source "$(dirname "$0")/faults_lib.sh"
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then
    echo "SKIP: needs root and iproute2 for network namespaces" >&2
    exit 77
fi
faults_require_disk
KVHIST=$BUILD_DIR/tests/kvhist
CLUSTER=$(cd "$(dirname "$0")/../../mount-scripts" && pwd)/cluster.sh
export DHTFS_CLUSTER_DIR=$T/cluster DHTFS_BIN=$BUILD_DIR/kvnode
# Partitions, not security: kvhist presents no key, so the nodes run without (no --secure).
export DHTFS_NETNS_PREFIX=dp$$ DHTFS_NETNS_SUBNET=10.232.$((RANDOM % 200 + 20))
export KVNODE_ARGS="--stabilize-ms $STABILIZE_MS --timeout-ms $TIMEOUT_MS"
SUB=$DHTFS_NETNS_SUBNET
PFX=$DHTFS_NETNS_PREFIX
netns_cleanup() {
    local ns i
    "$CLUSTER" stop >/dev/null 2>&1
    for ns in $(ip netns list | awk '{print $1}' | grep "^$PFX-n"); do
        ip netns del "$ns"
    done
    ip link del "$PFX-br" 2>/dev/null
    ip link show | grep -q "$PFX-" && echo "links left behind: $(ip -br link show | grep "$PFX-")" >&2
    for i in 0 1 2; do # node logs where cleanup prints their tails
        cp "$T/cluster/node$i/log" "$T/n$i.log" 2>/dev/null
    done
    return 0
}
on_exit netns_cleanup
peer() { echo "tcp://$SUB.$((10 + $1)):7000"; }
# mctl ARGS: dhtctl on the minority host itself (node 2's namespace), so
# what it reports is node 2's answer, not "cannot reach node 2".
mctl() { ip netns exec "$PFX-n2" "$DHTCTL" --timeout-ms 2000 --peer "$(peer 2)" "$@"; }

"$CLUSTER" start 3 --netns >"$T/start.log" 2>&1 || fail "cluster start failed: $(cat "$T/start.log")"
for ((i = 0; i < 150; i++)); do
    out=$(ctl --peer "$(peer 0)" ring --json 2>/dev/null) || out=
    if [ -n "$out" ] && jq -e '.nodes | length == 3' <<<"$out" >/dev/null; then break; fi
    sleep 0.2
done
jq -e '.nodes | length == 3' <<<"$out" >/dev/null || fail "no 3-host ring: $out"
for k in $(seq 0 19); do
    ctl --peer "$(peer $((k % 3)))" put "p-$k" "old-$k" || fail "put p-$k before the partition failed"
done
log "3 hosts ($SUB.10-12) in one ring; 20 keys written"

"$KVHIST" --peer "$(peer 0),$(peer 1)" --clients 4 --keys 4 --seconds 40 --log "$T/history.txt" \
    >"$T/kvhist.out" 2>&1 &
HIST=$!
sleep 3

# --- cut node 2 off
ip link set "$PFX-v2" down || fail "could not take $PFX-v2 down"
cut_at=$EPOCHREALTIME
log "partition: $PFX-v2 down, node 2 ($(peer 2)) alone"
sleep 1
mctl ring >"$T/min-ring.out" 2>&1 || fail "dhtctl inside node 2's host cannot reach node 2: $(cat "$T/min-ring.out")"
st=0
mctl put minority-write x 2>"$T/min.err" || st=$?
[ "$st" = 3 ] || fail "a put on the minority side exited $st (expected 3, no quorum): $(cat "$T/min.err")"
log "minority put refused with exit 3 ($(head -c 100 "$T/min.err"))"

# The majority goes on: within 15 s (failure detection) puts succeed, and
# then 20 in a row must.
ok_at=
for ((i = 0; i < 75; i++)); do
    if ctl --peer "$(peer $((i % 2)))" put "p-0" "new-0" 2>"$T/maj.err"; then
        ok_at=$(since "$cut_at")
        break
    fi
    sleep 0.2
done
[ -n "$ok_at" ] || fail "the majority (nodes 0, 1) could not write within 15 s of the partition: $(cat "$T/maj.err")"
for k in $(seq 1 19); do
    ctl --peer "$(peer $((k % 2)))" put "p-$k" "new-$k" 2>"$T/maj.err" ||
        fail "majority put p-$k failed during the partition: $(cat "$T/maj.err")"
done
log "majority writes again ${ok_at}s after the cut; 20 keys rewritten"
# Minority reads: exit 3, never the old value.
for k in 0 5 13; do
    st=0
    v=$(mctl get "p-$k" 2>"$T/min.err") || st=$?
    [ "$st" != 0 ] || fail "minority get p-$k returned '$v' during the partition (a stale read; expected exit 3)"
    [ "$st" = 3 ] || fail "minority get p-$k exited $st (expected 3): $(cat "$T/min.err")"
done
st=0
mctl put minority-write y 2>"$T/min.err" || st=$?
[ "$st" = 3 ] || fail "a put on the minority side exited $st later in the partition (expected 3): $(cat "$T/min.err")"
log "minority side: gets and puts exit 3"
sleep $((10 - ${ok_at%.*} > 0 ? 10 - ${ok_at%.*} : 1))

# --- heal
ip link set "$PFX-v2" up || fail "could not bring $PFX-v2 up"
healed_at=$EPOCHREALTIME
log "healed after $(since "$cut_at")s"
for ((i = 0; i < 150; i++)); do
    out=$(ctl --peer "$(peer 2)" ring --json 2>/dev/null) || out=
    if [ -n "$out" ] && jq -e '.nodes | length == 3' <<<"$out" >/dev/null; then break; fi
    sleep 0.2
done
jq -e '.nodes | length == 3' <<<"$out" >/dev/null || fail "ring not whole 30 s after the heal: $out"
log "ring whole again $(since "$healed_at")s after the heal"
for k in $(seq 0 19); do
    st=0
    v=$(ctl --peer "$(peer 2)" get "p-$k" 2>"$T/get.err") || st=$?
    [ "$st" = 0 ] || fail "after the heal, get p-$k through node 2 exited $st: $(cat "$T/get.err")"
    [ "$v" = "new-$k" ] || fail "after the heal, get p-$k through node 2 returned '$v' (stale; the majority wrote new-$k)"
done
st=0
v=$(ctl --peer "$(peer 0)" get minority-write 2>/dev/null) || st=$?
[ "$st" = 1 ] || log "note: minority-write (refused twice with exit 3) reads '$v' (exit $st) after the heal"
log "after the heal node 2 reads every majority write"
st=0
wait "$HIST" || st=$?
cat "$T/kvhist.out"
[ "$st" = 0 ] || fail "kvhist history check through the partition failed (exit $st): $(tail -n 5 "$T/kvhist.out")"
grep -q " 0 failed" "$T/kvhist.out" || fail "history checker reported violations: $(tail -n 5 "$T/kvhist.out")"
out=
for ((i = 0; i < 60; i++)); do
    out=$(ctl --peer "$(peer 0)" status --json 2>/dev/null) || out=
    if [ -n "$out" ] && jq -e '.under_replicated == 0' <<<"$out" >/dev/null; then break; fi
    sleep 1
done
jq -e '.under_replicated == 0' <<<"$out" >/dev/null || fail "under_replicated did not drain within 60 s after the heal: $out"
log "under_replicated drained: $out"
"$CLUSTER" stop >"$T/stop.log" 2>&1 || fail "cluster stop failed: $(cat "$T/stop.log")"
[ "$(ip netns list | grep -c "^$PFX-n" || true)" = 0 ] || fail "namespaces left behind"
finish
