#!/usr/bin/env bash
# dhtctl status reports repair and hand-off progress. A 3-node ring holds
# 1500 keys of 4 KiB; status --json is idle with every old field. One node
# is killed (kill -9) before a second load of 4000 keys and restarted:
# the repair of what it missed shows as progress (not idle, keys left) in
# --json and in the text --watch (with a rate and an estimate), and drains
# back to idle with nothing left. A 4th node joins: the hand-off to it counts moved keys and
# ends idle. A --watch --json run in the background over all this prints
# valid JSON with the old fields on every line, non-idle at some point and
# idle at the end. --watch in text refreshes under timeout, SIGINT exits 0,
# --count bounds it, and bad --watch/--count values are usage errors.
source "$(dirname "$0")/lib.sh"
KVLOAD=$BUILD_DIR/tests/kvload
# Timeouts as kv_load_replicas uses them under a 16-deep put load.
TIMEOUT_MS=1000
STABILIZE_MS=250

alloc_ports EXTRA 1
start_ring 3
for port in "${PORTS[@]}"; do
    wait_ring "$port" 3 20
done
P0=127.0.0.1:${PORTS[0]}

# load PREFIX KEYS: put KEYS keys of 4 KiB through node 0, 0 client errors.
load() {
    local st=0
    "$KVLOAD" --peer "tcp://$P0" --op put --size 4096 --keys "$2" --concurrency 16 \
        --prefix "$1" --timeout-ms 4000 --label dhtfs --test "$1" \
        >"$T/$1.out" 2>"$T/$1.err" || st=$?
    grep -q '^RESULT' "$T/$1.out" || fail "kvload $1 printed no result: $(cat "$T/$1.err")"
    local errors
    errors=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' "$T/$1.out")
    [ "$st" = 0 ] && [ "$errors" = 0 ] || fail "kvload $1: $errors client errors (exit $st)"
}

# The status --json contract (BRIEF.md section 5 and what tests rely on)
# plus the progress object, on one JSON document read from stdin.
OLD_FIELDS='(.nodes|type)=="number" and (.keys|type)=="number"
    and (.under_replicated|type)=="number" and (.stored|type)=="number"
    and (.bytes|type)=="number" and (.silent|type)=="number"
    and (.secured|type)=="boolean" and (.unsecured_nodes|type)=="number"
    and (.per_node|type)=="array"
    and (.per_node|all(has("id") and has("addr") and has("keys") and has("bytes")))'
PROGRESS='(.progress|type)=="object" and (.progress.idle|type)=="boolean"
    and (.progress.keys_left|type)=="number" and (.progress.bytes_left|type)=="number"
    and (.progress.streams|type)=="number" and (.progress.moved_keys|type)=="number"
    and (.progress.moved_bytes|type)=="number"
    and (.progress|has("keys_per_s") and has("bytes_per_s") and has("eta_s"))
    and (.per_node|all(.progress|type=="object"))'

# idle_now: the ring reports nothing left to move and nothing under-replicated
# (that status in IDLE_JSON). The next sample may not be idle: the periodic
# anti-entropy sweep's streams count while they compare digests.
idle_now() {
    IDLE_JSON=$(ctl --peer "$P0" status --json 2>/dev/null) || return 1
    jq -e '.progress.idle and .progress.keys_left == 0 and .progress.streams == 0
           and .under_replicated == 0' <<<"$IDLE_JSON" >/dev/null
}

# wait_idle SECONDS
wait_idle() {
    local i
    for ((i = 0; i < $1 * 10; i++)); do
        idle_now && return 0
        sleep 0.1
    done
    fail "progress never returned to idle: $(ctl --peer "$P0" status --json)"
}

load a 1500
wait_replicated "${PORTS[0]}" 1500 30
wait_idle 30
st=$IDLE_JSON
jq -e "$OLD_FIELDS and $PROGRESS and .keys == 1500 and .progress.eta_s == 0
       and .progress.keys_per_s == null" <<<"$st" >/dev/null ||
    fail "idle status --json lacks a field or is not idle: $st"
for ((i = 0; i < 20; i++)); do
    text=$(ctl --peer "$P0" status) || text=
    grep -q '^progress: idle' <<<"$text" && break
    sleep 0.5 # a sweep's streams comparing digests
done
grep -q '^progress: idle' <<<"$text" || fail "idle text status has no 'progress: idle': $text"
grep -q '^nodes 3  keys 1500  under-replicated 0' <<<"$text" ||
    fail "text status lost its first line: $text"
log "1500 keys on 3 nodes: status idle, every old JSON field kept, progress added"

