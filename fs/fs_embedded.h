/*
 * fs_embedded.h — the embedded default: a private ring of three kvnode
 * processes on loopback, started by `dhtfs MOUNTPOINT` when no peer is
 * given, and stopped (SIGTERM: clean leave) when the file system unmounts.
 *
 * The ring's ports and node ids are remembered in DATA_DIR/ring.conf so
 * the next start finds the same nodes with the same data.
 */
#ifndef FS_EMBEDDED_H
#define FS_EMBEDDED_H

#include <stddef.h>

#include "sec_key.h"

#define FS_EMBEDDED_NODES 3
#define FS_EMBEDDED_EP_MAX 128 /* ENDPOINT_MAX: room for "#KEY" */

typedef struct fs_embedded fs_embedded_t;

/*
 * The default data directory: /var/lib/dhtfs for root, else
 * $XDG_DATA_HOME/dhtfs (~/.local/share/dhtfs). Writes into buf; 0 or -errno.
 */
int fs_embedded_default_dir(char *buf, size_t cap);

/*
 * Start the three nodes (kvnode found next to the running executable, then
 * on $PATH) with data under data_dir (created), wait until they form one
 * ring, and fill peers with their endpoints. On failure nothing is left
 * running, *out is NULL, and a message has been printed to stderr.
 * Returns 0 or -errno.
 */
int fs_embedded_start(const char *data_dir, fs_embedded_t **out,
                      char peers[FS_EMBEDDED_NODES][FS_EMBEDDED_EP_MAX]);

/*
 * The embedded ring is secured (CURVE): the key a client of it presents
 * (DATA_DIR/keys/client.key). Borrowed; valid until fs_embedded_stop.
 */
const sec_keypair_t *fs_embedded_client_key(const fs_embedded_t *e);

/*
 * Record in the lock file that this dhtfs is mounted on mountpoint (an
 * absolute path), or that its mount is gone and it is stopping: a dhtfs
 * started meanwhile waits for a stopping one instead of failing. NULL-safe.
 */
void fs_embedded_mounted(fs_embedded_t *e, const char *mountpoint);
void fs_embedded_stopping(fs_embedded_t *e);

/* DATA_DIR/dhtfs.log, where a daemonized dhtfs writes its messages. 0 or -errno. */
int fs_embedded_log_path(const fs_embedded_t *e, char *buf, size_t cap);

/*
 * Stop the nodes: SIGTERM, wait for each to exit (SIGKILL after a grace
 * period), free. NULL-safe.
 */
void fs_embedded_stop(fs_embedded_t **e);

#endif
