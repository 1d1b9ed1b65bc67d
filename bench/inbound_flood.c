/*
 * wsn-inbound-flood: one raw client sends N small text messages (32-byte
 * payloads, 1,000 frames per write) to a server whose MESSAGE handler, on
 * the I/O thread, only counts them; exits once all N arrived. For
 * instruction counts of the incoming path, e.g. what the inbound rate
 * limit costs a message (docs/benchmarks.md, "TLS and the inbound rate
 * limit"):
 *
 *   valgrind --tool=callgrind build-bench/bench/wsn-inbound-flood 200000 0
 *   valgrind --tool=callgrind build-bench/bench/wsn-inbound-flood 200000 1000000
 *
 * The second argument is client_rate (0 = no limit; the burst is
 * 1,000,000, so the limit never closes the client: only its cost shows).
 */
#define _DEFAULT_SOURCE /* usleep */
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wsnotify.h"

static atomic_long got;

static void on_message(void *user, wsn_server *srv, const wsn_event *ev) {
    (void)user, (void)srv, (void)ev;
    atomic_fetch_add(&got, 1);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MESSAGES CLIENT_RATE\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]);
    wsn_options *o = wsn_options_new();
    wsn_options_set_int(o, WSN_OPT_PORT, 0);
    wsn_options_set_int(o, WSN_OPT_EVENTS_ON_IO_THREAD, 1);
    wsn_options_set_int(o, WSN_OPT_RAW_INCOMING, 1);
    if (wsn_options_set_int(o, WSN_OPT_CLIENT_RATE, atol(argv[2])) ||
        wsn_options_set_int(o, WSN_OPT_CLIENT_BURST, 1000000)) {
        fprintf(stderr, "bad client_rate\n");
        return 2;
    }
    wsn_server *srv;
    char err[256];
    if (wsn_server_new(o, &srv, err, sizeof err) != WSN_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    wsn_options_free(o);
    wsn_server_set_handler(srv, WSN_EVENT_MESSAGE, on_message, NULL);
    if (wsn_server_start(srv) != WSN_OK)
        return 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((unsigned short)wsn_server_port(srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        return 1;
    static const char req[] = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";
    char buf[4096];
    if (send(fd, req, sizeof req - 1, 0) < 0 || recv(fd, buf, sizeof buf, 0) <= 0)
        return 1;
    /* masked (with a zero key) text frames of 32 bytes */
    unsigned char frame[6 + 32] = {0x81, 0x80 | 32};
    memset(frame + 6, 'x', 32);
    enum { BATCH = 1000 };
    static unsigned char batch[BATCH * sizeof frame];
    for (int i = 0; i < BATCH; i++)
        memcpy(batch + i * sizeof frame, frame, sizeof frame);
    long total = (n + BATCH - 1) / BATCH * BATCH; /* whole writes */
    for (long sent = 0; sent < total; sent += BATCH)
        for (size_t off = 0; off < sizeof batch;) {
            ssize_t w = send(fd, batch + off, sizeof batch - off, 0);
            if (w <= 0)
                return 1;
            off += (size_t)w;
        }
    while (atomic_load(&got) < total)
        usleep(1000);
    close(fd);
    wsn_server_free(srv);
    printf("%ld messages\n", atomic_load(&got));
    return 0;
}
