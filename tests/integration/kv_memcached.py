#!/usr/bin/env python3
"""kv_memcached.py PHASE PORT... — memcached protocol checks against kvnode.

Phases (the shell test runs them around kills and restarts):
  basic  PORT1 PORT2 PORT3   every command through pymemcache and raw sockets
  seed   PORT                write the keys that must survive
  check  PORT...             read them back through each port
  flood  PORT PID            a client that pipelines without reading: memory stays bounded
  race   PORT1 PORT2 PORT3   concurrent incr/append/cas through all nodes lose no update
Exits 1 with the list of failed checks.
"""
import socket
import sys
import time

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError, MemcacheServerError

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, file=sys.stderr)


def client(port):
    return Client(("127.0.0.1", port), connect_timeout=5, timeout=15,
                  default_noreply=False)


def raw(port, data, expect_end, timeout=15):
    """Send bytes, read until the reply ends with expect_end (bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    deadline = time.time() + timeout
    while not out.endswith(expect_end) and time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def basic(p1, p2, p3):
    c1, c2, c3 = client(p1), client(p2), client(p3)
    # set through node 1, read through node 3
    check(c1.set("greeting", b"hello ring", expire=0), "set")
    check(c3.get("greeting") == b"hello ring", "get through another node")
    check(c2.get("no-such-key") is None, "miss")
    # flags survive (pymemcache's raw get_many with flags via gets_many? use raw)
    r = raw(p1, b"set fl 4242 0 2\r\nxy\r\nget fl\r\n", b"END\r\n")
    check(r == b"STORED\r\nVALUE fl 4242 2\r\nxy\r\nEND\r\n", "flags round trip: %r" % r)

    # gets / cas, and a cas conflict
    val, cas = c1.gets("greeting")
    check(val == b"hello ring" and cas, "gets returns a cas")
    check(c2.cas("greeting", b"v2", cas) is True, "cas with the current unique stores")
    check(c1.cas("greeting", b"v3", cas) is False, "cas with a stale unique -> EXISTS")
    check(c3.get("greeting") == b"v2", "the conflicting cas did not store")
    check(c1.cas("absent-cas", b"x", b"1") is None, "cas on a missing key -> NOT_FOUND")

    # add / replace
    check(c1.add("addk", b"one") is True, "add new")
    check(c2.add("addk", b"two") is False, "add existing -> NOT_STORED")
    check(c3.replace("addk", b"three") is True, "replace existing")
    check(c1.replace("never-set", b"x") is False, "replace missing -> NOT_STORED")
    check(c2.get("addk") == b"three", "replace took effect")

    # append / prepend
    c1.set("ap", b"mid")
    check(c2.append("ap", b"-end") is True, "append")
    check(c3.prepend("ap", b"start-") is True, "prepend")
    check(c1.get("ap") == b"start-mid-end", "append/prepend result")
    check(c1.append("never-ap", b"x") is False, "append missing -> NOT_STORED")

    # incr / decr
    c1.set("ctr", b"10")
    check(c2.incr("ctr", 5) == 15, "incr")
    check(c3.decr("ctr", 20) == 0, "decr stops at 0")
    check(c1.incr("ctr-missing", 1) is None, "incr missing -> NOT_FOUND")
    c1.set("notnum", b"abc")
    try:
        c1.incr("notnum", 1)
        check(False, "incr on non-numeric must fail")
    except MemcacheClientError as e:
        check("non-numeric" in str(e), "incr non-numeric message: %s" % e)

    # touch / gat and expiry; no check depends on how fast the ring answers
    # (a loaded machine may take seconds): expiries only run out, and a
    # touch is checked through mg's remaining-TTL flag
    c1.set("ttl", b"short", expire=100)
    c1.set("ttl2", b"short2", expire=30)
    c1.set("exp1", b"gone soon", expire=1)
    check(c2.touch("ttl2", 1000) is True, "touch existing")
    check(c2.touch("never-touched", 10) is False, "touch missing")
    r = raw(p1, b"mg ttl2 t v\r\n", b"\r\n")
    ttl = int(r.split(b"\r\n")[0].split(b" t")[1]) if b" t" in r else -1
    check(900 < ttl <= 1000, "touch set a TTL of ~1000 s: %r" % r)
    r = raw(p3, b"gat 100 ttl ttl-missing\r\n", b"END\r\n")
    check(r == b"VALUE ttl 0 5\r\nshort\r\nEND\r\n", "gat: %r" % r)
    r = raw(p1, b"gats 2 ttl\r\n", b"END\r\n")
    check(r.startswith(b"VALUE ttl 0 5 ") and r.endswith(b"\r\nshort\r\nEND\r\n"),
          "gats has a cas: %r" % r)
    time.sleep(3.2)
    check(c3.get("ttl") is None, "expired 2 s after gats")
    check(c2.get("exp1") is None, "set with exptime 1 expired")
    check(c1.get("ttl2") == b"short2", "touched item lives")
    c1.set("neg", b"x", expire=0)
    r = raw(p1, b"touch neg -1\r\nget neg\r\n", b"END\r\n")
    check(r == b"TOUCHED\r\nEND\r\n", "negative exptime expires at once: %r" % r)

    # delete
    check(c1.delete("addk") is True, "delete")
    check(c2.delete("addk") is False, "delete again -> NOT_FOUND")
    check(c3.get("addk") is None, "deleted is a miss")

    # get_many across nodes
    items = {"many-%d" % i: ("value-%d" % i).encode() for i in range(40)}
    check(c1.set_many(items) == [], "set_many")
    got = c2.get_many(list(items) + ["many-missing"])
    check(got == items, "get_many: %d of %d" % (len(got), len(items)))

    # errors, and the connection goes on
    r = raw(p2, b"bogus\r\nget greeting\r\n", b"END\r\n")
    check(r == b"ERROR\r\nVALUE greeting 0 2\r\nv2\r\nEND\r\n", "unknown command: %r" % r)
    big = b"x" * (1024 * 1024 + 1)
    r = raw(p2, b"set big 0 0 %d\r\n" % len(big) + big + b"\r\nget greeting\r\n", b"END\r\n")
    check(r == b"SERVER_ERROR object too large for cache\r\nVALUE greeting 0 2\r\nv2\r\nEND\r\n",
          "oversize value swallowed: %r" % r[:200])
    ok_big = b"y" * (1024 * 1024)
    check(c1.set("bigok", ok_big) is True, "1 MiB value stores")
    check(c3.get("bigok") == ok_big, "1 MiB value reads back")
    longkey = b"k" * 251
    r = raw(p3, b"get " + longkey + b"\r\nset " + longkey + b" 0 0 1\r\nx\r\nversion\r\n",
            b"dhtfs\r\n")
    check(r == b"CLIENT_ERROR bad command line format\r\n"
          b"CLIENT_ERROR bad command line format\r\nVERSION 1.6.0-dhtfs\r\n",
          "too-long key: %r" % r)
    r = raw(p1, b"set k 0 0 3\r\nabcdef\r\nversion\r\n", b"dhtfs\r\n")
    check(r.startswith(b"CLIENT_ERROR bad data chunk\r\n") and r.endswith(b"VERSION 1.6.0-dhtfs\r\n"),
          "bad data chunk: %r" % r)
    r = raw(p1, b"incr ctr x\r\nmn\r\n", b"MN\r\n")
    check(r == b"CLIENT_ERROR invalid numeric delta argument\r\nMN\r\n", "bad delta: %r" % r)
    r = raw(p1, b"g" * 9000, b"\r\n")
    check(r == b"CLIENT_ERROR line too long\r\n", "line too long: %r" % r[:80])

    # pipelining: many requests in one write, answers in order
    req = b"".join(b"set p%d 0 0 1\r\n%d\r\n" % (i, i % 10) for i in range(50))
    req += b"".join(b"get p%d\r\n" % i for i in range(50))
    want = b"STORED\r\n" * 50 + b"".join(b"VALUE p%d 0 1\r\n%d\r\nEND\r\n" % (i, i % 10)
                                         for i in range(50))
    r = raw(p2, req, b"VALUE p49 0 1\r\n9\r\nEND\r\n")
    check(r == want, "pipelined answers in order (%d bytes)" % len(r))

    # meta commands
    r = raw(p1, b"ms meta 3 T0 F7\r\nabc\r\nmg meta v f k s\r\nmg meta-missing v\r\n"
            b"mg meta-missing v q\r\nmd meta\r\nmg meta v\r\nmn\r\n", b"MN\r\n")
    check(r == b"HD\r\nVA 3 f7 kmeta s3\r\nabc\r\nEN\r\nHD\r\nEN\r\nMN\r\n", "meta: %r" % r)
    r = raw(p1, b"ms madd 1 ME\r\na\r\nms madd 1 ME\r\nb\r\nmg madd v\r\n", b"\r\na\r\n")
    check(r == b"HD\r\nNS\r\nVA 1\r\na\r\n", "ms add mode: %r" % r)
    r = raw(p2, b"ma mctr\r\nma mctr N0 J10 v\r\nma mctr v\r\nma mctr D5 MD v\r\n"
            b"ma mctr q\r\nma mctr-missing q\r\nmn\r\n", b"MN\r\n")
    check(r == b"NF\r\nVA 2\r\n10\r\nVA 2\r\n11\r\nVA 1\r\n6\r\nMN\r\n", "ma: %r" % r)

    # stats / version / verbosity
    st = c1.stats()
    check(int(st.get(b"curr_connections", 0)) >= 1 and b"cmd_get" in st, "stats")
    check(c2.version() == b"1.6.0-dhtfs", "version")
    r = raw(p1, b"verbosity 1\r\n", b"\r\n")
    check(r == b"OK\r\n", "verbosity")

    # flush_all: only the mc namespace, through one node, seen through another
    c1.set("before-flush", b"x")
    check(c2.flush_all() is True, "flush_all")
    check(c2.get("before-flush") is None, "flushed on the node that flushed")
    deadline = time.time() + 5
    while c3.get("before-flush") is not None and time.time() < deadline:
        time.sleep(0.2)
    check(c3.get("before-flush") is None, "flush seen through another node within 5 s")
    check(c1.set("after-flush", b"y") is True and c3.get("after-flush") == b"y",
          "items set after the flush live")


def seed(port):
    c = client(port)
    items = {"keep-%d" % i: ("kept-%d" % i).encode() for i in range(30)}
    check(c.set_many(items) == [], "seed set_many")
    check(c.set("keep-ctr", b"41") is True, "seed counter")


def check_kept(ports):
    items = {"keep-%d" % i: ("kept-%d" % i).encode() for i in range(30)}
    for p in ports:
        c = client(p)
        got = c.get_many(list(items))
        check(got == items, "port %d: kept items %d of %d" % (p, len(got), len(items)))
        check(c.get("keep-ctr") is not None, "port %d: counter kept" % p)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def flood(port, pid):
    c = client(port)
    check(c.set("flood", b"f" * 100000) is True, "flood item")
    before = rss_kb(pid)
    f = socket.create_connection(("127.0.0.1", port), timeout=5)
    f.setblocking(False)
    chunk = b"get flood\r\n" * 10000
    sent, t = 0, time.time()
    while time.time() - t < 4:
        try:
            sent += f.send(chunk)
        except BlockingIOError:
            time.sleep(0.05)
    grown = rss_kb(pid) - before
    print("flood: %d bytes of requests sent unread; node RSS grew %d KiB" % (sent, grown))
    check(grown < 64 * 1024, "RSS grew %d KiB under a flood" % grown)
    check(client(port).get("flood") == b"f" * 100000, "other clients served during a flood")
    f.close()
    # many connections at once
    conns = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(300)]
    for s in conns:
        s.sendall(b"get flood\r\n")
    ok = 0
    for s in conns:
        d = b""
        while not d.endswith(b"END\r\n"):
            x = s.recv(1 << 20)
            if not x:
                break
            d += x
        ok += d.endswith(b"END\r\n")
        s.close()
    check(ok == len(conns), "300 connections served: %d" % ok)


def race(ports):
    import threading
    c = client(ports[0])
    c.set("race-ctr", b"0")
    c.set("race-log", b"")
    c.set("race-cas", b"0")
    N = 40
    errors = []

    def worker(w):
        try:
            mc = client(ports[w % len(ports)])
            for i in range(N):
                mc.incr("race-ctr", 1)
                mc.append("race-log", b"%d." % w)
                # cas loop: read, add one, write if unchanged; retry on EXISTS
                for _ in range(200):
                    v, cas = mc.gets("race-cas")
                    if mc.cas("race-cas", b"%d" % (int(v) + 1), cas):
                        break
                else:
                    errors.append("worker %d: cas never won" % w)
        except Exception as e:  # noqa: BLE001 — any failure is a finding
            errors.append("worker %d: %r" % (w, e))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, "race workers: %s" % errors[:3])
    total = 6 * N
    check(client(ports[1]).get("race-ctr") == b"%d" % total, "incr lost updates: %r (want %d)"
          % (client(ports[1]).get("race-ctr"), total))
    log = client(ports[2]).get("race-log") or b""
    check(log.count(b".") == total, "append lost updates: %d of %d" % (log.count(b"."), total))
    check(client(ports[0]).get("race-cas") == b"%d" % total, "cas loop lost updates: %r"
          % client(ports[0]).get("race-cas"))


def main():
    phase, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
    if phase == "basic":
        basic(*ports)
    elif phase == "seed":
        seed(ports[0])
    elif phase == "race":
        race(ports)
    elif phase == "flood":
        flood(ports[0], ports[1])
    elif phase == "check":
        check_kept(ports)
    else:
        sys.exit("unknown phase " + phase)
    if FAILS:
        print("%d check(s) failed" % len(FAILS), file=sys.stderr)
        sys.exit(1)
    print("%s: all checks passed" % phase)


if __name__ == "__main__":
    main()
