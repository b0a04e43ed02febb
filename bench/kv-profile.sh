#!/usr/bin/env bash
# kv-profile.sh [ROUNDS=3] — where the CPU goes per store operation: CPU time
# and minor page faults per operation, of the 3 kvnodes and of the client,
# on two 3-node rings (N=3/W=2/R=2) run side by side:
#   default  kvnode as built
#   mt       the same binary with glibc's malloc told to keep big blocks on
#            the heap (MALLOC_MMAP_THRESHOLD_=8388608
#            MALLOC_TRIM_THRESHOLD_=134217728, as ../shared/bench's *_mt
#            FUSE targets): shows how much of the 1 MiB cost is mmap/munmap
#            of fresh buffers and their page faults
# Loads (bench/kv-load, SECS seconds each, every get checked): put/get 1 KiB
# c=1, put/get 1 MiB c=1, put/get 1 MiB c=4; ROUNDS rounds, ring order
# alternating. Node CPU and faults come from /proc/PID/stat (utime+stime,
# minflt; 10 ms ticks) read around each client run; the client's from its
# own getrusage. "cpu-bound ceiling" = 2 CPUs / (node + client CPU per op):
# the rate at which this load alone would saturate the machine.
#
# Environment: BUILD_DIR (default <repo>/build-kvbench), BIN_DIR, RESULTS_DIR
# (default /tmp/bench/results; RESULT lines in $RESULTS_DIR/kv/profile-*.kv),
# DATA_ROOT (default /dev/shm if tmpfs), SECS=2, KEEP=1.
# Typical time: ~30 s per round.
set -euo pipefail
ROUNDS=${1:-3}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build-kvbench
SECS=${SECS:-2}
bench_require kv-profile "$KVNODE" "$DHTCTL" "$FREEPORT" "$BUILD_DIR/kvnode/libkvio.a" "$BUILD_DIR/ringlib/libring.a"
bench_data_root
bench_tmpdir dhtfs-kv-profile "$DATA_ROOT"

mkdir -p "$BIN_DIR" "$RESULTS_DIR/kv"
KL=$BIN_DIR/kv-load
bench_build_kvload "$ROOT" "$BUILD_DIR" "$KL"

declare -A EPS RPIDS
start_ring() { # NAME [env assignments...]
    local name=$1 i ports eps='' pids=''
    shift
    mapfile -t ports < <("$FREEPORT" 3)
    for ((i = 0; i < 3; i++)); do
        args=(--listen "tcp://127.0.0.1:${ports[$i]}" --data "$T/$name-n$i.data" --log-level warn
            --replicas 3 --write-quorum 2 --read-quorum 2)
        ((i > 0)) && args+=(--join "tcp://127.0.0.1:${ports[0]}")
        # shellcheck disable=SC2017  # 2^64/3 without overflow, as lookup-bench.sh
        args+=(--id "$(printf '0x%x' $((i * (0x7fffffffffffffff / 3 * 2 + 1))))")
        env "$@" "$KVNODE" "${args[@]}" </dev/null >"$T/$name-n$i.log" 2>&1 &
        PIDS+=($!)
        pids+="$! "
        eps+=${eps:+,}tcp://127.0.0.1:${ports[$i]}
        sleep 0.2
    done
    EPS[$name]=$eps
    RPIDS[$name]=$pids
    for ((w = 0; ; w++)); do
        "$DHTCTL" --peer "127.0.0.1:${ports[0]}" --timeout-ms 1000 ring --json 2>/dev/null |
            jq -e '.nodes as $a | ($a | length) == 3 and all(range(0; 3); . as $i
                | $a[$i].succ == $a[($i + 1) % 3].id and $a[$i].pred == $a[($i + 2) % 3].id)' \
                >/dev/null && break
        ((w < 300)) || { echo "kv-profile: ring $name did not converge" >&2; exit 1; }
        sleep 0.1
    done
}
start_ring default
start_ring mt MALLOC_MMAP_THRESHOLD_=8388608 MALLOC_TRIM_THRESHOLD_=134217728

