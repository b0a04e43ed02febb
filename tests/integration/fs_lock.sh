#!/usr/bin/env bash
# File locks hold across mounts (issue 12): two dhtfs mounts of one volume
# on a 3-node ring exclude each other.
#   - flock -x held on mount a: flock -n -x on b fails; a blocking flock -x
#     on b waits (2.5 leases: a live holder is never taken for dead) until
#     a releases, then gets it;
#   - two mounts incrementing one counter under flock -x lose no update;
#   - fcntl byte ranges (python3 fcntl): disjoint ranges on both mounts
#     succeed, overlapping ones conflict (EAGAIN), shared ones share;
#     F_GETLK on b reports a's range and type; a blocked F_SETLKW ends with
#     EINTR on a signal; close drops the locks, and the last close of an
#     open file its F_OFD_SETLK locks;
#   - SQLite on both mounts with the default options (names cached for
#     attr_timeout=1): two concurrent writers, journal_mode=DELETE, then
#     integrity_check is ok and the row count is the sum (a lock grant
#     drops the names of the file's directory that the kernel holds);
#   - a lock is a coherence point: mount c (attr_timeout=30, so neither
#     its names nor its pages would expire by themselves) reads a file,
#     a overwrites it, and c's read after taking a lock sees a's bytes;
#     again while c holds another lock on the file (its next lock is then
#     revalidated by the read sent along with the lock's write);
#     and after c's last unlock left the record empty (kept by c for its
#     next lock): a's lock, write and create in between are seen at c's
#     next grant, as is a lockless write; the empty record goes within
#     15 s (5 s after the last unlock);
#   - a mount frozen (SIGSTOP) for longer than a lease while a process
#     holds an fcntl lock: b gets the lock, and once a runs again that
#     process's write and fsync answer EIO (its lock is lost) and a logs it;
#   - kill -9 of a's dhtfs while it holds an flock: b gets the lock after
#     the lease (lock_lease_ms=3000 here), not before the lease ran out.
# Every wait is bounded.
source "$(dirname "$0")/fs_lib.sh"
fs_require flock python3 sqlite3
fs_ring
A=$T/a
B=$T/b
LEASE_MS=3000
# Default options otherwise: SQLite checks for a hot journal with access(2),
# which must not be answered from a name the kernel cached before the other
# mount removed the journal (NFS needs lookupcache=none for that; here a
# lock grant drops the directory's cached names). FS_LOCK_OPTS adds options.
OPTS=lock_lease_ms=$LEASE_MS,log_level=info${FS_LOCK_OPTS:+,$FS_LOCK_OPTS}
mount_fs "$A" -o "$OPTS"
PID_A=$DHTFS_PID
mount_fs "$B" -o "$OPTS"

# wait_for FILE SECS: FILE appears within SECS.
wait_for() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [ -e "$1" ] && return 0
        sleep 0.1
    done
    fail "$1 did not appear within $2 s"
}

# hold_flock MOUNT NAME MODE: hold flock MODE (-x/-s) on MOUNT/f in the
# background until $T/release-NAME exists; $T/held-NAME once held.
hold_flock() {
    rm -f "$T/release-$2" "$T/held-$2"
    timeout 120 flock "$3" "$1/f" -c "touch '$T/held-$2'; while [ ! -e '$T/release-$2' ]; do sleep 0.05; done" &
    HOLDER=$!
    wait_for "$T/held-$2" 30
}

echo data >"$A/f"
echo plain >"$A/plain"
cat "$B/plain" >/dev/null
# lock_key_exists NAME: is v/default/lock/INO of file NAME in the store?
lock_key_exists() {
    ctl --peer "127.0.0.1:${PORTS[0]}" get "v/default/lock/$(printf '%x' "$(stat -c %i "$A/$1")")" \
        >/dev/null 2>&1
}
# lock_key_gone NAME: the record goes within 15 s (the mount that emptied
# it keeps it for 5 s, in case it locks again)
lock_key_gone() {
    local i
    for ((i = 0; i < 150; i++)); do
        lock_key_exists "$1" || return 0
        sleep 0.1
    done
    return 1
}

