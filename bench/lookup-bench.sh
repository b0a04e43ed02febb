#!/usr/bin/env bash
# lookup-bench.sh [ROUNDS=10] — real-process lookup latency on a 5-node local
# ring, side by side with the raw ZeroMQ / TCP round trip, in one run.
#
# Starts NODES (5) kvnode processes on free loopback ports (private temp dir,
# only the PIDs it started are killed on exit), waits until `dhtctl ring
# --json` shows every node with consistent pred/succ pointers and every finger
# table is exact, then runs ROUNDS rounds, the order reversed every other round:
#   zmq rtt_64B          ../shared/bench/zmq-rtt.c REQ/REP ping-pong (N_ZMQ)
#   zmq tcp_rtt_64B      the same over plain TCP (kernel floor)
#   ping                 PING to node 0 over one DEALER (N_LOOKUP)
#   lookup_recursive     FIND recursive to node 0 over one DEALER (N_LOOKUP)
#   lookup_iterative     FIND iterative from node 0, client follows hops (N_LOOKUP)
#   dhtctl_lookup_recursive  one `dhtctl lookup KEY` process per lookup (N_EXEC)
#   dhtctl_help_spawn    one `dhtctl --help` process per call (N_EXEC): the
#                        process start + dynamic linking floor under the above
# bench/lookup-latency.c and zmq-rtt.c are compiled into $BIN_DIR (no CMake).
# Then prints markdown: medians over rounds and per-round ratios to rtt_64B.
#
# Environment: BUILD_DIR (default <repo>/build-bench, must hold kvnode, dhtctl,
# libring.a, freeport), BIN_DIR (default $BUILD_DIR/bench-bin), RESULTS_DIR
# (default /tmp/bench/results; RESULT lines go to $RESULTS_DIR/ring/<ts>.kv),
# NODES=5, N_LOOKUP=4000, N_ZMQ=10000, N_EXEC=100, STABILIZE_MS (kvnode
# default 250), EVEN_IDS=1 (node k gets --id k*2^64/NODES, so the share of
# 0- and 1-forward lookups is the same in every run: 2/5 and 3/5 for 5 nodes;
# 0 = ids hashed from the endpoints, which change with the free ports),
# KEEP=1 keeps the temp dir. Needs cc, pkg-config, libzmq,
# libsodium, jq. MAX_SECONDS=120: no new round starts after that many seconds
# (each client run is also capped at 60 s), so the total stays under ~3 min.
# Typical time: 30-90 s for 10 rounds on 2 vCPUs at load 1-2. Rounds are kept
# short (~3-8 s) because the background load on the shared machine changes
# within seconds: a per-round ratio compares measurements taken moments apart,
# and the median over many short rounds discards the rounds a load spike hit.
set -euo pipefail
ROUNDS=${1:-10}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build-bench
NODES=${NODES:-5}
N_LOOKUP=${N_LOOKUP:-4000}
N_ZMQ=${N_ZMQ:-10000}
N_EXEC=${N_EXEC:-100}
bench_require lookup-bench "$KVNODE" "$DHTCTL" "$FREEPORT" "$BUILD_DIR/ringlib/libring.a"

bench_tmpdir dhtfs-lookup-bench "/tmp"

# ---- build the clients (into BIN_DIR, nothing added to CMake)
mkdir -p "$BIN_DIR" "$RESULTS_DIR/ring"
LL=$BIN_DIR/lookup-latency ZR=$BIN_DIR/zmq-rtt
if [ ! -x "$LL" ] || [ "$HERE/lookup-latency.c" -nt "$LL" ] ||
    [ "$BUILD_DIR/ringlib/libring.a" -nt "$LL" ]; then
    # shellcheck disable=SC2046  # pkg-config flags must split into words
    cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -I "$ROOT/ringlib" -o "$LL" \
        "$HERE/lookup-latency.c" "$BUILD_DIR/ringlib/libring.a" \
        $(pkg-config --cflags --libs libzmq libsodium)
fi
bench_build_zmq_rtt "$ZR"

# ---- start the ring
mapfile -t PORTS < <("$FREEPORT" $((NODES + 2)))
ZPORT=${PORTS[$NODES]} TPORT=${PORTS[$((NODES + 1))]}
EP0=tcp://127.0.0.1:${PORTS[0]}
T0=$(date +%s)
for ((i = 0; i < NODES; i++)); do
    args=(--listen "tcp://127.0.0.1:${PORTS[$i]}" --data "$T/n$i.data" --log-level warn)
    [ -n "${STABILIZE_MS:-}" ] && args+=(--stabilize-ms "$STABILIZE_MS")
    ((i > 0)) && args+=(--join "$EP0")
    # evenly spaced ids (k * 2^64 / NODES, 64-bit wrap) make the hop mix the
    # same in every run; hashed-endpoint ids vary with the free ports.
    # (2^64/NODES computed without overflow; shellcheck's SC2017 does not apply)
    # shellcheck disable=SC2017
    [ "${EVEN_IDS:-1}" = 1 ] && args+=(--id "$(printf '0x%x' $((i * (0x7fffffffffffffff / NODES * 2 + 1))))")
    "$KVNODE" "${args[@]}" </dev/null >"$T/n$i.log" 2>&1 &
    PIDS+=($!)
    sleep 0.2