node_counters() { # PIDS...: "cpu_ticks minflt" summed
    local p t=0 f=0 a
    for p in "$@"; do
        read -r -a a <"/proc/$p/stat"
        # fields after "(comm)": minflt is field 10, utime 14, stime 15 (1-based)
        f=$((f + a[9])) t=$((t + a[13] + a[14]))
    done
    echo "$t $f"
}
TCK=$(getconf CLK_TCK)
KV=$RESULTS_DIR/kv/profile-$(date +%Y%m%d-%H%M%S).kv
: >"$KV"
FAILURES=0
one() { # RING OP SIZE CONC
    local ring=$1 op=$2 size=$3 conc=$4 out rc=0 keys=100000
    [ "$size" = 1M ] && keys=256
    # shellcheck disable=SC2086  # RPIDS holds a space-separated pid list
    read -r t0 f0 < <(node_counters ${RPIDS[$ring]})
    out=$(timeout 60 "$KL" --peer "${EPS[$ring]}" --op "$op" --size "$size" --concurrency "$conc" \
        --seconds "$SECS" --prefix "p$size-c$conc" --seed "$r" --keys "${GETKEYS:-$keys}" \
        --label "$ring" --run "r$r" 2>"$T/client.err") || rc=$?
    # shellcheck disable=SC2086
    read -r t1 f1 < <(node_counters ${RPIDS[$ring]})
    local res
    res=$(grep '^RESULT' <<<"$out" || true)
    if [ "$rc" -ne 0 ] || [ -z "$res" ]; then
        echo "  !! $ring $op $size c$conc exit $rc: $(head -c 300 "$T/client.err")"
        FAILURES=$((FAILURES + 1))
    fi
    [ -n "$res" ] || return 0
    local n issued
    n=$(sed -E 's/.* n=([0-9]+) .*/\1/' <<<"$res")
    issued=$((n + 5 * conc))
    res+=" round=$r nodes_cpu_us_per_op=$(awk -v d=$((t1 - t0)) -v k="$TCK" -v n="$issued" 'BEGIN { printf "%.1f", d * 1e6 / k / n }')"
    res+=" nodes_minflt_per_op=$(awk -v d=$((f1 - f0)) -v n="$issued" 'BEGIN { printf "%.2f", d / n }')"
    echo "$res" >>"$KV"
    grep -v '^RESULT' <<<"$out" | sed 's/^/  /'
    LASTKEYS=$(sed -E 's/.* keys_written=([0-9]+) .*/\1/' <<<"$res")
}
echo "== 2 rings of 3 nodes (default, mt), $(nproc) CPUs, data in $T, SECS=$SECS, load: $(cut -d' ' -f1-3 /proc/loadavg)"
T0=$(date +%s)
for ((r = 1; r <= ROUNDS; r++)); do
    rings=(default mt)
    ((r % 2)) || rings=(mt default)
    echo "## round $r/$ROUNDS (${rings[*]}), load $(cut -d' ' -f1-3 /proc/loadavg)"
    for load in 1024:1 1M:1 1M:4; do
        for ring in "${rings[@]}"; do
            IFS=: read -r size conc <<<"$load"
            GETKEYS='' one "$ring" put "$size" "$conc"
            GETKEYS=$LASTKEYS one "$ring" get "$size" "$conc"
        done
    done
done
echo "## total $(($(date +%s) - T0)) s; load: $(cut -d' ' -f1-3 /proc/loadavg); results: $KV"
echo
awk '
function med(str,   a, n, i, j, t) {
    n = split(str, a, " ")
    for (i = 2; i <= n; i++) { t = a[i] + 0; j = i - 1
        while (j >= 1 && a[j] + 0 > t) { a[j + 1] = a[j]; j-- }
        a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
}
/^RESULT / {
    delete kv
    for (i = 2; i <= NF; i++) { p = index($i, "="); kv[substr($i, 1, p - 1)] = substr($i, p + 1) }
    k = kv["label"] SUBSEP kv["test"]; if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
    OPS[k] = OPS[k] " " kv["value"]; P50[k] = P50[k] " " kv["lat_p50_us"]
    NC[k] = NC[k] " " kv["nodes_cpu_us_per_op"]; NF_[k] = NF_[k] " " kv["nodes_minflt_per_op"]
    CC[k] = CC[k] " " kv["client_cpu_us_per_op"]; CF[k] = CF[k] " " kv["client_minflt_per_op"]
    E[k] += kv["errors"]; N[k] += kv["n"]
}
END {
    print "Medians over rounds. CPU = user+sys per operation (3 nodes summed; client separately); faults = minor page faults per operation."
    print ""
    print "| ring | test | ops/s | p50 us | nodes CPU us/op | client CPU us/op | cpu-bound ceiling ops/s (2 CPUs) | nodes faults/op | client faults/op | errors / ops |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= nk; i++) { k = keys[i]; split(k, pp, SUBSEP)
        nc = med(NC[k]); cc = med(CC[k])
        printf "| %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.1f | %.1f | %d / %d |\n", pp[1], pp[2], med(OPS[k]), med(P50[k]),
            nc, cc, ((nc + cc) > 0 ? 2e6 / (nc + cc) : 0), med(NF_[k]), med(CF[k]), E[k], N[k] }
}' "$KV" | { read -r l; echo "$l"; read -r l; echo "$l"; read -r l; echo "$l"; read -r l; echo "$l"; sort -t'|' -k3,3 -k2,2; }
[ "$FAILURES" -eq 0 ] || { echo "kv-profile: $FAILURES client runs failed" >&2; exit 1; }
