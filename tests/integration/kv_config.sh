#!/usr/bin/env bash
# kvnode --config and the systemd units: a 3-node ring whose nodes take
# every setting from config files (free ports, private dirs) forms and
# serves a put/get through each node; a fourth node's command-line flags
# override its file (listen address, and replicas, which would otherwise
# be refused by the ring) and it leaves gracefully on SIGTERM (exit 0, as
# under systemd's KillSignal); bad files (unknown key, malformed line, key
# given twice, missing value, value the flag refuses, missing file) exit 2
# naming FILE:LINE; the example config parses; `systemd-analyze verify`
# accepts the units (ExecStart pointed at the build); the mount unit's
# options go through mount.fuse.dhtfs as dhtfs flags; install.sh puts the
# units and example in place under DESTDIR without overwriting an example.
source "$(dirname "$0")/lib.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
UNITS=$SRC/mount-scripts/systemd

# write_conf NAME PORT [JOIN_PORT] [extra lines...]: $T/NAME.conf.
write_conf() {
    local name=$1 port=$2 join=${3:-}
    shift 3 || shift $#
    {
        echo "# node $name of the kv_config test"
        echo "listen = tcp://127.0.0.1:$port"
        echo "data = $T/$name.data"
        echo
        echo "stabilize-ms = $STABILIZE_MS"
        echo "timeout-ms   =   $TIMEOUT_MS"
        echo "log-level = info"
        [ -z "$join" ] || echo "join = 127.0.0.1:$join"
        local l
        for l in "$@"; do echo "$l"; done
    } >"$T/$name.conf"
}

# start_conf NAME [flags...]: kvnode --config $T/NAME.conf [flags]; sets NODE_PID.
start_conf() {
    local name=$1
    shift
    "$KVNODE" --config "$T/$name.conf" "$@" 2>>"$T/$name.log" &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
}

alloc_ports PORTS 5
write_conf n0 "${PORTS[0]}" "" "replicas = 3" "insecure = false" "spin-us = 0"
start_conf n0
sleep 0.2
for i in 1 2; do
    # --config=FILE spelling on one of them.
    write_conf "n$i" "${PORTS[$i]}" "${PORTS[0]}"
    if [ "$i" = 1 ]; then
        "$KVNODE" --config="$T/n1.conf" 2>>"$T/n1.log" &
        NODE_PID=$!
        PIDS+=("$NODE_PID")
    else
        start_conf n2
    fi
    sleep 0.2
done
for p in "${PORTS[@]:0:3}"; do
    wait_ring "$p" 3 30
done
log "a 3-node ring from config files formed"
PORTS_RING=("${PORTS[@]:0:3}")
PORTS_SAVED=("${PORTS[@]}")
PORTS=("${PORTS_RING[@]}")
put_keys cfg 12
check_keys cfg 12 "${PORTS[2]}" "${PORTS[0]}" "${PORTS[1]}"
log "put/get through every node"
PORTS=("${PORTS_SAVED[@]}")

# A fourth node: the file says one port and replicas 2 (which the ring
# would refuse), the command line says another port and 3.
write_conf n3 "${PORTS[3]}" "${PORTS[0]}" "replicas = 2" "write-quorum = 2" "read-quorum = 2"
start_conf n3 --listen "127.0.0.1:${PORTS[4]}" --replicas 3
N3=$NODE_PID
wait_ring "${PORTS[0]}" 4 30
addrs=$(ctl --peer "127.0.0.1:${PORTS[0]}" ring --json | jq -r '.nodes[].addr')
grep -qx "tcp://127.0.0.1:${PORTS[4]}" <<<"$addrs" || fail "n3 not at its command-line address: $addrs"
! grep -q ":${PORTS[3]}\$" <<<"$addrs" || fail "n3 listened at its file's address: $addrs"
v=$(ctl --peer "127.0.0.1:${PORTS[4]}" get cfg-3) || fail "get through n3 failed"
[ "$v" = value-cfg-3 ] || fail "get cfg-3 through n3 returned '$v'"
log "command-line flags override the file (listen, replicas)"

