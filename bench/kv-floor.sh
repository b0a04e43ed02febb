#!/usr/bin/env bash
# kv-floor.sh [ROUNDS=3] — where a single store operation's time goes, next
# to the transport it runs on (issue 9: "show the profile that proves where
# the floor is"). Per round, on one 3-node ring (N=3/W=2/R=2, ids pinned to
# k*2^64/3, data on tmpfs, each node with --metrics):
#   zmq     ../shared/bench/zmq-rtt.c REQ/REP ping-pong of 1 KiB (p50)
#   tcp     the same over a plain TCP socket (p50)
#   put     bench/kv-load, 1 KiB puts at one client for SECS seconds: p50,
#           the client's and the nodes' CPU per put, and the coordinator's
#           part (kvnode_coordinated_request_duration_seconds{op="put"}:
#           from the KV_PUT's arrival at the key's authority to its answer,
#           i.e. the replica round trip and both nodes' work; the rest of
#           the p50 is the client <-> authority hop and the client)
#   get     1 KiB gets of the keys just written (direct reads: the client
#           asks R replicas itself): p50, CPU per get
# With PERF=1 (needs perf), `perf record -a` runs during each put and get
# phase; the top of its report by process, object and symbol (idle time
# included, as swapper) goes next to the results, as
# floor-<timestamp>-r<round>-<op>.perf.txt.
#
# Output: RESULT lines in $RESULTS_DIR/kv/floor-<timestamp>.kv and a
# markdown table of medians with each operation's p50 as a multiple of the
# ZeroMQ round trip.
# Environment: BUILD_DIR (default <repo>/build), RESULTS_DIR (default
# /tmp/bench/results), DATA_ROOT, SECS=3, PERF=0, KEEP=1.
# Typical time: ~15 s per round (+ perf's reports with PERF=1).
set -euo pipefail
ROUNDS=${1:-3}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "usage: kv-floor.sh [ROUNDS]" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build
SECS=${SECS:-3}
bench_require kv-floor "$KVNODE" "$DHTCTL" "$FREEPORT" "$BUILD_DIR/kvnode/libkvio.a" "$BUILD_DIR/ringlib/libring.a"
bench_need kv-floor curl jq
[ "${PERF:-0}" = 1 ] && bench_need kv-floor perf
bench_data_root
bench_tmpdir dhtfs-kv-floor "$DATA_ROOT"
mkdir -p "$BIN_DIR" "$RESULTS_DIR/kv"
KL=$BIN_DIR/kv-load
bench_build_kvload "$ROOT" "$BUILD_DIR" "$KL"
ZR=$BIN_DIR/zmq-rtt
bench_build_zmq_rtt "$ZR"

mapfile -t P < <("$FREEPORT" 8)
EPS=
NODE_PIDS=()
for ((i = 0; i < 3; i++)); do
    args=(--listen "tcp://127.0.0.1:${P[$i]}" --data "$T/n$i.data" --log-level warn
        --replicas 3 --write-quorum 2 --read-quorum 2 --metrics "127.0.0.1:${P[$((i + 3))]}")
    ((i > 0)) && args+=(--join "tcp://127.0.0.1:${P[0]}")
    # shellcheck disable=SC2017  # 2^64/3 without overflow, as kv-profile.sh
    args+=(--id "$(printf '0x%x' $((i * (0x7fffffffffffffff / 3 * 2 + 1))))")
    "$KVNODE" "${args[@]}" </dev/null >"$T/n$i.log" 2>&1 &
    PIDS+=($!)
    NODE_PIDS+=($!)
    EPS+=${EPS:+,}tcp://127.0.0.1:${P[$i]}
    sleep 0.2
done
for ((w = 0; ; w++)); do
    "$DHTCTL" --peer "127.0.0.1:${P[0]}" --timeout-ms 1000 ring --json 2>/dev/null |
        jq -e '.nodes | length == 3' >/dev/null && break
    ((w < 300)) || { echo "kv-floor: the ring did not converge" >&2; exit 1; }
    sleep 0.1
done
sleep 2 # the replica sets settle (direct reads need the authorities' vouching)

