# lib.sh — shared helpers for the multi-process tests (sourced, bash).
#
# Every test gets a private temp dir and free loopback ports; every process
# it starts is recorded and killed on any exit (trap), so a failing or
# interrupted test leaves nothing behind.
#
# A test's exit status is sacred: lib.sh owns the EXIT trap. A test never
# installs its own (an EXIT trap that runs a command before cleanup loses the status: its first
# command resets $?); it registers undo steps with `on_exit CMD...`, which
# cleanup runs, newest first, with errexit off and the test's status kept.
# tests/integration/harness_selftest.sh checks this on deliberately failing
# scripts and refuses any test script that installs an EXIT trap itself.
set -euo pipefail
# A failing command inside $(...) fails the substitution too (bash leaves
# errexit off in command substitutions otherwise).
shopt -s inherit_errexit
# A command that stops the test through errexit says which one it was (fail
# says why itself); -E: also inside functions and subshells.
set -E
trap 'echo "FAIL: \`$BASH_COMMAND\` exited $? (${BASH_SOURCE[0]##*/}:$LINENO)" >&2' ERR

BUILD_DIR=${BUILD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../build" && pwd)}
KVNODE=$BUILD_DIR/kvnode/kvnode
DHTCTL=$BUILD_DIR/kvnode/dhtctl
FREEPORT=$BUILD_DIR/tests/freeport
KVKEYS=$BUILD_DIR/tests/kvkeys
TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "${TEST_TMPDIR:-/tmp}/dhtfs-$TEST_NAME.XXXXXX")
PIDS=()
EXIT_HOOKS=()
SOFT_FAILS=()
STABILIZE_MS=${STABILIZE_MS:-100}
TIMEOUT_MS=${TIMEOUT_MS:-600}

# on_exit CMD...: run CMD (a word list, eval'd) when the test exits, before
# the processes are killed; hooks run newest first; their failures are
# reported but never replace the test's own status.
on_exit() {
    EXIT_HOOKS+=("$*")
}

