#!/usr/bin/env bash
# md-ab.sh [ROUNDS=3] NAME=BUILD_DIR NAME=BUILD_DIR [...] — A/B of builds
# (kvnode + dhtfs) on the fio suite's metadata phases: for each build, the
# benchmark ring and mount of bench_ring_dhtfs_up (lib.sh: 3 kvnodes
# N=3/W=2/R=2 on tmpfs, one dhtfs), all up side by side; then ROUNDS rounds
# in which every build in turn (order reversed every other round) runs
# ../shared/bench/mdbench.c in its mount exactly as fio-suite.sh does:
# MD_FILES files of 4 KiB created (open O_CREAT|O_EXCL, write, close), the
# directory listed, each file stat'ed, read (open, read, close) and unlinked,
# the kernel's caches dropped before readdir, stat and read. Prints per build
# and phase the median ops/s and mean latency, and each build's ratio to the
# first. With DHTFS_OPTS=log_level=info, each mount's exit log (per FUSE
# request type: count, mean time, store operations, serial round trips) is
# kept in the results file too.
#
# Environment: MD_FILES=5000, DATA_ROOT (default /dev/shm if tmpfs),
# RESULTS_DIR (default /tmp/bench/results; md-ab-<time>.md), DHTFS_OPTS
# (passed to each mount), KEEP=1 keeps the scratch dir.
# Typical time: ~20 s per build per round at MD_FILES=5000, plus ~5 s setup
# each.
set -euo pipefail
ROUNDS=${1:-3}
shift || true
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_ab_args md-ab "$ROUNDS" $#
bench_paths build
MD_FILES=${MD_FILES:-5000}
bench_need md-ab gcc bc
bench_data_root
bench_tmpdir md-ab "$DATA_ROOT"
mkdir -p "$RESULTS_DIR"
[ -w /proc/sys/vm/drop_caches ] || echo "md-ab: cannot drop caches (not root?): warm phases" >&2
gcc -O2 -Wall -o "$T/mdbench" "$SHARED/mdbench.c"

bench_ab_rings_up md-ab "$@"

PHASES=(create readdir stat read unlink)
for ((r = 1; r <= ROUNDS; r++)); do
    mapfile -t order < <(bench_ab_order "$r")
    for i in "${order[@]}"; do
        n=${NAMES[$i]}
        out=$("$T/mdbench" "$T/$n/mnt" "$MD_FILES" 4096 1)
        line=$n
        for ph in "${PHASES[@]}"; do
            v=$(awk -v p="phase=$ph" '$2 == p {sub("ops_per_s=", "", $5); sub("lat_mean_us=", "", $6); print $5, $6}' <<<"$out")
            [ -n "$v" ] || { echo "md-ab: $n round $r: no $ph line in: $out" >&2; exit 1; }
            line+=" $v"
        done
        echo "$line $(cut -d' ' -f1 /proc/loadavg)" >>"$T/results.txt"
        echo "round $r $n: $line" >&2
    done
done

bench_ab_exit_logs
out=$RESULTS_DIR/md-ab-$(date +%Y%m%d-%H%M%S).md
{
    echo "ROUNDS=$ROUNDS MD_FILES=$MD_FILES DHTFS_OPTS=${DHTFS_OPTS:-} (medians of rounds; ops/s, mean us)"
    echo
    printf '| build |'
    for ph in "${PHASES[@]}"; do printf ' %s ops/s | mean us | / %s |' "$ph" "${NAMES[0]}"; done
    echo " load1 |"
    printf '|---|'
    for _ in "${PHASES[@]}"; do printf -- '---:|---:|---:|'; done
    echo "---|"
    for n in "${NAMES[@]}"; do
        printf '| %s |' "$n"
        for k in "${!PHASES[@]}"; do
            c=$((2 + 2 * k))
            v=$(bench_ab_col "$n" "$c")
            v0=$(bench_ab_col "${NAMES[0]}" "$c")
            printf ' %.0f | %.0f | %.2f |' "$v" "$(bench_ab_col "$n" $((c + 1)))" "$(echo "$v / $v0" | bc -l)"
        done
        echo " $(bench_ab_list "$n" 12) |"
    done
    for n in "${NAMES[@]}"; do bench_ab_exit_log_print "$n"; done
} | tee "$out"
