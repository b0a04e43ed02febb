#!/usr/bin/env bash
# sqlite-ab.sh [ROUNDS=3] NAME=BUILD_DIR NAME=BUILD_DIR [...] — A/B of builds
# (kvnode + dhtfs) on SQLite through a mount: for each build, the benchmark
# ring and mount of bench_ring_dhtfs_up (lib.sh: 3 kvnodes N=3/W=2/R=2 on
# tmpfs, one dhtfs at log level info), all up side by side. Then ROUNDS
# rounds in which every build in turn (order reversed every other round)
# runs the sqlite3 CLI on a fresh database in its mount: TXNS transactions of
# one small INSERT each (rollback journal, as bench/fs-work.sh), the row
# count checked. At the end each dhtfs is unmounted and its exit log gives
# the FUSE requests the builds made: setlk and lookup counts and mean times.
# Prints per build the median seconds, its ratio to the first build, and
# those counts.
#
# Environment: TXNS=300, DATA_ROOT (default /dev/shm if tmpfs), RESULTS_DIR
# (default /tmp/bench/results; sqlite-ab-<time>.md), KEEP=1 keeps the
# scratch dir. Typical time: TXNS=300 takes 5-20 s per build per round.
set -euo pipefail
ROUNDS=${1:-3}
shift || true
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_ab_args sqlite-ab "$ROUNDS" $#
bench_paths build
TXNS=${TXNS:-300}
bench_need sqlite-ab sqlite3
bench_data_root
bench_tmpdir sqlite-ab "$DATA_ROOT"
mkdir -p "$RESULTS_DIR"
awk -v n="$TXNS" 'BEGIN {
    print "CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v BLOB);"
    for (i = 0; i < n; i++)
        printf "BEGIN; INSERT INTO t (k, v) VALUES (\x27key%d\x27, randomblob(200)); COMMIT;\n", i
}' >"$T/txns.sql"

DHTFS_OPTS=log_level=info${DHTFS_OPTS:+,$DHTFS_OPTS}
bench_ab_rings_up sqlite-ab "$@"

for ((r = 1; r <= ROUNDS; r++)); do
    mapfile -t order < <(bench_ab_order "$r")
    for i in "${order[@]}"; do
        db=$T/${NAMES[$i]}/mnt/db-$r.sqlite
        s=$EPOCHREALTIME
        sqlite3 "$db" <"$T/txns.sql"
        e=$EPOCHREALTIME
        [ "$(sqlite3 "$db" 'SELECT count(*) FROM t')" = "$TXNS" ] ||
            { echo "sqlite-ab: ${NAMES[$i]}: the table does not hold $TXNS rows" >&2; exit 1; }
        secs=$(echo "$e - $s" | bc -l)
        echo "${NAMES[$i]} $secs $(cut -d' ' -f1 /proc/loadavg)" >>"$T/results.txt"
        echo "round $r ${NAMES[$i]}: $secs s, load1 $(cut -d' ' -f1 /proc/loadavg)" >&2
    done
done

bench_ab_exit_logs
out=$RESULTS_DIR/sqlite-ab-$(date +%Y%m%d-%H%M%S).md
{
    echo "ROUNDS=$ROUNDS TXNS=$TXNS (medians of rounds; request counts over all rounds)"
    echo
    echo "| build | seconds | / ${NAMES[0]} | setlk requests | setlk mean, us | lookups | lookup mean, us | load1 |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
    t0=$(bench_ab_col "${NAMES[0]}" 2)
    for n in "${NAMES[@]}"; do
        t=$(bench_ab_col "$n" 2)
        printf '| %s | %.2f | %.2f | %s | %s | %s | %s | %s |\n' "$n" "$t" "$(echo "$t / $t0" | bc -l)" \
            "$(bench_ab_req "$n" setlk 6)" "$(bench_ab_req "$n" setlk 9)" \
            "$(bench_ab_req "$n" lookup 6)" "$(bench_ab_req "$n" lookup 9)" "$(bench_ab_list "$n" 3)"
    done
} | tee "$out"
