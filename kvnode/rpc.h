/*
 * rpc.h — asynchronous requests from this process to peers.
 *
 * One DEALER socket per peer endpoint, connected on first use and cached
 * (bounded, least recently used closed first). A call sends one request and
 * later invokes its callback exactly once: with the reply, with the peer's
 * ERROR, or with -ETIMEDOUT. Nothing here blocks: replies are read when the
 * loop reports a DEALER readable.
 */
#ifndef RPC_H
#define RPC_H

#include "loop.h"
#include "sec_key.h"
#include "wire.h"

#include <zmq.h>

typedef struct rpc rpc_t;

/*
 * rc == 0: `reply` is the peer's reply (its type is the request's | REPLY).
 * rc < 0: -ETIMEDOUT (no answer in time; other calls to the peer stay in
 * flight unless it has been silent for twice this call's timeout, then its
 * connection is reset and they fail too),
 * -err for a peer ERROR reply (then reply->err_msg says why, reply is
 * non-NULL), -EACCES with reply NULL when a secured node refused our key
 * in the CURVE handshake, -EPROTO with reply NULL when a plain address
 * reached a node that requires CURVE (rpc_watch_plain only), -EREMOTE for a REDIRECT ("not mine":
 * reply->node names a better peer), -EBADMSG for an unexpected reply type, -ECANCELED when the rpc
 * is destroyed with the call pending. `reply`, its key and value pointers included, is borrowed for
 * the duration of the callback only.
 */
typedef void (*rpc_done_fn)(int rc, const wire_msg_t *reply, void *arg);

/*
 * A new ZeroMQ context for a long-running process (node, mount, load
 * generator), its number of I/O threads set before any socket exists:
 * DHTFS_IO_THREADS from the environment if it is 1..16, else
 * RPC_IO_THREADS (ZeroMQ's default of 1). CurveZMQ seals and opens every
 * frame in the I/O thread that owns the connection, so with one I/O thread
 * a secured process's crypto runs on one core in turn (a node's two replica
 * copies of a 1 MiB put: two seals of ~1 ms of CPU each, one after the
 * other). Two threads helped secured 1 MiB puts a little in A/B runs but
 * made the sec_ring test fail in 2 of 11 runs (handshake-timing races not
 * yet understood), so the default stays 1 (docs/BENCHMARKS.md, "The cost
 * of CURVE"). Returns NULL (errno set) like zmq_ctx_new; the caller
 * terminates it with zmq_ctx_term.
 */
#define RPC_IO_THREADS 1
void *rpc_ctx_new(void);

/* zctx: the process's ZeroMQ context (borrowed, outlives the rpc). */
rpc_t *rpc_new(void *zctx, loop_t *loop);
/* Fails every pending call with -ECANCELED, closes all sockets. */
void rpc_destroy(rpc_t **rpc);

/*
 * The key this process presents to secured nodes (addresses ending in
 * "#KEY", endpoint.h), copied. Set it before the first call; without it a
 * random key is made on the first secured connection (a ring refuses it,
 * and the call fails with -EACCES). Returns 0.
 */
int rpc_set_key(rpc_t *rpc, const sec_keypair_t *kp);

/*
 * Also watch the handshakes of plain (non-"#KEY") connections, so that a
 * call to a node that requires CURVE fails at once with -EPROTO instead
 * of timing out. For clients (two more sockets per connection); set it
 * before the first call.
 */
void rpc_watch_plain(rpc_t *rpc);

/*
 * Send req (its req_id is overwritten) to the peer at addr; types that carry
 * a value send req->value as the second frame (copied). Returns 0 when the
 * call is under way (done will run later, never from inside rpc_call), or
 * -EINVAL (bad message/address), -EFBIG (value too large), -ENOMEM,
 * -EAGAIN (too many calls pending, or the peer's queue is full).
 */
int rpc_call(rpc_t *rpc, const char *addr, wire_msg_t *req, unsigned timeout_ms, rpc_done_fn done,
             void *arg);

/*
 * Inside a done callback with a successful reply that has a value frame:
 * move that frame into *dst without copying it. The caller then owns dst
 * (zmq_msg_close); read the value with zmq_msg_data(dst), not the reply's
 * pointer (a small frame's bytes live inside the zmq_msg_t). Returns 0 or
 * -ENOENT (no such frame in hand).
 */
int rpc_take_value(rpc_t *rpc, zmq_msg_t *dst);

/*
 * Lanes: a peer's requests of each lane go over their own connection, and
 * the receiving ROUTER fair-queues between connections, so ring
 * maintenance (RPC_LANE_CTL) is not queued behind bulk store traffic
 * (RPC_LANE_DATA, what rpc_call uses).
 */
typedef enum { RPC_LANE_DATA, RPC_LANE_CTL } rpc_lane_t;
int rpc_call_lane(rpc_t *rpc, const char *addr, rpc_lane_t lane, wire_msg_t *req,
                  unsigned timeout_ms, rpc_done_fn done, void *arg);

/*
 * A done callback for requests whose answer changes nothing (notifications,
 * repairs): a failure is logged at debug level. Pass a static string naming
 * the request as the call's arg.
 */
void rpc_ignore_answer(int rc, const wire_msg_t *reply, void *what);

/* Drop the cached connections to addr (pending calls to it fail -ETIMEDOUT). */
void rpc_reset_peer(rpc_t *rpc, const char *addr);

/*
 * When the last reply of any kind (errors included) came from addr, on any
 * lane, in loop_now_ms() time; 0 if none since its connection was opened.
 * The failure detector's "alive" signal: a peer that answers anything is
 * busy, not gone.
 */
uint64_t rpc_last_reply_ms(const rpc_t *rpc, const char *addr);

/*
 * Receive one whole multipart message from zsock without blocking: the
 * first `cap` frames are kept in parts (the caller closes them), the rest
 * are read and discarded. Returns the number of frames the message had
 * (0: nothing to read).
 */
int rpc_recv_frames(void *zsock, zmq_msg_t *parts, int cap);

/* Number of calls waiting for an answer. */
size_t rpc_pending(const rpc_t *rpc);

#endif
