#!/usr/bin/env bash
# kv-bench.sh [ROUNDS=3] — the replicated store (N=3/W=2/R=2) on a 3-node and
# a 5-node loopback ring, side by side with memcached and the ZeroMQ round
# trip, all in one run.
#
# Starts (private dir on tmpfs, free loopback ports, only the PIDs it started
# are killed on exit):
#   dhtfs3     3 kvnodes, --replicas 3 --write-quorum 2 --read-quorum 2
#   dhtfs5     5 kvnodes, the same quorum settings
#              (ids pinned to k*2^64/NODES, as in lookup-bench.sh)
#   memcached  -t 2 -m 2048 -I 2m on 127.0.0.1 (-I 2m: a 1 MiB value plus its
#              key does not fit the default 1 MiB item limit)
# waits until both rings' authorities vouch for direct reads (copies
# settled after the joins; a probe of gets of absent keys), and runs ROUNDS
# rounds of "units", the order reversed every other round:
#   zmq        ../shared/bench/zmq-rtt.c REQ/REP ping-pong of 64 B, 1 KiB and
#              1 MiB (N_ZMQ, N_ZMQ, N_ZMQ_1M round trips) and a plain TCP
#              ping-pong of 1 KiB: the floors
#   for each load (1 KiB c=1, 1 KiB c=4, 1 MiB c=1, 1 MiB c=4), for each of
#   dhtfs3 dhtfs5 memcached: bench/kv-load put for SECS seconds, then
#   kv-load get of exactly the keys that put wrote, for SECS seconds, every
#   value checked byte for byte (the value depends on the round: a stale
#   value from an earlier round counts as wrong).
# kv-load is the same closed-loop client for all three (one event loop, C
# operations in flight; kvclient for dhtfs, text protocol over C TCP
# connections for memcached). Keys wrap at KEYS_1K / KEYS_1M so the data on
# tmpfs stays bounded (KEYS_1M x 1 MiB x 3 replicas x 2 loads per ring).
# Then prints markdown: medians over rounds, per-round ratios dhtfs/memcached
# and dhtfs latency / ZeroMQ RTT of the same message size and round.
#
# Environment: BUILD_DIR (default <repo>/build-kvbench: kvnode, dhtctl,
# libkvio.a, libring.a, tests/freeport), BIN_DIR (default $BUILD_DIR/bench-bin),
# RESULTS_DIR (default /tmp/bench/results; RESULT lines in $RESULTS_DIR/kv/),
# DATA_ROOT (default /dev/shm if it is tmpfs, else /tmp), SECS=2 (per put or
# get run), N_ZMQ=5000, N_ZMQ_1M=200, KEYS_1K=100000, KEYS_1M=256,
# MAX_SECONDS=300 (no new round starts after that; each client run is capped
# at 60 s), KEEP=1 keeps the node dirs and logs, KVNODE_ARGS (extra kvnode
# arguments for both rings, e.g. "--tokens 0"). Needs cc, pkg-config, libzmq,
# libsodium, jq, memcached (apt-get install memcached).
# Typical time: ~60 s per round + ~10 s setup on 2 vCPUs.
set -euo pipefail
ROUNDS=${1:-3}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build-kvbench
SECS=${SECS:-2}
N_ZMQ=${N_ZMQ:-5000}
N_ZMQ_1M=${N_ZMQ_1M:-200}
KEYS_1K=${KEYS_1K:-100000}
KEYS_1M=${KEYS_1M:-256}
bench_require kv-bench "$KVNODE" "$DHTCTL" "$FREEPORT" "$BUILD_DIR/kvnode/libkvio.a" "$BUILD_DIR/ringlib/libring.a"
command -v memcached >/dev/null || { echo "kv-bench: memcached missing: apt-get install memcached" >&2; exit 2; }
bench_data_root

bench_tmpdir dhtfs-kv-bench "$DATA_ROOT"

