/*
 * fuzz_mc.c — libFuzzer target for the memcached text protocol parser.
 *
 * Feeds the input as a connection's byte stream, split at a point taken
 * from the first byte (so partial input is exercised too), and checks what
 * the server relies on: the parser never reads past the buffer, a result
 * other than "need more" always makes progress (no request loops forever),
 * keys and data lie inside the buffer, keys are valid, data blocks are
 * within the item limit, and every error has a reply line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mc_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mc_req_t req;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_mc: %s\n", what);
    abort();
}

static void inside(const void *p, size_t n, const uint8_t *buf, size_t len)
{
    const uint8_t *q = p;
    if (n && (q < buf || q + n > buf + len))
        die("span outside the buffer");
}

/* Parse buf[0..len) as the server would; returns the bytes consumed. */
static size_t run(const uint8_t *buf, size_t len)
{
    size_t off = 0, swallow = 0;
    while (off < len) {
        if (swallow) {
            size_t n = swallow < len - off ? swallow : len - off;
            swallow -= n;
            off += n;
            continue;
        }
        size_t used = 0, sw = 0;
        const char *err = NULL;
        mc_parse_rc_t rc = mc_parse(buf + off, len - off, &req, &used, &sw, &err);
        if (rc == MC_PARSE_MORE) {
            if (used != 0)
                die("need more, but consumed");
            break;
        }
        if (rc == MC_PARSE_CLOSE) {
            if (!err)
                die("close without a reply");
            return len;
        }
        if (used == 0 || used > len - off)
            die("no progress or consumed beyond the input");
        if (rc == MC_PARSE_ERROR) {
            if (!err || !*err)
                die("error without a reply");
            swallow = sw;
        } else {
            for (size_t k = 0; k < req.nkeys; k++) {
                inside(req.keys[k].p, req.keys[k].len, buf + off, used);
                if (!mc_key_valid(req.keys[k].p, req.keys[k].len))
                    die("invalid key accepted");
            }
            if (req.data_len > MC_VALUE_MAX)
                die("oversize data accepted");
            inside(req.data, req.data_len, buf + off, used);
        }
        off += used;
    }
    return off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t split = data[0] % (size);
    /* whole input at once, then as two reads: the first part must not be over-consumed */
    run(data + 1, size - 1);
    uint8_t *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data + 1, size - 1);
    size_t part = split < size - 1 ? split : size - 1;
    size_t used = run(copy, part);
    if (used > part)
        die("consumed beyond the first read");
    free(copy);
    return 0;
}
