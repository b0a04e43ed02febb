#!/usr/bin/env bash
# mc-bench.sh [ROUNDS=3] — the memcached front end of a 3-node ring (N=3,
# W=2, R=2, kvnode --memcached) side by side with a real memcached, in one
# run, with the same client.
#
# Starts (private dir on tmpfs, free loopback ports, only what it started is
# killed on exit): 3 kvnodes, each with --memcached on its own port, and
# memcached -t 2 -m 512 on 127.0.0.1. Each round (order of the two targets
# reversed every other round), for concurrency 1 and 4: bench/kv-load in its
# memcached mode (one TCP connection per operation in flight, text protocol)
# sets values of each size in SIZES for SECS seconds, then gets exactly the keys it set for
# SECS seconds, every byte checked. dhtfs is asked through node 0's memcached
# port (any node answers for any key; node 0 forwards to each key's
# authority). For scale, the same load also goes to the same ring through
# the native client (kv-load --peer: kvclient, one hop to the authority),
# labelled dhtfs-kvc. Prints ops/s medians over rounds and the per-round
# ratios dhtfs-mc / memcached and dhtfs-mc / dhtfs-kvc (median, min..max).
#
# Environment: BUILD_DIR (default <repo>/build: kvnode, dhtctl, tests/freeport,
# tests/kvload), RESULTS_DIR (default /tmp/bench/results; RESULT lines in
# $RESULTS_DIR/mc/), DATA_ROOT (default /dev/shm if tmpfs), SECS=3, KEYS=20000
# (1 KiB values; larger values wrap at KEYS x 1 KiB / size keys, at least 500),
# SIZES="1024 65536" (value sizes in bytes),
# KEEP=1 keeps the node dirs. Needs memcached and jq.
#
# Then, unless MEMASLAP=0 (or memcaslap is missing), libmemcached's
# memaslap (memcaslap in Debian) against node 0's memcached port and
# memcached, alternating, each round: its own mix (90 % gets, 10 % sets of
# the keys it wrote; binary bytes in its keys), values of each size in SIZES
# (-X), 1 thread with 1 and 4 concurrent requests, SECS seconds, 10 % of the
# gets verified (-v 0.1). Its TPS, and errors = get misses + verify misses
# + verify failures + *_ERROR replies, as RESULT lines and a second table.
set -euo pipefail
ROUNDS=${1:-3}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build
SECS=${SECS:-3}
KEYS=${KEYS:-20000}
KL=$BUILD_DIR/tests/kvload
bench_require mc-bench "$KVNODE" "$DHTCTL" "$FREEPORT" "$KL"
command -v memcached >/dev/null || { echo "mc-bench: memcached missing: apt-get install memcached" >&2; exit 2; }
command -v jq >/dev/null || { echo "mc-bench: jq missing" >&2; exit 2; }
bench_data_root
bench_tmpdir dhtfs-mc-bench "$DATA_ROOT"
mkdir -p "$RESULTS_DIR/mc"
OUT=$RESULTS_DIR/mc/mc-$(date +%Y%m%d-%H%M%S).kv

mapfile -t PORTS < <("$FREEPORT" 3)
mapfile -t MCP < <("$FREEPORT" 4)
for i in 0 1 2; do
    args=(--listen "tcp://127.0.0.1:${PORTS[$i]}" --data "$T/n$i.data" --log-level warn
        --replicas 3 --write-quorum 2 --read-quorum 2 --memcached "127.0.0.1:${MCP[$i]}")
    ((i > 0)) && args+=(--join "tcp://127.0.0.1:${PORTS[0]}")
    args+=(--id "$(printf '0x%x' $((i * (0x7fffffffffffffff / 3 * 2 + 1))))")
    "$KVNODE" "${args[@]}" </dev/null >"$T/kvnode$i.log" 2>&1 &
    PIDS+=($!)
    sleep 0.2
done
memcached -t 2 -m 512 -l 127.0.0.1 -p "${MCP[3]}" -U 0 -u "$(id -un)" >"$T/memcached.log" 2>&1 &
PIDS+=($!)
for ((w = 0; ; w++)); do
    json=$("$DHTCTL" --peer "127.0.0.1:${PORTS[0]}" --timeout-ms 1000 ring --json 2>/dev/null) || json='{}'
    jq -e '(.nodes | length) == 3' <<<"$json" >/dev/null && break
    ((w < 300)) || { echo "mc-bench: the ring did not converge within 30 s" >&2; exit 1; }
    sleep 0.1
