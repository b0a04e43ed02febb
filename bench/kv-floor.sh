#!/usr/bin/env bash
# kv-floor.sh [ROUNDS=3] — where a single store operation's time goes, next
# to the transport it runs on (issue 9: "show the profile that proves where
# the floor is"). Per round, on one 3-node ring (N=3/W=2/R=2, ids pinned to
# k*2^64/3, data on tmpfs, each node with --metrics):
#   zmq     ../shared/bench/zmq-rtt.c REQ/REP ping-pong of 1 KiB (p50)
#   tcp     the same over a plain TCP socket (p50)
#   put     bench/kv-load, 1 KiB puts at one client for SECS seconds: p50,
#           the client's and the nodes' CPU per put, and the mean time a
#           put spent at its authority (kvnode_coordinated_request_duration_
#           seconds{op="put"}: from the decoded KV_PUT to its answer being
#           queued, i.e. the replica round trip and both nodes' work; the
#           authority's own ZeroMQ receive and send, the client <-> authority
#           hop and the client are the rest)
#   get     1 KiB gets of the keys just written (direct reads, the client
#           asking R replicas itself; kv-load's direct= and coordinated=
#           counts are kept): p50, CPU per get
# With PERF=1 (needs perf), `perf record -a` runs during each put and get
# phase; the top of its report by process, object and symbol (idle time
# included, as swapper) goes next to the results, as
# floor-<timestamp>-r<round>-<op>.perf.txt.
# SPIN_US=N starts the nodes with --spin-us N (default: kvnode's own).
# With BUSY=1, one busy loop per CPU at nice 19 runs throughout: the vCPUs
# then never halt, which shows what waking a halted vCPU costs on a VM (a
# wake-up of a thread on an idle CPU waits for the hypervisor to run that
# vCPU again).
#
# Output: RESULT lines in $RESULTS_DIR/kv/floor-<timestamp>.kv and a
# markdown table of medians with each operation's p50 as a multiple of the
# ZeroMQ round trip.
# Environment: BUILD_DIR (default <repo>/build), RESULTS_DIR (default
# /tmp/bench/results), DATA_ROOT, SECS=3, PERF=0, BUSY=0, SPIN_US, KEEP=1.
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
    [ -n "${SPIN_US:-}" ] && args+=(--spin-us "$SPIN_US")
    # shellcheck disable=SC2017  # 2^64/3 without overflow, as kv-profile.sh
    args+=(--id "$(printf '0x%x' $((i * (0x7fffffffffffffff / 3 * 2 + 1))))")
    "$KVNODE" "${args[@]}" </dev/null >"$T/n$i.log" 2>&1 &
    PIDS+=($!)
    NODE_PIDS+=($!)
    EPS+=${EPS:+,}tcp://127.0.0.1:${P[$i]}
    sleep 0.2
done
# every node lists the three members, up, under one epoch (as the tests'
# wait_member_count): until then replica sets, and direct reads, may differ
members_agree() {
    local i json epochs=''
    for i in 0 1 2; do
        json=$("$DHTCTL" --peer "127.0.0.1:${P[$i]}" --timeout-ms 1000 members --json 2>/dev/null) ||
            return 1
        jq -e '(.members | length) == 3 and all(.members[]; .state == "up")' <<<"$json" >/dev/null ||
            return 1
        epochs+="$(jq -r .epoch <<<"$json") "
    done
    [ "$(tr ' ' '\n' <<<"$epochs" | sed '/^$/d' | sort -u | wc -l)" = 1 ]
}
for ((w = 0; ; w++)); do
    members_agree && break
    ((w < 300)) || { echo "kv-floor: the member tables did not agree within 30 s" >&2; exit 1; }
    sleep 0.1
