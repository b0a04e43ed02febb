#!/usr/bin/env bash
# ringsim-place.sh — how many tokens and probes: ring_place's balance and
# movement over a grid of token counts and probe counts (the measurement that
# chose RING_PLACE_TOKENS_DEFAULT and RING_PLACE_PROBES_DEFAULT).
#
# For every N in NS, T in TOKENS_LIST and K in PROBES_LIST, runs
# `ringsim --nodes N --lookups 100 --tokens T --probes K --seed S --json` for
# every S in SEEDS (the lookups are irrelevant here: every balance and
# movement figure is exact, not sampled) and prints the worst over seeds:
#   max load      largest node's primary share / mean share (max over seeds)
#   copies max    the same for stored copies, R = 3
#   min load      smallest node's primary share / mean (min over seeds)
#   join / ideal  moved_on_join / (R/(N+1)), max over seeds
#   leave / ideal moved_on_leave / (R/N), max over seeds
# Targets (issue 11): max load <= 1.25, join and leave <= 1.2 x ideal.
#
# Environment: BUILD_DIR (default <repo>/build-bench), NS ("5 100 10000"),
# TOKENS_LIST ("1 8 16 32 64"), PROBES_LIST ("1 21"), SEEDS (1..10). Needs jq.
# Typical time: ~2 min on 2 vCPUs.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
RINGSIM=$BUILD_DIR/ringlib/ringsim
NS=${NS:-5 100 10000}
TOKENS_LIST=${TOKENS_LIST:-1 8 16 32 64}
PROBES_LIST=${PROBES_LIST:-1 21}
SEEDS=${SEEDS:-1 2 3 4 5 6 7 8 9 10}
[ -x "$RINGSIM" ] || { echo "ringsim-place: $RINGSIM missing; run scripts/build.sh $BUILD_DIR" >&2; exit 2; }

echo "== ringsim-place: NS=\"$NS\" TOKENS_LIST=\"$TOKENS_LIST\" PROBES_LIST=\"$PROBES_LIST\" SEEDS=\"$SEEDS\"; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| N | tokens | probes | seeds | max load (worst) | copies max (worst) | min load (worst) | join / ideal (worst) | leave / ideal (worst) | wall per run |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in $NS; do
    for t in $TOKENS_LIST; do
        for k in $PROBES_LIST; do
            a=$(date +%s%N)
            runs=$(for s in $SEEDS; do
                "$RINGSIM" --nodes "$n" --lookups 100 --tokens "$t" --probes "$k" --seed "$s" --json ||
                    { echo "ringsim-place: ringsim failed (N=$n T=$t K=$k seed $s)" >&2; exit 1; }
            done)
            nseeds=$(wc -w <<<"$SEEDS")
            ms=$((($(date +%s%N) - a) / 1000000 / nseeds))
            jq -rs --argjson ms "$ms" '
              def r(p): . * pow(10; p) | round / pow(10; p);
              "| \(.[0].nodes) | \(.[0].tokens) | \(.[0].probes) | \(length) | \(map(.max_load_ratio) | max | r(3)) | \(map(.max_copies_ratio) | max | r(3)) | \(map(.min_load_ratio) | min | r(3)) | \(map(.moved_on_join / .moved_on_join_ideal) | max | r(3)) | \(map(.moved_on_leave / .moved_on_leave_ideal) | max | r(3)) | \($ms) ms |"
            ' <<<"$runs"
        done
    done
done