TCK=$(getconf CLK_TCK)
node_ticks() {
    local p t=0 a
    for p in "${NODE_PIDS[@]}"; do
        read -r -a a <"/proc/$p/stat"
        t=$((t + a[13] + a[14]))
    done
    echo "$t"
}
# coord_put: "seconds count" of the coordinated puts answered ok, all nodes
coord_put() {
    local i
    for i in 3 4 5; do
        curl -s "http://127.0.0.1:${P[$i]}/metrics"
    done | awk '/^kvnode_coordinated_request_duration_seconds_(sum|count)\{op="put",result="ok"\}/ {
        if ($1 ~ /_sum/) s += $2; else c += $2 } END { printf "%.6f %d\n", s, c }'
}
KV=$RESULTS_DIR/kv/floor-$(date +%Y%m%d-%H%M%S).kv
: >"$KV"
rec() { echo "RESULT label=floor run=r$r test=$1 $2 round=$r load1=$(cut -d' ' -f1 /proc/loadavg)" >>"$KV"; }
load_op() { # OP
    local op=$1 out t0 t1 c0 c1 n
    t0=$(node_ticks)
    c0=$(coord_put)
    if [ "${PERF:-0}" = 1 ]; then
        perf record -q -a -F 999 -o "$T/$op.perf" -- sleep "$SECS" 2>/dev/null &
        local pp=$!
    fi
    out=$("$KL" --peer "$EPS" --op "$op" --size 1024 --concurrency 1 --seconds "$SECS" \
        --keys 5000 --prefix floor --seed "$r" | grep '^RESULT')
    if [ "${PERF:-0}" = 1 ]; then
        wait "$pp" || true
        perf report -i "$T/$op.perf" --no-children --stdio --sort comm,dso,sym -g none \
            --percent-limit 0.5 >"${KV%.kv}-r$r-$op.perf.txt" 2>/dev/null || true
    fi
    t1=$(node_ticks)
    c1=$(coord_put)
    n=$(sed -E 's/.* n=([0-9]+) .*/\1/' <<<"$out")
    local extra
    extra="p50_us=$(sed -E 's/.* lat_p50_us=([0-9.]+) .*/\1/' <<<"$out")"
    extra+=" ops_per_s=$(sed -E 's/.* value=([0-9.]+) .*/\1/' <<<"$out")"
    extra+=" client_cpu_us=$(sed -E 's/.* client_cpu_us_per_op=([0-9.]+) .*/\1/' <<<"$out")"
    extra+=" nodes_cpu_us=$(awk -v d=$((t1 - t0)) -v k="$TCK" -v n="$((n + 5))" 'BEGIN { printf "%.1f", d * 1e6 / k / n }')"
    read -r s0 k0 <<<"$c0"
    read -r s1 k1 <<<"$c1"
    ((k1 > k0)) && extra+=" coord_us=$(awk -v s="$s1" -v t="$s0" -v n=$((k1 - k0)) 'BEGIN { printf "%.1f", (s - t) * 1e6 / n }')"
    rec "${op}_1KiB_c1" "$extra"
    echo "  $op: $extra"
}

echo "== kv-floor: 3-node ring, $(nproc) CPUs, data in $T, SECS=$SECS, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= ROUNDS; r++)); do
    echo "## round $r/$ROUNDS"
    z=$("$ZR" rtt 20000 1024 "$("$FREEPORT" 1)" | grep '^RESULT')
    rec zmq_rtt_1KiB "p50_us=$(sed -E 's/.* lat_p50_us=([0-9.]+).*/\1/' <<<"$z")"
    t=$("$ZR" tcprtt 20000 1024 "$("$FREEPORT" 1)" | grep '^RESULT')
    rec tcp_rtt_1KiB "p50_us=$(sed -E 's/.* lat_p50_us=([0-9.]+).*/\1/' <<<"$t")"
    echo "  zmq rtt p50 $(sed -E 's/.* lat_p50_us=([0-9.]+).*/\1/' <<<"$z") us, tcp $(sed -E 's/.* lat_p50_us=([0-9.]+).*/\1/' <<<"$t") us"
    load_op put
    load_op get
done
echo "## results: $KV"
echo
awk '
function med(str,   a, n, i, j, t) {
    n = split(str, a, " ")
    if (n == 0) return ""
    for (i = 2; i <= n; i++) { t = a[i] + 0; j = i - 1
        while (j >= 1 && a[j] + 0 > t) { a[j + 1] = a[j]; j-- }
        a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
}
/^RESULT / {
    for (i = 2; i <= NF; i++) { p = index($i, "="); k = substr($i, 1, p - 1); v = substr($i, p + 1)
        if (k == "test") t = v; else kv[k] = v }
    if (!(t in seen)) { seen[t] = 1; order[++nt] = t }
    split("p50_us ops_per_s client_cpu_us nodes_cpu_us coord_us", f, " ")
    for (i in f) if (f[i] in kv) V[t, f[i]] = V[t, f[i]] " " kv[f[i]]
    delete kv
}
END {
    z = med(V["zmq_rtt_1KiB", "p50_us"])
    print "Medians of the rounds; \"x zmq\" = p50 over the ZeroMQ 1 KiB round trip'"'"'s p50."
    print ""
    print "| test | p50 µs | x zmq | ops/s | coordinator µs | client CPU µs/op | nodes CPU µs/op |"
    print "|---|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= nt; i++) {
        t = order[i]; p = med(V[t, "p50_us"])
        printf "| %s | %s | %s | %s | %s | %s | %s |\n", t, p,
            (z > 0 ? sprintf("%.2f", p / z) : "-"), med(V[t, "ops_per_s"]), med(V[t, "coord_us"]),
            med(V[t, "client_cpu_us"]), med(V[t, "nodes_cpu_us"])
    }
}' "$KV"