kill -TERM "$N3"
wait_exit "$N3" 40
[ "$EXIT_STATUS" = 0 ] || fail "n3 exited $EXIT_STATUS after SIGTERM, wanted 0 (graceful leave)"
wait_ring "${PORTS[0]}" 3 30
check_keys cfg 12 "${PORTS[1]}"
log "SIGTERM: graceful leave, exit 0, keys still there"

# bad_conf NAME LINE WANT: kvnode on $T/NAME.conf exits 2 within 10 s and
# says NAME.conf:LINE and WANT.
bad_conf() {
    local name=$1 line=$2 want=$3 st=0
    timeout 10 "$KVNODE" --config "$T/$name.conf" >"$T/$name.out" 2>&1 || st=$?
    [ "$st" = 2 ] || fail "$name.conf: exit $st, wanted 2: $(cat "$T/$name.out")"
    grep -qF "$T/$name.conf:$line: " "$T/$name.out" ||
        fail "$name.conf: no '$name.conf:$line:' in: $(cat "$T/$name.out")"
    grep -qF -- "$want" "$T/$name.out" || fail "$name.conf: no '$want' in: $(cat "$T/$name.out")"
}
alloc_ports SPARE 1
write_conf bad_key "${SPARE[0]}" "" "colour = blue"
bad_conf bad_key 8 "unknown key 'colour'"
write_conf bad_line "${SPARE[0]}" "" "replicas 3"
bad_conf bad_line 8 "expected NAME = VALUE"
write_conf bad_dup "${SPARE[0]}" "" "log-level = debug"
bad_conf bad_dup 8 "given twice (first on line 7)"
write_conf bad_empty "${SPARE[0]}" "" "join ="
bad_conf bad_empty 8 "'join' needs a value"
write_conf bad_value "${SPARE[0]}" "" "replicas = three"
bad_conf bad_value 8 "--replicas must be a number"
write_conf bad_spin "${SPARE[0]}" "" "spin-us = 10001"
bad_conf bad_spin 8 "--spin-us must be a number from 0 to 10000"
write_conf bad_switch "${SPARE[0]}" "" "insecure = maybe"
bad_conf bad_switch 8 "takes true or false"
printf 'config = /etc/other.conf\n' >"$T/bad_nest.conf"
bad_conf bad_nest 1 "unknown key 'config'"
st=0
"$KVNODE" --config "$T/absent.conf" >"$T/absent.out" 2>&1 || st=$?
if [ "$st" != 2 ] || ! grep -q "absent.conf: No such file" "$T/absent.out"; then
    fail "missing config: exit $st, $(cat "$T/absent.out")"
fi
st=0
"$KVNODE" --config "$T/n0.conf" --config "$T/n1.conf" >"$T/twice.out" 2>&1 || st=$?
[ "$st" = 2 ] || fail "--config twice: exit $st"
# A bad flag on the command line is not blamed on the file.
st=0
"$KVNODE" --config "$T/n0.conf" --replicas 99 >"$T/cmdline.out" 2>&1 || st=$?
[ "$st" = 2 ] || fail "--replicas 99: exit $st"
! grep -q "n0.conf:" "$T/cmdline.out" || fail "command-line error blamed on the file: $(cat "$T/cmdline.out")"
# Nothing started by any of them: the ring is still the three nodes.
ring_ok "${PORTS[0]}" 3 || fail "ring changed after the bad configs"
log "bad files: exit 2 with FILE:LINE; missing file and --config twice: exit 2"

# The shipped example parses (--help after it: no node is started).
"$KVNODE" --config "$UNITS/kvnode.conf.example" --help >/dev/null 2>"$T/example.err" ||
    fail "kvnode.conf.example refused: $(cat "$T/example.err")"
log "kvnode.conf.example parses"

