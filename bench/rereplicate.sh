#!/usr/bin/env bash
# rereplicate.sh [D_MIB...] (default: 100 400 1000) — how long the store takes
# to restore 3 replicas after a node crashes, as a function of the data per
# node, next to the machine's raw copy rates measured in the same run.
#
# For each D (MiB of 1 MiB values, one fresh ring each):
#   1. copy rates (before): bench/copy-rate.c tcp (1 MiB writes over one
#      127.0.0.1 TCP connection), ../shared/bench/zmq-rtt.c stream (PUSH/PULL
#      of 1 MiB messages), memcpy of 1 MiB blocks, a 1 MiB-write file + fsync
#      on the data filesystem (tmpfs), COPY_MIB MiB each
#   2. NODES (4) kvnodes on free loopback ports, --replicas 3 --write-quorum 2
#      --read-quorum 2, ids pinned to k*2^64/NODES (so each node stores 3/4 of
#      the keys), data on tmpfs; wait until the ring is consistent
#   3. bench/kv-load puts D keys of 1 MiB (concurrency CONC, each key once)
#   4. wait for steady state: `dhtctl status --json` shows keys == D,
#      stored == 3*D, under_replicated == 0; note every node's key count
#      (`dhtctl ring --json`): the victim's count is what must be copied again
#   5. kill -9 node VICTIM (1); from then on poll `dhtctl status --json`
#      (through node 0) every 0.2 s and log the timeline:
#        ring   `dhtctl ring --json` from node 0: 3 nodes, pointers consistent
#        under  under_replicated > 0 first reported
#        first  stored copies start to grow again (re-replication under way)
#        copies stored == 3*D again (every key has 3 copies)
#        done   under_replicated == 0 with keys == D and stored == 3*D, after the
#               loss was reported (under > 0) or the copies were restored:
#               status reports the result of the last *finished* anti-entropy
#               round, so right after a crash it still says 0 (stale)
#   6. kv-load gets all D keys and checks every byte (keys unchanged)
#   7. kill the ring, copy rates again (after)
# Then prints a markdown table: times from the kill, MiB re-replicated (the
# victim's copies), MiB/s over [kill, copies] and over [first, copies] (the
# streaming phase alone), and those rates / the copy rates of the same run.
#
# Environment: BUILD_DIR (default <repo>/build-kvbench), BIN_DIR (default
# $BUILD_DIR/bench-bin), RESULTS_DIR (default /tmp/bench/results; RESULT lines
# in $RESULTS_DIR/kv/rerep-*.kv, timelines next to them), DATA_ROOT (default
# /dev/shm if tmpfs, else /tmp), NODES=4, VICTIM=1, CONC=4, COPY_MIB=512,
# MAX_RECOVER_S=170 (give up waiting after that), MAX_SECONDS=330 (no new D
# starts after that many seconds), STABILIZE_MS (kvnode default 250; the
# anti-entropy period is 8x that), LOG_LEVEL (kvnode, default info: it logs
# every anti-entropy transfer), KEEP=1 keeps the temp dir (node logs).
# REPEAT=2 (default) runs the D list, then the list reversed.
# Typical time: ~10 s for D=100, ~15 s for 400, ~25 s for 1000 on 2 vCPUs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build-kvbench
NODES=${NODES:-4}
VICTIM=${VICTIM:-1}
CONC=${CONC:-4}
COPY_MIB=${COPY_MIB:-512}
MAX_RECOVER_S=${MAX_RECOVER_S:-170}
DS=("$@")
[ ${#DS[@]} -gt 0 ] || DS=(100 400 1000)
# REPEAT=2: the list, then the list reversed (100 400 1000 1000 400 100)
RUNS=("${DS[@]}")
if [ "${REPEAT:-2}" -ge 2 ]; then
    for ((k = ${#DS[@]} - 1; k >= 0; k--)); do RUNS+=("${DS[$k]}"); done
fi
bench_require rereplicate "$KVNODE" "$DHTCTL" "$FREEPORT" "$BUILD_DIR/kvnode/libkvio.a" "$BUILD_DIR/ringlib/libring.a"
bench_data_root

bench_tmpdir dhtfs-rerep "$DATA_ROOT"

# ---- tools (into BIN_DIR)
mkdir -p "$BIN_DIR" "$RESULTS_DIR/kv"
KL=$BIN_DIR/kv-load CR=$BIN_DIR/copy-rate ZR=$BIN_DIR/zmq-rtt
bench_build_kvload "$ROOT" "$BUILD_DIR" "$KL"
if [ ! -x "$CR" ] || [ "$HERE/copy-rate.c" -nt "$CR" ]; then
    cc -O2 -Wall -Wextra -o "$CR" "$HERE/copy-rate.c"
fi
bench_build_zmq_rtt "$ZR"

KV=$RESULTS_DIR/kv/rerep-$(date +%Y%m%d-%H%M%S).kv
TL=${KV%.kv}.timeline
: >"$KV"
: >"$TL"
FAILURES=0
emit() { # TAG cmd...: human lines indented, RESULT lines (+ tag) to $KV
    local tag=$1 rc=0 out l
    shift
    out=$(timeout 120 "$@" 2>"$T/client.err") || rc=$?
    while IFS= read -r l; do
        case $l in
        RESULT*) echo "$l $tag" >>"$KV" ;;
        *) echo "  $l" ;;
        esac
    done <<<"$out"
    if [ "$rc" -ne 0 ]; then
        echo "  !! exit $rc: ${*:1:8}: $(head -c 600 "$T/client.err" | tr '\n' '|')"
        FAILURES=$((FAILURES + 1))
    fi
}
copy_rates() { # TAG
    local zp
    zp=$("$FREEPORT" 1)
    emit "$1" "$CR" tcp "$COPY_MIB" 1024
    emit "$1" "$ZR" stream $((COPY_MIB << 20)) 1048576 "$zp"
    emit "$1" "$CR" memcpy $((COPY_MIB * 4))
    emit "$1" "$CR" file "$COPY_MIB" "$T"
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
status() { "$DHTCTL" --peer "127.0.0.1:${PORTS[0]}" --timeout-ms "${1:-500}" status --json 2>/dev/null; }
ring3_ok() { # the survivors form a consistent ring, seen from node 0
    local json
    json=$("$DHTCTL" --peer "127.0.0.1:${PORTS[0]}" --timeout-ms 500 ring --json 2>/dev/null) || return 1
    jq -e --argjson n $((NODES - 1)) '.nodes as $a | ($a | length) == $n
        and all(range(0; $n); . as $i | $a[$i].succ == $a[($i + 1) % $n].id
                and $a[$i].pred == $a[($i - 1 + $n) % $n].id)' <<<"$json" >/dev/null
}
ring_ok() {
    local port json
    for port in "${PORTS[@]}"; do
        json=$("$DHTCTL" --peer "127.0.0.1:$port" --timeout-ms 1000 ring --json 2>/dev/null) || return 1
        jq -e --argjson n "$NODES" '.nodes as $a | ($a | length) == $n
            and all(range(0; $n); . as $i | $a[$i].succ == $a[($i + 1) % $n].id
                    and $a[$i].pred == $a[($i - 1 + $n) % $n].id)' <<<"$json" >/dev/null || return 1
    done
}

T0=$(date +%s)
echo "== $(nproc) CPUs, data in $T ($(stat -f -c %T "$T")), NODES=$NODES VICTIM=$VICTIM CONC=$CONC," \
    "D = ${DS[*]} MiB, load: $(cut -d' ' -f1-3 /proc/loadavg)"
LOGS=${KV%.kv}-logs
mkdir -p "$LOGS"
for ((run_i = 0; run_i < ${#RUNS[@]}; run_i++)); do
    D=${RUNS[$run_i]}
    if (($(date +%s) - T0 > ${MAX_SECONDS:-330})); then
        echo "!! time budget spent: runs $((run_i + 1)).. skipped"
        break
    fi
    RUN=r$((run_i + 1))-d$D
    tag="D=$D rr=$RUN"
    echo "## run $RUN: D = $D MiB (load $(cut -d' ' -f1-3 /proc/loadavg))"
    copy_rates "$tag phase=before"
    # -- ring
    mapfile -t PORTS < <("$FREEPORT" "$NODES")
    NPIDS=()
    for ((i = 0; i < NODES; i++)); do
        args=(--listen "tcp://127.0.0.1:${PORTS[$i]}" --data "$T/d$D-n$i.data" --log-level "${LOG_LEVEL:-info}"
            --replicas 3 --write-quorum 2 --read-quorum 2)
        [ -n "${STABILIZE_MS:-}" ] && args+=(--stabilize-ms "$STABILIZE_MS")
        ((i > 0)) && args+=(--join "tcp://127.0.0.1:${PORTS[0]}")
        # shellcheck disable=SC2017  # 2^64/n without overflow, as lookup-bench.sh
        args+=(--id "$(printf '0x%x' $((i * (0x7fffffffffffffff / NODES * 2 + 1))))")
        "$KVNODE" "${args[@]}" </dev/null >"$T/d$D-n$i.log" 2>&1 &
        PIDS+=($!)
        NPIDS+=($!)
        sleep 0.2
    done
    for ((w = 0; ; w++)); do
        ring_ok && break
        ((w < 300)) || { echo "rereplicate: ring did not converge within 30 s" >&2; exit 1; }
        sleep 0.1
    done
    EPS=$(printf 'tcp://127.0.0.1:%s,' "${PORTS[@]}")
    EPS=${EPS%,}
    # -- load
    tl=$(now)
    emit "$tag phase=load" "$KL" --peer "$EPS" --op put --size 1M --keys "$D" --ops "$D" --warmup 0 \
        --concurrency "$CONC" --prefix rr --seed "$D" --label dhtfs4 --test "load_put_1MiB_c$CONC" --run "$RUN"
    LOAD_S=$(since "$tl")
    # -- steady state
    ts=$(now)
    for ((w = 0; ; w++)); do
        st=$(status 2000) || st=
        [ -n "$st" ] && jq -e --argjson d "$D" '.keys == $d and .stored == 3 * $d and .under_replicated == 0
            and .silent == 0' <<<"$st" >/dev/null && break
        ((w < 300)) || { echo "rereplicate: no steady state within 60 s: $st" >&2; exit 1; }
        sleep 0.2
    done
    STEADY_S=$(since "$ts")
    ringj=$("$DHTCTL" --peer "127.0.0.1:${PORTS[0]}" --timeout-ms 2000 ring --json)
    PER_NODE=$(jq -r '[.nodes[].keys] | map(tostring) | join("/")' <<<"$ringj")
    VADDR=tcp://127.0.0.1:${PORTS[$VICTIM]}
    K_DEAD=$(jq -r --arg a "$VADDR" '.nodes[] | select(.addr == $a) | .keys' <<<"$ringj")
    BYTES0=$(jq -r .bytes <<<"$st")
    echo "  steady after ${STEADY_S} s: $st; keys per node $PER_NODE; victim $VADDR holds $K_DEAD"
    # -- crash
    exec 3>&2 2>/dev/null # no "Killed" job notice
    kill -KILL "${NPIDS[$VICTIM]}"
    t0=$(now)
    wait "${NPIDS[$VICTIM]}" 2>/dev/null || true
    exec 2>&3 3>&-
    KILL_UP=$(cut -d' ' -f1 /proc/uptime)
    echo "  killed node $VICTIM at uptime $KILL_UP s (~ the kvnode log clock)"
    t_ring='' t_under='' t_first='' t_copies='' t_done='' saw_under=0 last=
    stored_after=$((3 * D - K_DEAD)) # the survivors' copies right after the crash
    while :; do
        st=$(status 500) || st=
        el=$(since "$t0")
        if [ -n "$st" ]; then
            read -r nodes keys under stored bytes silent < <(jq -r '"\(.nodes) \(.keys) \(.under_replicated) \(.stored) \(.bytes) \(.silent)"' <<<"$st")
            echo "$tag t=$el nodes=$nodes keys=$keys under=$under stored=$stored bytes=$bytes silent=$silent" >>"$TL"
            last=$st
            [ -z "$t_ring" ] && ring3_ok && t_ring=$el
            [ -z "$t_under" ] && ((under > 0)) && { t_under=$el; saw_under=1; }
            [ -z "$t_first" ] && ((stored > stored_after)) && t_first=$el
            [ -n "$t_ring" ] && [ -z "$t_copies" ] && ((stored == 3 * D)) && t_copies=$el
            if [ -n "$t_ring" ] && ((under == 0 && keys == D && stored == 3 * D && silent == 0)) &&
                { ((saw_under)) || [ -n "$t_copies" ]; }; then
                t_done=$el
                break
            fi
        else
            echo "$tag t=$el status failed" >>"$TL"
        fi
        if awk -v e="$el" -v m="$MAX_RECOVER_S" 'BEGIN { exit !(e > m) }'; then
            echo "  !! not re-replicated within $MAX_RECOVER_S s; last status: $last"
            FAILURES=$((FAILURES + 1))
            break
        fi
        sleep 0.2
    done
    echo "  after kill: ring ${t_ring:--} s, under>0 reported ${t_under:--} s, copies growing ${t_first:--} s," \
        "3 copies ${t_copies:--} s, under_replicated==0 ${t_done:--} s; last: $last"
    # -- verify every key
    emit "$tag phase=verify" "$KL" --peer "$EPS" --op get --size 1M --keys "$D" --ops "$D" --warmup 0 \
        --concurrency "$CONC" --prefix rr --seed "$D" --label dhtfs4 --test "verify_get_1MiB_c$CONC" --run "$RUN"
    ringj=$("$DHTCTL" --peer "127.0.0.1:${PORTS[0]}" --timeout-ms 2000 ring --json 2>/dev/null) || ringj='{"nodes":[]}'
    PER_NODE_AFTER=$(jq -r '[.nodes[].keys] | map(tostring) | join("/")' <<<"$ringj")
    echo "RESULT label=dhtfs4 run=$RUN fstype=- test=rereplicate unit=s value=${t_copies:-nan} lat_mean_us=0" \
        "lat_p99_us=0 load1=$(cut -d' ' -f1 /proc/loadavg) d_mib=$D load_s=$LOAD_S steady_s=$STEADY_S" \
        "k_dead=$K_DEAD bytes_before=$BYTES0 stored_after_kill=${stored_after:-nan} t_ring=${t_ring:-nan}" \
        "t_under=${t_under:-nan} t_first=${t_first:-nan} t_copies=${t_copies:-nan} t_done=${t_done:-nan}" \
        "per_node_before=$PER_NODE per_node_after=$PER_NODE_AFTER kill_uptime=$KILL_UP $tag" >>"$KV"
    for ((i = 0; i < NODES; i++)); do cp "$T/d$D-n$i.log" "$LOGS/$RUN-n$i.log"; done
    exec 3>&2 2>/dev/null # no "Killed" job notices
    for pid in "${NPIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${NPIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    exec 2>&3 3>&-
    rm -rf "$T"/d"$D"-n*.data "$T"/d"$D"-n*.log
    copy_rates "$tag phase=after"
done
echo "## total $(($(date +%s) - T0)) s; load: $(cut -d' ' -f1-3 /proc/loadavg); results: $KV; timeline: $TL; node logs: $LOGS"
echo

# ---- markdown (one row per run, ordered by D)
awk '
function f(x) { return x == "nan" || x == "" ? "-" : (x + 0 >= 100 ? sprintf("%.0f", x) : sprintf("%.1f", x)) }
function mean2(s,   a, n, i, t) { n = split(s, a, " "); t = 0; for (i = 1; i <= n; i++) t += a[i]; return n ? t / n : 0 }
/^RESULT / {
    delete kv
    for (i = 2; i <= NF; i++) { p = index($i, "="); kv[substr($i, 1, p - 1)] = substr($i, p + 1) }
    X = kv["rr"]; if (!(X in seen)) { seen[X] = 1; Xs[++nx] = X; DD[X] = kv["D"] }
    if (kv["label"] == "copy" || kv["label"] == "zmq") RATE[X, kv["test"]] = RATE[X, kv["test"]] " " kv["value"]
    else if (kv["test"] ~ /^load_put/) LOADR[X] = kv["value"]
    else if (kv["test"] ~ /^verify_get/) VER[X] = kv["errors"] "/" kv["n"]
    else if (kv["test"] == "rereplicate") for (k in kv) R[X, k] = kv[k]
}
END {
    for (i = 1; i <= nx; i++) for (j = i + 1; j <= nx; j++)
        if (DD[Xs[j]] + 0 < DD[Xs[i]] + 0 || (DD[Xs[j]] + 0 == DD[Xs[i]] + 0 && Xs[j] < Xs[i])) { t = Xs[i]; Xs[i] = Xs[j]; Xs[j] = t }
    print "Re-replication after kill -9 of one of 4 nodes (N=3, W=2, R=2); times in s from the kill (status polled every 0.2 s):"
    print ""
    print "| run | D MiB | load MiB/s | keys per node | MiB to copy (victim copies) | ring of 3 consistent | under>0 seen | copies growing | 3 copies again | under_replicated = 0 | MiB/s kill..3 copies | MiB/s streaming (growing..3 copies) | verify errors / gets |"
    print "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= nx; i++) { X = Xs[i]; if (!((X, "k_dead") in R)) continue
        kd = R[X, "k_dead"]; tc = R[X, "t_copies"]; tf = R[X, "t_first"]
        r1 = (tc != "nan" && tc > 0) ? kd / tc : "nan"
        r2 = (tc != "nan" && tf != "nan" && tc > tf) ? kd / (tc - tf) : "nan"
        RR1[X] = r1; RR2[X] = r2
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", X, DD[X], f(LOADR[X]), R[X, "per_node_before"], kd,
            f(R[X, "t_ring"]), f(R[X, "t_under"]), f(R[X, "t_first"]), f(tc), f(R[X, "t_done"]), f(r1), f(r2), VER[X] }
    print ""
    print "Copy rates measured just before and after each run, MiB/s (mean of the two), and the re-replication rate over [kill, 3 copies] / [growing, 3 copies] as a fraction of each:"
    print ""
    print "| run | TCP loopback 1 MiB writes | ZeroMQ PUSH/PULL 1 MiB msgs | memcpy 1 MiB | tmpfs write+fsync 1 MiB | rerep / TCP | rerep / ZeroMQ stream | rerep / tmpfs write |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= nx; i++) { X = Xs[i]
        tcp = mean2(RATE[X, "tcp_loopback_1024KiB"]); z = mean2(RATE[X, "stream_1024KiB"])
        m = mean2(RATE[X, "memcpy_1MiB"]); fw = mean2(RATE[X, "file_write_1MiB_fsync"])
        row = sprintf("| %s | %.0f | %.0f | %.0f | %.0f", X, tcp, z, m, fw)
        if ((X in RR1) && RR1[X] != "nan" && tcp > 0 && z > 0 && fw > 0)
            row = row sprintf(" | %.3f / %.3f | %.3f / %.3f | %.3f / %.3f |", RR1[X] / tcp, (RR2[X] == "nan" ? 0 : RR2[X] / tcp),
                RR1[X] / z, (RR2[X] == "nan" ? 0 : RR2[X] / z), RR1[X] / fw, (RR2[X] == "nan" ? 0 : RR2[X] / fw))
        else row = row " | - | - | - |"
        print row }
}' "$KV"
[ "$FAILURES" -eq 0 ] || { echo "rereplicate: $FAILURES steps reported failures" >&2; exit 1; }
