#!/usr/bin/env bash
# meta-ab.sh [ROUNDS=3] NAME=BUILD_DIR NAME=BUILD_DIR [...] — A/B of builds
# (kvnode + dhtfs) on metadata work through a mount: for each build, the
# benchmark ring and mount of bench_ring_dhtfs_up (lib.sh: 3 kvnodes N=3/W=2/
# R=2 on tmpfs, one dhtfs), all up side by side; then ROUNDS rounds in which
# every build, in turn (order reversed every other round, so drifts of the
# shared machine's load hit each alike), runs one python3 process in a fresh
# directory of its mount: FILES creates (open O_CREAT|O_EXCL + close), stat,
# chmod (setattr), rename within the directory, 4 KiB write + read of each
# (open, write, close; open, read, close), unlink — each phase timed on its
# own, as ops/s. Prints the median per phase and build and the ratio of each
# build to the first.
#
# At the end, before the rings stop, the kvnodes' logs at --log-level info
# carry the coordinator's counts of conditional writes checked against a
# known newest version vs those that read a quorum first (kv_coord.c "known");
# they are summed per build. With DHTFS_OPTS=log_level=info, each mount's
# exit log (requests per FUSE type: mean time, store operations and the
# serial round trips per request) is copied to the results too.
#
# Environment: FILES=2000, DATA_ROOT (default /dev/shm if tmpfs),
# RESULTS_DIR (default /tmp/bench/results; meta-ab-<time>.md written there),
# DHTFS_OPTS (passed to each mount), KEEP=1 keeps the scratch dir.
# Typical time: ~10 s per build per round at FILES=2000, plus ~5 s setup each.
set -euo pipefail
ROUNDS=${1:-3}
shift || true
if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || [ $# -lt 2 ]; then
    echo "usage: meta-ab.sh ROUNDS NAME=BUILD_DIR NAME=BUILD_DIR [...]" >&2
    exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build
FILES=${FILES:-2000}
export KV_LOG_LEVEL=info # the coordinators log their counts at info
bench_data_root
bench_tmpdir meta-ab "$DATA_ROOT"
mkdir -p "$RESULTS_DIR"

bench_ab_rings_up meta-ab "$@"

cat >"$T/meta.py" <<'EOF'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
os.mkdir(d)
names = [os.path.join(d, "f%05d" % i) for i in range(n)]
moved = [p + ".r" for p in names]
block = b"m" * 4096
def phase(label, fn, paths):
    t = time.monotonic()
    for p in paths:
        fn(p)
    print("%s %.1f" % (label, len(paths) / (time.monotonic() - t)))
phase("create", lambda p: os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)), names)
phase("stat", os.stat, names)
phase("chmod", lambda p: os.chmod(p, 0o600), names)
phase("rename", lambda p: os.rename(p, p + ".r"), names)
def write(p):
    fd = os.open(p, os.O_WRONLY)
    os.write(fd, block)
    os.close(fd)
def read(p):
    fd = os.open(p, os.O_RDONLY)
    assert os.read(fd, 8192) == block
    os.close(fd)
phase("write4k", write, moved)
phase("read4k", read, moved)
phase("unlink", os.unlink, moved)
EOF

for ((r = 1; r <= ROUNDS; r++)); do
    order=("${!NAMES[@]}")
    if ((r % 2 == 0)); then
        mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
    fi
    for i in "${order[@]}"; do
        python3 "$T/meta.py" "$T/${NAMES[$i]}/mnt/r$r" "$FILES" |
            sed "s/^/${NAMES[$i]} /" >>"$T/results.txt"
        echo "round $r ${NAMES[$i]} done" >&2
    done
done

out=$RESULTS_DIR/meta-ab-$(date +%Y%m%d-%H%M%S).md
{
    echo "FILES=$FILES ROUNDS=$ROUNDS (ops/s, median of rounds; ratio to ${NAMES[0]})"
    echo
    printf '| phase |'
    printf ' %s |' "${NAMES[@]}"
    for n in "${NAMES[@]:1}"; do printf ' %s / %s |' "$n" "${NAMES[0]}"; done
    echo
    printf '|---|'
    for _ in "${NAMES[@]}" "${NAMES[@]:1}"; do printf -- '---:|'; done
    echo
    for ph in create stat chmod rename write4k read4k unlink; do
        printf '| %s |' "$ph"
        meds=()
        for n in "${NAMES[@]}"; do
            m=$(awk -v n="$n" -v p="$ph" '$1 == n && $2 == p {print $3}' "$T/results.txt" |
                sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
            meds+=("$m")
            printf ' %.0f |' "$m"
        done
        for m in "${meds[@]:1}"; do printf ' %.2f |' "$(echo "$m / ${meds[0]}" | bc -l)"; done
        echo
    done
} | tee "$out"

# the coordinators' counts, logged when the nodes stop: stop everything now
kill -TERM "${PIDS[@]}" 2>/dev/null || true
for pid in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done
for n in "${NAMES[@]}"; do
    sed -n 's/.*known newest versions: \([0-9]*\) conditional writes .*, \([0-9]*\) read a quorum.*/\1 \2/p' \
        "$T/$n"/kvnode*.log |
        awk -v n="$n" '{h += $1; m += $2} END {if (NR) printf "%s: %d conditional writes checked against a known version, %d read a quorum first\n", n, h, m}' |
        tee -a "$out"
done
for n in "${NAMES[@]}"; do bench_ab_exit_log_print "$n"; done | tee -a "$out"
echo "results: $out"