done
sleep 2 # the copies settle (the authorities vouch for direct reads once they have)

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
rec() { echo "RESULT label=floor${BUSY:+-busy$BUSY}${SPIN_US:+-spin$SPIN_US} run=r$r test=$1 $2 round=$r load1=$(cut -d' ' -f1 /proc/loadavg)" >>"$KV"; }
load_op() { # OP KEYS: for a get, the keys the put before it wrote
    local op=$1 keys=$2 out t0 t1 c0 c1 n pp=''
    c0=$(coord_put)
    t0=$(node_ticks)
    if [ "${PERF:-0}" = 1 ]; then
        perf record -q -a -F 999 -o "$T/$op.perf" -- sleep "$((SECS + 1))" 2>"$T/perf.err" &
        pp=$!
        PIDS+=("$pp")
    fi
    out=$("$KL" --peer "$EPS" --op "$op" --size 1024 --concurrency 1 --seconds "$SECS" \
        --keys "$keys" --prefix "floor$r" --seed "$r" | grep '^RESULT')
    t1=$(node_ticks)
    c1=$(coord_put)
    if [ -n "$pp" ]; then
        wait "$pp" || echo "kv-floor: perf record failed: $(head -c 300 "$T/perf.err")" >&2
        perf report -i "$T/$op.perf" --no-children --stdio --sort comm,dso,sym -g none \
            --percent-limit 0.5 >"${KV%.kv}-r$r-$op.perf.txt" 2>"$T/perf.err" ||
            echo "kv-floor: perf report failed: $(head -c 300 "$T/perf.err")" >&2
    fi
    n=$(sed -E 's/.* n=([0-9]+) .*/\1/' <<<"$out")
    WRITTEN=$(sed -E 's/.* keys_written=([0-9]+) .*/\1/' <<<"$out")
    local extra
    extra="p50_us=$(sed -E 's/.* lat_p50_us=([0-9.]+) .*/\1/' <<<"$out")"
    extra+=" ops_per_s=$(sed -E 's/.* value=([0-9.]+) .*/\1/' <<<"$out")"
    extra+=" client_cpu_us=$(sed -E 's/.* client_cpu_us_per_op=([0-9.]+) .*/\1/' <<<"$out")"
    [ "$op" = get ] && extra+=" direct=$(sed -E 's/.* direct=([0-9-]+).*/\1/' <<<"$out")" &&
        extra+=" coordinated=$(sed -E 's/.* coordinated=([0-9-]+).*/\1/' <<<"$out")"
    extra+=" nodes_cpu_us=$(awk -v d=$((t1 - t0)) -v k="$TCK" -v n="$((n + 5))" 'BEGIN { printf "%.1f", d * 1e6 / k / n }')"
    read -r s0 k0 <<<"$c0"
    read -r s1 k1 <<<"$c1"
    ((k1 > k0)) && extra+=" coord_us=$(awk -v s="$s1" -v t="$s0" -v n=$((k1 - k0)) 'BEGIN { printf "%.1f", (s - t) * 1e6 / n }')"
    rec "${op}_1KiB_c1" "$extra"
    echo "  $op: $extra"
}

if [ "${BUSY:-0}" = 1 ]; then
    for ((i = 0; i < $(nproc); i++)); do
        nice -n 19 sh -c 'while :; do :; done' &
        PIDS+=($!)
    done
fi
echo "== kv-floor: 3-node ring, $(nproc) CPUs, data in $T, SECS=$SECS, BUSY=${BUSY:-0}, SPIN_US=${SPIN_US:-default}, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= ROUNDS; r++)); do
    echo "## round $r/$ROUNDS"
    z=$("$ZR" rtt 20000 1024 "$("$FREEPORT" 1)" | grep '^RESULT')
    rec zmq_rtt_1KiB "p50_us=$(sed -E 's/.* lat_p50_us=([0-9.]+).*/\1/' <<<"$z")"
    t=$("$ZR" tcprtt 20000 1024 "$("$FREEPORT" 1)" | grep '^RESULT')
    rec tcp_rtt_1KiB "p50_us=$(sed -E 's/.* lat_p50_us=([0-9.]+).*/\1/' <<<"$t")"
    echo "  zmq rtt p50 $(sed -E 's/.* lat_p50_us=([0-9.]+).*/\1/' <<<"$z") us, tcp $(sed -E 's/.* lat_p50_us=([0-9.]+).*/\1/' <<<"$t") us"
    load_op put 1000000
    load_op get "$WRITTEN"
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
    print "| test | p50 µs | x zmq | ops/s | mean at the authority µs | client CPU µs/op | nodes CPU µs/op |"
    print "|---|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= nt; i++) {
        t = order[i]; p = med(V[t, "p50_us"])
        printf "| %s | %s | %s | %s | %s | %s | %s |\n", t, p,
            (z > 0 ? sprintf("%.2f", p / z) : "-"), med(V[t, "ops_per_s"]), med(V[t, "coord_us"]),
            med(V[t, "client_cpu_us"]), med(V[t, "nodes_cpu_us"])
    }
}' "$KV"