# ---- build the clients (into BIN_DIR, nothing added to CMake)
mkdir -p "$BIN_DIR" "$RESULTS_DIR/kv"
KL=$BIN_DIR/kv-load
bench_build_kvload "$ROOT" "$BUILD_DIR" "$KL"
# zmq-rtt.c's REP server sets ZMQ_LINGER 0 and exits right after its last
# reply, which can drop that reply: with 1 MiB messages about 1 run in 5 then
# hangs forever (1 in 30 at 64 KiB, not seen at 64 B). The copy built here
# differs in that one line (linger -1 in rep_server), nothing that is timed.
ZR=$BIN_DIR/zmq-rtt-linger
if [ ! -x "$ZR" ] || [ "$SHARED/zmq-rtt.c" -nt "$ZR" ] || [ "$0" -nt "$ZR" ]; then
    sed '/^static void rep_server/,/^}/ s/int linger = 0;/int linger = -1; \/* kv-bench.sh *\//' \
        "$SHARED/zmq-rtt.c" >"$BIN_DIR/zmq-rtt-linger.c"
    grep -q 'linger = -1; /\* kv-bench.sh' "$BIN_DIR/zmq-rtt-linger.c" ||
        echo "kv-bench: warning: zmq-rtt.c changed, linger patch not applied" >&2
fi
bench_build_zmq_rtt "$ZR" "$BIN_DIR/zmq-rtt-linger.c"

# ---- rings and memcached
T0=$(date +%s)
declare -A EPS # ring name -> comma-separated endpoints
start_ring() { # NAME NODES
    local name=$1 n=$2 i args ports
    mapfile -t ports < <("$FREEPORT" "$n")
    local ep0=tcp://127.0.0.1:${ports[0]} eps=
    for ((i = 0; i < n; i++)); do
        args=(--listen "tcp://127.0.0.1:${ports[$i]}" --data "$T/$name-n$i.data" --log-level warn
            --replicas 3 --write-quorum 2 --read-quorum 2)
        # shellcheck disable=SC2206  # KVNODE_ARGS splits into words on purpose
        args+=(${KVNODE_ARGS:-})
        ((i > 0)) && args+=(--join "$ep0")
        # shellcheck disable=SC2017  # 2^64/n without overflow, as lookup-bench.sh
        args+=(--id "$(printf '0x%x' $((i * (0x7fffffffffffffff / n * 2 + 1))))")
        "$KVNODE" "${args[@]}" </dev/null >"$T/$name-n$i.log" 2>&1 &
        PIDS+=($!)
        eps+=${eps:+,}tcp://127.0.0.1:${ports[$i]}
        sleep 0.2
    done
    EPS[$name]=$eps
    RING_PORTS[$name]="${ports[*]}"
}
declare -A RING_PORTS
ring_ok() { # NAME NODES: every node sees NODES nodes with consistent pointers
    local port json
    for port in ${RING_PORTS[$1]}; do
        json=$("$DHTCTL" --peer "127.0.0.1:$port" --timeout-ms 1000 ring --json 2>/dev/null) || return 1
        jq -e --argjson n "$2" '.nodes as $a | ($a | length) == $n
            and all(range(0; $n); . as $i | $a[$i].succ == $a[($i + 1) % $n].id
                    and $a[$i].pred == $a[($i - 1 + $n) % $n].id)' <<<"$json" >/dev/null || return 1
    done
}
start_ring dhtfs3 3
start_ring dhtfs5 5
for ring in dhtfs3:3 dhtfs5:5; do
    for ((w = 0; ; w++)); do
        ring_ok "${ring%:*}" "${ring#*:}" && break
        if ((w >= 300)); then
            echo "kv-bench: ring ${ring%:*} did not converge within 30 s" >&2
            exit 1
        fi
        sleep 0.1
    done
