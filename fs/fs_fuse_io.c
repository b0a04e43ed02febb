/*
 * fs_fuse_io.c — our reads and writes of /dev/fuse (fs_fuse_io.h).
 *
 * libfuse reads a whole request into its buffer, then dispatches it at
 * once, on the same thread: what the read hook notes of a request is
 * what the callback dispatched next finds. The INIT reply is built by
 * libfuse from the capabilities it knows; the write hook adds
 * FUSE_HANDLE_KILLPRIV_V2 to it when the kernel offered it.
 */
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include "fs_fuse_io.h"
#include "log.h"

#include <linux/fuse.h>
#include <stddef.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static uint32_t u32_at(const uint8_t *p, size_t len, size_t off)
{
    uint32_t v = 0;
    if (off + sizeof(v) <= len)
        memcpy(&v, p + off, sizeof(v));
    return v;
}

static void note_request(fs_t *fs, const uint8_t *buf, size_t len)
{
    fs->io.kill = false;
    struct fuse_in_header h;
    if (len < sizeof(h))
        return;
    memcpy(&h, buf, sizeof(h));
    const uint8_t *arg = buf + sizeof(h);
    size_t alen = len - sizeof(h);
    switch (h.opcode) {
    case FUSE_INIT:
        fs->io.init_unique = h.unique;
        fs->io.init_pending = true;
        fs->io.offered =
            u32_at(arg, alen, offsetof(struct fuse_init_in, major)) == 7 &&
            (u32_at(arg, alen, offsetof(struct fuse_init_in, flags)) & FUSE_HANDLE_KILLPRIV_V2);
        break;
    case FUSE_WRITE:
        fs->io.kill = u32_at(arg, alen, offsetof(struct fuse_write_in, write_flags)) &
                      FUSE_WRITE_KILL_SUIDGID;
        break;
    case FUSE_OPEN:
        fs->io.kill =
            u32_at(arg, alen, offsetof(struct fuse_open_in, open_flags)) & FUSE_OPEN_KILL_SUIDGID;
        break;
    default:
        break;
    }
}

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
    ssize_t n = read(fd, buf, len);
    if (n > 0)
        note_request(userdata, buf, (size_t)n);
    return n;
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
    fs_t *fs = userdata;
    struct fuse_out_header oh;
    if (fs->io.init_pending && count >= 2 && iov[0].iov_len >= sizeof(oh)) {
        memcpy(&oh, iov[0].iov_base, sizeof(oh));
        size_t at = offsetof(struct fuse_init_out, flags);
        if (oh.unique == fs->io.init_unique) {
            fs->io.init_pending = false;
            if (oh.error == 0 && fs->io.offered && iov[1].iov_len >= at + sizeof(uint32_t)) {
                uint32_t flags;
                memcpy(&flags, (uint8_t *)iov[1].iov_base + at, sizeof(flags));
                flags |= FUSE_HANDLE_KILLPRIV_V2;
                memcpy((uint8_t *)iov[1].iov_base + at, &flags, sizeof(flags));
                fs->killpriv = true;
                log_info("fs", "set-id bits and file capabilities are cleared on our side "
                               "(FUSE_HANDLE_KILLPRIV_V2): writes need no GETXATTR");
            }
        }
    }
    return writev(fd, iov, count);
}

int fs_io_install(fs_t *fs, int fd)
{
    static const struct fuse_custom_io io = {.read = io_read, .writev = io_writev};
    return fuse_session_custom_io(fs->se, &io, fd);
}

bool fs_io_take_kill(fs_t *fs)
{
    bool kill = fs->io.kill;
    fs->io.kill = false;
    return kill;
}