# --- flock: exclusive on a excludes b, non-blocking and blocking
hold_flock "$A" x1 -x
lock_key_exists f || fail "no lock record in the store while a holds an flock on f"
st=0
timeout 30 flock -n -x "$B/f" true || st=$?
check_eq "flock -n -x on b while a holds -x (exit status)" "$st" 1
st=0
timeout 30 flock -n -s "$B/f" true || st=$?
check_eq "flock -n -s on b while a holds -x (exit status)" "$st" 1
# another open file on the same mount is excluded too
st=0
timeout 30 flock -n -x "$A/f" true || st=$?
check_eq "flock -n -x on a second descriptor of a (exit status)" "$st" 1
# blocking: b waits until a releases
rm -f "$T/got-b"
timeout 60 flock -x "$B/f" -c "touch '$T/got-b'" &
WAITER=$!
# longer than two leases: a live holder's heartbeat keeps its lock
sleep "$(awk -v l=$LEASE_MS 'BEGIN { print 2.5 * l / 1000 }')"
[ ! -e "$T/got-b" ] || fail "blocking flock -x on b got the lock while a (alive) held it"
kill -0 "$WAITER" 2>/dev/null || fail "blocking flock -x on b ended while a held the lock"
release_at=$EPOCHREALTIME
touch "$T/release-x1"
wait "$HOLDER" || fail "flock holder on a failed"
st=0
wait "$WAITER" || st=$?
check_eq "blocking flock -x on b after a released (exit status)" "$st" 0
[ -e "$T/got-b" ] || fail "blocking flock on b returned without running its command"
log "blocking flock on b granted $(since "$release_at") s after a released"
# shared locks share across mounts
hold_flock "$A" s1 -s
expect_ok flock -n -s "$B/f" true
st=0
timeout 30 flock -n -x "$B/f" true || st=$?
check_eq "flock -n -x on b while a holds -s (exit status)" "$st" 1
touch "$T/release-s1"
wait "$HOLDER" || fail "flock -s holder on a failed"
expect_ok flock -n -x "$B/f" true
# files nobody locked have no lock record; a file whose locks all went has none any more
! lock_key_exists plain || fail "a file nobody locked has a lock record"
lock_key_gone f || fail "the lock record of f stayed 15 s after every flock was released"

# mutual exclusion under contention: both mounts increment one counter
# under flock -x, read-modify-write; a lost update means two holders at once
ROUNDS=60
echo 0 >"$A/counter"
bump() { # MOUNT
    local i
    for ((i = 0; i < ROUNDS; i++)); do
        timeout 60 flock -x "$1/counter.lock" -c "n=\$(cat '$1/counter'); echo \$((n + 1)) >'$1/counter'" ||
            return 1
    done
}
start=$EPOCHREALTIME
bump "$A" 2>"$T/bump-a.err" &
ba=$!
bump "$B" 2>"$T/bump-b.err" &
bb=$!
sta=0 stb=0
wait "$ba" || sta=$?
wait "$bb" || stb=$?
[ "$sta" = 0 ] || fail "counter increments on a failed: $(head -c 400 "$T/bump-a.err")"
[ "$stb" = 0 ] || fail "counter increments on b failed: $(head -c 400 "$T/bump-b.err")"
check_eq "counter after $ROUNDS locked increments from each mount" "$(cat "$B/counter")" $((2 * ROUNDS))
log "$((2 * ROUNDS)) contended flock increments in $(since "$start") s"

# --- fcntl byte-range locks
cat >"$T/lk.py" <<'EOF'
# lk.py PATH hold|try|test ... — fcntl record locks for the test.
#   hold PATH r|w START LEN HELD RELEASE  lock (blocking), touch HELD, wait for RELEASE
#   try PATH r|w START LEN                non-blocking: exit 0 granted, 1 EAGAIN/EACCES
#   test PATH r|w START LEN               F_GETLK: print "type start len pid"
import errno, fcntl, os, struct, sys, time
cmd, path, mode, start, length = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
fd = os.open(path, os.O_RDWR)
typ = fcntl.F_RDLCK if mode == "r" else fcntl.F_WRLCK
def ready_go():
    # touch READY (argv 6), then wait up to 60 s for GO (argv 7)
    open(sys.argv[6], "w").close()
    deadline = time.time() + 60
    while not os.path.exists(sys.argv[7]) and time.time() < deadline:
        time.sleep(0.05)
