#!/usr/bin/env bash
# dhtfs -o metrics=127.0.0.1:PORT on a 3-node ring: GET /metrics passes
# `promtool check metrics`; file work moves the FUSE request counters
# (lookup, create, mkdir, write, read, rmdir), the store round trips per
# kind of request, the error counters (an rmdir of a non-empty directory:
# ENOTEMPTY) and the caches; walks of directories in name order are answered
# from records stat-ahead loaded, and none older than attr_timeout; other paths get 404; an address off loopback
# without a key is refused; the mount unmounts cleanly.
source "$(dirname "$0")/fs_lib.sh"
fs_require curl promtool
fs_ring
alloc_ports MP 2
M=$T/mnt
mount_fs "$M" -o "metrics=127.0.0.1:${MP[0]}"
URL=http://127.0.0.1:${MP[0]}/metrics

# scrape OUT: GET /metrics into OUT; 200, Prometheus's content type, promtool accepts it.
scrape() {
    local code
    code=$(curl -s --max-time 5 -D "$1.head" -o "$1" -w '%{http_code}' "$URL") ||
        fail "scrape failed (curl $?)"
    [ "$code" = 200 ] || fail "scrape: HTTP $code"
    grep -qi '^content-type: text/plain; version=0.0.4' "$1.head" || fail "content type: $(cat "$1.head")"
    promtool check metrics <"$1" >"$1.promtool" 2>&1 ||
        fail "promtool check metrics refused the scrape: $(cat "$1.promtool")"
}

# value FILE SERIES: the sample of exactly that series, 0 if absent.
value() {
    awk -v s="$2" '$1 == s { v = $2 } END { print (v == "" ? 0 : v) }' "$1"
}

# moved WHAT SERIES MIN: SERIES grew by at least MIN between the two scrapes.
moved() {
    local a b
    a=$(value "$T/before" "$2")
    b=$(value "$T/after" "$2")
    awk -v a="$a" -v b="$b" -v m="$3" 'BEGIN { exit !(b - a >= m) }' ||
        soft_fail "$1: $2 went from $a to $b, wanted at least +$3"
}

scrape "$T/before"
log "the endpoint answers; promtool accepts the text"

mkdir "$M/d"
for i in $(seq 1 10); do
    echo "file $i" >"$M/d/f$i"
done
head -c 3000000 /dev/urandom >"$T/big"
cp "$T/big" "$M/big"
for i in $(seq 1 10); do
    [ "$(cat "$M/d/f$i")" = "file $i" ] || fail "d/f$i read back wrong"
done
check_same_file "3 MB file" "$M/big" "$T/big"
ls -l "$M/d" >/dev/null
stat "$M/nope" 2>/dev/null && fail "stat of a missing file succeeded"
expect_err "Directory not empty" rmdir "$M/d"
sync
scrape "$T/after"

moved "10 creates" 'dhtfs_fuse_requests_total{op="create"}' 10
moved "lookups" 'dhtfs_fuse_requests_total{op="lookup"}' 1
moved "a mkdir (mknod path)" 'dhtfs_fuse_requests_total{op="mknod"}' 1
moved "writes" 'dhtfs_fuse_requests_total{op="write"}' 11
moved "rmdir" 'dhtfs_fuse_requests_total{op="rmdir"}' 1
moved "the failed rmdir" 'dhtfs_fuse_request_errors_total{op="rmdir"}' 1
moved "ENOTEMPTY" 'dhtfs_fuse_errors_total{code="ENOTEMPTY"}' 1
moved "creates' store puts" 'dhtfs_store_requests_total{op="create",kind="put"}' 10
moved "creates' conditional puts" 'dhtfs_store_conditional_puts_total{op="create"}' 1
moved "creates' serial round trips (one at least each)" 'dhtfs_store_serial_round_trips_total{op="create"}' 10
# a request cannot wait for more round trips one after another than it started
serial=$(value "$T/after" 'dhtfs_store_serial_round_trips_total{op="create"}')
started=0
for k in get put delete; do
    started=$((started + $(value "$T/after" "dhtfs_store_requests_total{op=\"create\",kind=\"$k\"}")))