# --watch --json over the rest of the test, in the background, bounded.
# timeout --foreground: without it, timeout(1) follows every signal it passes
# on with a SIGCONT to the command and its process group. In the sanitizer
# build that SIGCONT can land while LeakSanitizer's exit-time check is
# stopping the exiting dhtctl's threads (PTRACE_ATTACH, then a wait for the
# SIGSTOP that it sends); a SIGCONT discards a pending SIGSTOP, so that wait
# never ends and dhtctl spins at exit: the hang that once took this test to
# its ctest timeout. --foreground passes the signal on alone.
timeout --foreground -k 10 120 "$DHTCTL" --timeout-ms 2000 --peer "$P0" status --json --watch 0.2 \
    >"$T/watch.ndjson" 2>"$T/watch.err" &
WATCH_PID=$!
PIDS+=("$WATCH_PID")
# and in text, as an operator would watch it
timeout --foreground -k 10 120 "$DHTCTL" --timeout-ms 2000 --peer "$P0" status --watch 0.2 \
    >"$T/watch-text.out" 2>"$T/watch-text.err" &
WATCHT_PID=$!
PIDS+=("$WATCHT_PID")
# If the test fails first: the cleanup's SIGKILL would end the timeout(1)
# wrappers alone and leave both dhtctl --watch running for ever; a TERM is
# passed on to them.
on_exit "kill -TERM $WATCH_PID $WATCHT_PID 2>/dev/null; sleep 0.5"

kill -KILL "${NODE_PIDS[2]}"
wait_ring "${PORTS[0]}" 2 20
# A backlog large enough that its repair outlasts a few status polls even on
# a quick node (1500 keys were once repaired between two 50 ms polls).
B=4000
load b $B
moved_before=$(ctl --peer "$P0" status --json | jq '.progress.moved_keys')
start_node n2 "${PORTS[2]}" "${PORTS[0]}"
NODE_PIDS[2]=$NODE_PID
seen=
for ((i = 0; i < 300; i++)); do
    out=$(ctl --peer "$P0" status --json 2>/dev/null) || out=
    echo "$out" >>"$T/poll.ndjson"
    # the restarted node lacks the $B keys written while it was down
    if [ -n "$out" ] && jq -e "$OLD_FIELDS and $PROGRESS and (.progress.idle | not)
            and .progress.keys_left > 0 and .progress.bytes_left > 0
            and (.per_node | any(.progress != null and .progress.keys_left > 0))" \
        <<<"$out" >/dev/null; then
        seen=$out
        break
    fi
    idle_now && [ "$(jq '.progress.moved_keys' <<<"$IDLE_JSON")" -gt "$moved_before" ] && break
    sleep 0.05
done
[ -n "$seen" ] || fail "no progress reported while the restarted node was repaired: $out"
log "restarted node being repaired: $(jq -c .progress <<<"$seen")"
wait_idle 60
wait_replicated "${PORTS[0]}" $((1500 + B)) 30
moved0=$(ctl --peer "$P0" status --json | jq '.progress.moved_keys')
[ "$moved0" -ge "$((moved_before + B))" ] ||
    fail "the repair moved $B keys or more but $((moved0 - moved_before)) were counted"
log "repair done: $((moved0 - moved_before)) records moved, idle again"

start_node n3 "${EXTRA[0]}" "${PORTS[0]}"
PORTS+=("${EXTRA[0]}")
wait_ring "${EXTRA[0]}" 4 30
# Under token placement the moves start with the passes after the join (the
# newcomer's first one finds what it lacks): until then status may be idle.
for ((i = 0; i < 600; i++)); do
    st=$(ctl --peer "$P0" status --json 2>/dev/null) || st=
    [ -n "$st" ] && jq -e --argjson m "$moved0" '.progress.idle and .progress.moved_keys > $m' \
        <<<"$st" >/dev/null && break
    sleep 0.1
done
wait_idle 60
wait_replicated "${PORTS[0]}" $((1500 + B)) 30
st=$(ctl --peer "$P0" status --json)
jq -e --argjson m "$moved0" "$OLD_FIELDS and $PROGRESS and .nodes == 4
        and .progress.moved_keys > \$m" <<<"$st" >/dev/null ||
    fail "the join's hand-off was not counted as moved: $st"
log "4th node joined: hand-off counted ($(jq .progress.moved_keys <<<"$st") moved), idle again"

