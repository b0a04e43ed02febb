#!/usr/bin/env bash
# Whole-cluster crash: 4 writers put through different nodes of a 5-node
# ring (data on a real disk) — each cycling over its own 6 keys with
# increasing sequence numbers — when every node is killed with SIGKILL at
# the same moment. All nodes restart on their data dirs. Every write that
# was acknowledged (dhtctl put exit 0) must be there: each key reads back a
# sequence number at least the last acknowledged one (a later, unacknowledged
# put may or may not have landed) and never one that was not written. The
# first node back knows every member before the others are back (the
# member table kept on disk).
source "$(dirname "$0")/faults_lib.sh"
N=5 WRITERS=4 KEYS=6
faults_require_disk
start_ring "$N"
for p in "${PORTS[@]}"; do
    wait_ring "$p" "$N" 30
done
log "5-node ring on disk; starting $WRITERS writers"

# writer W: until $T/stop exists, put wW-k = "wW-k:seq" (k = seq % KEYS);
# "ack KEY SEQ" after exit 0, "try KEY SEQ" before each put.
writer() {
    local w=$1 seq=0 key port st
    port=${PORTS[$((w % N))]}
    while [ ! -e "$T/stop" ]; do
        seq=$((seq + 1))
        key=w$w-$((seq % KEYS))
        echo "try $key $seq" >>"$T/w$w.hist"
        st=0
        "$DHTCTL" --timeout-ms 2000 --peer "127.0.0.1:$port" put "$key" "$key:$seq" 2>>"$T/w$w.err" || st=$?
        if [ "$st" = 0 ]; then
            echo "ack $key $seq" >>"$T/w$w.hist"
        else
            echo "fail $key $seq $st" >>"$T/w$w.hist"
            sleep 0.05
        fi
    done
}
WPIDS=()
for ((w = 0; w < WRITERS; w++)); do
    writer "$w" &
    WPIDS+=("$!")
done
sleep 6
acked_before=$(cat "$T"/w*.hist | grep -c '^ack' || true)
((acked_before > 20)) || fail "only $acked_before puts acknowledged in 6 s before the crash: $(tail -n 3 "$T"/w0.err)"
kill -KILL "${NODE_PIDS[@]}"
crash_at=$EPOCHREALTIME
for p in "${NODE_PIDS[@]}"; do
    wait "$p" 2>/dev/null || true
done
log "killed all $N nodes with SIGKILL after $acked_before acknowledged puts"
sleep 3 # writers keep trying against the dead ring
touch "$T/stop"
for p in "${WPIDS[@]}"; do
    wait_job "$p" "writer"
done
acked=$(cat "$T"/w*.hist | grep -c '^ack' || true)
log "writers stopped: $acked acknowledged in all, $(cat "$T"/w*.hist | grep -c '^fail' || true) failed"

# Restart on the same data dirs: the first alone, the others join it.
start_node n0 "${PORTS[0]}" ""
NODE_PIDS[0]=$NODE_PID
sleep 0.5
# Alone, it already knows every member (DATA/members): placement does not
# depend on how far gossip has got after a whole-ring restart.
members=$(ctl --peer "127.0.0.1:${PORTS[0]}" members --json | jq '.members | length')
[ "$members" = "$N" ] || fail "the first node back knows $members members, not $N"
for ((i = 1; i < N; i++)); do
    start_node "n$i" "${PORTS[$i]}" "${PORTS[0]}"
    NODE_PIDS[$i]=$NODE_PID
done
for p in "${PORTS[@]}"; do
    wait_ring "$p" "$N" 60
done
log "restarted all nodes on their data $(since "$crash_at")s after the crash"

# Check every key every writer touched.
lost=0 bad=0 checked=0
for ((w = 0; w < WRITERS; w++)); do
    for ((k = 0; k < KEYS; k++)); do
        key=w$w-$k
        want=$(awk -v k="$key" '$1 == "ack" && $2 == k { m = $3 } END { print m + 0 }' "$T/w$w.hist")
        maxtry=$(awk -v k="$key" '$1 == "try" && $2 == k { m = $3 } END { print m + 0 }' "$T/w$w.hist")
        ((maxtry > 0)) || continue
        checked=$((checked + 1))
        st=0
        got=$(ctl --peer "127.0.0.1:${PORTS[$((k % N))]}" get "$key" 2>"$T/get.err") || st=$?
        if [ "$st" = 1 ] && ((want == 0)); then
            continue # never acknowledged, never stored: fine
        fi
        if [ "$st" != 0 ]; then
            echo "LOST: $key: acknowledged up to seq $want, get exited $st: $(cat "$T/get.err")" >&2
            lost=$((lost + 1))
            continue
        fi
        gseq=${got#"$key:"}
        if ! [[ $gseq =~ ^[0-9]+$ ]] || ((gseq > maxtry)); then
            echo "BAD: $key reads '$got', which no put wrote (tried up to $maxtry)" >&2
            bad=$((bad + 1))
        elif ((gseq < want)); then
            echo "LOST: $key reads seq $gseq, but seq $want was acknowledged before the crash" >&2
            lost=$((lost + 1))
        fi
    done
done
((lost == 0 && bad == 0)) ||
    fail "after a whole-cluster SIGKILL and restart: $lost keys lost acknowledged writes, $bad read values never written (of $checked keys, $acked acknowledged puts)"
log "all $checked keys hold their last acknowledged write or a later attempted one ($acked acknowledged puts)"
finish
