/*
 * mc_proto.c — memcached text protocol parser and formatter (no I/O).
 *
 * Follows memcached's protocol.txt and the replies of its proto_text.c:
 * a command with the wrong number of arguments or an unknown name gets
 * "ERROR"; bad arguments get "CLIENT_ERROR ..."; a value over the item
 * limit gets "SERVER_ERROR object too large for cache" and its data block
 * is swallowed. One deliberate difference: a storage command whose byte
 * count parses but whose key or other arguments do not also has its data
 * block swallowed (memcached would run the data as a command line), so a
 * bad request never turns user data into commands.
 *
 * Lines end in "\n" (a "\r" before it is dropped), tokens are separated by
 * spaces, as in memcached.
 */
#include "mc_proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TOK_MAX = MC_KEYS_MAX + 2 };

static const char E_ERROR[] = "ERROR";
static const char E_FORMAT[] = "CLIENT_ERROR bad command line format";
static const char E_CHUNK[] = "CLIENT_ERROR bad data chunk";
static const char E_LARGE[] = "SERVER_ERROR object too large for cache";
static const char E_LINE[] = "CLIENT_ERROR line too long";
static const char E_DELTA[] = "CLIENT_ERROR invalid numeric delta argument";
static const char E_EXPTIME[] = "CLIENT_ERROR invalid exptime argument";
static const char E_DELETE[] =
    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";
static const char E_TOKENS[] = "CLIENT_ERROR too many tokens";

/*
 * protocol.txt forbids control characters in keys, but memcached 1.6 does
 * not check: its tokenizer splits on spaces only and any other byte is
 * part of the key (tab, \r inside a line, 0x01..0x1f, 0x7f, 0x80..0xff;
 * tried on 1.6.18). Clients rely on that (memaslap puts binary bytes in
 * its keys), so we accept what memcached accepts. A space or '\n' never
 * reaches here (they end the token or the line). NUL is refused: memcached
 * cuts the line at a NUL, so no memcached item has one in its key, and the
 * replies print keys with "%.*s".
 */
bool mc_key_valid(const char *key, size_t len)
{
    if (len == 0 || len > MC_KEY_MAX)
        return false;
    return memchr(key, '\0', len) == NULL && memchr(key, ' ', len) == NULL &&
           memchr(key, '\n', len) == NULL;
}

static bool tok_is(const mc_span_t *t, const char *s)
{
    size_t n = strlen(s);
    return t->len == n && memcmp(t->p, s, n) == 0;
}

