/*
 * freeport — print N distinct TCP ports on 127.0.0.1 that were free a moment
 * ago (the kernel picks them by binding port 0). All sockets stay open until
 * every port is chosen, so the N ports differ; they are closed before exit,
 * which leaves a small race the tests accept.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1;
    if (n < 1 || n > 256) {
        fprintf(stderr, "usage: freeport [COUNT 1..256]\n");
        return 2;
    }
    int fds[256];
    for (int i = 0; i < n; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof sa;
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof sa) < 0 ||
            getsockname(fds[i], (struct sockaddr *)&sa, &len) < 0) {
            perror("freeport");
            return 1;
        }
        printf("%u\n", ntohs(sa.sin_port));
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}
