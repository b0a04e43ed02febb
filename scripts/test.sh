#!/usr/bin/env bash
# test.sh — install what is missing, build with -Werror, run every test
# (ctest: unit, fuzz corpus, multi-process ring tests), then the same unit
# and ring tests under ASan+UBSan, then a bounded libFuzzer run on the wire
# decoder. Exits non-zero on the first failing stage.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
"$root/scripts/deps.sh" test

echo "== build (-Werror)"
"$root/scripts/build.sh" "$root/build" -DDHT_WERROR=ON
echo "== tests"
(cd "$root/build" && ctest --output-on-failure -j"$jobs" --timeout 600)

echo "== sanitizer build (ASan+UBSan): unit and ring tests"
"$root/scripts/build.sh" "$root/build-asan" -DDHT_WERROR=ON -DDHT_SANITIZE=ON \
    -DCMAKE_BUILD_TYPE=Debug
(cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j"$jobs" -L 'unit|ring' --timeout 900)

echo "== libFuzzer: wire decoder (${FUZZ_SECONDS:-60} s)"
CC=clang "$root/scripts/build.sh" "$root/build-fuzz" -DDHT_FUZZ=ON -DDHT_TESTS=ON \
    -DCMAKE_C_COMPILER=clang
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp "$root"/tests/fuzz/corpus/wire/* "$corpus"/
"$root/build-fuzz/tests/fuzz_wire" -max_total_time="${FUZZ_SECONDS:-60}" -rss_limit_mb=1024 \
    -print_final_stats=1 "$corpus" 2>&1 | tail -n 15
echo "== libFuzzer: memcached protocol parser (${FUZZ_MC_SECONDS:-30} s)"
mccorpus=$(mktemp -d)
trap 'rm -rf "$corpus" "$mccorpus"' EXIT
cp "$root"/tests/fuzz/corpus/mc/* "$mccorpus"/
"$root/build-fuzz/tests/fuzz_mc" -max_total_time="${FUZZ_MC_SECONDS:-30}" -rss_limit_mb=1024 \
    -print_final_stats=1 "$mccorpus" 2>&1 | tail -n 15
echo "all test stages passed"
