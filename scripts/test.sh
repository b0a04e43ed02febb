#!/usr/bin/env bash
# test.sh — install what is missing, build with -Werror (plain, ASan+UBSan,
# and the libFuzzer targets with clang, the three builds side by side), run
# every test (ctest: unit, fuzz corpus, multi-process ring tests), then the
# same unit and ring tests under ASan+UBSan, then bounded libFuzzer runs on
# the wire decoder and the memcached parser. Exits non-zero on the first
# failing stage.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
"$root/scripts/deps.sh" test

# One build alone keeps two cores only half busy (configure, pkg-config,
# dependency scans and links are serial), so the three builds run at once;
# each one's output is printed after it, and any failure stops here.
echo "== builds: -Werror; ASan+UBSan (Debug, -Werror); libFuzzer targets (clang)"
buildlogs=$(mktemp -d)
trap 'rm -rf "$buildlogs"' EXIT
"$root/scripts/build.sh" "$root/build" -DDHT_WERROR=ON >"$buildlogs/plain.log" 2>&1 &
plain_pid=$!
"$root/scripts/build.sh" "$root/build-asan" -DDHT_WERROR=ON -DDHT_SANITIZE=ON \
    -DCMAKE_BUILD_TYPE=Debug >"$buildlogs/asan.log" 2>&1 &
asan_pid=$!
# Only fuzz_wire and fuzz_mc (and the ring library they link): the rest of
# a clang build is not used.
(CC=clang cmake -S "$root" -B "$root/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDHT_FUZZ=ON -DDHT_TESTS=ON -DCMAKE_C_COMPILER=clang >/dev/null &&
    cmake --build "$root/build-fuzz" -j"$jobs" --target fuzz_wire fuzz_mc) >"$buildlogs/fuzz.log" 2>&1 &
fuzz_pid=$!
build_failed=0
for b in plain:$plain_pid asan:$asan_pid fuzz:$fuzz_pid; do
    st=0
    wait "${b#*:}" || st=$?
    echo "-- build ${b%%:*} (exit $st)"
    cat "$buildlogs/${b%%:*}.log"
    [ "$st" = 0 ] || build_failed=1
done
if [ "$build_failed" != 0 ]; then
    echo "a build failed (see above)" >&2
    exit 1
fi

echo "== tests"
(cd "$root/build" && ctest --output-on-failure -j"$jobs" --timeout 600)

echo "== sanitizer (ASan+UBSan): unit and ring tests"
(cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j"$jobs" -L 'unit|ring' --timeout 900)

# The two fuzzers run side by side, one core each, for the same times as
# before; each one's status is checked.
corpus=$(mktemp -d)
mccorpus=$(mktemp -d)
fuzzlogs=$(mktemp -d)
trap 'rm -rf "$buildlogs" "$corpus" "$mccorpus" "$fuzzlogs"' EXIT
cp "$root"/tests/fuzz/corpus/wire/* "$corpus"/
cp "$root"/tests/fuzz/corpus/mc/* "$mccorpus"/
echo "== libFuzzer: wire decoder (${FUZZ_SECONDS:-60} s) and memcached protocol parser (${FUZZ_MC_SECONDS:-30} s), in parallel"
"$root/build-fuzz/tests/fuzz_wire" -max_total_time="${FUZZ_SECONDS:-60}" -rss_limit_mb=1024 \
    -print_final_stats=1 "$corpus" >"$fuzzlogs/wire.log" 2>&1 &
wire_pid=$!
"$root/build-fuzz/tests/fuzz_mc" -max_total_time="${FUZZ_MC_SECONDS:-30}" -rss_limit_mb=1024 \
    -print_final_stats=1 "$mccorpus" >"$fuzzlogs/mc.log" 2>&1 &
mc_pid=$!
wire_st=0
wait "$wire_pid" || wire_st=$?
mc_st=0
wait "$mc_pid" || mc_st=$?
echo "-- fuzz_wire (exit $wire_st)"
tail -n 15 "$fuzzlogs/wire.log"
echo "-- fuzz_mc (exit $mc_st)"
tail -n 15 "$fuzzlogs/mc.log"
if [ "$wire_st" != 0 ] || [ "$mc_st" != 0 ]; then
    echo "libFuzzer: fuzz_wire exited $wire_st, fuzz_mc exited $mc_st" >&2
    exit 1
fi
echo "all test stages passed"
