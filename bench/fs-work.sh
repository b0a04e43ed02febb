#!/usr/bin/env bash
# fs-work.sh [ROUNDS=1] — real work on dhtfs, side by side with tmpfs and
# GlusterFS replica 3, interleaved in one run (issue 9).
#
# Each round runs the same steps on each target, in the order
# tmpfs gluster dhtfs, then dhtfs gluster tmpfs, and so on:
#   extract   tar xf of a source tarball (FILES files taken from SRC_TREE,
#             made once per run in the scratch dir, so every target gets the
#             same bytes)
#   git       git init && git add -A && git commit of the extracted tree
#   rsync     rsync -a of the tree to a sibling directory
#   tarpipe   tar c -C tree . | tar x -C another sibling
#   sqlite    sqlite3 CLI, TXNS transactions of one small INSERT each
#             (default journal mode: each COMMIT writes, fsyncs and deletes
#             a journal file, as an application's database would)
#   rm        rm -rf of everything the round created
# rsync and tarpipe copy the tree with its .git. Untimed checks after them:
# both copies hold as many files outside .git as the tarball, and the SQLite table holds TXNS rows (a mismatch fails the run).
#
# Targets: tmpfs (mounted here), GlusterFS replica 3 with bricks on tmpfs
# (../shared/bench/gluster-local.sh, GL_ROOT in the scratch dir) and dhtfs on
# a 3-node ring N=3/W=2/R=2 with node data on tmpfs, set up exactly as
# fs-bench.sh does (bench_ring_dhtfs_up in lib.sh). Everything started here is
# stopped on exit (kvnodes and dhtfs by PID, gluster-local.sh down, umount).
#
# Output: RESULT lines (label, run, test, unit=s, value = seconds, load1) in
# $RESULTS_DIR/fs-work-<timestamp>/results.kv, then a markdown table of
# medians: seconds per step per target, GlusterFS/dhtfs (the speed-up of
# dhtfs, > 1 = dhtfs faster) and dhtfs/tmpfs (how many times slower than
# memory). dhtfs runs with -o log_level=info so that its unmount logs the
# number of FUSE requests and mean time per request type for the whole run;
# those lines are copied into dhtfs-requests.txt in the results dir.
#
# Environment:
#   FILES=4500      files in the tarball (the first FILES regular files of
#                   SRC_TREE in sorted order); SRC_TREE=/usr/include
#   TXNS=2000       SQLite transactions
#   DHTFS_OPTS      -o options for dhtfs (default log_level=info)
#   RESULTS_DIR     default /tmp/bench/results; DATA_ROOT as in lib.sh
#   KEEP=1          keep the scratch dir
# Packages: git rsync sqlite3 jq fuse3 glusterfs-server glusterfs-client;
# missing ones are installed with apt-get install --no-install-recommends
# (INSTALL_DEPS=0: only name them and exit).
# Typical time (2 loaded vCPUs): ~20 s setup; with FILES=1000 TXNS=500 one
# round of all three targets takes about 2-4 min, dominated by GlusterFS and
# dhtfs; FILES=4500 TXNS=2000 about four times that.
set -euo pipefail
ROUNDS=${1:-1}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "usage: fs-work.sh [ROUNDS] (see the header for env knobs)" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build
DHTFS_BIN=$BUILD_DIR/fs/dhtfs
DHTFS_OPTS=${DHTFS_OPTS:-log_level=info}
FILES=${FILES:-4500} TXNS=${TXNS:-2000} SRC_TREE=${SRC_TREE:-/usr/include}
export GL_VOL=${GL_VOL:-fswork}
[ "$(id -u)" = 0 ] || { echo "fs-work: needs root (mounts tmpfs, glusterd)" >&2; exit 2; }
T_START=$(date +%s)
export PATH=$PATH:/usr/sbin:/sbin # glusterd

missing=()
declare -A pkg_of=([git]=git [rsync]=rsync [sqlite3]=sqlite3 [jq]=jq [fusermount3]=fuse3
    [glusterd]=glusterfs-server [gluster]=glusterfs-server [glusterfs]=glusterfs-client)