done
# Steady state: under token placement a ring's authorities vouch for direct
# reads only once copies are where the placement puts them (some sync
# periods after the last join); until then gets are coordinated. Wait
# (at most 90 s) until a probe's gets of absent keys are mostly direct.
for ring in dhtfs3 dhtfs5; do
    for ((w = 0; ; w++)); do
        # (the keys are absent: kv-load exits 1 on every "missing" get)
        out=$("$KL" --peer "${EPS[$ring]}" --op get --keys 200 --ops 400 --prefix settle \
            --label "$ring" --test settle 2>"$T/settle.err") || true
        if ! [[ $out =~ direct=([0-9]+)\ coordinated=([0-9]+) ]]; then
            echo "kv-bench: $ring: the settle probe failed: $(head -c 600 "$T/settle.err")" >&2
            exit 1
        fi
        ((BASH_REMATCH[1] >= 200)) && break
        if ((w >= 90)); then
            echo "kv-bench: $ring: direct reads not vouched for within 90 s (${BASH_REMATCH[0]})" >&2
            break
        fi
        sleep 1
    done
done
mapfile -t XP < <("$FREEPORT" 5)
MC_PORT=${XP[0]} Z64=${XP[1]} Z1K=${XP[2]} Z1M=${XP[3]} TCP1K=${XP[4]}
u=()
[ "$(id -u)" = 0 ] && u=(-u root)
memcached -l 127.0.0.1 -p "$MC_PORT" -U 0 -m 2048 -t 2 -c 1024 -I 2m "${u[@]}" >"$T/memcached.log" 2>&1 &
PIDS+=($!)
TERM_PIDS[$!]=1
for ((w = 0; w < 50; w++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$MC_PORT") 2>/dev/null && break
    sleep 0.1
done
SETUP_S=$(($(date +%s) - T0))

KV=$RESULTS_DIR/kv/kv-$(date +%Y%m%d-%H%M%S).kv
: >"$KV"
FAILURES=0
LAST_KEYS=0
emit() { # run a client; human lines indented, RESULT lines (+ round) to $KV
    local rc=0 out l
    out=$(timeout 60 "$@" 2>"$T/client.err") || rc=$?
    while IFS= read -r l; do
        case $l in
        RESULT*)
            echo "$l round=$r" >>"$KV"
            [[ $l =~ keys_written=([0-9]+) ]] && LAST_KEYS=${BASH_REMATCH[1]}
            ;;
        *) echo "  $l" ;;
        esac
    done <<<"$out"
    if [ "$rc" -ne 0 ]; then
        echo "  !! exit $rc: ${*:1:12}: $(head -c 600 "$T/client.err" | tr '\n' '|')"
        FAILURES=$((FAILURES + 1))
    fi
}
unit() { # zmq | TARGET:SIZE:CONC
    if [ "$1" = zmq ]; then
        emit "$ZR" rtt "$N_ZMQ" 64 "$Z64"
        emit "$ZR" rtt "$N_ZMQ" 1024 "$Z1K"
        emit "$ZR" rtt "$N_ZMQ_1M" 1048576 "$Z1M"
        emit "$ZR" tcprtt "$N_ZMQ" 1024 "$TCP1K"
        return
    fi
    local target size conc keys where
    IFS=: read -r target size conc <<<"$1"
    keys=$KEYS_1K
    [ "$size" = 1M ] && keys=$KEYS_1M
    if [ "$target" = memcached ]; then where=(--memcached "127.0.0.1:$MC_PORT"); else where=(--peer "${EPS[$target]}"); fi
    local common=(--size "$size" --concurrency "$conc" --seconds "$SECS" --prefix "k$size-c$conc"
        --seed "$r" --label "$target" --run "r$r")
    LAST_KEYS=0
    emit "$KL" "${where[@]}" "${common[@]}" --op put --keys "$keys"
    if [ "$LAST_KEYS" -gt 0 ]; then
        emit "$KL" "${where[@]}" "${common[@]}" --op get --keys "$LAST_KEYS"
    else
        echo "  !! $target put wrote no keys; get skipped"
        FAILURES=$((FAILURES + 1))
    fi
}

echo "== libzmq $(pkg-config --modversion libzmq), $(memcached -V), $(nproc) CPUs, data in $T" \
    "($(stat -f -c %T "$T")), setup ${SETUP_S} s, SECS=$SECS, load: $(cut -d' ' -f1-3 /proc/loadavg)"
ORDER=(zmq)
for load in 1024:1 1024:4 1M:1 1M:4; do
    for target in dhtfs3 dhtfs5 memcached; do ORDER+=("$target:$load"); done