if cmd == "hold":
    fcntl.lockf(fd, fcntl.LOCK_SH if mode == "r" else fcntl.LOCK_EX, length, start)
    open(sys.argv[6], "w").close()
    deadline = time.time() + 120
    while not os.path.exists(sys.argv[7]) and time.time() < deadline:
        time.sleep(0.05)
elif cmd == "try":
    try:
        fcntl.lockf(fd, (fcntl.LOCK_SH if mode == "r" else fcntl.LOCK_EX) | fcntl.LOCK_NB, length, start)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            sys.exit(1)
        raise
elif cmd == "ofd":
    # ofd PATH w START LEN OTHER: an open-file-description lock; OTHER (the
    # file on another mount) is tried while it is held and after its close
    import subprocess
    if not hasattr(fcntl, "F_OFD_SETLK"):
        print("skip")
        sys.exit(0)
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi", typ, os.SEEK_SET, start, length, 0) + b"\0" * 4)
    try_other = [sys.executable, sys.argv[0], "try", sys.argv[6], mode, str(start), str(length)]
    held = subprocess.call(try_other)
    os.close(fd)
    print(held, subprocess.call(try_other))
elif cmd == "intr":
    # a blocking lock interrupted by a signal (SIGALRM after 1 s, handler raises)
    import signal
    def on_alarm(sig, frame):
        raise TimeoutError()
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(1)
    t0 = time.time()
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX, length, start)
        print("granted")
    except TimeoutError:
        print("interrupted %.1f" % (time.time() - t0))
elif cmd == "coherent":
    # coherent PATH r 0 0 READY GO: read, touch READY, wait for GO, lock, read again
    before = os.pread(fd, 4, 0)
    ready_go()
    fcntl.lockf(fd, fcntl.LOCK_SH, 0, 0)
    print(before.decode(), os.pread(fd, 4, 0).decode())
elif cmd == "coherent2":
    # coherent2 PATH r 0 0 READY GO: hold a lock on byte 100, read, touch
    # READY, wait for GO, lock bytes 0-3, read again (the second lock is
    # written on the record this mount left: its revalidation is the read
    # sent along with it)
    fcntl.lockf(fd, fcntl.LOCK_SH, 1, 100)
    before = os.pread(fd, 4, 0)
    ready_go()
    fcntl.lockf(fd, fcntl.LOCK_SH, 4, 0)
    print(before.decode(), os.pread(fd, 4, 0).decode())
elif cmd == "names":
    # names PATH r 0 0 READY GO OTHER: hold locks on bytes 100 and 150,
    # look OTHER up, touch READY, wait for GO, drop byte 150, lock bytes
    # 0-3 and look OTHER up again; prints both answers. Another mount takes
    # and drops a lock of its own and creates OTHER in between: the last
    # grant follows that mount's lock change (seen when byte 150 was
    # dropped) and must drop the names cached before it.
    fcntl.lockf(fd, fcntl.LOCK_SH, 1, 100)
    fcntl.lockf(fd, fcntl.LOCK_SH, 1, 150)
    before = os.path.exists(sys.argv[8])
    ready_go()
    fcntl.lockf(fd, fcntl.LOCK_UN, 1, 150)
    fcntl.lockf(fd, fcntl.LOCK_SH, 4, 0)
    print(before, os.path.exists(sys.argv[8]))
elif cmd == "kept":
    # kept PATH r 0 0 READY GO OTHER: lock, read, look OTHER up, unlock (the
    # last lock here: the record stays, empty, for this mount to write its
    # next lock on), touch READY, wait for GO, lock, read and look up
    # again; prints all four answers.
    fcntl.lockf(fd, fcntl.LOCK_SH, 0, 0)
    before = os.pread(fd, 4, 0).decode(), os.path.exists(sys.argv[8])
    fcntl.lockf(fd, fcntl.LOCK_UN, 0, 0)
    ready_go()
    fcntl.lockf(fd, fcntl.LOCK_SH, 0, 0)
    print(before[0], os.pread(fd, 4, 0).decode(), before[1], os.path.exists(sys.argv[8]))