for c in "${!pkg_of[@]}"; do command -v "$c" >/dev/null || missing+=("${pkg_of[$c]}"); done
if [ ${#missing[@]} -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    [ "${INSTALL_DEPS:-1}" = 1 ] || { echo "fs-work: missing packages: apt-get install ${missing[*]}" >&2; exit 2; }
    echo "== installing missing packages: ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/fs-work-apt.log 2>&1 ||
        { tail -n 20 /tmp/fs-work-apt.log >&2; echo "fs-work: apt-get install failed" >&2; exit 2; }
fi
bench_require fs-work "$KVNODE" "$DHTCTL" "$DHTFS_BIN" "$FREEPORT"
bench_data_root
bench_tmpdir fsw "$DATA_ROOT"
export GL_ROOT=$T/gl GL_MNT=$T/mnt/gluster
DMNT=$T/mnt/dhtfs TMNT=$T/mnt/tmpfs
RUN_DIR=$RESULTS_DIR/fs-work-$(date +%Y%m%d-%H%M%S)
mkdir -p "$T/bin" "$DMNT" "$TMNT" "$RUN_DIR"
cp -p "$KVNODE" "$DHTCTL" "$DHTFS_BIN" "$T/bin/"
KVNODE=$T/bin/kvnode DHTCTL=$T/bin/dhtctl DHTFS_BIN=$T/bin/dhtfs
DHTFS_PID='' GL_UP=0

# shellcheck disable=SC2317,SC2034  # called from bench_cleanup; KEEP is read there
bench_pre_cleanup() {
    local m
    if mountpoint -q "$DMNT"; then
        for _ in 1 2 3 4 5; do fusermount3 -u "$DMNT" 2>/dev/null && break; sleep 1; done
        mountpoint -q "$DMNT" && umount -l "$DMNT"
    fi
    if [ -n "$DHTFS_PID" ]; then
        for _ in $(seq 100); do kill -0 "$DHTFS_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    [ -f "$T/dhtfs.log" ] && cp "$T/dhtfs.log" "$RUN_DIR/dhtfs.log"
    if [ "$GL_UP" = 1 ]; then "$SHARED/gluster-local.sh" down | sed 's/^/   /'; fi
    mountpoint -q "$TMNT" && umount "$TMNT"
    while read -r m; do
        echo "fs-work: $m still mounted, lazy unmount" >&2
        umount -l "$m" || KEEP=1
    done < <(findmnt -rn -o TARGET | grep -F "$T/" | sort -r)
}

echo "== fs-work: $ROUNDS round(s), FILES=$FILES TXNS=$TXNS SRC_TREE=$SRC_TREE, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   dhtfs $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'), -o $DHTFS_OPTS"

# ---- the tarball: same bytes for every target
(cd "$SRC_TREE" && find . -type f | LC_ALL=C sort | awk -v n="$FILES" 'NR <= n') >"$T/files.txt"
tar cf "$T/src.tar" -C "$SRC_TREE" --no-recursion -T "$T/files.txt"
NFILES=$(tar tf "$T/src.tar" | wc -l)
echo "   tarball: $NFILES files, $(du -m "$T/src.tar" | cut -f1) MiB"
awk -v n="$TXNS" 'BEGIN {
    print "CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v BLOB);"
    for (i = 0; i < n; i++)
        printf "BEGIN; INSERT INTO t (k, v) VALUES (\x27key%d\x27, randomblob(200)); COMMIT;\n", i
}' >"$T/txns.sql"

# ---- targets
mount -t tmpfs -o size=2g fswork-tmpfs "$TMNT"
bench_ring_dhtfs_up fs-work "$DMNT"
echo "   ring $EPS (kvnode pids ${KV_PIDS[*]}), dhtfs pid $DHTFS_PID"
GL_UP=1
if ! "$SHARED/gluster-local.sh" up >"$T/gluster-up.log" 2>&1 || ! mountpoint -q "$GL_MNT"; then
    cat "$T/gluster-up.log" >&2
    echo "fs-work: GlusterFS could not be set up" >&2
    exit 1
fi
labels=(tmpfs gluster dhtfs)
declare -A mnt_of=([tmpfs]=$TMNT [gluster]=$GL_MNT [dhtfs]=$DMNT)
echo "== setup done in $(($(date +%s) - T_START)) s"

RES=$RUN_DIR/results.kv
now() { date +%s.%N; }
step() { # LABEL RUN TEST COMMAND...: time one step, append a RESULT line
    local label=$1 run=$2 test=$3 t0 t1 secs
    shift 3
    t0=$(now)
    "$@"
    t1=$(now)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
    echo "RESULT label=$label run=$run test=$test unit=s value=$secs load1=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$RES"
}
count_files() { [ "$(find "$1" -path "$1/.git" -prune -o -type f -print | wc -l)" = "$NFILES" ] || { echo "fs-work: $1 does not hold $NFILES files" >&2; exit 1; }; }
w_extract() { mkdir -p "$1/src" && tar xf "$T/src.tar" -C "$1/src"; }
w_git() {
    git -C "$1/src" init -q &&
        git -C "$1/src" add -A &&
        git -C "$1/src" -c user.name=bench -c user.email=bench@localhost commit -q -m "import"
}
w_rsync() { rsync -a "$1/src/" "$1/rsync/"; }
w_tarpipe() { mkdir -p "$1/tarcopy" && tar c -C "$1/src" . | tar x -C "$1/tarcopy"; }
w_sqlite() { sqlite3 "$1/db.sqlite" <"$T/txns.sql"; }
w_rm() { rm -rf "$1"; }

for ((r = 1; r <= ROUNDS; r++)); do
    order=("${labels[@]}")
    ((r % 2 == 0)) && order=(dhtfs gluster tmpfs)
    for l in "${order[@]}"; do
        W=${mnt_of[$l]}/fsw-r$r
        echo "== round $r: $l ($W)"
        step "$l" "$r" extract w_extract "$W"
        step "$l" "$r" git w_git "$W"
        step "$l" "$r" rsync w_rsync "$W"
        count_files "$W/rsync"
        step "$l" "$r" tarpipe w_tarpipe "$W"
        count_files "$W/tarcopy"
        step "$l" "$r" sqlite w_sqlite "$W"
        [ "$(sqlite3 "$W/db.sqlite" 'SELECT count(*) FROM t')" = "$TXNS" ] ||
            { echo "fs-work: $l: SQLite table does not hold $TXNS rows" >&2; exit 1; }
        step "$l" "$r" rm w_rm "$W"
    done
done

# ---- dhtfs's request counts (logged at unmount)
fusermount3 -u "$DMNT"
for _ in $(seq 300); do kill -0 "$DHTFS_PID" 2>/dev/null || break; sleep 0.1; done
grep -E ' requests, mean |store operations:|stat-ahead:' "$T/dhtfs.log" | sed 's/^.* fs: //' >"$RUN_DIR/dhtfs-requests.txt" || true

# ---- medians and ratios
{
    echo "fs-work.sh $ROUNDS round(s), $(date '+%F %T'), FILES=$NFILES TXNS=$TXNS SRC_TREE=$SRC_TREE, dhtfs $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
    echo
    echo "| step | tmpfs, s | GlusterFS, s | dhtfs, s | speed-up vs GlusterFS (gluster/dhtfs) | dhtfs/tmpfs |"
    echo "|---|---:|---:|---:|---:|---:|"
    awk '
        { for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
          key = f["test"] SUBSEP f["label"]; n[key]++; v[key, n[key]] = f["value"]
          if (!(f["test"] in seen)) { seen[f["test"]] = 1; tests[++nt] = f["test"] }
          if (lo == "" || f["load1"] < lo) lo = f["load1"]; if (f["load1"] > hi) hi = f["load1"] }
        function med(key,   m, i, j, t, a) {
            m = n[key]; for (i = 1; i <= m; i++) a[i] = v[key, i]
            for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
        END {
            for (k = 1; k <= nt; k++) {
                t = tests[k]; a = med(t SUBSEP "tmpfs"); g = med(t SUBSEP "gluster"); d = med(t SUBSEP "dhtfs")
                tot_a += a; tot_g += g; tot_d += d
                printf "| %s | %.2f | %.2f | %.2f | %.2f | %.0f |\n", t, a, g, d, (d > 0 ? g / d : 0), (a > 0 ? d / a : 0)
            }
            printf "| **all steps** | %.2f | %.2f | %.2f | %.2f | %.0f |\n\nload1 during the run: %s..%s\n", tot_a, tot_g, tot_d, (tot_d > 0 ? tot_g / tot_d : 0), (tot_a > 0 ? tot_d / tot_a : 0), lo, hi
        }' "$RES"
    echo
    echo "dhtfs FUSE requests over the whole run (all rounds, logged at unmount):"
    echo
    sed 's/^/    /' "$RUN_DIR/dhtfs-requests.txt"
} | tee "$RUN_DIR/summary.md"
echo "== raw results: $RUN_DIR; total $(($(date +%s) - T_START)) s"
