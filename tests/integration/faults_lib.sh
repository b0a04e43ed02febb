# shellcheck shell=bash
# faults_lib.sh — helpers for the fault tests (label "faults"), on top of
# fs_lib.sh: nodes keep their data on a real disk (never tmpfs: an fsync
# there costs nothing and hides the stalls these tests are about), with the
# product's default timings, a competing write load, node kill/restart by
# index, timed operations and a bounded wait for re-replication.
#
# The temp dir (node data, logs, mount point) is under $FAULTS_DIR
# (default /var/tmp); on failure its logs stay there and their tails are
# printed (lib.sh's cleanup).
FAULTS_DIR=${FAULTS_DIR:-/var/tmp}
TEST_TMPDIR=$FAULTS_DIR
# The product's defaults (kvnode/node.c), not lib.sh's quick test values.
STABILIZE_MS=${STABILIZE_MS:-250}
TIMEOUT_MS=${TIMEOUT_MS:-1000}
LOG_TAIL=${LOG_TAIL:-60}
source "$(dirname "${BASH_SOURCE[0]}")/fs_lib.sh"

# faults_require_disk: $T must be on a disk file system, not tmpfs/ramfs.
faults_require_disk() {
    local fstype
    fstype=$(stat -f -c %T "$T")
    case $fstype in
    tmpfs | ramfs | overlay-tmpfs) fail "$T is on $fstype; the fault tests need a disk (set FAULTS_DIR)" ;;
    esac
    log "node data under $T ($fstype)"
}

# disk_ring N: N nodes (data in $T/nK.data on disk) joined through the
# first, waited for, FS_PEERS set; NODE_PIDS/PORTS as start_ring.
disk_ring() {
    local n=$1 p
    faults_require_disk
    start_ring "$n"
    for p in "${PORTS[@]}"; do
        wait_ring "$p" "$n" 30
    done
    FS_PEERS=
    for p in "${PORTS[@]}"; do
        FS_PEERS+=${FS_PEERS:+,}tcp://127.0.0.1:$p
    done
}

# kill_node I [SIGNAL]: SIGKILL (or SIGNAL) node I, reap it.
kill_node() {
    local i=$1 sig=${2:-KILL}
    kill "-$sig" "${NODE_PIDS[$i]}" || fail "node $i (pid ${NODE_PIDS[$i]}) was not running when it was to be killed"
    if [ "$sig" = KILL ]; then
        wait "${NODE_PIDS[$i]}" 2>/dev/null || true # its status is the signal's
    fi
    echo "--- $(date +%T.%N) killed with SIG$sig" >>"$T/n$i.log"
}

# restart_node I: node I again on its data dir and port, joining through
# another node (the first one that is not I).
restart_node() {
    local i=$1 via=0
    ((i != 0)) || via=1
    echo "--- $(date +%T.%N) restarted" >>"$T/n$i.log"
    start_node "n$i" "${PORTS[$i]}" "${PORTS[$via]}"
    NODE_PIDS[$i]=$NODE_PID
}

# nodes_alive: fail unless every node in NODE_PIDS still runs.
nodes_alive() {
    local i
    for i in "${!NODE_PIDS[@]}"; do
        kill -0 "${NODE_PIDS[$i]}" 2>/dev/null || fail "node $i (pid ${NODE_PIDS[$i]}, port ${PORTS[$i]}) died; see $T/n$i.log"
    done
}

# wait_drained PORT SECONDS: status --json shows under_replicated == 0
# (sets DRAIN_S to the seconds it took).
wait_drained() {
    local port=$1 secs=$2 start=$EPOCHREALTIME out=
    while less_than "$(since "$start")" "$secs"; do
        out=$(ctl --peer "127.0.0.1:$port" status --json 2>/dev/null) || out=
        if [ -n "$out" ] && jq -e '.under_replicated == 0' <<<"$out" >/dev/null; then
            DRAIN_S=$(since "$start")
            log "under_replicated drained to 0 in ${DRAIN_S}s: $out"
            return 0
        fi
        sleep 1
    done
    fail "under_replicated did not drain to 0 within ${secs}s; last status: ${out:-no answer}"
}

# load_start: a competing writer on the same disk (not through dhtfs): fio,
# 2 jobs writing 1 MiB blocks to $T/load with an fsync after each, until stopped
# (one process: --thread, so the kill in cleanup stops all of it).
load_start() {
    mkdir -p "$T/load"
    fio --name=load --thread --directory="$T/load" --rw=write --bs=1M --size=512m \
        --fsync=1 --time_based --runtime=3600 --ioengine=psync --numjobs=2 --group_reporting \
        >"$T/load-fio.out" 2>&1 &
    LOAD_PID=$!
    PIDS+=("$LOAD_PID")
    on_exit load_stop
    log "competing disk write load started (fio pid $LOAD_PID, 1 MiB writes, fsync after each, 2 jobs, in $T/load)"
}
load_stop() {
    if [ -n "${LOAD_PID:-}" ]; then
        kill -TERM "$LOAD_PID" 2>/dev/null || true
        wait "$LOAD_PID" 2>/dev/null || true # fio's status after SIGTERM
        LOAD_PID=
        log "competing load: $(grep -E '^ +WRITE:' "$T/load-fio.out" | sed 's/^ *//')"
    fi
    rm -rf "$T/load"
    return 0
}

# timed_op WHAT CMD...: run CMD (under timeout 120); fail naming WHAT, the
# status, the time and the error; record the time in OP_MAX/OP_MAX_WHAT.
OP_MAX=0
OP_MAX_WHAT=
timed_op() {
    local what=$1 st=0 start=$EPOCHREALTIME el
    shift
    timeout 120 "$@" >"$T/op.out" 2>"$T/op.err" || st=$?
    el=$(since "$start")
    if less_than "$OP_MAX" "$el"; then
        OP_MAX=$el
        OP_MAX_WHAT=$what
    fi
    [ "$st" != 124 ] || fail "$what ($*) hung: killed after 120 s"
    [ "$st" = 0 ] || fail "$what ($*) failed after ${el}s (exit $st): $(head -c 400 "$T/op.err")"
}

# dhtfs_errors MOUNT: the error lines of the mount's dhtfs log (for FAIL messages).
dhtfs_errors() {
    grep -iE 'error|fail|EIO|timed? ?out' "$T/dhtfs-$(basename "$1").log" 2>/dev/null | tail -n 8 | tr '\n' ' ' || true
}
