# shellcheck shell=bash
# fs_lib.sh — helpers for the FUSE mount tests (sourced, bash), on top of
# lib.sh: a 3-node ring, dhtfs mounts that are always unmounted on exit, and
# small assertion helpers that name what differed.
#
# Every mount made through mount_fs is recorded; on any exit the mounts are
# unmounted (fusermount3 -u, then a lazy unmount as fallback), processes
# started under $T that lib.sh does not know about (a daemonized dhtfs and
# the kvnodes of its embedded ring) are stopped (fs_unmount_all, an on_exit
# step), and then lib.sh's cleanup goes on with the test's exit code.
# Node data on tmpfs when there is one: the nodes fsync every write batch on
# their loop thread, and on a shared disk under a test's write load one fsync
# can take seconds — longer than dhtfs waits before it reports EIO.
if [ -z "${TEST_TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    TEST_TMPDIR=/dev/shm
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DHTFS=$BUILD_DIR/fs/dhtfs
MOUNTS=()
declare -A MOUNT_PID=() MOUNT_ARGS=()
FS_PEERS=
export TZ=UTC LC_ALL=C

# is_mounted DIR: DIR is a mount point in /proc/self/mountinfo (never stats
# DIR, so it cannot hang on a stuck file system).
is_mounted() {
    awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo
}

# stray_pids: processes whose command line mentions $T that lib.sh does not
# track — started by this test (daemonized dhtfs, embedded kvnodes).
stray_pids() {
    pgrep -f -- "$T/" 2>/dev/null | grep -vx -- "$$" || true
}

# fs_unmount_all: the first cleanup step (on_exit hooks run newest first,
# and this one is registered when fs_lib.sh is sourced, so it runs after a
# test's own hooks and before lib.sh kills the processes it started).
fs_unmount_all() {
    local m pid i
    set +e
    for pid in "${PIDS[@]}"; do
        kill -CONT "$pid" 2>/dev/null
    done
    for m in "${MOUNTS[@]}"; do
        if is_mounted "$m"; then
            timeout 10 fusermount3 -u "$m" 2>/dev/null ||
                timeout 10 fusermount3 -uz "$m" 2>/dev/null ||
                umount -l "$m" 2>/dev/null
        fi
    done
    for pid in $(stray_pids); do
        kill -TERM "$pid" 2>/dev/null
    done
    for ((i = 0; i < 50; i++)); do
        [ -n "$(stray_pids)" ] || break
        sleep 0.1
    done
    for pid in $(stray_pids); do
        kill -KILL "$pid" 2>/dev/null
    done
    return 0
}
on_exit fs_unmount_all

# fs_require: skip (77) when this machine cannot mount FUSE file systems.
fs_require() {
    if [ ! -c /dev/fuse ] || [ ! -r /dev/fuse ] || [ ! -w /dev/fuse ]; then
        echo "SKIP: /dev/fuse is missing or not usable" >&2
        exit 77
    fi
    if ! command -v fusermount3 >/dev/null; then
        echo "SKIP: fusermount3 is missing (apt-get install fuse3)" >&2
        exit 77
    fi
    [ -x "$DHTFS" ] || fail "dhtfs is not built: $DHTFS"
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || fail "$tool is missing (scripts/deps.sh test installs it)"
    done
}

# fs_require_root: skip (77) unless root (chown, other users, mknod).
fs_require_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "SKIP: needs root" >&2
        exit 77
    fi
}

# fs_ring: start a 3-node ring, wait for it, set FS_PEERS.
fs_ring() {
    local p
    start_ring 3
    for p in "${PORTS[@]}"; do
        wait_ring "$p" 3 20
    done
    FS_PEERS=
    for p in "${PORTS[@]}"; do
        FS_PEERS+=${FS_PEERS:+,}tcp://127.0.0.1:$p
    done
}

# mount_fs MOUNTPOINT [dhtfs args...]: run `dhtfs --peer $FS_PEERS ARGS -f
# MOUNTPOINT` in the background (log $T/dhtfs-NAME.log), wait until mounted
# (20 s); sets DHTFS_PID.
mount_fs() {
    local mnt=$1 log i st=0
    shift
    log="$T/dhtfs-$(basename "$mnt").log"
    mkdir -p "$mnt"
    local args=()
    if [ -n "$FS_PEERS" ]; then
        args+=(--peer "$FS_PEERS")
    fi
    # shellcheck disable=SC2206  # DHTFS_EXTRA (e.g. -d for debug logs) is a list of flags
    args+=("$@" ${DHTFS_EXTRA:-} -f "$mnt")
    echo "--- $(date +%T.%N) dhtfs ${args[*]}" >>"$log"
    "$DHTFS" "${args[@]}" >>"$log" 2>&1 &
    DHTFS_PID=$!
    PIDS+=("$DHTFS_PID")
    MOUNTS+=("$mnt")
    MOUNT_PID[$mnt]=$DHTFS_PID
    MOUNT_ARGS[$mnt]="$*"
    for ((i = 0; i < 200; i++)); do
        if is_mounted "$mnt" && timeout 10 stat "$mnt" >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$DHTFS_PID" 2>/dev/null; then
            wait "$DHTFS_PID" || st=$?
            tail -n 40 "$log" >&2
            fail "dhtfs ${args[*]} exited with status $st without mounting"
        fi
        sleep 0.1
    done
    tail -n 40 "$log" >&2
    fail "dhtfs ${args[*]} did not mount within 20 s"
}