done
sleep 1 # fingers and successor lists settle

SIZES=${SIZES:-1024 65536}

# size_name BYTES: 1KiB, 64KiB, 1MiB or BYTESB
size_name() {
    if (($1 % 1048576 == 0)); then echo "$(($1 / 1048576))MiB"
    elif (($1 % 1024 == 0)); then echo "$(($1 / 1024))KiB"
    else echo "$1B"; fi
}

# run LABEL PORT OP CONC ROUND SIZE [KEYS]: one kv-load run; its RESULT line into $OUT
run() {
    local label=$1 port=$2 op=$3 conc=$4 round=$5 size=$6 line target keys
    keys=${7:-$((KEYS * 1024 / size > 500 ? KEYS * 1024 / size : 500))}
    target=(--memcached "127.0.0.1:$port")
    [ "$label" = dhtfs-kvc ] && target=(--peer "tcp://127.0.0.1:$port")
    line=$(timeout 120 "$KL" "${target[@]}" --op "$op" --size "$size" --keys "$keys" \
        --concurrency "$conc" --seconds "$SECS" --prefix "mcb$round-c$conc-$size-$label" --label "$label" \
        --test "${op}_$(size_name "$size")_c$conc" --run "$round" 2>>"$T/kvload.err" | grep '^RESULT') ||
        { echo "mc-bench: kv-load $label $op c=$conc failed: $(tail -n 3 "$T/kvload.err")" >&2; exit 1; }
    echo "$line" >>"$OUT"
    echo "  $line"
    LAST_KEYS=$(sed -n 's/.* keys_written=\([0-9]*\).*/\1/p' <<<"$line")
}

for ((r = 1; r <= ROUNDS; r++)); do
    targets=("dhtfs-mc:${MCP[0]}" "memcached:${MCP[3]}" "dhtfs-kvc:${PORTS[0]}")
    ((r % 2 == 0)) && targets=("dhtfs-kvc:${PORTS[0]}" "memcached:${MCP[3]}" "dhtfs-mc:${MCP[0]}")
    echo "round $r"
    for size in $SIZES; do
        for conc in 1 4; do
            for t in "${targets[@]}"; do
                run "${t%%:*}" "${t##*:}" put "$conc" "$r" "$size"
                run "${t%%:*}" "${t##*:}" get "$conc" "$r" "$size" "${LAST_KEYS:-$KEYS}"
            done
        done
    done
done

echo
echo "ops/s: median over $ROUNDS rounds; ratios per round, median (min..max)"
echo "| test | dhtfs-mc | memcached | dhtfs-kvc | dhtfs-mc / memcached | dhtfs-mc / dhtfs-kvc | errors (mc / memcached / kvc) |"
echo "|---|---|---|---|---|---|---|"
# The median of a[1..n] (sorts a), shared by the two summaries below.
AWK_MEDIAN='
function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}'
awk "$AWK_MEDIAN"'
/^RESULT / {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    v[f["label"], f["test"], f["run"]] = f["value"]; tests[f["test"]] = 1; runs[f["run"]] = 1
    if (f["errors"] + 0 > 0) err[f["label"], f["test"]] += f["errors"]
}
function span(a, n,   i, lo, hi, b) {
    lo = a[1]; hi = a[1]
    for (i = 1; i <= n; i++) { b[i] = a[i]; if (a[i] < lo) lo = a[i]; if (a[i] > hi) hi = a[i] }
    return sprintf("%.3f (%.3f..%.3f)", median(b, n), lo, hi)
}
END {
    for (t in tests) {
        n = 0
        for (r in runs) if ((("dhtfs-mc", t, r) in v) && (("memcached", t, r) in v) && (("dhtfs-kvc", t, r) in v)) {
            n++; d[n] = v["dhtfs-mc", t, r]; m[n] = v["memcached", t, r]; k[n] = v["dhtfs-kvc", t, r]
            q[n] = m[n] > 0 ? d[n] / m[n] : 0; p[n] = k[n] > 0 ? d[n] / k[n] : 0
        }
        if (!n) continue
        printf "| %s | %.0f | %.0f | %.0f | %s | %s | %d / %d / %d |\n", t, median(d, n), median(m, n),
            median(k, n), span(q, n), span(p, n), err["dhtfs-mc", t] + 0, err["memcached", t] + 0,
            err["dhtfs-kvc", t] + 0
    }
}' "$OUT" | sort