elif cmd == "lost":
    # lost PATH w 0 0 HELD GO: lock, write, touch HELD, wait for GO, then
    # write and fsync again and print how each ended (ok or the errno name)
    fcntl.lockf(fd, fcntl.LOCK_EX, 0, 0)
    os.pwrite(fd, b"mine", 0)
    open(sys.argv[6], "w").close()
    deadline = time.time() + 120
    while not os.path.exists(sys.argv[7]) and time.time() < deadline:
        time.sleep(0.05)
    out = []
    for name, call in (("write", lambda: os.pwrite(fd, b"late", 0)), ("fsync", lambda: os.fsync(fd))):
        try:
            call()
            out.append(name + ":ok")
        except OSError as e:
            out.append(name + ":" + errno.errorcode.get(e.errno, str(e.errno)))
    print(" ".join(out))
    try:
        os.close(fd)
    except OSError:
        pass
elif cmd == "test":
    fmt = "hhqqi"  # struct flock on x86-64/aarch64 Linux: short, short, off_t, off_t, pid_t
    res = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(fmt, typ, os.SEEK_SET, start, length, 0) + b"\0" * 4)
    t, _, s, l, pid = struct.unpack(fmt, res[: struct.calcsize(fmt)])
    name = {fcntl.F_RDLCK: "r", fcntl.F_WRLCK: "w", fcntl.F_UNLCK: "u"}[t]
    print(name, s, l, pid)
EOF
LK=(timeout 60 python3 "$T/lk.py")
rm -f "$T/held-p1" "$T/release-p1"
"${LK[@]}" hold "$A/f" w 0 100 "$T/held-p1" "$T/release-p1" &
HOLDER=$!
wait_for "$T/held-p1" 30
expect_ok "${LK[@]}" try "$B/f" w 100 100
st=0
"${LK[@]}" try "$B/f" w 50 100 || st=$?
check_eq "fcntl write lock on b over a's [0,100) (exit status)" "$st" 1
st=0
"${LK[@]}" try "$B/f" r 99 1 || st=$?
check_eq "fcntl read lock on b of a's write-locked byte 99 (exit status)" "$st" 1
check_eq "F_GETLK on b over a's lock" "$("${LK[@]}" test "$B/f" w 0 0)" "w 0 100 0"
check_eq "F_GETLK on b beside a's lock" "$("${LK[@]}" test "$B/f" w 100 10)" "u 100 10 0"
# F_SETLKW blocked on a's lock ends with EINTR when a signal arrives
out=$("${LK[@]}" intr "$B/f" w 0 10)
case $out in
interrupted\ *) less_than "${out#interrupted }" 10 ||
    fail "F_SETLKW on b took ${out#interrupted } s to end after a signal at 1 s" ;;
*) fail "F_SETLKW on b, blocked by a's lock and signalled after 1 s: got '$out', expected EINTR" ;;
esac
touch "$T/release-p1"
wait "$HOLDER" || fail "fcntl holder on a failed"
# the holder's exit (close) dropped its locks, and the interrupted request left none
expect_ok "${LK[@]}" try "$B/f" w 0 0
expect_ok "${LK[@]}" try "$A/f" w 0 0
# an open file description's lock (F_OFD_SETLK) excludes b until that file is closed
out=$("${LK[@]}" ofd "$A/f" w 0 10 "$B/f")
[ "$out" = skip ] || check_eq "b's try while a holds an OFD lock, and after its close" "$out" "1 0"
# shared ranges share; a write lock over them conflicts
rm -f "$T/held-p2" "$T/release-p2"
"${LK[@]}" hold "$A/f" r 10 20 "$T/held-p2" "$T/release-p2" &
HOLDER=$!
wait_for "$T/held-p2" 30
expect_ok "${LK[@]}" try "$B/f" r 0 100
st=0
"${LK[@]}" try "$B/f" w 29 1 || st=$?
check_eq "fcntl write lock on b over a's read lock (exit status)" "$st" 1
expect_ok "${LK[@]}" try "$B/f" w 30 1
touch "$T/release-p2"
wait "$HOLDER" || fail "fcntl read-lock holder on a failed"

