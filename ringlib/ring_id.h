/*
 * ring_id.h — identifiers on a Chord ring of 2^m positions, and the modular
 * interval tests every routing decision is made of.
 *
 * An identifier is a plain uint64_t holding a value below 2^m (3 <= m <= 64).
 * Pure functions only: no allocation, no I/O.
 */
#ifndef RING_ID_H
#define RING_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t ring_id_t;

enum {
    RING_ID_BITS_MIN = 3,
    RING_ID_BITS_MAX = 64,
    /* "ffffffffffffffff" plus NUL */
    RING_ID_HEX_MAX = 17,
};

/* True when 3 <= m <= 64. */
bool ring_bits_valid(unsigned m);

/* 2^m - 1: the mask that truncates a value to the identifier space. */
uint64_t ring_mask(unsigned m);

/* (a + b) mod 2^m and (a - b) mod 2^m. */
ring_id_t ring_add(ring_id_t a, uint64_t b, unsigned m);
ring_id_t ring_sub(ring_id_t a, uint64_t b, unsigned m);

/* (b - a) mod 2^m: how far clockwise b lies from a. */
uint64_t ring_distance(ring_id_t a, ring_id_t b, unsigned m);

/*
 * Interval membership on the circle, walking clockwise from a to b.
 * When a == b the open interval (a, a) is the whole ring except a, and the
 * half-open ones (a, a] and [a, a) are the whole ring: this is what a one-node
 * ring needs (the single node owns everything). ring_in_co_strict() is the
 * exception callers ask for when [a, a) must be empty.
 */
bool ring_in_oo(ring_id_t x, ring_id_t a, ring_id_t b); /* x in (a, b) */
bool ring_in_oc(ring_id_t x, ring_id_t a, ring_id_t b); /* x in (a, b] */
bool ring_in_co(ring_id_t x, ring_id_t a, ring_id_t b); /* x in [a, b) */
bool ring_in_co_strict(ring_id_t x, ring_id_t a, ring_id_t b);

/*
 * Position of arbitrary bytes: BLAKE2b (libsodium, 8-byte digest) read
 * big-endian and truncated to its low m bits. Used for node endpoints and keys.
 */
ring_id_t ring_hash(const void *data, size_t len, unsigned m);

/* Number of hex digits an id of m bits is printed with: ceil(m / 4). */
unsigned ring_hex_width(unsigned m);

/* Lowercase hex, zero-padded to ring_hex_width(m). buf needs RING_ID_HEX_MAX. */
void ring_id_to_hex(ring_id_t id, unsigned m, char buf[RING_ID_HEX_MAX]);

/*
 * Parse "0x<hex>" or decimal. Returns 0, -EINVAL on syntax errors and
 * -ERANGE when the value does not fit in m bits.
 */
int ring_id_parse(const char *s, unsigned m, ring_id_t *out);

/* Parse exactly ring_hex_width(m)-or-fewer hex digits (as printed). */
int ring_id_parse_hex(const char *s, unsigned m, ring_id_t *out);

#endif