# umount_fs MOUNTPOINT: fusermount3 -u (retried while busy), then the dhtfs
# process must exit 0 within 20 s.
umount_fs() {
    local mnt=$1 pid=${MOUNT_PID[$1]:-} i
    for ((i = 0; i < 50; i++)); do
        if fusermount3 -u "$mnt" 2>"$T/umount.err"; then
            break
        fi
        sleep 0.2
    done
    ((i < 50)) || fail "fusermount3 -u $mnt failed for 10 s: $(cat "$T/umount.err")"
    if [ -n "$pid" ]; then
        wait_exit "$pid" 20
        [ "$EXIT_STATUS" = 0 ] ||
            fail "dhtfs of $mnt exited with status $EXIT_STATUS after fusermount3 -u (expected 0)"
        unset "MOUNT_PID[$mnt]"
    fi
}

# remount_fs MOUNTPOINT: unmount, then mount again with the same arguments.
remount_fs() {
    local mnt=$1 args
    read -r -a args <<<"${MOUNT_ARGS[$mnt]}"
    umount_fs "$mnt"
    mount_fs "$mnt" "${args[@]}"
}

# expect_err WANT CMD...: CMD (run under timeout 30) must fail and its
# stderr must contain WANT (e.g. "File name too long").
expect_err() {
    local want=$1 st=0
    shift
    timeout 30 "$@" >"$T/expect.out" 2>"$T/expect.err" || st=$?
    [ "$st" -ne 0 ] || fail "'$*' succeeded; expected it to fail with '$want'"
    [ "$st" -ne 124 ] || fail "'$*' hung (killed after 30 s); expected '$want'"
    grep -qF -- "$want" "$T/expect.err" ||
        fail "'$*' failed (exit $st) with '$(head -c 400 "$T/expect.err")'; expected '$want'"
}

# expect_ok CMD...: CMD (under timeout 60) must succeed.
expect_ok() {
    local st=0
    timeout 60 "$@" >"$T/expect.out" 2>"$T/expect.err" || st=$?
    [ "$st" -eq 0 ] || fail "'$*' failed (exit $st): $(head -c 400 "$T/expect.err")"
}

# check_eq WHAT GOT WANT
check_eq() {
    [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}

# check_same_file WHAT FILE REF: byte-identical (cmp names the first difference).
check_same_file() {
    local out
    out=$(cmp -- "$2" "$3" 2>&1) || fail "$1: $2 differs from $3: $out"
}

# "${AS_NOBODY[@]}" CMD...: run as uid/gid 65534 with no supplementary groups
# (an array, so it also works under timeout and expect_err).
# shellcheck disable=SC2034  # used by the scripts that source this
AS_NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups --)

# fs_helper: compile the small C helper (renameat2, O_EXCL, unix sockets)
# into $T/fsprobe; sets FSPROBE.
fs_helper() {
    FSPROBE=$T/fsprobe
    cat >"$T/fsprobe.c" <<'EOF'
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
/* fsprobe rename2 none|noreplace|exchange OLD NEW | excl PATH | sock PATH */
int main(int argc, char **argv)
{
    int rc = -1;
    if (argc == 5 && strcmp(argv[1], "rename2") == 0) {
        unsigned flags = strcmp(argv[2], "noreplace") == 0  ? RENAME_NOREPLACE
                         : strcmp(argv[2], "exchange") == 0 ? RENAME_EXCHANGE
                                                            : 0;
        rc = renameat2(AT_FDCWD, argv[3], AT_FDCWD, argv[4], flags);
    } else if (argc == 3 && strcmp(argv[1], "excl") == 0) {
        rc = open(argv[2], O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (rc >= 0)
            rc = close(rc);
    } else if (argc == 3 && strcmp(argv[1], "sock") == 0) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        snprintf(a.sun_path, sizeof a.sun_path, "%s", argv[2]);
        rc = bind(s, (struct sockaddr *)&a, sizeof a);
    } else {
        fprintf(stderr, "usage: fsprobe rename2 none|noreplace|exchange OLD NEW | excl PATH | sock PATH\n");
        return 2;
    }
    if (rc < 0) {
        fprintf(stderr, "fsprobe %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    return 0;
}
EOF
    gcc -O1 -o "$FSPROBE" "$T/fsprobe.c" || fail "could not compile the test helper fsprobe.c"
}

# sha_tree DIR [FIND TESTS...]: "sha256  relative/path" of every regular
# file (matching the extra find tests), sorted.
sha_tree() {
    (cd "$1" && shift && find . -type f "$@" -print0 | sort -z | xargs -0r sha256sum)
}

# meta_tree DIR: type, mode, owner, size, mtime/ctime (ns), link count and
# symlink target of everything under DIR, sorted (no atime, no inode).
meta_tree() {
    (cd "$1" && find . -printf '%p|%y|%m|%U|%G|%s|%T@|%C@|%n|%l\n' | sort)
}

# since START: seconds (one decimal) since START, a saved $EPOCHREALTIME.
since() {
    awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# less_than X Y: X < Y for decimal numbers.
less_than() {
    awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'
}

# sha_of FILE: the sha256 of FILE, or the error reading it.
sha_of() {
    { sha256sum <"$1" | cut -c1-64; } 2>&1
}