# The mount unit's What= and Options= through the mount helper (-f: print, do not mount).
what=$(sed -n 's/^What=//p' "$UNITS/mnt-dht.mount")
opts=$(sed -n 's/^Options=//p' "$UNITS/mnt-dht.mount")
where=$(sed -n 's/^Where=//p' "$UNITS/mnt-dht.mount")
[ "$where" = /mnt/dht ] || fail "mnt-dht.mount: Where=$where does not match its name"
DHTFS_BIN=$BUILD_DIR/fs/dhtfs bash "$SRC/mount-scripts/mount.dhtfs" "$what" "$where" -f \
    -o "rw,$opts" >"$T/helper.out" 2>&1 || fail "mount helper refused the unit: $(cat "$T/helper.out")"
grep -qF -- "--peer $what --volume default -o rw,allow_other,default_permissions $where" \
    "$T/helper.out" || fail "mount helper made: $(cat "$T/helper.out")"
log "mnt-dht.mount's options become dhtfs flags"

# install.sh into a scratch DESTDIR.
D=$T/dest
DESTDIR=$D bash "$SRC/mount-scripts/install.sh" --build "$BUILD_DIR" --prefix /opt/dhtfs \
    >"$T/install.out" 2>&1 || fail "install.sh failed: $(cat "$T/install.out")"
for f in opt/dhtfs/bin/kvnode sbin/mount.fuse.dhtfs etc/systemd/system/kvnode@.service \
    etc/systemd/system/mnt-dht.mount etc/dhtfs/kvnode.conf.example; do
    [ -f "$D/$f" ] || fail "install.sh did not install $f: $(cat "$T/install.out")"
done
grep -qx 'ExecStart=/opt/dhtfs/bin/kvnode --config /etc/dhtfs/%i.conf' \
    "$D/etc/systemd/system/kvnode@.service" || fail "installed ExecStart not under --prefix"
echo "# mine" >>"$D/etc/dhtfs/kvnode.conf.example"
DESTDIR=$D bash "$SRC/mount-scripts/install.sh" --build "$BUILD_DIR" --prefix /opt/dhtfs \
    >"$T/install2.out" 2>&1 || fail "install.sh again failed: $(cat "$T/install2.out")"
[ "$(tail -n 1 "$D/etc/dhtfs/kvnode.conf.example")" = "# mine" ] ||
    fail "install.sh overwrote an existing kvnode.conf.example"
log "install.sh: units under DESTDIR, ExecStart under --prefix, the example kept"

# systemd-analyze verify, with ExecStart at the built binary. First make
# sure verify works here at all: it must refuse a unit with a missing binary.
if ! command -v systemd-analyze >/dev/null; then
    log "SKIP systemd-analyze verify: systemd-analyze not installed"
else
    U=$T/units
    mkdir -p "$U"
    printf '[Service]\nExecStart=/nonexistent/kvnode\n' >"$U/broken.service"
    printf '[Service]\nExecStart=%s --help\n' "$KVNODE" >"$U/sane.service"
    if ! systemd-analyze verify "$U/sane.service" >"$T/verify-sane.out" 2>&1; then
        log "SKIP systemd-analyze verify: it cannot run here: $(head -n 3 "$T/verify-sane.out")"
    elif systemd-analyze verify "$U/broken.service" >/dev/null 2>&1; then
        fail "systemd-analyze verify accepted a unit with a missing binary: verify checks nothing"
    else
        sed "s|/usr/local/bin/kvnode|$KVNODE|" "$UNITS/kvnode@.service" >"$U/kvnode@.service"
        cp "$UNITS/mnt-dht.mount" "$U/"
        for unit in "kvnode@.service" "kvnode@node1.service" "mnt-dht.mount"; do
            st=0
            systemd-analyze verify "$U/$unit" >"$T/verify.out" 2>&1 || st=$?
            # A warning (unknown key, bad value) is printed but not failed on: refuse it too.
            if [ "$st" != 0 ] || [ -s "$T/verify.out" ]; then
                fail "systemd-analyze verify $unit: exit $st: $(cat "$T/verify.out")"
            fi
        done
        grep -qx 'KillSignal=SIGTERM' "$U/kvnode@.service" || fail "kvnode@.service: no KillSignal=SIGTERM"
        log "systemd-analyze verify accepts kvnode@.service and mnt-dht.mount"
    fi
fi
finish