# --- taking a lock revalidates the file's cached pages
C=$T/c
mount_fs "$C" -o lock_lease_ms=$LEASE_MS,attr_timeout=30,log_level=info
printf old1 >"$A/g"
rm -f "$T/ready-c" "$T/go-c"
"${LK[@]}" coherent "$C/g" r 0 0 "$T/ready-c" "$T/go-c" >"$T/coherent.out" &
HOLDER=$!
wait_for "$T/ready-c" 30
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.write(b"new2"); f.close()' "$A/g"
touch "$T/go-c"
wait "$HOLDER" || fail "the coherence helper on c failed"
check_eq "c's read before and after taking a lock (a wrote in between)" "$(cat "$T/coherent.out")" "old1 new2"
# ... also when c already holds a lock on the file and nobody else locks it
rm -f "$T/ready-c" "$T/go-c"
"${LK[@]}" coherent2 "$C/g" r 0 0 "$T/ready-c" "$T/go-c" >"$T/coherent2.out" &
HOLDER=$!
wait_for "$T/ready-c" 30
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.write(b"new3"); f.close()' "$A/g"
touch "$T/go-c"
wait "$HOLDER" || fail "the second coherence helper on c failed"
check_eq "c's read before and after a second lock (a wrote in between)" "$(cat "$T/coherent2.out")" "new2 new3"
# ... and names: a creates a file under a lock of its own on g; c's next
# grant after seeing that lock change finds the new name
rm -f "$T/ready-c" "$T/go-c"
"${LK[@]}" names "$C/g" r 0 0 "$T/ready-c" "$T/go-c" "$C/g-journal" >"$T/names.out" &
HOLDER=$!
wait_for "$T/ready-c" 30
python3 -c 'import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 1, 200)
open(sys.argv[2], "w").close()
fcntl.lockf(fd, fcntl.LOCK_UN, 1, 200)' "$A/g" "$A/g-journal"
touch "$T/go-c"
wait "$HOLDER" || fail "the names helper on c failed"
check_eq "c sees a name another mount created under its lock (before, after c's grant)" "$(cat "$T/names.out")" "False True"
# ... and when c's last unlock left the record empty and kept it: a's lock
# in between changes it, so c's next lock is no quiet grant; a lockless
# write in between is seen by the read sent along with c's next lock
rm -f "$T/ready-c" "$T/go-c" "$A/g-wal"
"${LK[@]}" kept "$C/g" r 0 0 "$T/ready-c" "$T/go-c" "$C/g-wal" >"$T/kept.out" &
HOLDER=$!
wait_for "$T/ready-c" 30
lock_key_exists g || fail "the lock record of g went at c's unlock (it is kept empty for a while)"
python3 -c 'import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 0, 0)
os.pwrite(fd, b"new4", 0)
open(sys.argv[2], "w").close()
fcntl.lockf(fd, fcntl.LOCK_UN, 0, 0)' "$A/g" "$A/g-wal"
touch "$T/go-c"
wait "$HOLDER" || fail "the kept-record helper on c failed"
check_eq "c's reads and lookups around a's lock, write and create (record kept by c)" \
    "$(cat "$T/kept.out")" "new3 new4 False True"
rm -f "$T/ready-c" "$T/go-c"
"${LK[@]}" kept "$C/g" r 0 0 "$T/ready-c" "$T/go-c" "$C/g-wal" >"$T/kept2.out" &
HOLDER=$!
wait_for "$T/ready-c" 30
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.write(b"new5"); f.close()' "$A/g"
touch "$T/go-c"
wait "$HOLDER" || fail "the second kept-record helper on c failed"
check_eq "c's reads around a's lockless write (record kept by c, quiet grant)" \
    "$(cut -d' ' -f1-2 "$T/kept2.out")" "new4 new5"
lock_key_gone g || fail "the empty lock record of g stayed 15 s after the last unlock"
# a clean unmount removes the mount's heartbeat
ID_C=$(sed -n 's/.*mount id 0*\([0-9a-f]*\): lock heartbeat.*/\1/p' "$T/dhtfs-c.log" | tail -n 1)
[ -n "$ID_C" ] || fail "mount c never logged its mount id (did it take a lock?)"
ctl --peer "127.0.0.1:${PORTS[0]}" get "v/default/mount/$ID_C" >/dev/null ||
    fail "mount c's heartbeat v/default/mount/$ID_C is not in the store while it is mounted"
umount_fs "$C"
! ctl --peer "127.0.0.1:${PORTS[0]}" get "v/default/mount/$ID_C" >/dev/null 2>&1 ||
    fail "mount c's heartbeat v/default/mount/$ID_C stayed after its clean unmount"

# --- SQLite: two writers on two mounts
N=${SQL_N:-200}
sqlite3 "$A/db.sqlite" "PRAGMA journal_mode=DELETE; CREATE TABLE t(who TEXT, i INTEGER);" >/dev/null ||
    fail "creating the SQLite database on a failed"