done

ring_ok() { # every node sees NODES nodes, pointers consistent, fingers exact
    local port json fingers
    for port in "${PORTS[@]:0:$NODES}"; do
        json=$("$DHTCTL" --peer "127.0.0.1:$port" --timeout-ms 1000 ring --json 2>/dev/null) || return 1
        jq -e --argjson n "$NODES" '.nodes as $a | ($a | length) == $n
            and all(range(0; $n); . as $i | $a[$i].succ == $a[($i + 1) % $n].id
                    and $a[$i].pred == $a[($i - 1 + $n) % $n].id)' <<<"$json" >/dev/null || return 1
        fingers=$("$DHTCTL" --peer "127.0.0.1:$port" --timeout-ms 1000 fingers --json 2>/dev/null) || return 1
        jq -e -n --argjson r "$json" --argjson f "$fingers" '([$r.nodes[].id] | sort) as $ids
            | all($f.fingers[]; . as $e
                  | ([$ids[] | select(. >= $e.start)] | first // $ids[0]) == $e.node)' \
            >/dev/null || return 1
    done
}
for ((w = 0; ; w++)); do
    ring_ok && break
    if ((w >= 300)); then
        "$DHTCTL" --peer "$EP0" ring >&2 || true
        echo "lookup-bench: ring of $NODES did not converge within 30 s" >&2
        exit 1
    fi
    sleep 0.1
done
CONVERGE_S=$(($(date +%s) - T0))

KV=$RESULTS_DIR/ring/lookup-$(date +%Y%m%d-%H%M%S).kv
: >"$KV"
emit() { # run a client; human lines indented, RESULT lines (+ round, load1) to $KV
    local rc=0 out
    out=$(timeout 60 "$@" 2>"$T/client.err") || rc=$?
    while IFS= read -r l; do
        case $l in
        RESULT*) echo "$l round=$r load1=$(cut -d' ' -f1 /proc/loadavg)" >>"$KV" ;;
        *) echo "  $l" ;;
        esac
    done <<<"$out"
    if [ "$rc" -ne 0 ]; then
        echo "  !! $* exited $rc: $(head -c 400 "$T/client.err")"
        FAILURES=$((FAILURES + 1))
    fi
}
FAILURES=0
step() {
    case $1 in
    zmq) emit "$ZR" rtt "$N_ZMQ" 64 "$ZPORT" ;;
    tcp) emit "$ZR" tcprtt "$N_ZMQ" 64 "$TPORT" ;;
    ping) emit "$LL" ping "$EP0" "$N_LOOKUP" ;;
    rec) emit "$LL" recursive "$EP0" "$N_LOOKUP" ;;
    iter) emit "$LL" iterative "$EP0" "$N_LOOKUP" ;;
    exec) emit "$LL" exec "$EP0" "$N_EXEC" "$DHTCTL" ;;
    spawn) emit "$LL" spawn "$EP0" "$N_EXEC" "$DHTCTL" ;;
    esac
}
echo "== libzmq $(pkg-config --modversion libzmq), $(nproc) CPUs, $NODES nodes (EVEN_IDS=${EVEN_IDS:-1}) converged in ${CONVERGE_S} s," \
    "N_LOOKUP=$N_LOOKUP N_ZMQ=$N_ZMQ N_EXEC=$N_EXEC, load: $(cut -d' ' -f1-3 /proc/loadavg)"
