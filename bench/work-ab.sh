#!/usr/bin/env bash
# work-ab.sh [ROUNDS=3] NAME=BUILD_DIR NAME=BUILD_DIR [...] — A/B of builds
# (kvnode + dhtfs) on the first steps of bench/fs-work.sh, without GlusterFS:
# for each build, the benchmark ring and mount of bench_ring_dhtfs_up (lib.sh:
# 3 kvnodes N=3/W=2/R=2 on tmpfs, one dhtfs at log level info), all up side
# by side. Then ROUNDS rounds in which every build in turn (order reversed
# every other round) extracts the same tarball of the first FILES files of
# SRC_TREE into a fresh directory of its mount (`tar xf`: create, write,
# futimens, fchown, fchmod, close per file), commits it with git (`git init
# && git add -A && git commit`: objects written, linked and unlinked) and
# removes it (`rm -rf`). Untimed check: the extracted tree matches the
# tarball's listing. At the end each dhtfs is unmounted and its exit log
# gives the FUSE requests of the whole run per type: count, mean time and
# serial store round trips. Prints per build the median seconds per step
# and the ratio to the first build.
#
# Environment: FILES=1000, SRC_TREE=/usr/include, DATA_ROOT (default
# /dev/shm if tmpfs), RESULTS_DIR (default /tmp/bench/results;
# work-ab-<time>.md), KEEP=1 keeps the scratch dir. Typical time: ~10 s per
# build per round at FILES=1000.
set -euo pipefail
ROUNDS=${1:-3}
shift || true
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_ab_args work-ab "$ROUNDS" $#
bench_paths build
FILES=${FILES:-1000}
SRC_TREE=${SRC_TREE:-/usr/include}
bench_need work-ab git
bench_data_root
bench_tmpdir work-ab "$DATA_ROOT"
mkdir -p "$RESULTS_DIR"
(cd "$(dirname "$SRC_TREE")" && find "$(basename "$SRC_TREE")" -type f | LC_ALL=C sort >"$T/all")
head -n "$FILES" "$T/all" >"$T/list"
tar cf "$T/src.tar" -C "$(dirname "$SRC_TREE")" -T "$T/list"
tar tf "$T/src.tar" | grep -v '/$' | LC_ALL=C sort >"$T/want"

DHTFS_OPTS=log_level=info${DHTFS_OPTS:+,$DHTFS_OPTS}
bench_ab_rings_up work-ab "$@"

export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost
secs() { echo "$2 - $1" | bc -l; }
for ((r = 1; r <= ROUNDS; r++)); do
    mapfile -t order < <(bench_ab_order "$r")
    for i in "${order[@]}"; do
        d=$T/${NAMES[$i]}/mnt/r$r
        mkdir "$d"
        t0=$EPOCHREALTIME
        tar xf "$T/src.tar" -C "$d"
        t1=$EPOCHREALTIME
        (cd "$d" && git init -q && git add -A && git commit -q -m work-ab)
        t2=$EPOCHREALTIME
        (cd "$d" && find . -path ./.git -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort) >"$T/got"
        cmp -s "$T/want" "$T/got" ||
            { echo "work-ab: ${NAMES[$i]}: the extracted tree differs from the tarball" >&2; exit 1; }
        t3=$EPOCHREALTIME
        rm -rf "$d"
        t4=$EPOCHREALTIME
        line="${NAMES[$i]} $(secs "$t0" "$t1") $(secs "$t1" "$t2") $(secs "$t3" "$t4") $(cut -d' ' -f1 /proc/loadavg)"
        echo "$line" >>"$T/results.txt"
        echo "round $r: $line" >&2
    done
done

bench_ab_exit_logs
out=$RESULTS_DIR/work-ab-$(date +%Y%m%d-%H%M%S).md
{
    echo "ROUNDS=$ROUNDS FILES=$FILES SRC_TREE=$SRC_TREE (medians of rounds, seconds; ratio to ${NAMES[0]})"
    echo
    echo "| build | extract | / ${NAMES[0]} | git add + commit | / ${NAMES[0]} | rm -rf | / ${NAMES[0]} | load1 |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
    for n in "${NAMES[@]}"; do
        row="| $n"
        for c in 2 3 4; do
            v=$(bench_ab_col "$n" "$c")
            row+=" | $(printf '%.2f' "$v") | $(printf '%.2f' "$(echo "$v / $(bench_ab_col "${NAMES[0]}" "$c")" | bc -l)")"
        done
        echo "$row | $(bench_ab_list "$n" 5) |"
    done
    echo
    echo "FUSE requests over the whole run (count, mean µs, serial store round trips per request):"
    echo
    echo "| request | $(printf '%s | ' "${NAMES[@]}")"
    echo "|---|$(printf -- '---|%.0s' "${NAMES[@]}")"
    for k in lookup create setattr write flush link unlink rename mknod rmdir open; do
        row="| $k"
        for n in "${NAMES[@]}"; do
            row+=" | $(bench_ab_req "$n" "$k" 6), $(bench_ab_req "$n" "$k" 9), $(bench_ab_req "$n" "$k" 15)"
        done
        echo "$row |"
    done
} | tee "$out"
