/*
 * copy-rate.c — the machine's raw copy rates, the ceilings for moving replica
 * data around (bench/rereplicate.sh runs it in the same run as the store).
 *
 *   copy-rate tcp    [MIB=1024] [CHUNK_KIB=1024]  fork a reader; stream MIB MiB
 *                    over one 127.0.0.1 TCP connection in CHUNK writes (the
 *                    reader read()s into one reused buffer and discards)
 *   copy-rate memcpy [MIB=1024]                   memcpy 1 MiB blocks from a
 *                    64 MiB source to a 64 MiB destination (no cache reuse)
 *   copy-rate file   [MIB=1024] DIR               write MIB MiB in 1 MiB write()s
 *                    to DIR/copy-rate.tmp, fsync, then read it back in 1 MiB
 *                    read()s (page cache / tmpfs), then unlink
 *
 * Output: a human line and RESULT lines in ../shared/bench format
 *   RESULT label=copy run=.. fstype=- test=tcp_loopback_1024KiB unit=MiB/s value=..
 *          lat_mean_us=0 lat_p99_us=0 load1=.. mib=..
 * Build: cc -O2 -o copy-rate bench/copy-rate.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double load1(void)
{
    double l = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = 0;
        fclose(f);
    }
    return l;
}

static void result(const char *test, double mib, double secs)
{
    double rate = mib / secs;
    printf("%-22s %6.0f MiB in %.3f s: %.0f MiB/s\n", test, mib, secs, rate);
    printf("RESULT label=copy run=%ld fstype=- test=%s unit=MiB/s value=%.1f lat_mean_us=0 "
           "lat_p99_us=0 load1=%.2f mib=%.0f secs=%.3f\n",
           (long)time(NULL), test, rate, load1(), mib, secs);
}

static int mode_tcp(long mib, long chunk_kib)
{
    size_t chunk = (size_t)chunk_kib * 1024;
    long long total = (long long)mib << 20;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 1) < 0 ||
        getsockname(ls, (struct sockaddr *)&a, &al) < 0) {
        perror("copy-rate: listen");
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int c = accept(ls, NULL, NULL);
        char *buf = malloc(chunk);
        long long got = 0;
        ssize_t r;
        while ((r = read(c, buf, chunk)) > 0)
            got += r;
        _exit(got == total ? 0 : 1);
    }
    close(ls);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("copy-rate: connect");
        return 1;
    }
    char *buf = malloc(chunk);
    memset(buf, 0x5a, chunk);
    double t0 = now_s();
    for (long long sent = 0; sent < total;) {
        size_t want = total - sent < (long long)chunk ? (size_t)(total - sent) : chunk;
        ssize_t w = write(s, buf, want);
        if (w <= 0) {
            perror("copy-rate: write");
            return 1;
        }
        sent += w;
    }
    close(s); /* the reader sees EOF once everything is read */
    int st;
    waitpid(pid, &st, 0);
    double t1 = now_s();
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "copy-rate: reader got a different byte count\n");
        return 1;
    }
    char name[64];
    snprintf(name, sizeof name, "tcp_loopback_%ldKiB", chunk_kib);
    result(name, (double)mib, t1 - t0);
    return 0;
}

static int mode_memcpy(long mib)
{
    size_t span = 64u << 20, blk = 1u << 20;
    char *src = malloc(span), *dst = malloc(span);
    memset(src, 1, span);
    memset(dst, 2, span); /* fault both in before timing */
    double t0 = now_s();
    size_t off = 0;
    for (long i = 0; i < mib; i++) {
        memcpy(dst + off, src + off, blk);
        off = (off + blk) % span;
    }
    double t1 = now_s();
    volatile char sink = dst[12345];
    (void)sink;
    result("memcpy_1MiB", (double)mib, t1 - t0);
    return 0;
}

static int mode_file(long mib, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/copy-rate.tmp", dir);
    size_t blk = 1u << 20;
    char *buf = malloc(blk);
    memset(buf, 0x33, blk);
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
    if (fd < 0) {
        perror("copy-rate: open");
        return 1;
    }
    double t0 = now_s();
    for (long i = 0; i < mib; i++)
        if (write(fd, buf, blk) != (ssize_t)blk) {
            perror("copy-rate: write");
            unlink(path);
            return 1;
        }
    fsync(fd);
    double t1 = now_s();
    lseek(fd, 0, SEEK_SET);
    long long got = 0;
    ssize_t r;
    while ((r = read(fd, buf, blk)) > 0)
        got += r;
    double t2 = now_s();
    close(fd);
    unlink(path);
    result("file_write_1MiB_fsync", (double)mib, t1 - t0);
    result("file_read_1MiB", (double)got / 1048576.0, t2 - t1);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    long mib = argc > 2 ? atol(argv[2]) : 1024;
    if (mib < 1)
        mib = 1024;
    if (strcmp(mode, "tcp") == 0)
        return mode_tcp(mib, argc > 3 ? atol(argv[3]) : 1024);
    if (strcmp(mode, "memcpy") == 0)
        return mode_memcpy(mib);
    if (strcmp(mode, "file") == 0 && argc > 3)
        return mode_file(mib, argv[3]);
    fprintf(stderr, "usage: copy-rate tcp [MIB] [CHUNK_KIB] | memcpy [MIB] | file MIB DIR\n");
    return 2;
}