bool mc_parse_u64(const mc_span_t *t, uint64_t *out)
{
    if (t->len == 0 || t->len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < t->len; i++) {
        char ch = t->p[i];
        if (ch < '0' || ch > '9')
            return false;
        uint64_t d = (uint64_t)(ch - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool parse_u32(const mc_span_t *t, uint32_t *out)
{
    uint64_t v;
    if (!mc_parse_u64(t, &v) || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Signed decimal within +-2^62 (exptimes). */
static bool parse_i64(const mc_span_t *t, int64_t *out)
{
    mc_span_t u = *t;
    bool neg = false;
    if (u.len && u.p[0] == '-') {
        neg = true;
        u.p++;
        u.len--;
    }
    uint64_t v;
    if (!mc_parse_u64(&u, &v) || v > ((uint64_t)1 << 62))
        return false;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

typedef struct {
    const uint8_t *buf;
    size_t len, line_len; /* line_len: through the '\n' */
    mc_span_t tok[TOK_MAX];
    size_t ntok;
    bool too_many;
} line_t;

static void tokenize(line_t *l, const char *p, size_t n)
{
    size_t i = 0;
    l->ntok = 0;
    l->too_many = false;
    while (i < n) {
        while (i < n && p[i] == ' ')
            i++;
        if (i == n)
            break;
        size_t s = i;
        while (i < n && p[i] != ' ')
            i++;
        if (l->ntok == TOK_MAX) {
            l->too_many = true;
            return;
        }
        l->tok[l->ntok++] = (mc_span_t){p + s, i - s};
    }
}

static mc_parse_rc_t fail(const char **err, const char *msg, size_t *used, size_t line_len)
{
    *err = msg;
    *used = line_len;
    return MC_PARSE_ERROR;
}

static bool last_is_noreply(const line_t *l, size_t min_tokens)
{
    return l->ntok > min_tokens && tok_is(&l->tok[l->ntok - 1], "noreply");
}

/*
 * The data block of a storage command or ms: bytes from token bi. Handles
 * the swallow cases; on success fills req->data.
 */
static mc_parse_rc_t data_block(const line_t *l, const mc_span_t *bytes_tok, bool args_ok,
                                mc_req_t *req, size_t *used, size_t *swallow, const char **err)
{
    uint64_t n;
    if (!mc_parse_u64(bytes_tok, &n) || n > (uint64_t)1 << 40)
        return fail(err, E_FORMAT, used, l->line_len);
    if (!args_ok || n > MC_VALUE_MAX) {
        *swallow = (size_t)n + 2;
        return fail(err, args_ok ? E_LARGE : E_FORMAT, used, l->line_len);
    }
    size_t need = l->line_len + (size_t)n + 2;
    if (l->len < need)
        return MC_PARSE_MORE;
    const uint8_t *d = l->buf + l->line_len;
    if (d[n] != '\r' || d[n + 1] != '\n')
        return fail(err, E_CHUNK, used, need);
    req->data = d;
    req->data_len = (size_t)n;
    *used = need;
    return MC_PARSE_OK;
}

static mc_parse_rc_t parse_storage(line_t *l, mc_req_t *req, size_t *used, size_t *swallow,
                                   const char **err)
{
    bool cas = req->cmd == MC_CAS;
    size_t base = cas ? 6 : 5; /* tokens without noreply */
    if (l->ntok != base && !(l->ntok == base + 1 && tok_is(&l->tok[base], "noreply")))
        return fail(err, E_ERROR, used, l->line_len);
    req->noreply = l->ntok == base + 1;
    req->keys[0] = l->tok[1];
    req->nkeys = 1;
    bool ok = mc_key_valid(l->tok[1].p, l->tok[1].len) && parse_u32(&l->tok[2], &req->flags) &&
              parse_i64(&l->tok[3], &req->exptime);
    if (cas)
        ok = ok && mc_parse_u64(&l->tok[5], &req->cas);
    return data_block(l, &l->tok[4], ok, req, used, swallow, err);
}

static mc_parse_rc_t parse_meta(line_t *l, mc_req_t *req, size_t *used, size_t *swallow,
                                const char **err)
{
    if (req->cmd == MC_MN) {
        *used = l->line_len;
        return MC_PARSE_OK;
    }
    size_t first_flag = req->cmd == MC_MS ? 3 : 2;
    if (l->ntok < first_flag)
        return fail(err, E_FORMAT, used, l->line_len);
    req->keys[0] = l->tok[1];
    req->nkeys = 1;
    bool ok = mc_key_valid(l->tok[1].p, l->tok[1].len) && l->ntok - first_flag <= MC_MFLAGS_MAX;
    req->nmflags = 0;
    for (size_t i = first_flag; ok && i < l->ntok; i++) {
        char f = l->tok[i].p[0];
        if (!((f >= 'a' && f <= 'z') || (f >= 'A' && f <= 'Z')) || f == 'b')
            ok = false; /* b (base64 keys) is not supported */
        req->mflags[req->nmflags++] = l->tok[i];
    }
    req->noreply = ok && mc_req_mflag(req, 'q') != NULL;
    if (req->cmd == MC_MS)
        return data_block(l, &l->tok[2], ok, req, used, swallow, err);
    if (!ok)
        return fail(err, E_FORMAT, used, l->line_len);
    *used = l->line_len;
    return MC_PARSE_OK;
}

static const struct {
    const char *name;
    mc_cmd_t cmd;
} names[] = {
    {"get", MC_GET},
    {"gets", MC_GETS},
    {"gat", MC_GAT},
    {"gats", MC_GATS},
    {"set", MC_SET},
    {"add", MC_ADD},
    {"replace", MC_REPLACE},
    {"append", MC_APPEND},
    {"prepend", MC_PREPEND},
    {"cas", MC_CAS},
    {"delete", MC_DELETE},
    {"incr", MC_INCR},
    {"decr", MC_DECR},
    {"touch", MC_TOUCH},
    {"flush_all", MC_FLUSH_ALL},
    {"version", MC_VERSION},
    {"verbosity", MC_VERBOSITY},
    {"stats", MC_STATS},
    {"quit", MC_QUIT},
    {"mn", MC_MN},
    {"mg", MC_MG},
    {"ms", MC_MS},
    {"md", MC_MD},
    {"ma", MC_MA},
};

mc_parse_rc_t mc_parse(const uint8_t *buf, size_t len, mc_req_t *req, size_t *used, size_t *swallow,
                       const char **err)
{
    *used = 0;
    *swallow = 0;
    *err = NULL;
    size_t scan = len < MC_LINE_MAX ? len : MC_LINE_MAX;
    const uint8_t *nl = memchr(buf, '\n', scan);
    if (!nl) {
        if (len >= MC_LINE_MAX) {
            *err = E_LINE;
            return MC_PARSE_CLOSE;
        }
        return MC_PARSE_MORE;
    }
    line_t l; /* about 16 KiB of token spans */
    l.buf = buf;
    l.len = len;
    l.line_len = (size_t)(nl - buf) + 1;
    size_t n = l.line_len - 1;
    if (n && buf[n - 1] == '\r')
        n--;
    tokenize(&l, (const char *)buf, n);
    req->nkeys = 0;
    req->noreply = false;
    req->data = NULL;
    req->data_len = 0;
    req->nmflags = 0;
    req->arg = (mc_span_t){NULL, 0};
    req->flags = 0;
    req->exptime = 0;
    req->cas = 0;
    req->delta = 0;
    if (l.ntok == 0)
        return fail(err, E_ERROR, used, l.line_len);
    size_t k;
    for (k = 0; k < sizeof names / sizeof names[0]; k++)
        if (tok_is(&l.tok[0], names[k].name))
            break;
    if (k == sizeof names / sizeof names[0])
        return fail(err, E_ERROR, used, l.line_len);
    req->cmd = names[k].cmd;
    if (l.too_many)
        return fail(err, E_TOKENS, used, l.line_len);
    mc_span_t *t = l.tok;
    switch (req->cmd) {
    case MC_GET:
    case MC_GETS:
    case MC_GAT:
    case MC_GATS: {
        size_t first = 1;
        if (req->cmd == MC_GAT || req->cmd == MC_GATS) {
            if (l.ntok < 3)
                return fail(err, E_ERROR, used, l.line_len);
            if (!parse_i64(&t[1], &req->exptime))
                return fail(err, E_EXPTIME, used, l.line_len);
            first = 2;
        }
        if (l.ntok <= first)
            return fail(err, E_ERROR, used, l.line_len);
        for (size_t i = first; i < l.ntok; i++) {
            if (!mc_key_valid(t[i].p, t[i].len))
                return fail(err, E_FORMAT, used, l.line_len);
            req->keys[req->nkeys++] = t[i];
        }
        break;
    }
    case MC_SET:
    case MC_ADD:
    case MC_REPLACE:
    case MC_APPEND:
    case MC_PREPEND:
    case MC_CAS:
        return parse_storage(&l, req, used, swallow, err);
    case MC_DELETE:
        if (l.ntok < 2)
            return fail(err, E_ERROR, used, l.line_len);
        if (l.ntok > 4)
            return fail(err, E_DELETE, used, l.line_len);
        req->noreply = last_is_noreply(&l, 2);
        /* "delete <key> 0" is still accepted, any other time is not */
        if (l.ntok - (req->noreply ? 1 : 0) == 3 && !tok_is(&t[2], "0"))
            return fail(err, E_DELETE, used, l.line_len);
        if (l.ntok == 4 && !req->noreply)
            return fail(err, E_DELETE, used, l.line_len);
        if (!mc_key_valid(t[1].p, t[1].len))
            return fail(err, E_FORMAT, used, l.line_len);
        req->keys[req->nkeys++] = t[1];
        break;
    case MC_INCR:
    case MC_DECR:
        if (l.ntok != 3 && !(l.ntok == 4 && tok_is(&t[3], "noreply")))
            return fail(err, E_ERROR, used, l.line_len);
        req->noreply = l.ntok == 4;
        if (!mc_key_valid(t[1].p, t[1].len))
            return fail(err, E_FORMAT, used, l.line_len);
        if (!mc_parse_u64(&t[2], &req->delta))
            return fail(err, E_DELTA, used, l.line_len);
        req->keys[req->nkeys++] = t[1];
        break;
    case MC_TOUCH:
        if (l.ntok != 3 && !(l.ntok == 4 && tok_is(&t[3], "noreply")))
            return fail(err, E_ERROR, used, l.line_len);
        req->noreply = l.ntok == 4;
        if (!mc_key_valid(t[1].p, t[1].len))
            return fail(err, E_FORMAT, used, l.line_len);
        if (!parse_i64(&t[2], &req->exptime))
            return fail(err, E_EXPTIME, used, l.line_len);
        req->keys[req->nkeys++] = t[1];
        break;
    case MC_FLUSH_ALL:
        if (l.ntok > 3)
            return fail(err, E_ERROR, used, l.line_len);
        req->noreply = last_is_noreply(&l, 1);
        if (l.ntok - (req->noreply ? 1 : 0) == 2) {
            int64_t d;
            if (!parse_i64(&t[1], &d) || d < 0)
                return fail(err, E_FORMAT, used, l.line_len);
            req->delta = (uint64_t)d;
        } else if (l.ntok == 3) {
            return fail(err, E_FORMAT, used, l.line_len);
        }
        break;
    case MC_VERBOSITY:
        if (l.ntok < 2 || l.ntok > 3)
            return fail(err, E_ERROR, used, l.line_len);
        req->noreply = last_is_noreply(&l, 2);
        if (l.ntok == 3 && !req->noreply)
            return fail(err, E_ERROR, used, l.line_len);
        if (!mc_parse_u64(&t[1], &req->delta))
            return fail(err, E_FORMAT, used, l.line_len);
        break;
    case MC_VERSION:
    case MC_QUIT:
        if (l.ntok != 1)
            return fail(err, E_ERROR, used, l.line_len);
        break;
    case MC_STATS:
        if (l.ntok > 2)
            return fail(err, E_ERROR, used, l.line_len);
        if (l.ntok == 2)
            req->arg = t[1];
        break;
    case MC_MN:
    case MC_MG:
    case MC_MS:
    case MC_MD:
    case MC_MA:
        return parse_meta(&l, req, used, swallow, err);
    }
    *used = l.line_len;
    return MC_PARSE_OK;
}

const mc_span_t *mc_req_mflag(const mc_req_t *req, char letter)
{
    for (size_t i = 0; i < req->nmflags; i++)
        if (req->mflags[i].len && req->mflags[i].p[0] == letter)
            return &req->mflags[i];
    return NULL;
}

/* ------------------------------------------------------------ record */

size_t mc_record_encode(uint8_t *out, uint32_t flags, int64_t exptime, const uint8_t *data,
                        size_t len)
{
    out[0] = 'M';
    for (int i = 0; i < 4; i++)
        out[1 + i] = (uint8_t)(flags >> (24 - 8 * i));
    uint64_t e = (uint64_t)exptime;
    for (int i = 0; i < 8; i++)
        out[5 + i] = (uint8_t)(e >> (56 - 8 * i));
    if (len)
        memcpy(out + MC_RECORD_HDR, data, len);
    return MC_RECORD_HDR + len;
}

int mc_record_decode(const uint8_t *buf, size_t len, mc_item_t *it)
{
    if (len < MC_RECORD_HDR || buf[0] != 'M')
        return -EBADMSG;
    uint32_t f = 0;
    for (int i = 0; i < 4; i++)
        f = f << 8 | buf[1 + i];
    uint64_t e = 0;
    for (int i = 0; i < 8; i++)
        e = e << 8 | buf[5 + i];
    it->flags = f;
    it->exptime = (int64_t)e;
    it->data = buf + MC_RECORD_HDR;
    it->len = len - MC_RECORD_HDR;
    return 0;
}

int64_t mc_exptime_abs(int64_t exptime, int64_t now_s)
{
    if (exptime == 0)
        return 0;
    if (exptime < 0)
        return -1;
    if (exptime <= MC_REL_EXPTIME_MAX)
        return now_s + exptime;
    return exptime;
}

bool mc_expired(int64_t exp, int64_t now_s)
{
    return exp != 0 && exp <= now_s;
}

int mc_arith(const uint8_t *data, size_t len, uint64_t delta, bool decr, uint64_t *out)
{
    size_t n = len;
    while (n && data[n - 1] == ' ')
        n--;
    mc_span_t t = {(const char *)data, n};
    uint64_t v;
    if (!mc_parse_u64(&t, &v))
        return -EINVAL;
    if (decr)
        *out = delta > v ? 0 : v - delta;
    else
        *out = v + delta; /* wraps at 2^64 like memcached */
    return 0;
}

/* ------------------------------------------------------------ output */

static int out_reserve(mc_out_t *o, size_t n)
{
    if (o->len + n <= o->cap)
        return 0;
    size_t cap = o->cap ? o->cap : 256;
    while (cap < o->len + n)
        cap *= 2;
    uint8_t *p = realloc(o->p, cap);
    if (!p)
        return -ENOMEM;
    o->p = p;
    o->cap = cap;
    return 0;
}

int mc_out_bytes(mc_out_t *o, const void *p, size_t n)
{
    if (out_reserve(o, n) < 0)
        return -ENOMEM;
    if (n)
        memcpy(o->p + o->len, p, n);
    o->len += n;
    return 0;
}

int mc_out_printf(mc_out_t *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || out_reserve(o, (size_t)n + 1) < 0)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)o->p + o->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    o->len += (size_t)n;
    return 0;
}

int mc_out_line(mc_out_t *o, const char *line)
{
    return mc_out_printf(o, "%s\r\n", line);
}

void mc_out_consume(mc_out_t *o, size_t n)
{
    if (n >= o->len) {
        o->len = 0;
        return;
    }
    memmove(o->p, o->p + n, o->len - n);
    o->len -= n;
}

void mc_out_free(mc_out_t *o)
{
    free(o->p);
    *o = (mc_out_t){0};
}

int mc_out_value(mc_out_t *o, const char *key, size_t key_len, uint32_t flags, const uint8_t *data,
                 size_t len, bool with_cas, uint64_t cas)
{
    if (out_reserve(o, key_len + len + 80) < 0)
        return -ENOMEM;
    mc_out_printf(o, "VALUE %.*s %u %zu", (int)key_len, key, flags, len);
    if (with_cas)
        mc_out_printf(o, " %llu", (unsigned long long)cas);
    mc_out_bytes(o, "\r\n", 2);
    mc_out_bytes(o, data, len);
    return mc_out_bytes(o, "\r\n", 2);
}
