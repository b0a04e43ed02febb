#!/usr/bin/env python3
"""chord-hops-model.py [N=1024] [LOOKUPS=20000] — where ringsim's hop count
sits relative to 1/2 log2 N, from an independent, minimal Chord model.

Counts node-to-node forwards (as ringsim and the daemon do) until a node can
answer: the key is in (pred, self] (it owns it) or in (self, succ] (its
successor owns it). The answer itself is not a forward. Routing picks the
closest preceding node among the fingers (successor(n + 2^i)) and, when
enabled, the first k successors, as ringlib's ring_state_route() does.

Prints the average for evenly spaced ids (exactly 1/2 log2 N: the forwards
are the 1-bits of the distance in nodes) and for random ids with a successor
list of 1 and 4 entries, so the part of the gap each ingredient explains is
visible. 32-bit ids, deterministic seeds. ~3 s for N=1024.
"""
import bisect
import math
import random
import sys

M = 32
RING = 1 << M


def in_oc(x, a, b):
    return a < x <= b if a < b else (x > a or x <= b)


def in_oo(x, a, b):
    return a < x < b if a < b else (x > a or x < b)


def avg_hops(ids, nsucc, lookups):
    rnd = random.Random(5)
    ids = sorted(ids)
    n = len(ids)
    pos = {a: i for i, a in enumerate(ids)}

    def successor(x):
        return ids[bisect.bisect_left(ids, x % RING) % n]

    fingers = {a: [successor(a + (1 << i)) for i in range(M)] for a in ids}
    succs = {a: [ids[(pos[a] + k) % n] for k in range(1, nsucc + 1)] for a in ids}
    total = 0
    for _ in range(lookups):
        cur = ids[rnd.randrange(n)]
        key = rnd.randrange(RING)
        hops = 0
        while True:
            if in_oc(key, ids[pos[cur] - 1], cur) or in_oc(key, cur, succs[cur][0]):
                break
            cands = [f for f in fingers[cur] + succs[cur] if in_oo(f, cur, key)]
            cur = max(cands, key=lambda f: (f - cur) % RING)
            hops += 1
        total += hops
    return total / lookups


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    lookups = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    half = 0.5 * math.log2(n)
    even = [i * (RING // n) for i in range(n)]
    rand = random.Random(1).sample(range(RING), n)
    print(f"N={n} lookups={lookups} 1/2 log2 N = {half:.3f}")
    for name, ids, k in (("even ids, fingers only", even, 1),
                         ("random ids, fingers only", rand, 1),
                         ("random ids, fingers + 4 successors", rand, 4)):
        a = avg_hops(ids, k, lookups)
        print(f"  {name:36s} avg {a:.3f}  gap {half - a:+.3f}")


if __name__ == "__main__":
    main()
