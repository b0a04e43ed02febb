#!/usr/bin/env bash
# curve-ab.sh [ROUNDS=3] — the cost of CURVE: two 3-node rings of the same
# build side by side (N=3/W=2/R=2, ids pinned to k*2^64/3, data on tmpfs),
# one plain, one secured (node keys, a client key, peer and client lists),
# and the same kv-load runs against each, interleaved per round (plain then
# secured, reversed every other round): put then get of 1 KiB values at 1
# and 4 clients, and of 1 MiB values at 1 client. Every value is checked.
# Prints ops/s (median of rounds) per ring and secured / plain.
#
# Environment: SECS=4 per run, KEYS_1K=20000, KEYS_1M=128, BUILD_DIR
# (default build), DATA_ROOT (default /dev/shm if tmpfs), RESULTS_DIR
# (default /tmp/bench/results; curve-ab-<time>.md), KEEP=1 keeps the scratch.
# Typical time: ~10 s setup, then 6 runs x 2 rings x SECS per round.
set -euo pipefail
ROUNDS=${1:-3}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || {
    echo "usage: curve-ab.sh [ROUNDS]" >&2
    exit 2
}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build
SECS=${SECS:-4}
KEYS_1K=${KEYS_1K:-20000}
KEYS_1M=${KEYS_1M:-128}
bench_require curve-ab "$KVNODE" "$DHTCTL" "$FREEPORT"
bench_data_root
bench_tmpdir curve-ab "$DATA_ROOT"
mkdir -p "$RESULTS_DIR"
KVLOAD=$T/kv-load
bench_build_kvload "$ROOT" "$BUILD_DIR" "$KVLOAD"

# Keys: one per secured node, one client key, the two lists.
K=$T/keys
mkdir -p "$K"
for i in 0 1 2; do "$DHTCTL" keygen "$K/node$i.key" >/dev/null 2>&1; done
"$DHTCTL" keygen "$K/client.key" >/dev/null 2>&1
cat "$K"/node?.key.pub >"$K/peers.list"
cp "$K/client.key.pub" "$K/clients.list"

# ring NAME SECURED: three nodes; sets EP_<NAME> (the seeds kv-load gets).
ring() {
    local name=$1 secured=$2 i ports ep eps='' sec=() first=''
    mapfile -t ports < <("$FREEPORT" 3)
    for i in 0 1 2; do
        ep=tcp://127.0.0.1:${ports[$i]}
        if [ "$secured" = 1 ]; then
            sec=(--key "$K/node$i.key" --peer-keys "$K/peers.list" --client-keys "$K/clients.list")
            ep="$ep#$(cat "$K/node$i.key.pub")"
        fi
        local args=(--listen "tcp://127.0.0.1:${ports[$i]}" --data "$T/$name$i.data" --log-level warn
            --replicas 3 --write-quorum 2 --read-quorum 2 "${sec[@]}")
        [ -n "$first" ] && args+=(--join "$first")
        # shellcheck disable=SC2017  # 2^64/3 without overflow, as kv-bench.sh
        args+=(--id "$(printf '0x%x' $((i * (0x7fffffffffffffff / 3 * 2 + 1))))")
        "$KVNODE" "${args[@]}" </dev/null >"$T/$name$i.log" 2>&1 &
        PIDS+=($!)
        # shellcheck disable=SC2034  # read by bench_cleanup
        TERM_PIDS[$!]=1
        [ -n "$first" ] || first=$ep
        eps+=${eps:+,}$ep
        sleep 0.2
    done
    printf -v "EP_$name" '%s' "$eps"
}
ring plain 0
ring secured 1

# load NAME OP SIZE CONC KEYS TEST ROUND: one kv-load run, its ops/s to results.
load() {
    local name=$1 op=$2 size=$3 conc=$4 keys=$5 test=$6 r=$7 eps key=()
    eps=EP_$name
    [ "$name" = secured ] && key=(--key "$K/client.key")
    "$KVLOAD" --peer "${!eps}" "${key[@]}" --op "$op" --size "$size" --keys "$keys" \
        --concurrency "$conc" --seconds "$SECS" --prefix "$test-$r" --label "$name" \
        --test "${op}_$test" --run "$r" >"$T/run.out" 2>&1 || {
        cat "$T/run.out" >&2
        echo "curve-ab: $name ${op}_$test round $r failed" >&2
        exit 1
    }
    grep '^RESULT' "$T/run.out" >>"$T/results.kv"
}

# Let both rings settle (stabilize, fingers) before timing.
for name in plain secured; do
    load "$name" put 1024 1 100 warm 0 >/dev/null
done
: >"$T/results.kv"

for ((r = 1; r <= ROUNDS; r++)); do
    order=(plain secured)
    ((r % 2 == 0)) && order=(secured plain)
    for spec in "1024 1 $KEYS_1K 1KiB_c1" "1024 4 $KEYS_1K 1KiB_c4" "1048576 1 $KEYS_1M 1MiB_c1"; do
        read -r size conc keys test <<<"$spec"
        for name in "${order[@]}"; do
            load "$name" put "$size" "$conc" "$keys" "$test" "$r"
            written=$(awk -v t="put_$test" -v n="$name" -v r="$r" '$1 == "RESULT" {
                split("", f); for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
                if (f["label"] == n && f["test"] == t && f["run"] == r) print f["keys_written"] }' "$T/results.kv")
            load "$name" get "$size" "$conc" "${written:-$keys}" "$test" "$r"
        done
    done
    echo "round $r done" >&2
done

out=$RESULTS_DIR/curve-ab-$(date +%Y%m%d-%H%M%S).md
{
    echo "curve-ab.sh $ROUNDS round(s), SECS=$SECS, $(git -C "$ROOT" rev-parse --short HEAD), load1 $(cut -d' ' -f1 /proc/loadavg) at the end"
    echo
    echo "| test | plain ops/s | secured ops/s | secured / plain | plain p50 µs | secured p50 µs |"
    echo "|---|---:|---:|---:|---:|---:|"
    for t in put_1KiB_c1 get_1KiB_c1 put_1KiB_c4 get_1KiB_c4 put_1MiB_c1 get_1MiB_c1; do
        awk -v t="$t" '
            function med(a, n,   i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
                return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
            $1 == "RESULT" { split("", f); for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
                if (f["test"] != t) next
                if (f["label"] == "plain") { p[++np] = f["value"]; pl[np] = f["lat_p50_us"]; pr[f["run"]] = f["value"] }
                else { s[++ns] = f["value"]; sl[ns] = f["lat_p50_us"]; sr[f["run"]] = f["value"] } }
            END { for (r in pr) if (r in sr) q[++nq] = sr[r] / pr[r]
                printf "| %s | %.0f | %.0f | %.2f | %.0f | %.0f |\n", t, med(p, np), med(s, ns), med(q, nq), med(pl, np), med(sl, ns) }' "$T/results.kv"
    done
    echo
    echo "(secured / plain: the median of the per-round ratios; errors 0 in every run, kv-load checks every value)"
} | tee "$out"
echo "results: $out"
