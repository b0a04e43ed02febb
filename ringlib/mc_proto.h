/*
 * mc_proto.h — memcached's text protocol, without I/O: the request parser,
 * the response formatter and the record that a memcached item becomes in
 * the store.
 *
 * The parser works on whatever bytes a connection has buffered: it says
 * "need more", or returns one whole request (command line plus data block)
 * whose keys and data point into the caller's buffer, or an error line to
 * send (exactly memcached's wording) together with how many bytes to drop.
 * Nothing here allocates except mc_out_t, which grows a reply buffer.
 */
#ifndef MC_PROTO_H
#define MC_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    MC_KEY_MAX = 250,             /* memcached's KEY_MAX_LENGTH */
    MC_LINE_MAX = 8192,           /* a longer command line closes the connection */
    MC_KEYS_MAX = 1024,           /* keys of one get/gets/gat/gats */
    MC_MFLAGS_MAX = 32,           /* flag tokens of one meta command */
    MC_VALUE_MAX = 1024 * 1024,   /* memcached's default item size limit */
    MC_RECORD_HDR = 13,           /* 'M', flags u32, exptime i64 */
    MC_REL_EXPTIME_MAX = 2592000, /* 30 days: larger exptimes are unix times */
};

typedef enum {
    MC_GET,
    MC_GETS,
    MC_GAT,
    MC_GATS,
    MC_SET,
    MC_ADD,
    MC_REPLACE,
    MC_APPEND,
    MC_PREPEND,
    MC_CAS,
    MC_DELETE,
    MC_INCR,
    MC_DECR,
    MC_TOUCH,
    MC_FLUSH_ALL,
    MC_VERSION,
    MC_VERBOSITY,
    MC_STATS,
    MC_QUIT,
    MC_MN, /* meta no-op */
    MC_MG, /* meta get */
    MC_MS, /* meta set */
    MC_MD, /* meta delete */
    MC_MA, /* meta arithmetic */
} mc_cmd_t;

/* A span of the caller's buffer. */
typedef struct {
    const char *p;
    size_t len;
} mc_span_t;

typedef struct {
    mc_cmd_t cmd;
    size_t nkeys;
    mc_span_t keys[MC_KEYS_MAX];
    uint32_t flags;      /* storage commands */
    int64_t exptime;     /* storage, touch, gat/gats: as sent (relative or unix time) */
    uint64_t cas;        /* cas */
    uint64_t delta;      /* incr/decr; flush_all delay; verbosity level */
    bool noreply;        /* storage, delete, incr/decr, touch, flush_all, verbosity */
    const uint8_t *data; /* storage commands and ms: the data block, without \r\n */
    size_t data_len;
    mc_span_t arg;  /* stats: the optional argument (len 0 if none) */
    size_t nmflags; /* meta commands: the flag tokens in request order */
    mc_span_t mflags[MC_MFLAGS_MAX];
} mc_req_t;

typedef enum {
    MC_PARSE_MORE,  /* no whole request yet: read more (nothing consumed) */
    MC_PARSE_OK,    /* *req holds one request of *used bytes */
    MC_PARSE_ERROR, /* send *err, drop *used bytes, then *swallow more (may not be here yet) */
    MC_PARSE_CLOSE, /* send *err and close the connection (line too long) */
} mc_parse_rc_t;

/*
 * Parse the request at the start of buf[0..len). Keys, data and spans in
 * *req point into buf and stay valid while buf is unchanged. *err is a
 * static string without "\r\n". Never reads beyond len.
 */
mc_parse_rc_t mc_parse(const uint8_t *buf, size_t len, mc_req_t *req, size_t *used, size_t *swallow,
                       const char **err);

/*
 * A key memcached 1.6 accepts: 1..250 bytes, none of them NUL, space or
 * '\n' (control characters and bytes >= 0x80 are fine, as in memcached).
 */
bool mc_key_valid(const char *key, size_t len);

/*
 * The meta flag token for letter (e.g. 'T' in "T30"), or NULL. The token's
 * argument is the rest of the span after the letter.
 */
/* Unsigned decimal, digits only (1..20 of them), no overflow. */
bool mc_parse_u64(const mc_span_t *t, uint64_t *out);

const mc_span_t *mc_req_mflag(const mc_req_t *req, char letter);

/* ----------------------------------------------------------- the record */

/* A decoded item; data points into the decoded buffer. */
typedef struct {
    uint32_t flags;
    int64_t exptime; /* absolute unix seconds; 0 = never */
    const uint8_t *data;
    size_t len;
} mc_item_t;

/*
 * The store value of an item: 'M', flags (u32 big-endian), exptime (i64
 * big-endian, absolute unix seconds, 0 = never), then the data. out must
 * hold MC_RECORD_HDR + len bytes. Returns the record's length.
 */
size_t mc_record_encode(uint8_t *out, uint32_t flags, int64_t exptime, const uint8_t *data,
                        size_t len);
/* 0, or -EBADMSG when buf is no record (too short, wrong magic). */
int mc_record_decode(const uint8_t *buf, size_t len, mc_item_t *it);

/*
 * memcached's exptime rule at now_s: 0 = never (0); up to 30 days =
 * seconds from now; larger = a unix time; negative = already expired
 * (returns -1). Returns the absolute expiry.
 */
int64_t mc_exptime_abs(int64_t exptime, int64_t now_s);
/* Is an item with absolute expiry exp (as above) gone at now_s? */
bool mc_expired(int64_t exp, int64_t now_s);

/*
 * incr/decr on data: a decimal number (trailing spaces allowed, as memcached
 * pads after decr). incr wraps at 2^64, decr stops at 0. 0 with *out, or
 * -EINVAL for a non-numeric value.
 */
int mc_arith(const uint8_t *data, size_t len, uint64_t delta, bool decr, uint64_t *out);

/* ----------------------------------------------------------- responses */

/* A growable reply buffer. */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} mc_out_t;

/* Append; 0 or -ENOMEM (the buffer is unchanged then). */
int mc_out_bytes(mc_out_t *o, const void *p, size_t n);
int mc_out_printf(mc_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* line + "\r\n" */
int mc_out_line(mc_out_t *o, const char *line);
/* Drop the first n bytes (sent). */
void mc_out_consume(mc_out_t *o, size_t n);
void mc_out_free(mc_out_t *o);

/* "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n" */
int mc_out_value(mc_out_t *o, const char *key, size_t key_len, uint32_t flags, const uint8_t *data,
                 size_t len, bool with_cas, uint64_t cas);

#endif