# The watchers refresh every 0.2 s, slower under load (each refresh walks
# the ring): give them up to 20 s to print the idle ring seen above before
# they are stopped; the checks below say what they showed.
text_idle() {
    awk '/^progress: [1-9]/ { busy = NR } /^progress: idle/ { idle = NR } END { exit !(idle > busy) }' \
        "$T/watch-text.out"
}
json_idle() {
    jq -e -s '(map(.progress.keys_left > 0) | rindex(true)) as $busy
              | map(.progress.idle) | rindex(true) > $busy' "$T/watch.ndjson" >/dev/null 2>&1
}
for ((i = 0; i < 100; i++)); do
    text_idle && json_idle && break
    sleep 0.2
done
kill -INT "$WATCH_PID" "$WATCHT_PID"
wait_job "$WATCH_PID" "status --watch --json (SIGINT)"
wait_job "$WATCHT_PID" "status --watch (SIGINT)"
grep -Eq '^progress: [0-9]+ keys \(.*\) left in [0-9]+ streams? \+ hints, [0-9]+ keys/s \(.*/s\), ([0-9]+[smhd]|[0-9]+m[0-9]+s|[0-9]+h[0-9]+m) left' \
    "$T/watch-text.out" ||
    fail "the text --watch never showed keys left, a rate and a time left: $(grep '^progress' "$T/watch-text.out" | sort | uniq -c)"
# Idle after the last refresh with keys left: routine anti-entropy streams
# (nothing left to send) may still flicker the last refreshes to non-idle.
text_idle || fail "the text --watch never returned to idle after the keys left"
log "text --watch: $(grep -E '^progress: [0-9]' "$T/watch-text.out" | head -1)"
lines=$(wc -l <"$T/watch.ndjson")
[ "$lines" -ge 5 ] || fail "--watch --json printed $lines lines"
jq -e -s "all($OLD_FIELDS and $PROGRESS)" "$T/watch.ndjson" >/dev/null ||
    fail "a --watch --json line is not valid status JSON: $(head -c 2000 "$T/watch.ndjson")"
jq -e -s 'any(.progress.idle | not)' "$T/watch.ndjson" >/dev/null ||
    fail "--watch never saw progress"
jq -e -s 'any(.progress.keys_per_s != null and .progress.keys_per_s > 0)' "$T/watch.ndjson" \
    >/dev/null || fail "--watch never showed a rate"
json_idle || fail "--watch never returned to idle after the keys left: $(tail -3 "$T/watch.ndjson")"
log "--watch --json: $lines lines, all valid, progress seen with a rate, back to idle; SIGINT exits 0"

st=0
timeout --foreground -k 10 3 "$DHTCTL" --peer "$P0" status --watch >"$T/watch.txt" 2>&1 || st=$?
[ "$st" = 124 ] || fail "status --watch ended on its own (exit $st): $(cat "$T/watch.txt")"
n=$(grep -c '^progress: ' "$T/watch.txt") || true
[ "$n" -ge 2 ] || fail "status --watch under timeout 3 refreshed $n times: $(cat "$T/watch.txt")"
grep -q $'\033' "$T/watch.txt" && fail "--watch cleared the screen of a file, not a terminal"
# SIGINT in the middle of a long pause ends it at once (-k: 137 otherwise).
st=0
timeout --foreground --preserve-status -k 10 -s INT 2 "$DHTCTL" --peer "$P0" status --watch 60 \
    >/dev/null || st=$?
[ "$st" = 0 ] || fail "status --watch interrupted by SIGINT exited $st"
out=$("$DHTCTL" --peer "$P0" status --watch 0.2 --count 3)
[ "$(grep -c '^progress: ' <<<"$out")" = 3 ] || fail "--count 3 did not print 3 refreshes: $out"
log "--watch: $n refreshes in 3 s, no screen clearing off a terminal, ^C exits 0, --count bounds it"
if command -v script >/dev/null; then
    # on a terminal (script's pty) each refresh clears the screen first
    timeout 20 script -qec "$(printf '%q ' "$DHTCTL" --peer "$P0" status --watch 0.2 --count 2)" \
        /dev/null >"$T/tty.out" </dev/null || fail "status --watch on a pty failed: $(cat "$T/tty.out")"
    n=$(grep -c $'\033\\[H\033\\[2J' "$T/tty.out") || true
    [ "$n" = 2 ] || fail "status --watch on a terminal cleared the screen $n times, not 2"
    log "--watch on a terminal clears the screen before each refresh"
fi

for bad in "status 5" "status --watch 0" "status --watch=abc" "status --watch --count 0" \
    "status --count 2" "ring --watch"; do
    st=0
    # shellcheck disable=SC2086  # word lists on purpose
    "$DHTCTL" --peer "$P0" $bad >/dev/null 2>"$T/usage.err" || st=$?
    [ "$st" = 2 ] || fail "'dhtctl $bad' exited $st, not 2 (usage)"
done
log "bad --watch/--count values are usage errors"
finish
