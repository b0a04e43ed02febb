#!/usr/bin/env bash
# Two writers hammer one key through different nodes at the same time: every
# replica ends with the same version and value. Conditional writes: put-if-
# absent admits exactly one of several racing writers; put-if-version
# refuses a stale version.
source "$(dirname "$0")/lib.sh"
# Deleted keys are forgotten after 1 s (checked at the end).
KVNODE_EXTRA="--tombstone-grace-s 1"

start_ring 5
for port in "${PORTS[@]}"; do
    wait_ring "$port" 5 20
done
writer() { # every put must succeed: the ring is whole
    local port=$1 tag=$2 i bad=0
    for ((i = 0; i < 100; i++)); do
        ctl --peer "127.0.0.1:$port" put hot "$tag-$i" 2>>"$T/writer-$tag.err" || {
            echo "put $tag-$i failed" >&2
            bad=$((bad + 1))
        }
    done
    return "$((bad > 0))"
}
writer "${PORTS[0]}" A &
w1=$!
writer "${PORTS[3]}" B &
w2=$!
st1=0 st2=0
wait "$w1" || st1=$?
wait "$w2" || st2=$?
[ "$st1$st2" = 00 ] ||
    fail "concurrent puts to one key failed (writer A status $st1, B $st2): $(cat "$T"/writer-*.err | sort | uniq -c | head -n 5)"
for ((i = 0; i < 50; i++)); do
    out=$(ctl --peer "127.0.0.1:${PORTS[1]}" replicas hot --json)
    if jq -e '[.replicas[].version] | unique | length == 1 and .[0] != null' <<<"$out" >/dev/null &&
        jq -e '[.replicas[].value_sha] | unique | length == 1' <<<"$out" >/dev/null &&
        jq -e '.replicas | length == 3' <<<"$out" >/dev/null; then
        break
    fi
    sleep 0.2
done
jq -e '[.replicas[].version] | unique | length == 1' <<<"$out" >/dev/null ||
    fail "replicas disagree after concurrent writes: $out"
final=$(ctl --peer "127.0.0.1:${PORTS[2]}" get hot)
[[ $final =~ ^[AB]-[0-9]+$ ]] || fail "final value '$final' is not one writer's"
log "200 concurrent writes through two nodes: all 3 replicas hold one version ($final)"

# put-if-absent: of 6 racing writers exactly one wins.
racers=()
: >"$T/winners"
for i in 0 1 2 3 4 5; do
    ctl --peer "127.0.0.1:${PORTS[$((i % 5))]}" put once "w$i" --if-absent 2>"$T/racer-$i.err" &
    racers+=($!)
done
for i in 0 1 2 3 4 5; do
    st=0
    wait "${racers[$i]}" || st=$?
    case $st in
    0) echo "w$i" >>"$T/winners" ;;
    1) ;; # the condition failed: another writer was first
    *) fail "put-if-absent racer $i exited $st (expected 0 or 1): $(cat "$T/racer-$i.err")" ;;
    esac
done
[ "$(wc -l <"$T/winners")" = 1 ] || fail "put-if-absent admitted $(wc -l <"$T/winners") writers"
[ "$(ctl --peer "127.0.0.1:${PORTS[0]}" get once)" = "$(cat "$T/winners")" ] ||
    fail "stored value is not the winner's"
log "put-if-absent: 1 of 6 racing writers won"

v1=$(ctl --peer "127.0.0.1:${PORTS[0]}" put cas one --json | jq -r .version)
v2=$(ctl --peer "127.0.0.1:${PORTS[1]}" put cas two --if-version "$v1" --json | jq -r .version)
st=0
ctl --peer "127.0.0.1:${PORTS[2]}" put cas three --if-version "$v1" 2>"$T/err" || st=$?
[ "$st" = 1 ] || fail "put with a stale version exited $st"
grep -q "version mismatch" "$T/err" || fail "stale put error: $(cat "$T/err")"
[ "$(ctl --peer "127.0.0.1:${PORTS[3]}" get cas)" = two ] || fail "cas value wrong"
st=0
ctl --peer "127.0.0.1:${PORTS[2]}" del cas --if-version "$v1" 2>/dev/null || st=$?
[ "$st" = 1 ] || fail "stale conditional delete exited $st"
ctl --peer "127.0.0.1:${PORTS[2]}" del cas --if-version "$v2" || fail "conditional delete failed"
st=0
ctl --peer "127.0.0.1:${PORTS[4]}" get cas >/dev/null 2>&1 || st=$?
[ "$st" = 1 ] || fail "deleted key: get exited $st, expected 1"
log "put-if-version and conditional delete refuse stale versions"

# The tombstone of 'cas' is purged from all three replicas after the grace period.
for ((i = 0; i < 100; i++)); do
    out=$(ctl --peer "127.0.0.1:${PORTS[0]}" replicas cas --json)
    if jq -e '[.replicas[].version] | all(. == null)' <<<"$out" >/dev/null; then
        break
    fi
    sleep 0.2
done
jq -e '[.replicas[].version] | all(. == null)' <<<"$out" >/dev/null ||
    fail "tombstone not purged: $out"
st=0
ctl --peer "127.0.0.1:${PORTS[1]}" get cas >/dev/null 2>&1 || st=$?
[ "$st" = 1 ] || fail "purged key: get exited $st, expected 1"
log "tombstones are purged from every replica after the grace period"

# A stale authority: plant an old version on the key's authority and a newer
# one on its two other replicas (raw REPL_PUTs); a get must fetch the newer
# value from a replica, answer it, and repair the authority.
WIREPOKE=$BUILD_DIR/tests/wirepoke
mapfile -t reps < <(ctl --peer "127.0.0.1:${PORTS[0]}" replicas fetchme --json | jq -r '.replicas[].addr')
[ "${#reps[@]}" = 3 ] || fail "expected 3 replicas of fetchme"
key=0007$(printf fetchme | od -An -tx1 | tr -d ' \n')
old="44480113000000000000000a${key}00000000000000010000000000000001""00"
new="44480113000000000000000b${key}00000000000000020000000000000001""00"
out=$("$WIREPOKE" "${reps[0]}" "$old" "$(printf old | od -An -tx1 | tr -d ' \n')") || out=
grep -q "reply REPL_PUT_R" <<<"$out" || fail "planting the old version failed: $out"
for a in "${reps[1]}" "${reps[2]}"; do
    out=$("$WIREPOKE" "$a" "$new" "$(printf new | od -An -tx1 | tr -d ' \n')") || out=
    grep -q "reply REPL_PUT_R" <<<"$out" || fail "planting the new version on $a failed: $out"
done
[ "$(ctl --peer "127.0.0.1:${PORTS[0]}" get fetchme)" = new ] ||
    fail "a stale authority answered its own old value"
for ((i = 0; i < 50; i++)); do
    out=$(ctl --peer "127.0.0.1:${PORTS[0]}" replicas fetchme --json)
    if jq -e '[.replicas[].version] | unique | length == 1' <<<"$out" >/dev/null; then
        break
    fi
    sleep 0.1
done
jq -e '[.replicas[].version] | unique | length == 1' <<<"$out" >/dev/null ||
    fail "read repair did not update the stale authority: $out"
log "a stale authority fetches the newer value from a replica, answers it and is repaired"
