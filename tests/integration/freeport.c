/*
 * freeport — print N distinct TCP ports on 127.0.0.1 that are free now.
 *
 * Ports come from below the kernel's ephemeral range (ip_local_port_range),
 * picked at random and checked by binding: a port from bind(0) would be an
 * ephemeral one, which any outgoing connection (the nodes' own ZeroMQ
 * connects) may take between this check and the node's bind. All sockets
 * stay open until every port is chosen, so the N ports differ.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int ephemeral_low(void)
{
    int lo = 32768, hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2)
            lo = 32768;
        fclose(f);
    }
    return lo;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1;
    if (n < 1 || n > 256) {
        fprintf(stderr, "usage: freeport [COUNT 1..256]\n");
        return 2;
    }
    int top = ephemeral_low(), base = 10000;
    if (top - base < 1000) {
        fprintf(stderr, "freeport: no port range below the ephemeral ports (%d)\n", top);
        return 1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    srand((unsigned)(ts.tv_nsec ^ getpid()));
    int fds[256];
    for (int i = 0; i < n; i++) {
        int tries = 0;
        for (;;) {
            if (++tries > 10000) {
                fprintf(stderr, "freeport: no free port found\n");
                return 1;
            }
            struct sockaddr_in sa = {.sin_family = AF_INET};
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            sa.sin_port = htons((uint16_t)(base + rand() % (top - base)));
            fds[i] = socket(AF_INET, SOCK_STREAM, 0);
            if (fds[i] < 0) {
                perror("freeport");
                return 1;
            }
            if (bind(fds[i], (struct sockaddr *)&sa, sizeof sa) == 0) {
                printf("%u\n", ntohs(sa.sin_port));
                break;
            }
            close(fds[i]);
        }
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}
