#!/usr/bin/env bash
# fs-bench.sh [ROUNDS=3] — dhtfs under the fixed fio suite, side by side with
# the reference filesystems, all in one interleaved run.
#
# Starts (private scratch dir on tmpfs, free loopback ports; only what it
# started is stopped on exit, kvnodes and dhtfs by PID):
#   dhtfs          3 kvnodes (--replicas 3 --write-quorum 2 --read-quorum 2,
#                  data dirs on tmpfs, ids pinned to k*2^64/3) and build/fs/dhtfs
#                  mounted on them (-o $DHTFS_OPTS)
#   tmpfs, pt_default_mt
#                  ../shared/bench/local-targets.sh with BENCH_ROOT=<scratch>/lt,
#                  PT_VARIANTS=default_mt (libfuse passthrough_ll over tmpfs,
#                  glibc malloc tuned)
#   gluster        ../shared/bench/gluster-local.sh with GL_ROOT=<scratch>/gl:
#                  private glusterd on the host name's 127.x address, replica-3
#                  volume, bricks on tmpfs, FUSE mount
# then ../shared/bench/run-interleaved.sh ROUNDS over tmpfs, pt_default_mt,
# gluster, dhtfs (fio-suite.sh: seq 1 MiB write/read, rand 4 KiB read/write,
# mdbench create/readdir/stat/read/unlink), with the ratios
# dhtfs/pt_default_mt, dhtfs/gluster and pt_default_mt/tmpfs. At the end, while
# everything is still up, it reads VmHWM (peak RSS) from /proc/PID/status of
# dhtfs, each kvnode, passthrough_ll and the gluster processes (client, bricks,
# self-heal daemon, glusterd) with each one's RSS at that moment split into
# anonymous and file-backed + shmem pages, and the size of the data the kvnodes
# and the bricks hold (du), prints that table and the ratio table.
#
# Ctrl-C also reaches kvnode and dhtfs (their signalfd takes SIGINT even though
# bash starts background jobs with it ignored): the ring leaves, dhtfs unmounts,
# the suite in progress fails, and the script reports what it has (with "!!"
# lines, exit status 1) and cleans up the rest.
#
# Output: $RESULTS_DIR/fs-bench-<timestamp>/ holds the raw RESULT lines and fio
# json (<label>/*.kv, *.json), summary.md (summarize.sh), peak-mem.md, info.txt.
#
# Environment:
#   RUNTIME, MD_FILES, SEQ_SIZE, RAND_SIZE (and the other fio-suite.sh knobs)
#                  passed through to fio-suite.sh (defaults there: 10, 5000,
#                  512M, 256M)
#   DHTFS_OPTS     extra -o options for dhtfs, e.g. chunk_kb=256,cache_mb=512
#   GLUSTER=1      1: GlusterFS is required (setup failure aborts the run);
#                  auto: try, and if it cannot be set up go on without it;
#                  0: skip it. A skipped GlusterFS is reported loudly at the
#                  start and the end of the output.
#   INSTALL_DEPS=1 apt-get install the Debian packages that are missing (fio jq
#                  gcc bc fuse3 libfuse3-dev pkg-config, glusterfs-server
#                  glusterfs-client unless GLUSTER=0); 0: only name them and exit
#   BUILD_DIR      default <repo>/build; built with cmake only if a binary is
#                  missing (retried BUILD_TRIES=3 times, BUILD_WAIT=180 s apart,
#                  since the tree may be mid-edit). The binaries are copied into
#                  the scratch dir, so a rebuild during the run does not matter.
#   RESULTS_DIR    default /tmp/bench/results;  DATA_ROOT default /dev/shm if it
#                  is tmpfs, else /tmp;  KEEP=1 keeps the scratch dir and logs
#   GL_VOL=fsbench GlusterFS volume name
# Typical time: ~25 s setup (+ apt-get the first time), ~10 s teardown, then per
# round roughly 25 s tmpfs, 35 s passthrough, 100 s GlusterFS and whatever dhtfs
# takes (default sizes, 2 loaded vCPUs). Short plumbing check (~1.5 min):
#   RUNTIME=3 MD_FILES=500 SEQ_SIZE=128M RAND_SIZE=64M bench/fs-bench.sh 1
set -euo pipefail
ROUNDS=${1:-3}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "usage: fs-bench.sh [ROUNDS] (see the header for env knobs)" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_paths build
DHTFS_BIN=$BUILD_DIR/fs/dhtfs
DHTFS_OPTS=${DHTFS_OPTS:-}
GLUSTER=${GLUSTER:-1}
INSTALL_DEPS=${INSTALL_DEPS:-1}
export GL_VOL=${GL_VOL:-fsbench}
case $GLUSTER in 0 | 1 | auto) ;; *) echo "fs-bench: GLUSTER must be 1, auto or 0" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "fs-bench: needs root (mounts tmpfs, glusterd, drop_caches)" >&2; exit 2; }
T_START=$(date +%s)