# memaslap VAL NAME FILE: a "NAME: N" counter of a memaslap summary (0 if absent).
slap_count() {
    local v
    v=$(sed -n "s/^$1: \([0-9]*\)\$/\1/p" "$2" | tail -n 1)
    echo "${v:-0}"
}

# slap LABEL PORT CONC ROUND SIZE: one memaslap run; its RESULT line into $OUT
slap() {
    local label=$1 port=$2 conc=$3 round=$4 size=$5 out tps errs line
    out=$T/memaslap-$label-r$round-c$conc-$size.out
    timeout $((SECS + 60)) memcaslap -s "127.0.0.1:$port" -T 1 -c "$conc" -t "${SECS}s" -X "$size" \
        -v 0.1 >"$out" 2>&1 || { echo "mc-bench: memaslap $label c=$conc failed: $(tail -n 3 "$out")" >&2; exit 1; }
    tps=$(sed -n 's/^Run time: .* TPS: \([0-9]*\) .*/\1/p' "$out" | tail -n 1)
    [ -n "$tps" ] || { echo "mc-bench: memaslap $label printed no TPS: $(tail -n 3 "$out")" >&2; exit 1; }
    errs=$(($(slap_count get_misses "$out") + $(slap_count verify_misses "$out") +
        $(slap_count verify_failed "$out") + $(grep -c '_ERROR' "$out" || true)))
    line="RESULT label=$label run=$round fstype=- test=memaslap_$(size_name "$size")_c$conc unit=ops/s value=$tps errors=$errs"
    echo "$line" >>"$OUT"
    echo "  $line"
}

if [ "${MEMASLAP:-1}" = 1 ] && command -v memcaslap >/dev/null; then
    echo
    echo "memaslap: 90 % get / 10 % set, 10 % of gets verified, $SECS s per run"
    for ((r = 1; r <= ROUNDS; r++)); do
        targets=("dhtfs-mc:${MCP[0]}" "memcached:${MCP[3]}")
        ((r % 2 == 0)) && targets=("memcached:${MCP[3]}" "dhtfs-mc:${MCP[0]}")
        echo "round $r"
        for size in $SIZES; do
            for conc in 1 4; do
                for t in "${targets[@]}"; do
                    slap "${t%%:*}" "${t##*:}" "$conc" "$r" "$size"
                done
            done
        done
    done
    echo
    echo "memaslap TPS: median over $ROUNDS rounds; ratio per round, median (min..max)"
    echo "| test | dhtfs-mc | memcached | dhtfs-mc / memcached | errors (mc / memcached) |"
    echo "|---|---|---|---|---|"
    awk "$AWK_MEDIAN"'
    /^RESULT / && / test=memaslap_/ {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        v[f["label"], f["test"], f["run"]] = f["value"]; tests[f["test"]] = 1; runs[f["run"]] = 1
        err[f["label"], f["test"]] += f["errors"]
    }
    END {
        for (t in tests) {
            n = 0
            for (r in runs) if ((("dhtfs-mc", t, r) in v) && (("memcached", t, r) in v)) {
                n++; d[n] = v["dhtfs-mc", t, r]; m[n] = v["memcached", t, r]
                q[n] = m[n] > 0 ? d[n] / m[n] : 0
            }
            if (!n) continue
            lo = q[1]; hi = q[1]
            for (i = 1; i <= n; i++) { c[i] = q[i]; if (q[i] < lo) lo = q[i]; if (q[i] > hi) hi = q[i] }
            printf "| %s | %.0f | %.0f | %.3f (%.3f..%.3f) | %d / %d |\n", t, median(d, n), median(m, n),
                median(c, n), lo, hi, err["dhtfs-mc", t] + 0, err["memcached", t] + 0
        }
    }' "$OUT" | sort
fi
echo "(RESULT lines: $OUT)"