done
((serial <= started)) || soft_fail "creates waited for $serial store round trips one after another but started only $started"
moved "store puts in all" 'dhtfs_store_operations_total{kind="put"}' 10
moved "store gets in all" 'dhtfs_store_operations_total{kind="get"}' 1
moved "time spent in creates" 'dhtfs_fuse_request_seconds_total{op="create"}' 0.000001
c=$(awk '/^dhtfs_cache_(hits|misses)_total\{cache="dir_buckets"\}/ { s += $2 } END { print s + 0 }' "$T/after")
[ "$c" -gt 0 ] || soft_fail "directory bucket cache never looked up: $(grep '^dhtfs_cache' "$T/after")"
for s in dhtfs_dirty_bytes dhtfs_dirty_limit_bytes dhtfs_fibers 'dhtfs_cache_bytes{cache="chunks"}'; do
    grep -q "^$s " "$T/after" || soft_fail "no $s in the scrape"
done
[ "$(value "$T/after" dhtfs_dirty_limit_bytes)" = $((64 << 20)) ] || soft_fail "dirty limit not 64 MiB"
log "counters moved: creates, lookups, writes, rmdir and its ENOTEMPTY, store round trips"

code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${MP[0]}/other") || code="curl $?"
[ "$code" = 404 ] || soft_fail "/other answered $code, wanted 404"

# Stat-ahead: once the records are stale (attr_timeout 1 s), walks of two
# directories in name order, interleaved, are answered mostly from records
# loaded ahead. The names are given to stat(1) directly: a glob would list
# the directories first, and READDIRPLUS would load every record itself.
mkdir "$M/walk1" "$M/walk2"
names=()
for i in $(seq -w 1 150); do
    : >"$M/walk1/f$i"
    : >"$M/walk2/f$i"
    names+=("$M/walk1/f$i" "$M/walk2/f$i")
done
sleep 1.5
scrape "$T/before"
stat -c '%n %s' "${names[@]}" >"$T/walk" || fail "stat of the walks' files failed"
[ "$(wc -l <"$T/walk")" = 300 ] || fail "stat printed $(wc -l <"$T/walk") lines for 300 files"
scrape "$T/after"
moved "stat-ahead's records" 'dhtfs_statahead_records_total{result="loaded"}' 200
moved "stat-ahead's records used by lookups" 'dhtfs_statahead_records_total{result="used"}' 200
gets=$(($(value "$T/after" 'dhtfs_store_requests_total{op="lookup",kind="get"}') -
    $(value "$T/before" 'dhtfs_store_requests_total{op="lookup",kind="get"}')))
((gets <= 100)) || soft_fail "300 lookups in name order read $gets records themselves (stat-ahead: at most 100 wanted)"
log "two walks in name order: $gets of 300 lookups read their record, the rest had it loaded ahead"

# ... and records loaded ahead answer nothing older than the TTL: a walk of
# the first 40 files of walk3 loads the rest ahead; another mount changes
# the mode of one of the rest; once attr_timeout has passed, this mount
# shows the new mode, not the record it loaded ahead.
mkdir "$M/walk3"
names=()
for i in $(seq -w 1 100); do
    : >"$M/walk3/f$i"
    ((10#$i <= 40)) && names+=("$M/walk3/f$i")
done
sleep 1.5
scrape "$T/before"
stat -c %a "${names[@]}" >/dev/null || fail "stat of walk3's first 40 files failed"
scrape "$T/after"
moved "records of walk3 loaded ahead" 'dhtfs_statahead_records_total{result="loaded"}' 50
mount_fs "$T/other"
chmod 600 "$T/other/walk3/f090"
umount_fs "$T/other"
sleep 1.5
check_eq "mode of walk3/f090 after another mount's chmod and attr_timeout" "$(stat -c %a "$M/walk3/f090")" 600
log "a record loaded ahead gave way to the other mount's change after attr_timeout"

umount_fs "$M"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$URL") || code=closed
[ "$code" != 200 ] || soft_fail "the endpoint still answers after the unmount"
log "unmounted cleanly; the endpoint went with the mount"

# Off loopback without a key: refused before mounting.
mkdir -p "$T/mnt2"
st=0
timeout 30 "$DHTFS" --peer "$FS_PEERS" -o "metrics=0.0.0.0:${MP[1]}" -f "$T/mnt2" 2>"$T/x.err" || st=$?
[ "$st" != 0 ] || fail "dhtfs -o metrics=0.0.0.0 without a key mounted"
grep -q "not a loopback address" "$T/x.err" || soft_fail "refusal message: $(cat "$T/x.err")"
! is_mounted "$T/mnt2" || fail "mounted despite the refused metrics address"
log "metrics off loopback without a key refused"
finish