writer() { # MOUNT WHO
    {
        echo "PRAGMA busy_timeout=120000;"
        for ((i = 0; i < N; i++)); do
            echo "BEGIN IMMEDIATE; INSERT INTO t VALUES('$2', $i); COMMIT;"
        done
    } | timeout 400 sqlite3 -bail "$1/db.sqlite"
}
start=$EPOCHREALTIME
writer "$A" a >"$T/sql-a.out" 2>&1 &
wa=$!
writer "$B" b >"$T/sql-b.out" 2>&1 &
wb=$!
sta=0 stb=0
wait "$wa" || sta=$?
wait "$wb" || stb=$?
[ "$sta" = 0 ] || fail "SQLite writer on a failed ($sta): $(head -c 400 "$T/sql-a.out")"
[ "$stb" = 0 ] || fail "SQLite writer on b failed ($stb): $(head -c 400 "$T/sql-b.out")"
log "SQLite: $((2 * N)) transactions from two mounts in $(since "$start") s"
check_eq "integrity_check on b" "$(timeout 60 sqlite3 "$B/db.sqlite" "PRAGMA integrity_check;")" ok
check_eq "rows seen on b" "$(timeout 60 sqlite3 "$B/db.sqlite" "SELECT count(*) FROM t;")" $((2 * N))
check_eq "distinct rows seen on a" \
    "$(timeout 60 sqlite3 "$A/db.sqlite" "SELECT count(*) FROM (SELECT DISTINCT who, i FROM t);")" $((2 * N))

# --- a mount frozen for longer than a lease loses its lock, and its process is told
printf 'orig' >"$A/lost"
rm -f "$T/held-l" "$T/go-l" "$T/rel-l"
touch "$T/rel-l"
"${LK[@]}" lost "$A/lost" w 0 0 "$T/held-l" "$T/go-l" >"$T/lost.out" 2>&1 &
LOSER=$!
wait_for "$T/held-l" 30
kill -STOP "$PID_A"
frozen_at=$EPOCHREALTIME
st=0
"${LK[@]}" hold "$B/lost" w 0 0 "$T/held-lb" "$T/rel-l" || st=$?
took=$(since "$frozen_at")
kill -CONT "$PID_A"
check_eq "blocking fcntl lock on b while a is frozen with the lock (exit status)" "$st" 0
log "b took the frozen mount's lock after $took s (lease $LEASE_MS ms)"
sleep 0.5
touch "$T/go-l"
wait "$LOSER" || fail "the lock holder on a failed: $(head -c 400 "$T/lost.out")"
check_eq "write and fsync on a after its lock was lost" "$(cat "$T/lost.out")" "write:EIO fsync:EIO"
grep -q "locks are lost" "$T/dhtfs-a.log" || fail "a did not log that its locks were lost"
[ "$(cat "$B/lost")" != late ] || fail "a's write after its lock was lost reached the file"
# a new open file on a works again, and so does a new lock
expect_ok "${LK[@]}" try "$A/lost" w 0 0

# --- kill -9 of a's dhtfs while it holds a lock: b gets it after the lease
hold_flock "$A" k1 -x
st=0
timeout 30 flock -n -x "$B/f" true || st=$?
check_eq "flock -n -x on b before a dies (exit status)" "$st" 1
kill -9 "$PID_A"
killed_at=$EPOCHREALTIME
rm -f "$T/got-k"
st=0
timeout 60 flock -x "$B/f" -c "touch '$T/got-k'" || st=$?
waited=$(since "$killed_at")
check_eq "blocking flock -x on b after a's dhtfs was killed (exit status)" "$st" 0
[ -e "$T/got-k" ] || fail "flock on b after the kill returned without running its command"
log "lock of the killed mount taken over after $waited s (lease $LEASE_MS ms)"
less_than "$(awk -v l=$LEASE_MS 'BEGIN { print l / 1000 * 0.9 }')" "$waited" ||
    fail "b took the lock $waited s after the kill, before the lease ($LEASE_MS ms) could run out"
less_than "$waited" 20 || fail "b waited $waited s for a dead mount's lock (lease $LEASE_MS ms)"
kill "$HOLDER" 2>/dev/null
fusermount3 -uz "$A" 2>/dev/null || true
log "ok"