done
DEADLINE=$((T0 + ${MAX_SECONDS:-300}))
for ((r = 1; r <= ROUNDS; r++)); do
    if (($(date +%s) > DEADLINE)); then
        echo "!! time budget (${MAX_SECONDS:-300} s) spent: rounds $r..$ROUNDS skipped"
        break
    fi
    if ((r % 2)); then seq_=("${ORDER[@]}"); else
        seq_=()
        for ((k = ${#ORDER[@]} - 1; k >= 0; k--)); do seq_+=("${ORDER[$k]}"); done
    fi
    echo "## round $r/$ROUNDS (load $(cut -d' ' -f1-3 /proc/loadavg)): ${seq_[*]}"
    for s in "${seq_[@]}"; do unit "$s"; done
done
alive=0
for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
[ "$alive" -eq "${#PIDS[@]}" ] || { echo "!! only $alive of ${#PIDS[@]} server processes alive at the end"; FAILURES=$((FAILURES + 1)); }
for ring in dhtfs3 dhtfs5; do
    port=${RING_PORTS[$ring]%% *}
    echo "## $ring status: $("$DHTCTL" --peer "127.0.0.1:$port" --timeout-ms 3000 status --json 2>&1)"
    n=$(cat "$T/$ring"-n*.log | wc -l)
    ((n == 0)) || { echo "## $ring logs ($n lines at warn or above), last 5:"; cat "$T/$ring"-n*.log | tail -n 5 | sed 's/^/  /'; }
done
echo "## total $(($(date +%s) - T0)) s; load: $(cut -d' ' -f1-3 /proc/loadavg); results: $KV"
echo

# ---- markdown
awk '
function med(str,   a, n, i, j, t) {
    n = split(str, a, " ")
    for (i = 2; i <= n; i++) { t = a[i] + 0; j = i - 1
        while (j >= 1 && a[j] + 0 > t) { a[j + 1] = a[j]; j-- }
        a[j + 1] = t }
    MIN = a[1]; MAX = a[n]
    return n % 2 ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
}
function f(x) { return x >= 100 ? sprintf("%.0f", x) : x >= 10 ? sprintf("%.1f", x) : sprintf("%.2f", x) }
function rng(m) { return sprintf("%s (%s..%s)", f(m), f(MIN), f(MAX)) }
/^RESULT / {
    delete kv
    for (i = 2; i <= NF; i++) { p = index($i, "="); kv[substr($i, 1, p - 1)] = substr($i, p + 1) }
    L = kv["label"]; t = kv["test"]; r = kv["round"]
    rounds[r] = 1
    OPS[L, t, r] = kv["value"]; P50[L, t, r] = kv["lat_p50_us"]; P99[L, t, r] = kv["lat_p99_us"]
    MEAN[L, t, r] = kv["lat_mean_us"]
    ops[L, t] = ops[L, t] " " kv["value"]; p50[L, t] = p50[L, t] " " kv["lat_p50_us"]
    p99[L, t] = p99[L, t] " " kv["lat_p99_us"]; mean[L, t] = mean[L, t] " " kv["lat_mean_us"]
    if (L != "zmq") { N[L, t] += kv["n"]; E[L, t] += kv["errors"]; W[L, t] += kv["wrong"]
        M[L, t] += kv["missing"]; TO[L, t] += kv["timeouts"] }
    load[r] = load[r] " " kv["load1"]
}
function ratio(a, b, t, what, tb,   s, r, x) { # per-round a/b of what, median
    s = ""
    for (r in rounds) {
        if (what == "ops" && (a, t, r) in OPS && (b, t, r) in OPS && OPS[b, t, r] > 0) x = OPS[a, t, r] / OPS[b, t, r]
        else if (what == "p50" && (a, t, r) in P50 && (b, tb, r) in P50 && P50[b, tb, r] > 0) x = P50[a, t, r] / P50[b, tb, r]
        else if (what == "mean" && (a, t, r) in MEAN && (b, tb, r) in MEAN && MEAN[b, tb, r] > 0) x = MEAN[a, t, r] / MEAN[b, tb, r]
        else continue
        s = s " " x }
    if (s == "") return "-"
    return rng(med(s))
}
END {
    nt = split("put_1KiB_c1 get_1KiB_c1 put_1KiB_c4 get_1KiB_c4 put_1MiB_c1 get_1MiB_c1 put_1MiB_c4 get_1MiB_c4", T, " ")
    nl = split("dhtfs3 dhtfs5 memcached", LB, " ")
    print "Throughput, ops/s: median over rounds (min..max); ratios are per round, then the median (min..max):"
    print ""
    print "| test | dhtfs3 | dhtfs5 | memcached | dhtfs3 / memcached | dhtfs5 / memcached | dhtfs5 / dhtfs3 |"
    print "|---|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= nt; i++) { t = T[i]; row = "| " t
        for (k = 1; k <= nl; k++) row = row " | " (((LB[k], t) in ops) ? rng(med(ops[LB[k], t])) : "-")
        row = row " | " ratio("dhtfs3", "memcached", t, "ops") " | " ratio("dhtfs5", "memcached", t, "ops") " | " ratio("dhtfs5", "dhtfs3", t, "ops") " |"
        print row }
    print ""
    print "Latency, us: p50 / p99 / mean (medians over rounds); ZeroMQ REQ/REP RTT of the same message size (1 KiB or 1 MiB) in the same round:"
    print ""
    print "| test | dhtfs3 p50 / p99 / mean | dhtfs5 p50 / p99 / mean | memcached p50 / p99 / mean | zmq rtt p50 | dhtfs3 p50 / rtt p50 | dhtfs5 p50 / rtt p50 | memcached p50 / rtt p50 | dhtfs3 p50 / memcached p50 |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= nt; i++) { t = T[i]; row = "| " t
        tb = (t ~ /1MiB/) ? "rtt_1048576B" : "rtt_1024B"
        for (k = 1; k <= nl; k++) row = row " | " (((LB[k], t) in ops) ? f(med(p50[LB[k], t])) " / " f(med(p99[LB[k], t])) " / " f(med(mean[LB[k], t])) : "-")
        row = row " | " ((("zmq", tb) in p50) ? f(med(p50["zmq", tb])) : "-")
        for (k = 1; k <= nl; k++) row = row " | " ratio(LB[k], "zmq", t, "p50", tb)
        row = row " | " ratio("dhtfs3", "memcached", t, "p50", t) " |"
        print row }
    print ""
    print "Floors measured in the same rounds (zmq-rtt.c; medians over rounds):"
    print ""
    print "| test | round trips/s | p50 us | p99 us | mean us |"
    print "|---|---:|---:|---:|---:|"
    nz = split("tcp_rtt_1024B rtt_64B rtt_1024B rtt_1048576B", Z, " ")
    for (i = 1; i <= nz; i++) if (("zmq", Z[i]) in ops)
        printf "| %s | %s | %s | %s | %s |\n", Z[i], rng(med(ops["zmq", Z[i]])), f(med(p50["zmq", Z[i]])), f(med(p99["zmq", Z[i]])), f(med(mean["zmq", Z[i]]))
    print ""
    print "Checked operations (all rounds; errors = timeouts + missing + wrong + other):"
    print ""
    print "| test | dhtfs3 errors / ops | dhtfs5 errors / ops | memcached errors / ops |"
    print "|---|---:|---:|---:|"
    for (i = 1; i <= nt; i++) { t = T[i]; row = "| " t
        for (k = 1; k <= nl; k++) { L = LB[k]
            row = row " | " (((L, t) in N) ? sprintf("%d / %d%s", E[L, t], N[L, t], E[L, t] ? sprintf(" (to %d, miss %d, wrong %d)", TO[L, t], M[L, t], W[L, t]) : "") : "-") }
        print row " |" }
    print ""
    s = ""; for (r in rounds) s = s " " med(load[r]) "@r" r
    print "load1 (median of the runs in each round):" s
}' "$KV"
[ "$FAILURES" -eq 0 ] || { echo "kv-bench: $FAILURES client runs reported failures" >&2; exit 1; }