ORDER=(zmq tcp ping rec iter exec spawn)
DEADLINE=$((T0 + ${MAX_SECONDS:-120}))
for ((r = 1; r <= ROUNDS; r++)); do
    if (($(date +%s) > DEADLINE)); then
        echo "!! time budget (${MAX_SECONDS:-120} s) spent: rounds $r..$ROUNDS skipped"
        break
    fi
    if ((r % 2)); then seq_=("${ORDER[@]}"); else
        seq_=()
        for ((k = ${#ORDER[@]} - 1; k >= 0; k--)); do seq_+=("${ORDER[$k]}"); done
    fi
    echo "## round $r/$ROUNDS (${seq_[*]})"
    for s in "${seq_[@]}"; do step "$s"; done
done
for ((i = 0; i < NODES; i++)); do
    kill -0 "${PIDS[$i]}" 2>/dev/null || { echo "!! node $i died during the run" >&2; FAILURES=$((FAILURES + 1)); }
done
echo "## total $(($(date +%s) - T0)) s; load: $(cut -d' ' -f1-3 /proc/loadavg); results: $KV"
echo

# ---- markdown: medians over rounds, and per-round ratios to the ZMQ REQ/REP rtt
awk '
function med(str,   a, n, i, j, t) {
    n = split(str, a, " ")
    for (i = 2; i <= n; i++) { t = a[i] + 0; j = i - 1
        while (j >= 1 && a[j] + 0 > t) { a[j + 1] = a[j]; j-- }
        a[j + 1] = t }
    MIN = a[1]; MAX = a[n]
    return n % 2 ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
}
function f(x) { return x >= 100 ? sprintf("%.0f", x) : sprintf("%.1f", x) }
/^RESULT / {
    delete kv
    for (i = 2; i <= NF; i++) { p = index($i, "="); kv[substr($i, 1, p - 1)] = substr($i, p + 1) }
    t = kv["test"]; r = kv["round"]
    if (!(t in seen)) { seen[t] = 1; tests[++nt] = t }
    ops[t] = ops[t] " " kv["value"]; p50[t] = p50[t] " " kv["lat_p50_us"]
    p99[t] = p99[t] " " kv["lat_p99_us"]; mean[t] = mean[t] " " kv["lat_mean_us"]
    hops[t] = hops[t] " " (kv["hops_avg"] == "" ? "-" : kv["hops_avg"])
    rtts[t] = rtts[t] " " (kv["rtts_avg"] == "" ? 1 : kv["rtts_avg"])
    fail[t] += kv["fail"] + kv["wrong"]; n[t] += kv["n"]
    P50[t, r] = kv["lat_p50_us"]; MEAN[t, r] = kv["lat_mean_us"]; rounds[r] = 1
    for (h = 0; h < 8; h++) if (("h" h "_n") in kv) {
        HN[t, h] += kv["h" h "_n"]; HP[t, h] = HP[t, h] " " kv["h" h "_p50_us"]
        HPR[t, h, r] = kv["h" h "_p50_us"]
        if (h > maxh) maxh = h }
}
END {
    order = "tcp_rtt_64B rtt_64B ping lookup_recursive lookup_iterative dhtctl_lookup_recursive dhtctl_help_spawn"
    no = split(order, O, " ")
    print "| test | lookups/s (or rtt/s), median | min..max | p50 us | p99 us | mean us | hops | client round trips | failed+wrong / total |"
    print "|---|---:|---|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= no; i++) { t = O[i]; if (!(t in seen)) continue
        m = med(ops[t]); lo = MIN; hi = MAX
        h = (t ~ /lookup_(recursive|iterative)$/) ? sprintf("%.3f", med(hops[t])) : "-"
        rt = (t ~ /^(ping|lookup_)/) ? sprintf("%.3f", med(rtts[t])) : (t ~ /^dhtctl_lookup/ ? "2 (INFO+FIND)" : (t ~ /spawn/ ? "0" : "1"))
        printf "| %s | %.0f | %.0f..%.0f | %s | %s | %s | %s | %s | %d / %d |\n", t, m, lo, hi,
            f(med(p50[t])), f(med(p99[t])), f(med(mean[t])), h, rt, fail[t], n[t] }
    print ""
    print "Per-round ratios to the ZeroMQ REQ/REP round trip of the same round (median over rounds, min..max):"
    print ""
    print "| test | p50 / rtt_64B p50 | min..max | mean / rtt_64B mean | min..max |"
    print "|---|---:|---|---:|---|"
    for (i = 1; i <= no; i++) { t = O[i]; if (!(t in seen) || t == "rtt_64B") continue
        a = ""; b = ""
        for (r in rounds) if ((t, r) in P50 && ("rtt_64B", r) in P50) {
            a = a " " P50[t, r] / P50["rtt_64B", r]; b = b " " MEAN[t, r] / MEAN["rtt_64B", r] }
        if (a == "") continue
        ma = med(a); la = MIN; ha = MAX; mb = med(b)
        printf "| %s | %.2f | %.2f..%.2f | %.2f | %.2f..%.2f |\n", t, ma, la, ha, mb, MIN, MAX }
    print ""
    print "FIND latency split by node-to-node forwards (p50 per round, median over rounds; ratio per round to rtt_64B p50):"
    print ""
    print "| mode | forwards | share of lookups | p50 us | p50 / rtt_64B p50 |"
    print "|---|---:|---:|---:|---:|"
    for (i = 1; i <= no; i++) { t = O[i]; if (t !~ /^lookup_/ || !(t in seen)) continue
        for (h = 0; h <= maxh; h++) if ((t, h) in HN) {
            a = ""
            for (r in rounds) if ((t, h, r) in HPR && ("rtt_64B", r) in P50)
                a = a " " HPR[t, h, r] / P50["rtt_64B", r]
            printf "| %s | %d | %.1f %% | %s | %s |\n", substr(t, 8), h, 100 * HN[t, h] / n[t],
                f(med(HP[t, h])), a == "" ? "-" : sprintf("%.2f", med(a)) } }
}' "$KV"
[ "$FAILURES" -eq 0 ] || { echo "lookup-bench: $FAILURES client runs reported failures" >&2; exit 1; }