# ---- Debian packages, installed only when missing
INSTALLED=()
need_pkgs() {
    local missing=() c
    declare -A pkg_of=([fio]=fio [jq]=jq [gcc]=gcc [bc]=bc [fusermount3]=fuse3 [pkg-config]=pkg-config
        [mountpoint]=util-linux [findmnt]=util-linux [fuser]=psmisc)
    for c in "${!pkg_of[@]}"; do command -v "$c" >/dev/null || missing+=("${pkg_of[$c]}"); done
    [ -e /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c ] && pkg-config --exists fuse3 2>/dev/null ||
        missing+=(libfuse3-dev)
    if [ "$GLUSTER" != 0 ]; then
        command -v glusterd >/dev/null && command -v gluster >/dev/null || missing+=(glusterfs-server)
        command -v glusterfs >/dev/null || missing+=(glusterfs-client)
    fi
    [ ${#missing[@]} -gt 0 ] || return 0
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    if [ "$INSTALL_DEPS" != 1 ]; then
        echo "fs-bench: missing packages: apt-get install ${missing[*]}" >&2
        exit 2
    fi
    echo "== installing missing packages: ${missing[*]}"
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/fs-bench-apt.log 2>&1; then
        apt-get update -q >>/tmp/fs-bench-apt.log 2>&1 || true
        apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/fs-bench-apt.log 2>&1 ||
            { tail -n 20 /tmp/fs-bench-apt.log >&2; echo "fs-bench: apt-get install ${missing[*]} failed" >&2; exit 2; }
    fi
    INSTALLED=("${missing[@]}")
    echo "== INSTALLED with apt-get: ${INSTALLED[*]} (log /tmp/fs-bench-apt.log)"
}
need_pkgs

# ---- dhtfs binaries: build only if missing (the tree may be mid-edit: retry)
bins=("$KVNODE" "$DHTCTL" "$DHTFS_BIN" "$FREEPORT")
have_bins() { local f; for f in "${bins[@]}"; do [ -x "$f" ] || return 1; done; }
if ! have_bins; then
    for ((try = 1; ; try++)); do
        echo "== building $BUILD_DIR (try $try)"
        if cmake -S "$ROOT" -B "$BUILD_DIR" >/dev/null && cmake --build "$BUILD_DIR" -j2 >"/tmp/fs-bench-build.log" 2>&1 &&
            have_bins; then
            break
        fi
        if ((try >= ${BUILD_TRIES:-3})); then
            tail -n 30 /tmp/fs-bench-build.log >&2
            echo "fs-bench: build failed $try times (log /tmp/fs-bench-build.log)" >&2
            exit 2
        fi
        echo "   build failed (tree mid-edit?); retrying in ${BUILD_WAIT:-180} s"
        sleep "${BUILD_WAIT:-180}"
    done
fi
bench_require fs-bench "${bins[@]}"
bench_data_root

# short names: "gluster volume status" wraps brick paths longer than ~37
# characters, and gluster-local.sh then misses the brick PIDs it records
bench_tmpdir fsb "$DATA_ROOT"
LT_ROOT=$T/lt
export GL_ROOT=$T/gl GL_MNT=$T/mnt/gluster
DMNT=$T/mnt/dhtfs
RUN_DIR=$RESULTS_DIR/fs-bench-$(date +%Y%m%d-%H%M%S)
mkdir -p "$T/bin" "$DMNT" "$RUN_DIR"
cp -p "$KVNODE" "$DHTCTL" "$DHTFS_BIN" "$T/bin/"
KVNODE=$T/bin/kvnode DHTCTL=$T/bin/dhtctl DHTFS_BIN=$T/bin/dhtfs
DHTFS_PID='' LT_UP=0 GL_UP=0 GL_SKIPPED=''
KV_PIDS=()

# Runs from bench_cleanup before it kills PIDS (the kvnodes): dhtfs must
# flush and unmount while the ring is still up.
# shellcheck disable=SC2317,SC2034  # called from bench_cleanup; KEEP is read there
bench_pre_cleanup() {
    local m
    if mountpoint -q "$DMNT"; then
        for _ in 1 2 3 4 5; do
            fusermount3 -u "$DMNT" 2>/dev/null && break
            sleep 1
        done
        mountpoint -q "$DMNT" && { echo "fs-bench: $DMNT busy, lazy unmount" >&2; umount -l "$DMNT"; }
    fi
    if [ -n "$DHTFS_PID" ]; then
        for _ in $(seq 100); do kill -0 "$DHTFS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$DHTFS_PID" 2>/dev/null && echo "fs-bench: dhtfs pid $DHTFS_PID still alive after unmount (killed next)" >&2
    fi
    if [ "$LT_UP" = 1 ]; then BENCH_ROOT=$LT_ROOT "$SHARED/local-targets.sh" down | sed 's/^/   /'; fi
    if [ "$GL_UP" = 1 ]; then "$SHARED/gluster-local.sh" down | sed 's/^/   /'; fi
    # anything still mounted under the scratch dir would be emptied by rm -rf
    while read -r m; do
        echo "fs-bench: $m still mounted, lazy unmount" >&2
        umount -l "$m" || KEEP=1
    done < <(findmnt -rn -o TARGET | grep -F "$T/" | sort -r)
}

echo "== fs-bench: $ROUNDS round(s), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), scratch $T ($(stat -f -c %T "$T"))"
echo "   dhtfs $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?') (binary $(date -r "$DHTFS_BIN" '+%F %T')), -o ${DHTFS_OPTS:-(none)}"
echo "   fio-suite knobs: RUNTIME=${RUNTIME:-10} MD_FILES=${MD_FILES:-5000} SEQ_SIZE=${SEQ_SIZE:-512M} RAND_SIZE=${RAND_SIZE:-256M}"
if [ "$GLUSTER" = 0 ]; then
    GL_SKIPPED="GLUSTER=0"
    echo "!! ============================================================"
    echo "!! GlusterFS SKIPPED (GLUSTER=0): no gluster target, no dhtfs/gluster ratio"
    echo "!! ============================================================"
fi

# ---- the ring and dhtfs (bench/lib.sh)
bench_ring_dhtfs_up fs-bench "$DMNT"
echo "   ring ${EPS} (kvnode pids ${KV_PIDS[*]}), dhtfs pid $DHTFS_PID on $DMNT"

# ---- references
LT_UP=1
BENCH_ROOT=$LT_ROOT PT_VARIANTS=default_mt "$SHARED/local-targets.sh" up | sed 's/^/   /'
for m in tmpfs pt_default_mt; do
    mountpoint -q "$LT_ROOT/mnt/$m" || { echo "fs-bench: local target $m is not mounted" >&2; exit 1; }
done
targets=(tmpfs="$LT_ROOT/mnt/tmpfs" pt_default_mt="$LT_ROOT/mnt/pt_default_mt")
ratios="dhtfs/pt_default_mt dhtfs/gluster pt_default_mt/tmpfs"
if [ "$GLUSTER" != 0 ]; then
    GL_UP=1
    gl_ok=0
    if "$SHARED/gluster-local.sh" up >"$T/gluster-up.log" 2>&1 && mountpoint -q "$GL_MNT" &&
        touch "$GL_MNT/.fs-bench-probe" 2>/dev/null && rm -f "$GL_MNT/.fs-bench-probe"; then
        gl_ok=1
    fi
    sed 's/^/   /' "$T/gluster-up.log"
    if [ $gl_ok = 1 ]; then
        targets+=(gluster="$GL_MNT")
    elif [ "$GLUSTER" = auto ]; then
        GL_SKIPPED="setup failed (GLUSTER=auto)"
        echo "!! ============================================================"
        echo "!! GlusterFS could NOT be set up; GLUSTER=auto: going on WITHOUT it"
        echo "!! (no gluster target, no dhtfs/gluster ratio; see the output above)"
        echo "!! ============================================================"
    else
        echo "fs-bench: GlusterFS could not be set up (output above); GLUSTER=auto or GLUSTER=0 runs without it" >&2
        exit 1
    fi
fi
[ -n "$GL_SKIPPED" ] && ratios="dhtfs/pt_default_mt pt_default_mt/tmpfs"
targets+=(dhtfs="$DMNT")
SETUP_S=$(($(date +%s) - T_START))
echo "== setup done in ${SETUP_S} s; targets: ${targets[*]%%=*}"

# ---- the interleaved run
rc=0
RESULTS_DIR=$RUN_DIR RATIOS=$ratios "$SHARED/run-interleaved.sh" "$ROUNDS" "${targets[@]}" || rc=$?
[ $rc = 0 ] || echo "!! run-interleaved.sh exited $rc"

# ---- peak memory (VmHWM), sampled before anything is stopped
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }
# RSS now, split: "ANON_KB FILE_KB" (file = file-backed + shmem pages: for a
# kvnode, LMDB's map of the data it holds)
rss_split_kb() { awk '/^RssAnon:/ {a = $2} /^RssFile:|^RssShmem:/ {f += $2} END {if (a != "") print a, f}' "/proc/$1/status" 2>/dev/null || true; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
du_mib() { du -sm "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
alive() { local p; for p in "$@"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"; done; return 0; }
pidfile() { [ -s "$1" ] && cat "$1"; true; }
pg() { pgrep -f -- "$1" | tr '\n' ' '; true; } # PIDs on one line (read only)
pt_pids=$(alive "$(pidfile "$LT_ROOT/run/pt_default_mt.pid")")
[ -n "$pt_pids" ] || pt_pids=$(pg "$LT_ROOT/build/passthrough_ll .*$LT_ROOT/mnt/pt_default_mt")
gl_client='' gl_bricks='' gl_shd='' gl_d=''
if [ "$GL_UP" = 1 ] && [ -z "$GL_SKIPPED" ]; then
    gl_client=$(alive "$(pidfile "$GL_ROOT/pids/client")")
    [ -n "$gl_client" ] || gl_client=$(pg "glusterfs .*$GL_MNT")
    gl_d=$(alive "$(pidfile "$GL_ROOT/pids/glusterd")")
    [ -n "$gl_d" ] || gl_d=$(pg "glusterd .*$GL_ROOT/glusterd.vol")
    gl_bricks=$(pg "glusterfsd .*$GL_ROOT/bricks/b")
    gl_shd=$(pg "glusterfs .*shd/$GL_VOL")
    for p in $(pidfile "$GL_ROOT/pids/servers"); do # volume status PIDs, as a cross-check
        kill -0 "$p" 2>/dev/null || continue
        case " $gl_bricks $gl_shd " in *" $p "*) continue ;; esac
        if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = glusterfsd ]; then gl_bricks+=" $p"; else gl_shd+=" $p"; fi
    done
fi
MEM=$RUN_DIR/peak-mem.md
{
    echo "Peak RSS (VmHWM from /proc/PID/status, sampled after the last round, before unmounting), MiB."
    echo "Data held on tmpfs (kvnode data dirs, bricks, passthrough source) is not in the peak;"
    echo "RSS now splits the resident memory at sampling time into anonymous (heap, caches)"
    echo "and file-backed + shmem pages (a kvnode's LMDB map of the data it holds on tmpfs)."
    echo
    echo "| process | n | pids | peak RSS each, MiB | sum, MiB | RSS now anon / file+shmem, sum, MiB |"
    echo "|---|---:|---|---|---:|---|"
    row() { # NAME PIDS...
        local name=$1 p kb each='' sum=0 n=0 pids='' an fi anon=0 file=0
        shift
        for p in "$@"; do
            kb=$(hwm_kb "$p")
            [ -n "$kb" ] || continue
            read -r an fi <<<"$(rss_split_kb "$p")"
            n=$((n + 1)) sum=$((sum + kb)) anon=$((anon + ${an:-0})) file=$((file + ${fi:-0}))
            each+=${each:+ / }$(mib "$kb")
            pids+=${pids:+ }$p
        done
        if ((n == 0)); then echo "| $name | 0 | - | (not found) | - | - |"; return; fi
        printf '| %s | %d | %s | %s | %s | %s / %s |\n' "$name" "$n" "$pids" "$each" "$(mib "$sum")" "$(mib "$anon")" "$(mib "$file")"
        TOTAL_KB=$((TOTAL_KB + sum))
    }
    TOTAL_KB=0
    row "dhtfs (FUSE client)" "$DHTFS_PID"
    row kvnode "${KV_PIDS[@]}"
    printf '| **dhtfs total** | | | | **%.1f** | |\n' "$(awk -v k="$TOTAL_KB" 'BEGIN {print k / 1024}')"
    TOTAL_KB=0
    # shellcheck disable=SC2086  # pid lists split into words
    row "passthrough_ll (pt_default_mt)" $pt_pids
    if [ -n "$GL_SKIPPED" ]; then
        echo "| GlusterFS | - | - | SKIPPED: $GL_SKIPPED | - |"
    else
        TOTAL_KB=0
        # shellcheck disable=SC2086
        {
            row "glusterfs (FUSE client)" $gl_client
            row "glusterfsd (bricks)" $gl_bricks
            row "glusterfs (self-heal daemon)" $gl_shd
            row "glusterd" $gl_d
        }
        printf '| **gluster total** | | | | **%.1f** | |\n' "$(awk -v k="$TOTAL_KB" 'BEGIN {print k / 1024}')"
    fi
    echo
    # shellcheck disable=SC2086  # globs of data dirs
    echo "Data held at sampling time (du -sm): kvnode data dirs $(du_mib "$T"/n*.data) MiB in all (3 copies);"\
        "GlusterFS bricks $(du_mib ${GL_ROOT:+"$GL_ROOT"/bricks/b*}) MiB in all (3 copies)."
} >"$MEM"

# ---- checks and the ring's state
alive_n=$(alive "${KV_PIDS[@]}" "$DHTFS_PID" | wc -l)
((alive_n == 4)) || { echo "!! only $alive_n of 3 kvnodes + dhtfs alive at the end"; ((rc)) || rc=1; }
echo "## ring status: $("$DHTCTL" --peer "127.0.0.1:${PORTS[0]}" --timeout-ms 3000 status --json 2>&1 | tr -d '\n' | head -c 600)"
n=$(cat "$T"/kvnode*.log | wc -l)
((n == 0)) || { echo "## kvnode logs: $n lines at warn or above, last 5:"; cat "$T"/kvnode*.log | tail -n 5 | sed 's/^/  /'; }
n=$(wc -l <"$T/dhtfs.log")
((n == 0)) || { echo "## dhtfs log: $n lines, last 5:"; tail -n 5 "$T/dhtfs.log" | sed 's/^/  /'; }
for t in "${targets[@]}"; do
    l=${t%%=*}
    n=$(cat "$RUN_DIR/$l"/*.kv 2>/dev/null | grep -c '^RESULT ' || true)
    want=$((ROUNDS * 10)) # 4 fio tests + 5 mdbench phases + suite_secs per round
    ((n == want)) || { echo "!! $l: $n RESULT lines, expected $want"; ((rc)) || rc=1; }
done
{
    echo "fs-bench.sh $ROUNDS rounds, $(date '+%F %T'), $(nproc) CPUs"
    echo "dhtfs $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'), binary $(date -r "$DHTFS_BIN" '+%F %T'), -o ${DHTFS_OPTS:-(none)}"
    echo "ring: 3 kvnodes, --replicas 3 --write-quorum 2 --read-quorum 2, data on $(stat -f -c %T "$T")"
    echo "fio-suite: RUNTIME=${RUNTIME:-10} MD_FILES=${MD_FILES:-5000} SEQ_SIZE=${SEQ_SIZE:-512M} RAND_SIZE=${RAND_SIZE:-256M}"
    echo "targets: ${targets[*]%%=*}${GL_SKIPPED:+ (GlusterFS SKIPPED: $GL_SKIPPED)}"
    echo "setup ${SETUP_S} s; installed: ${INSTALLED[*]:-nothing}"
} >"$RUN_DIR/info.txt"

echo
echo "## peak memory"
echo
cat "$MEM"
echo
echo "## ratios of medians (summarize.sh)"
echo
if [ -s "$RUN_DIR/summary.md" ]; then
    awk 'seen {print} /^$/ {seen = 1}' "$RUN_DIR/summary.md"
else
    args=(-o "tmpfs,pt_default_mt,gluster,dhtfs")
    for p in $ratios; do args+=(-r "$p"); done
    "$SHARED/summarize.sh" "${args[@]}" "$RUN_DIR" 2>&1 | tee "$RUN_DIR/summary.md" | awk 'seen {print} /^$/ {seen = 1}' || true
fi
echo
[ -n "$GL_SKIPPED" ] && echo "!! GlusterFS was SKIPPED ($GL_SKIPPED): no dhtfs/gluster ratio in this run"
[ ${#INSTALLED[@]} -gt 0 ] && echo "== installed with apt-get this run: ${INSTALLED[*]}"
echo "== raw results: $RUN_DIR (summary.md, peak-mem.md, info.txt, <label>/*.kv + fio json); total $(($(date +%s) - T_START)) s"
exit "$rc"
