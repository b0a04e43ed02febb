#!/usr/bin/env bash
# ringsim-hops.sh — Chord path lengths and key balance from ringsim (ringlib's
# real routing over a simulated, converged ring; no sockets).
#
# Runs `ringsim --nodes N --lookups L --seed S --json` for every N in NS and S
# in SEEDS, the seeds interleaved (all N for seed 1, then all N for seed 2, ..)
# so load changes on the shared machine spread over every N, and prints a
# markdown table:
#   avg hops      mean over seeds of the per-seed average (node-to-node forwards)
#   p99           99th-percentile hops, min..max over seeds
#   1/2 log2 N    Chord's expected path length
#   ratio         avg / (1/2 log2 N);  gap = 1/2 log2 N - avg
#   max load      largest physical node's exact share of keys as primary / mean
#                 share, with ring_place's default tokens and probes (or TOKENS,
#                 PROBES): mean over seeds (min..max)
#   copies        the same for the copies each node stores (R = 3): max over seeds
#   min load      smallest node's primary share / mean: min over seeds
#   join/ideal    moved_on_join (exact fraction of keys whose replica set
#                 changes when one node joins) / the ideal R/(N+1): max over seeds
#   leave/ideal   the same for one node leaving, ideal R/N
#   one id        the old placement (one position per node): max load, mean
#   wall          median wall time of one ringsim run (build, placements + L lookups)
#
# Environment: BUILD_DIR (default <repo>/build-bench), NS ("5 100 10000 100000"),
# LOOKUPS (100000), SEEDS ("1 2 3"), TOKENS and PROBES (ringsim's defaults), PER_RUN_TIMEOUT (60 s; a run that exceeds
# it is reported and the script fails), OUT (the raw JSON lines, one per run;
# default a new /tmp/ringsim-hops.*.jsonl, path printed). Needs jq.
# Typical time: ~25 s on 2 vCPUs (the 100,000-node runs take ~5 s each: three
# placements of 1.6 million tokens besides the Chord ring).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
RINGSIM=$BUILD_DIR/ringlib/ringsim
NS=${NS:-5 100 10000 100000}
LOOKUPS=${LOOKUPS:-100000}
SEEDS=${SEEDS:-1 2 3}
PER_RUN_TIMEOUT=${PER_RUN_TIMEOUT:-60}
PLACE_ARGS=()
[ -n "${TOKENS:-}" ] && PLACE_ARGS+=(--tokens "$TOKENS")
[ -n "${PROBES:-}" ] && PLACE_ARGS+=(--probes "$PROBES")
[ -x "$RINGSIM" ] || { echo "ringsim-hops: $RINGSIM missing; run scripts/build.sh $BUILD_DIR" >&2; exit 2; }
OUT=${OUT:-$(mktemp /tmp/ringsim-hops.XXXXXX.jsonl)}
: >"$OUT"

T0=$(date +%s%N)
echo "== ringsim: NS=\"$NS\" LOOKUPS=$LOOKUPS SEEDS=\"$SEEDS\"; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
for s in $SEEDS; do
    for n in $NS; do
        a=$(date +%s%N)
        json=$(timeout "$PER_RUN_TIMEOUT" "$RINGSIM" --nodes "$n" --lookups "$LOOKUPS" --seed "$s" "${PLACE_ARGS[@]}" --json) || {
            echo "ringsim-hops: ringsim --nodes $n --seed $s failed or exceeded ${PER_RUN_TIMEOUT}s" >&2
            exit 1
        }
        ms=$((($(date +%s%N) - a) / 1000000))
        echo "$json" | jq -c --argjson ms "$ms" '. + {wall_ms: $ms}' >>"$OUT"
    done
done
total_ms=$((($(date +%s%N) - T0) / 1000000))
echo "== done in ${total_ms} ms; load $(cut -d' ' -f1-3 /proc/loadavg); raw: $OUT"
echo
echo "| N | lookups x seeds | avg hops | p99 hops | max hops | 1/2 log2 N | avg / (1/2 log2 N) | tokens x probes | max load (primary) | copies max | min load | join / ideal | leave / ideal | one id: max load | wall per run |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
jq -rs '
  def r(p): . * pow(10; p) | round / pow(10; p);
  def rng(f): (map(f) | min | tostring) + (if (map(f) | min) == (map(f) | max) then "" else ".." + (map(f) | max | tostring) end);
  group_by(.nodes)[]
  | (map(.avg_hops) | add / length) as $avg
  | (.[0].half_log2_n) as $h
  | (map(.wall_ms) | sort | .[(length - 1) / 2 | floor]) as $wall
  | "| \(.[0].nodes) | \(.[0].lookups) x \(length) | \($avg | r(3)) | \(rng(.p99_hops)) | \(map(.max_hops) | max) | \($h | r(3)) | \(if $h > 0 then ($avg / $h | r(3)) else "-" end) | \(.[0].tokens) x \(.[0].probes) | \(map(.max_load_ratio) | add / length | r(3)) (\(map(.max_load_ratio | r(3)) | min)..\(map(.max_load_ratio | r(3)) | max)) | \(map(.max_copies_ratio) | max | r(3)) | \(map(.min_load_ratio) | min | r(3)) | \(map(if .moved_on_join == null then 0 else .moved_on_join / .moved_on_join_ideal end) | max | r(3)) | \(map(.moved_on_leave / .moved_on_leave_ideal) | max | r(3)) | \(map(.max_load_ratio_one_id) | add / length | r(2)) | \($wall) ms |"
' "$OUT"
