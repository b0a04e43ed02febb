#!/usr/bin/env bash
# kv-ab.sh [ROUNDS=4] NAME=SRC_DIR:BUILD_DIR NAME=SRC_DIR:BUILD_DIR [...] —
# A/B (or A/B/C) of kvnode builds: one 3-node ring (N=3/W=2/R=2, ids pinned
# to k*2^64/3, data on tmpfs) per build, all started side by side, and the
# kv-bench.sh loads (1 KiB c=1, 1 KiB c=4, 1 MiB c=1, 1 MiB c=4: a SECS-second
# bench/kv-load put, then a SECS-second get of exactly the keys that put wrote,
# every value checked) run against each ring in turn. Interleaving: within a
# round, for each load, the builds run one after the other (put+get each);
# the build order is reversed every other round (A B / B A / A B / B A ...),
# so slow drifts of the shared machine's load hit every build alike.
#
# SRC_DIR is the source tree of that build (kv-load.c from THIS checkout is
# compiled with SRC_DIR's headers and linked against BUILD_DIR's libkvio.a /
# libring.a into BUILD_DIR/bench-bin/kv-load-ab, i.e. each build gets its own
# client library, as kv-bench.sh does with BUILD_DIR).
#
# Around each client run, as kv-profile.sh does, the three nodes' CPU time
# (utime+stime from /proc/PID/stat, 10 ms ticks) is read, and in addition
# the loopback interface's tx_bytes (/sys/class/net/lo/statistics: every
# byte sent over 127.0.0.1 in this network namespace, client <-> nodes and
# node <-> node, TCP/IP headers included, and whatever else uses loopback
# meanwhile, e.g. the idle rings' stabilization); both are divided by the
# operations issued (timed + 5*C warm-up).
#
# Environment: RESULTS_DIR (default /tmp/bench/results; RESULT lines in
# $RESULTS_DIR/kv/ab-*.kv), DATA_ROOT (default /dev/shm if tmpfs), SECS=2,
# LOADS (default "1024:1 1024:4 1M:1 1M:4", SIZE:CLIENTS pairs),
# KEYS_1K=100000, KEYS_1M=256, KEEP=1 keeps node dirs and logs.
# Typical time: ~18 s per build per round + ~3 s setup per build.
set -euo pipefail
ROUNDS=${1:-4}
shift || true
[ $# -ge 2 ] || { echo "usage: kv-ab.sh ROUNDS NAME=SRC_DIR:BUILD_DIR NAME=SRC_DIR:BUILD_DIR [...]" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RESULTS_DIR=${RESULTS_DIR:-/tmp/bench/results}
SECS=${SECS:-2}
KEYS_1K=${KEYS_1K:-100000}
KEYS_1M=${KEYS_1M:-256}
bench_data_root

NAMES=()
declare -A SRC BLD KL EPS RPIDS
for spec in "$@"; do
    name=${spec%%=*} rest=${spec#*=}
    SRC[$name]=$(cd "${rest%%:*}" && pwd)
    BLD[$name]=$(cd "${rest#*:}" && pwd)
    NAMES+=("$name")
    for f in kvnode/kvnode kvnode/dhtctl kvnode/libkvio.a ringlib/libring.a tests/freeport; do
        [ -e "${BLD[$name]}/$f" ] || { echo "kv-ab: ${BLD[$name]}/$f missing" >&2; exit 2; }
    done
done

bench_tmpdir dhtfs-kv-ab "$DATA_ROOT"

mkdir -p "$RESULTS_DIR/kv"
for name in "${NAMES[@]}"; do
    b=${BLD[$name]} s=${SRC[$name]}
    KL[$name]=$b/bench-bin/kv-load-ab
    bench_build_kvload "$s" "$b" "${KL[$name]}"
done

start_ring() { # NAME
    local name=$1 i ports eps='' pids='' b=${BLD[$1]}
    mapfile -t ports < <("$b/tests/freeport" 3)
    for ((i = 0; i < 3; i++)); do
        args=(--listen "tcp://127.0.0.1:${ports[$i]}" --data "$T/$name-n$i.data" --log-level warn
            --replicas 3 --write-quorum 2 --read-quorum 2)
        ((i > 0)) && args+=(--join "tcp://127.0.0.1:${ports[0]}")
        # shellcheck disable=SC2017  # 2^64/3 without overflow, as lookup-bench.sh
        args+=(--id "$(printf '0x%x' $((i * (0x7fffffffffffffff / 3 * 2 + 1))))")
        "$b/kvnode/kvnode" "${args[@]}" </dev/null >"$T/$name-n$i.log" 2>&1 &
        PIDS+=($!)
        pids+="$! "
        eps+=${eps:+,}tcp://127.0.0.1:${ports[$i]}
        sleep 0.2
    done
    EPS[$name]=$eps
    RPIDS[$name]=$pids
    for ((w = 0; ; w++)); do
        "$b/kvnode/dhtctl" --peer "127.0.0.1:${ports[0]}" --timeout-ms 1000 ring --json 2>/dev/null |
            jq -e '.nodes as $a | ($a | length) == 3 and all(range(0; 3); . as $i
                | $a[$i].succ == $a[($i + 1) % 3].id and $a[$i].pred == $a[($i + 2) % 3].id)' \
                >/dev/null && break
        ((w < 300)) || { echo "kv-ab: ring $name did not converge" >&2; exit 1; }
        sleep 0.1
    done
}
for name in "${NAMES[@]}"; do start_ring "$name"; done

node_counters() { # PIDS...: "cpu_ticks(summed) lo_tx_bytes"
    local p t=0 a
    for p in "$@"; do
        read -r -a a <"/proc/$p/stat"
        t=$((t + a[13] + a[14]))
    done
    echo "$t $(cat /sys/class/net/lo/statistics/tx_bytes)"
}
TCK=$(getconf CLK_TCK)
KV=$RESULTS_DIR/kv/ab-$(date +%Y%m%d-%H%M%S).kv
: >"$KV"
FAILURES=0
LASTKEYS=0
one() { # NAME OP SIZE CONC KEYS
    local name=$1 op=$2 size=$3 conc=$4 keys=$5 out rc=0 res n issued
    # shellcheck disable=SC2086  # RPIDS holds a space-separated pid list
    read -r t0 w0 < <(node_counters ${RPIDS[$name]})
    out=$(timeout 60 "${KL[$name]}" --peer "${EPS[$name]}" --op "$op" --size "$size" --concurrency "$conc" \
        --seconds "$SECS" --prefix "k$size-c$conc" --seed "$r" --keys "$keys" \
        --label "$name" --run "r$r" 2>"$T/client.err") || rc=$?
    # shellcheck disable=SC2086
    read -r t1 w1 < <(node_counters ${RPIDS[$name]})
    res=$(grep '^RESULT' <<<"$out" || true)
    if [ "$rc" -ne 0 ] || [ -z "$res" ]; then
        echo "  !! $name $op $size c$conc exit $rc: $(head -c 300 "$T/client.err" | tr '\n' '|')"
        FAILURES=$((FAILURES + 1))
    fi
    LASTKEYS=0
    [ -n "$res" ] || return 0
    n=$(sed -E 's/.* n=([0-9]+) .*/\1/' <<<"$res")
    issued=$((n + 5 * conc))
    res+=" round=$r load1=$(cut -d' ' -f1 /proc/loadavg)"
    res+=" nodes_cpu_us_per_op=$(awk -v d=$((t1 - t0)) -v k="$TCK" -v n="$issued" 'BEGIN { printf "%.1f", d * 1e6 / k / n }')"
    res+=" lo_kib_per_op=$(awk -v d=$((w1 - w0)) -v n="$issued" 'BEGIN { printf "%.1f", d / 1024 / n }')"
    echo "$res" >>"$KV"
    grep -v '^RESULT' <<<"$out" | sed "s/^/  $name: /"
    LASTKEYS=$(sed -E 's/.* keys_written=([0-9]+) .*/\1/' <<<"$res")
}

echo "== kv-ab: ${NAMES[*]}; $(nproc) CPUs, data in $T ($(stat -f -c %T "$T")), SECS=$SECS," \
    "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for name in "${NAMES[@]}"; do echo "   $name: ${BLD[$name]} (src ${SRC[$name]})"; done
T0=$(date +%s)
for ((r = 1; r <= ROUNDS; r++)); do
    order=("${NAMES[@]}")
    if ((r % 2 == 0)); then
        order=()
        for ((k = ${#NAMES[@]} - 1; k >= 0; k--)); do order+=("${NAMES[$k]}"); done
    fi
    echo "## round $r/$ROUNDS (${order[*]}), load $(cut -d' ' -f1-3 /proc/loadavg)"
    for load in ${LOADS:-1024:1 1024:4 1M:1 1M:4}; do
        IFS=: read -r size conc <<<"$load"
        keys=$KEYS_1K
        [ "$size" = 1M ] && keys=$KEYS_1M
        for name in "${order[@]}"; do
            one "$name" put "$size" "$conc" "$keys"
            if [ "$LASTKEYS" -gt 0 ]; then one "$name" get "$size" "$conc" "$LASTKEYS"
            else echo "  !! $name put wrote no keys; get skipped"; FAILURES=$((FAILURES + 1)); fi
        done
    done
done
alive=0
for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
[ "$alive" -eq "${#PIDS[@]}" ] || { echo "!! only $alive of ${#PIDS[@]} nodes alive at the end"; FAILURES=$((FAILURES + 1)); }
for name in "${NAMES[@]}"; do
    n=$(cat "$T/$name"-n*.log | wc -l)
    ((n == 0)) || { echo "## $name logs ($n lines at warn or above), last 3:"; cat "$T/$name"-n*.log | tail -n 3 | sed 's/^/  /'; }
done
echo "## total $(($(date +%s) - T0)) s; load: $(cut -d' ' -f1-3 /proc/loadavg); results: $KV"
echo

# ---- markdown: medians over rounds; ratios X / first build taken per round,
# then the median (min..max)
awk -v names="${NAMES[*]}" '
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
function ratio(arr, a, b, t,   s, r) {
    s = ""
    for (r in rounds) if ((a, t, r) in arr && (b, t, r) in arr && arr[b, t, r] > 0) s = s " " arr[a, t, r] / arr[b, t, r]
    return s == "" ? "-" : rng(med(s))
}
/^RESULT / {
    delete kv
    for (i = 2; i <= NF; i++) { p = index($i, "="); kv[substr($i, 1, p - 1)] = substr($i, p + 1) }
    L = kv["label"]; t = kv["test"]; r = kv["round"]; rounds[r] = 1
    OPS[L, t, r] = kv["value"]; P50[L, t, r] = kv["lat_p50_us"]; CPU[L, t, r] = kv["nodes_cpu_us_per_op"]
    ops[L, t] = ops[L, t] " " kv["value"]; p50[L, t] = p50[L, t] " " kv["lat_p50_us"]
    p99[L, t] = p99[L, t] " " kv["lat_p99_us"]; cpu[L, t] = cpu[L, t] " " kv["nodes_cpu_us_per_op"]
    ccpu[L, t] = ccpu[L, t] " " kv["client_cpu_us_per_op"]; wch[L, t] = wch[L, t] " " kv["lo_kib_per_op"]
    N[L, t] += kv["n"]; E[L, t] += kv["errors"]
    ld = ld " " kv["load1"]
}
END {
    nn = split(names, NM, " "); A = NM[1]
    nt = split("put_1KiB_c1 get_1KiB_c1 put_1KiB_c4 get_1KiB_c4 put_1MiB_c1 get_1MiB_c1 put_1MiB_c4 get_1MiB_c4", T, " ")
    print "ops/s, median over rounds (min..max); X / " A ": per-round ratio, median (min..max):"
    print ""
    h = "| test"; s = "|---"
    for (k = 1; k <= nn; k++) { h = h " | " NM[k] " ops/s"; s = s "|---:" }
    for (k = 2; k <= nn; k++) { h = h " | " NM[k] " / " A " ops/s"; s = s "|---:" }
    print h " |"; print s "|"
    for (i = 1; i <= nt; i++) { t = T[i]; row = "| " t
        for (k = 1; k <= nn; k++) row = row " | " (((NM[k], t) in ops) ? rng(med(ops[NM[k], t])) : "-")
        for (k = 2; k <= nn; k++) row = row " | " ratio(OPS, NM[k], A, t)
        print row " |" }
    print ""
    print "latency p50 / p99 us, nodes CPU us/op, client CPU us/op, loopback KiB/op (medians over rounds); ratios per round, median (min..max):"
    print ""
    h = "| test"; s = "|---"
    for (k = 1; k <= nn; k++) { h = h " | " NM[k] " p50 / p99 | " NM[k] " nodes CPU | " NM[k] " client CPU | " NM[k] " loopback KiB/op"; s = s "|---:|---:|---:|---:" }
    for (k = 2; k <= nn; k++) { h = h " | " NM[k] " / " A " p50 | " NM[k] " / " A " nodes CPU"; s = s "|---:|---:" }
    print h " |"; print s "|"
    for (i = 1; i <= nt; i++) { t = T[i]; row = "| " t
        for (k = 1; k <= nn; k++) { L = NM[k]
            row = row " | " f(med(p50[L, t])) " / " f(med(p99[L, t])) " | " f(med(cpu[L, t])) " | " f(med(ccpu[L, t])) " | " f(med(wch[L, t])) }
        for (k = 2; k <= nn; k++) row = row " | " ratio(P50, NM[k], A, t) " | " ratio(CPU, NM[k], A, t)
        print row " |" }
    print ""
    row = "errors / ops:"
    for (k = 1; k <= nn; k++) { e = 0; n = 0; for (i = 1; i <= nt; i++) { e += E[NM[k], T[i]]; n += N[NM[k], T[i]] }
        row = row " " NM[k] " " e " / " n ";" }
    print row
    print "load1 at the end of the runs: median " f(med(ld)) " (" f(MIN) ".." f(MAX) ")"
}' "$KV"
[ "$FAILURES" -eq 0 ] || { echo "kv-ab: $FAILURES client runs failed" >&2; exit 1; }