cleanup() {
    local rc=$? i hook
    set +eE
    trap - EXIT ERR
    # A check recorded with soft_fail is a failure even if the script never
    # reached finish (or exited 0 early).
    if [ "$rc" -eq 0 ] && ((${#SOFT_FAILS[@]})); then
        echo "FAIL: ${#SOFT_FAILS[@]} check(s) failed (soft): $(printf '[%s] ' "${SOFT_FAILS[@]}")" >&2
        rc=1
    fi
    for ((i = ${#EXIT_HOOKS[@]} - 1; i >= 0; i--)); do
        hook=${EXIT_HOOKS[$i]}
        (eval "$hook") || echo "[$TEST_NAME] cleanup step '$hook' failed (status $?)" >&2
    done
    for pid in "${PIDS[@]}"; do
        kill -CONT "$pid" 2>/dev/null
        kill -KILL "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    if [ "$rc" -ne 0 ]; then
        echo "--- $TEST_NAME failed (rc=$rc); logs in $T (kept):" >&2
        for f in "$T"/*.log; do
            [ -f "$f" ] || continue
            echo "=== $f" >&2
            tail -n "${LOG_TAIL:-30}" "$f" >&2
        done
        # Keep logs and small files for diagnosis, not bulk data.
        if [ -z "${KEEP_T:-}" ]; then
            find "$T" -xdev -type f -size +4M -delete 2>/dev/null
            find "$T" -xdev -depth -type d -empty -delete 2>/dev/null
        fi
    elif [ -z "${KEEP_T:-}" ]; then
        rm -rf "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

log() {
    echo "[$TEST_NAME] $*"
}

# free_ports N: print N free loopback ports, one per line.
free_ports() {
    "$FREEPORT" "$1"
}

# alloc_ports ARRAY N: N free loopback ports into the array ARRAY (fails
# unless there are exactly N; `mapfile < <(free_ports N)` would not notice a
# freeport failure).
alloc_ports() {
    local out
    out=$(free_ports "$2") || fail "freeport $2 failed"
    mapfile -t "$1" <<<"$out"
    local -n arr=$1
    [ "${#arr[@]}" = "$2" ] || fail "freeport gave ${#arr[@]} ports, wanted $2: $out"
}

# start_node NAME PORT [JOIN_PORT] [extra kvnode flags...]: sets NODE_PID.
start_node() {
    local name=$1 port=$2 join=${3:-}
    shift 3 || shift $#
    local args=(--listen "tcp://127.0.0.1:$port" --data "$T/$name.data"
        --stabilize-ms "$STABILIZE_MS" --timeout-ms "$TIMEOUT_MS" --log-level info)
    if [ -n "$join" ]; then
        args+=(--join "tcp://127.0.0.1:$join")
    fi
    # shellcheck disable=SC2086  # KVNODE_EXTRA is a list of flags
    "$KVNODE" "${args[@]}" ${KVNODE_EXTRA:-} "$@" 2>>"$T/$name.log" &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
}

ctl() {
    "$DHTCTL" --timeout-ms 2000 "$@"
}

# bad_flag WANT FLAG...: kvnode with these flags is a usage error (exit 2)
# whose message contains WANT.
bad_flag() {
    local want=$1 rc=0
    shift
    "$KVNODE" --listen tcp://127.0.0.1:1 --data "$T/bad.data" "$@" 2>"$T/bad.err" || rc=$?
    [ "$rc" = 2 ] || fail "kvnode $* exited $rc, expected 2"
    grep -q -- "$want" "$T/bad.err" || fail "kvnode $*: no '$want' in: $(cat "$T/bad.err")"
}

# ring_ok PORT N: the ring seen from PORT has N nodes and every pred/succ
# pointer matches the sorted order.
ring_ok() {
    local port=$1 n=$2 json
    json=$(ctl --peer "127.0.0.1:$port" ring --json 2>/dev/null) || return 1
    jq -e --argjson n "$n" '
        .nodes as $a
        | ($a | length) == $n
          and all(range(0; $n); . as $i
                  | $a[$i].succ == $a[($i + 1) % $n].id
                    and $a[$i].pred == $a[($i - 1 + $n) % $n].id)' \
        <<<"$json" >/dev/null
}

# is_stopped PID: whether the process is stopped (SIGSTOP, state T).
is_stopped() {
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = T ]
}

# metric_sum NAME: counter NAME summed over the nodes serving --metrics on
# MPORTS (a node not exporting it counts 0); fails the test if a scrape does.
metric_sum() {
    local i sum=0 v
    for i in "${!MPORTS[@]}"; do
        v=$(curl -sf -m 10 "http://127.0.0.1:${MPORTS[$i]}/metrics" |
            awk -v m="$1" '$1 == m {print $2}') || fail "scrape of n$i's metrics failed"
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

# wait_ring PORT N SECONDS: poll until ring_ok or fail.
wait_ring() {
    local port=$1 n=$2 secs=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        if ring_ok "$port" "$n"; then
            return 0
        fi
        sleep 0.1
    done
    ctl --peer "127.0.0.1:$port" ring >&2 || true
    fail "ring seen from port $port did not converge to $n nodes within ${secs}s"
}

# fingers_ok PORT: every finger of the node at PORT is successor(start) in
# the ring seen from the same node.
fingers_ok() {
    local port=$1 ring fingers
    ring=$(ctl --peer "127.0.0.1:$port" ring --json 2>/dev/null) || return 1
    fingers=$(ctl --peer "127.0.0.1:$port" fingers --json 2>/dev/null) || return 1
    jq -e -n --argjson r "$ring" --argjson f "$fingers" '
        ([$r.nodes[].id] | sort) as $ids
        | all($f.fingers[]; . as $e
              | ([$ids[] | select(. >= $e.start)] | first // $ids[0]) == $e.node)' >/dev/null
}

wait_fingers() {
    local port=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do
        if fingers_ok "$port"; then
            return 0
        fi
        sleep 0.1
    done
    ctl --peer "127.0.0.1:$port" fingers >&2 || true
    fail "fingers of port $port did not converge within ${secs}s"
}

# wait_exit PID SECONDS: wait for a child to exit; sets EXIT_STATUS.
wait_exit() {
    local pid=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            EXIT_STATUS=0
            wait "$pid" || EXIT_STATUS=$?
            return 0
        fi
        sleep 0.1
    done
    # Where it is stuck, for the log (gdb is on CI machines; skipped if not).
    if command -v gdb >/dev/null 2>&1; then
        timeout 30 gdb -p "$pid" -batch -ex "thread apply all bt" 2>/dev/null |
            grep -E '^(Thread|#)' | head -n 80 >&2 || true
    fi
    fail "process $pid did not exit within ${secs}s"
}

# start_mc_ring [restart]: a 3-node ring on fresh PORTS (with "restart": on
# the PORTS of the last start, so the nodes come back as themselves), node i
# also serving memcached's protocol on MC[i] (allocated by the caller);
# with MPORTS set (alloc_ports MPORTS 3), node i serves --metrics on MPORTS[i];
# waits until every node sees the whole ring and lists its three members
# under one epoch (a read while a node still lacks the newest member needs a
# quorum of the old and the new replica sets, and can fail once the
# client's budget is spent).
start_mc_ring() {
    local i p m
    [ "${1:-}" = restart ] || alloc_ports PORTS 3
    NODE_PIDS=()
    for i in 0 1 2; do
        m=()
        [ -n "${MPORTS[$i]:-}" ] && m=(--metrics "127.0.0.1:${MPORTS[$i]}")
        ((i == 0)) || sleep 0.2
        start_node "n$i" "${PORTS[$i]}" "$( ((i)) && echo "${PORTS[0]}")" --memcached "127.0.0.1:${MC[$i]}" "${m[@]}"
        NODE_PIDS+=("$NODE_PID")
    done
    for p in "${PORTS[@]}"; do
        wait_ring "$p" 3 30
    done
    wait_member_count 3 30 "${PORTS[@]}"
}

# start_ring N: N nodes joined one after another through the first; sets
# PORTS and NODE_PIDS arrays.
start_ring() {
    local n=$1 i
    alloc_ports PORTS "$n"
    NODE_PIDS=()
    start_node n0 "${PORTS[0]}" ""
    NODE_PIDS+=("$NODE_PID")
    for ((i = 1; i < n; i++)); do
        sleep 0.2
        start_node "n$i" "${PORTS[$i]}" "${PORTS[0]}"
        NODE_PIDS+=("$NODE_PID")
    done
}

# wait_member_count N SECONDS PORT...: every node's member table lists N
# members, all up, under one epoch. A converged ring (wait_ring) can still
# have a node that has not heard of the newest member: its replica sets,
# and what it vouches for in a direct read, lack that node until then.
wait_member_count() {
    local n=$1 secs=$2 i port json epochs
    shift 2
    for ((i = 0; i < secs * 10; i++)); do
        epochs=()
        for port in "$@"; do
            json=$(ctl --peer "127.0.0.1:$port" members --json 2>/dev/null) || break
            jq -e --argjson n "$n" '(.members | length) == $n and all(.members[]; .state == "up")' \
                <<<"$json" >/dev/null || break
            epochs+=("$(jq -r .epoch <<<"$json")")
        done
        if [ "${#epochs[@]}" = $# ] && [ "$(printf '%s\n' "${epochs[@]}" | sort -u | wc -l)" = 1 ]; then
            return 0
        fi
        sleep 0.1
    done
    fail "member tables did not reach $n members, all up, within ${secs}s"
}

# kvload_ok NAME ARGS...: run tests/kvload with ARGS (output in $T/NAME.out,
# shown, and $T/NAME.err); fail unless it printed its RESULT line, exited 0
# and counted no client errors.
kvload_ok() {
    local name=$1 st=0 errors
    shift
    "$BUILD_DIR/tests/kvload" "$@" >"$T/$name.out" 2>"$T/$name.err" || st=$?
    cat "$T/$name.out"
    grep -q '^RESULT' "$T/$name.out" || fail "kvload $name printed no result: $(cat "$T/$name.err")"
    errors=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' "$T/$name.out")
    [ "$st" = 0 ] && [ "$errors" = 0 ] || fail "kvload $name: $errors client errors (exit $st)"
}

# put_keys PREFIX COUNT: write PREFIX-i = value-PREFIX-i through rotating nodes
# (key i through the i-th of PORTS), in one process.
put_keys() {
    "$KVKEYS" --peer "$(peer_list "${PORTS[@]}")" put "$1" "$2" 2>"$T/put.err" ||
        fail "put_keys $1 $2: $(cat "$T/put.err")"
}

# check_keys PREFIX COUNT PORT...: read every key back through the given
# nodes (key i through the i-th), in one process.
check_keys() {
    local prefix=$1 count=$2
    shift 2
    "$KVKEYS" --peer "$(peer_list "$@")" check "$prefix" "$count" 2>"$T/get.err" ||
        fail "check_keys $prefix $count: $(cat "$T/get.err")"
}

# peer_list PORT...: the loopback endpoints of the ports, comma-separated.
peer_list() {
    local IFS=,
    set -- "${@/#/127.0.0.1:}"
    echo "$*"
}

# status_field PORT FIELD: one number from dhtctl status --json.
status_field() {
    ctl --peer "127.0.0.1:$1" status --json | jq -r ".$2"
}

# wait_replicated PORT KEYS SECONDS: status shows KEYS keys, none under-replicated.
wait_replicated() {
    local port=$1 keys=$2 secs=$3 i out
    for ((i = 0; i < secs * 10; i++)); do
        out=$(ctl --peer "127.0.0.1:$port" status --json 2>/dev/null) || out=
        if [ -n "$out" ] && jq -e --argjson k "$keys" \
            '.keys == $k and .under_replicated == 0' <<<"$out" >/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    fail "status never showed $keys keys fully replicated: $out"
}

# wait_copies PORT KEYS SECONDS: every key held by exactly 3 nodes (N=3): no
# copy missing and no stale extra copy left behind by joins and restarts.
wait_copies() {
    local port=$1 keys=$2 secs=$3 i out
    for ((i = 0; i < secs * 10; i++)); do
        out=$(ctl --peer "127.0.0.1:$port" status --json 2>/dev/null) || out=
        if [ -n "$out" ] && jq -e --argjson k "$keys" \
            '.keys == $k and .under_replicated == 0 and .stored == 3 * $k' <<<"$out" >/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    fail "stored copies never settled at 3 x $keys: $out"
}

# soft_fail MSG: record a failed check and go on, so that one defect does not
# hide the checks after it; finish (or, failing that, cleanup) reports them.
soft_fail() {
    echo "FAIL (continuing): $*" >&2
    SOFT_FAILS+=("$*")
}

# finish: fail if soft_fail recorded anything, else log success.
finish() {
    if ((${#SOFT_FAILS[@]})); then
        fail "${#SOFT_FAILS[@]} check(s) failed: $(printf '[%s] ' "${SOFT_FAILS[@]}")"
    fi
    log "all checks passed"
}

# wait_job PID WHAT: wait for a background job and fail unless it exited 0
# (a background job's status is otherwise never looked at).
wait_job() {
    local st=0
    wait "$1" || st=$?
    [ "$st" = 0 ] || fail "$2 (pid $1) exited with status $st"
}
