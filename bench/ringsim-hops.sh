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
#   max load      largest node's share of the id space / mean share (mean over
#                 seeds, min..max)
#   wall          median wall time of one ringsim run (build + L lookups)
#
# Environment: BUILD_DIR (default <repo>/build-bench), NS ("1000 10000 100000"),
# LOOKUPS (100000), SEEDS ("1 2 3"), PER_RUN_TIMEOUT (60 s; a run that exceeds
# it is reported and the script fails), OUT (the raw JSON lines, one per run;
# default a new /tmp/ringsim-hops.*.jsonl, path printed). Needs jq.
# Typical time: ~6 s on 2 vCPUs (the 100,000-node runs take ~1.3 s each).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
RINGSIM=$BUILD_DIR/ringlib/ringsim
NS=${NS:-1000 10000 100000}
LOOKUPS=${LOOKUPS:-100000}
SEEDS=${SEEDS:-1 2 3}
PER_RUN_TIMEOUT=${PER_RUN_TIMEOUT:-60}
[ -x "$RINGSIM" ] || { echo "ringsim-hops: $RINGSIM missing; run scripts/build.sh $BUILD_DIR" >&2; exit 2; }
OUT=${OUT:-$(mktemp /tmp/ringsim-hops.XXXXXX.jsonl)}
: >"$OUT"

T0=$(date +%s%N)
echo "== ringsim: NS=\"$NS\" LOOKUPS=$LOOKUPS SEEDS=\"$SEEDS\"; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
for s in $SEEDS; do
    for n in $NS; do
        a=$(date +%s%N)
        json=$(timeout "$PER_RUN_TIMEOUT" "$RINGSIM" --nodes "$n" --lookups "$LOOKUPS" --seed "$s" --json) || {
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
echo "| N | lookups x seeds | avg hops | p99 hops | max hops | 1/2 log2 N | avg / (1/2 log2 N) | gap (1/2 log2 N - avg) | max load ratio | wall per run |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
jq -rs '
  def r(p): . * pow(10; p) | round / pow(10; p);
  def rng(f): (map(f) | min | tostring) + (if (map(f) | min) == (map(f) | max) then "" else ".." + (map(f) | max | tostring) end);
  group_by(.nodes)[]
  | (map(.avg_hops) | add / length) as $avg
  | (.[0].half_log2_n) as $h
  | (map(.wall_ms) | sort | .[(length - 1) / 2 | floor]) as $wall
  | "| \(.[0].nodes) | \(.[0].lookups) x \(length) | \($avg | r(3)) | \(rng(.p99_hops)) | \(map(.max_hops) | max) | \($h | r(3)) | \($avg / $h | r(3)) | \($h - $avg | r(3)) | \(map(.max_load_ratio) | add / length | r(2)) (\(map(.max_load_ratio | r(2)) | min)..\(map(.max_load_ratio | r(2)) | max)) | \($wall) ms |"
' "$OUT"
