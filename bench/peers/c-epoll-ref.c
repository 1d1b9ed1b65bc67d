/*
 * c-epoll-ref: the "one-write ceiling" reference for the chat protocol.
 *
 * A deliberately plain single-threaded epoll WebSocket server: it parses each
 * client message with jansson, builds a broadcast's frame once, and then does
 * ONE write() PER SUBSCRIBER PER MESSAGE. It never coalesces: a subscriber
 * whose socket is full gets its frames queued and flushed later, still one
 * write() per queued frame. This is what a careful but straightforward
 * server does; the benchmark reports wsnotify against it.
 *
 * Protocol: see bench/wsn-chat-bench.c. Path /ws only; no extensions;
 * fragmented client messages are refused (close 1003): the load generator
 * never sends them. SHA-1 and base64 for the handshake come from OpenSSL.
 *
 *   c-epoll-ref [--host A] [--port N]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct frameq { /* queued frames, each flushed with its own write() */
    char *buf;
    size_t len, off, cap;
    uint32_t *lens; /* lengths of queued frames, in order */
    size_t nlen, hlen, caplen;
} frameq;

typedef struct conn {
    int fd;
    int ws; /* 0 = HTTP handshake, 1 = WebSocket */
    int want_out;
    char *in;
    size_t in_len, in_cap;
    frameq q;
    int nsubs;
    struct chan **subs;
} conn;

typedef struct chan {
    char *name;
    conn **members;
    size_t n, cap;
} chan;

static int ep;
static chan **chans;
static size_t nchans;
static volatile sig_atomic_t stop;
static void on_signal(int s) { stop = s; }

static void *xrealloc(void *p, size_t n) {
    void *r = realloc(p, n);
    if (!r) {
        fprintf(stderr, "c-epoll-ref: out of memory\n");
        exit(1);
    }
    return r;
}

static chan *chan_get(const char *name, int create) {
    for (size_t i = 0; i < nchans; i++)
        if (!strcmp(chans[i]->name, name))
            return chans[i];
    if (!create)
        return NULL;
    chan *c = calloc(1, sizeof *c);
    c->name = strdup(name);
    chans = xrealloc(chans, (nchans + 1) * sizeof *chans);
    chans[nchans++] = c;
    return c;
}

static void set_out(conn *c, int on) {
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

static void conn_free(conn *c) {
    for (int i = 0; i < c->nsubs; i++) {
        chan *ch = c->subs[i];
        for (size_t j = 0; j < ch->n; j++)
            if (ch->members[j] == c) {
                ch->members[j] = ch->members[--ch->n];
                break;
            }
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->subs);
    free(c->in);
    free(c->q.buf);
    free(c->q.lens);
    free(c);
}

/* queue a frame behind others (the socket was full) */
static void q_push(conn *c, const char *f, size_t len) {
    frameq *q = &c->q;
    if (q->off == q->len)
        q->off = q->len = 0;
    if (q->len + len > q->cap) {
        if (q->off) {
            memmove(q->buf, q->buf + q->off, q->len - q->off);
            q->len -= q->off;
            q->off = 0;
        }
        while (q->len + len > q->cap)
            q->cap = q->cap ? q->cap * 2 : 4096;
        q->buf = xrealloc(q->buf, q->cap);
    }
    memcpy(q->buf + q->len, f, len);
    q->len += len;
    if (q->nlen == q->caplen) {
        /* compact the ring of lengths into a plain array */
        size_t live = q->nlen - q->hlen;
        if (q->hlen)
            memmove(q->lens, q->lens + q->hlen, live * sizeof *q->lens);
        q->nlen = live;
        q->hlen = 0;
        if (q->nlen == q->caplen) {
            q->caplen = q->caplen ? q->caplen * 2 : 64;
            q->lens = xrealloc(q->lens, q->caplen * sizeof *q->lens);
        }
    }
    q->lens[q->nlen++] = (uint32_t)len;
}

/* one write() per queued frame; returns -1 when the connection died */
static int q_flush(conn *c) {
    frameq *q = &c->q;
    while (q->hlen < q->nlen) {
        size_t want = q->lens[q->hlen];
        ssize_t n = write(c->fd, q->buf + q->off, want);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_out(c, 1);
                return 0;
            }
            if (errno == EINTR)
                continue;
            return -1;
        }
        q->off += (size_t)n;
        if ((size_t)n < want) {
            q->lens[q->hlen] = (uint32_t)(want - (size_t)n);
            set_out(c, 1);
            return 0;
        }
        q->hlen++;
    }
    q->off = q->len = 0;
    q->hlen = q->nlen = 0;
    set_out(c, 0);
    return 0;
}

/* THE reference path: one write() per subscriber per message */
static int send_frame(conn *c, const char *f, size_t len) {
    if (c->q.hlen < c->q.nlen) {
        q_push(c, f, len);
        return 0;
    }
    ssize_t n = write(c->fd, f, len);
    if (n == (ssize_t)len)
        return 0;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return -1;
    size_t done = n > 0 ? (size_t)n : 0;
    q_push(c, f + done, len - done);
    set_out(c, 1);
    return 0;
}

static size_t frame_header(uint8_t *h, int opcode, size_t len) {
    size_t n = 0;
    h[n++] = (uint8_t)(0x80 | opcode);
    if (len < 126)
        h[n++] = (uint8_t)len;
    else if (len < 65536) {
        h[n++] = 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    return n;
}

/* RFC 3339 with nanoseconds, trailing zeros trimmed (Go's RFC3339Nano) */
static void now_rfc3339(char *out, size_t cap) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    if (ts.tv_nsec) {
        char frac[16];
        snprintf(frac, sizeof frac, ".%09ld", ts.tv_nsec);
        size_t k = strlen(frac);
        while (frac[k - 1] == '0')
            frac[--k] = 0;
        n += (size_t)snprintf(out + n, cap - n, "%s", frac);
    }
    snprintf(out + n, cap - n, "Z");
}

/* builds {"channel":..,"type":"json","time":..,"message":..[,"reply_to_id":..]} */
static char *envelope(const char *channel, const char *message_json, const char *reply_to,
                      size_t *flen) {
    char now[48];
    now_rfc3339(now, sizeof now);
    json_t *chs = json_string(channel);
    char *chq = json_dumps(chs, JSON_ENCODE_ANY);
    json_decref(chs);
    char *rq = NULL;
    if (reply_to && *reply_to) {
        json_t *r = json_string(reply_to);
        rq = json_dumps(r, JSON_ENCODE_ANY);
        json_decref(r);
    }
    size_t cap = strlen(chq) + strlen(message_json) + (rq ? strlen(rq) : 0) + 128;
    char *f = malloc(cap + 10);
    int n = snprintf(f + 10, cap, "{\"channel\":%s,\"type\":\"json\",\"time\":\"%s\",\"message\":%s%s%s}",
                     chq, now, message_json, rq ? ",\"reply_to_id\":" : "", rq ? rq : "");
    free(chq);
    free(rq);
    uint8_t h[10];
    size_t hl = frame_header(h, 1, (size_t)n);
    memcpy(f + 10 - hl, h, hl);
    memmove(f, f + 10 - hl, hl + (size_t)n);
    *flen = hl + (size_t)n;
    return f;
}

static int on_ws_message(conn *c, const char *data, size_t len) {
    json_t *root = json_loadb(data, len, 0, NULL);
    if (!root)
        return 0;
    json_t *msg = json_object_get(root, "message");
    const char *channel = json_string_value(json_object_get(root, "channel"));
    const char *msg_id = json_string_value(json_object_get(root, "message_id"));
    const char *action = json_string_value(json_object_get(msg, "action"));
    int rc = 0;
    if (action && !strcmp(action, "subscribe")) {
        const char *name = json_string_value(json_object_get(msg, "channel"));
        if (name && *name) {
            chan *ch = chan_get(name, 1);
            int already = 0;
            for (int i = 0; i < c->nsubs; i++)
                already |= c->subs[i] == ch;
            if (!already) {
                if (ch->n == ch->cap) {
                    ch->cap = ch->cap ? ch->cap * 2 : 16;
                    ch->members = xrealloc(ch->members, ch->cap * sizeof *ch->members);
                }
                ch->members[ch->n++] = c;
                c->subs = xrealloc(c->subs, (size_t)(c->nsubs + 1) * sizeof *c->subs);
                c->subs[c->nsubs++] = ch;
            }
            json_t *ok = json_pack("{s:s,s:s}", "status", "subscribed", "channel", name);
            char *okj = json_dumps(ok, JSON_COMPACT);
            size_t flen;
            char *f = envelope(name, okj, msg_id, &flen);
            rc = send_frame(c, f, flen);
            free(f);
            free(okj);
            json_decref(ok);
        }
    } else if (action && !strcmp(action, "broadcast") && channel && *channel) {
        chan *ch = chan_get(channel, 0);
        if (ch && ch->n) {
            char *mj = json_dumps(msg, JSON_COMPACT);
            size_t flen;
            char *f = envelope(channel, mj, NULL, &flen);
            free(mj);
            /* one write per subscriber; a dead one is shut down here and
             * freed by its own epoll event (HUP/EOF) */
            for (size_t i = 0; i < ch->n; i++)
                if (send_frame(ch->members[i], f, flen) < 0) {
                    if (ch->members[i] == c)
                        rc = -1;
                    else
                        shutdown(ch->members[i]->fd, SHUT_RDWR);
                }
            free(f);
        }
    }
    json_decref(root);
    return rc;
}

/* returns -1 to close */
static int handle_http(conn *c) {
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end)
        return c->in_len > 8192 ? -1 : 0;
    *end = 0;
    if (strncmp(c->in, "GET /ws ", 8) != 0 && strncmp(c->in, "GET /ws?", 8) != 0) {
        static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        if (write(c->fd, nf, sizeof nf - 1) < 0) {
        }
        return -1;
    }
    const char *key = NULL;
    size_t klen = 0;
    for (char *line = strstr(c->in, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        if (!strncasecmp(line + 2, "Sec-WebSocket-Key:", 18)) {
            key = line + 20;
            while (*key == ' ')
                key++;
            const char *e = strstr(key, "\r\n");
            klen = e ? (size_t)(e - key) : strlen(key);
            while (klen && key[klen - 1] == ' ')
                klen--;
            break;
        }
    }
    if (!key || klen > 64)
        return -1;
    char buf[128];
    memcpy(buf, key, klen);
    memcpy(buf + klen, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    unsigned char sha[SHA_DIGEST_LENGTH];
    SHA1((unsigned char *)buf, klen + 36, sha);
    unsigned char acc[64];
    EVP_EncodeBlock(acc, sha, SHA_DIGEST_LENGTH);
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     acc);
    if (write(c->fd, resp, (size_t)n) != n)
        return -1;
    size_t used = (size_t)(end + 4 - c->in);
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    c->ws = 1;
    return 0;
}

static int handle_frames(conn *c) {
    size_t pos = 0;
    int rc = 0;
    while (c->in_len - pos >= 2) {
        uint8_t *p = (uint8_t *)c->in + pos;
        size_t avail = c->in_len - pos;
        int fin = p[0] & 0x80, op = p[0] & 0x0f, masked = p[1] & 0x80;
        uint64_t len = p[1] & 0x7f;
        size_t h = 2;
        if (len == 126) {
            if (avail < 4)
                break;
            len = ((uint64_t)p[2] << 8) | p[3];
            h = 4;
        } else if (len == 127) {
            if (avail < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | p[2 + i];
            h = 10;
        }
        if (!masked || len > (1u << 20))
            return -1;
        if (avail < h + 4 + len)
            break;
        uint8_t *mk = p + h, *d = p + h + 4;
        for (uint64_t i = 0; i < len; i++)
            d[i] ^= mk[i & 3];
        pos += h + 4 + (size_t)len;
        if (!fin || op == 0)
            return -1; /* no fragmented messages here */
        if (op == 1 || op == 2)
            rc = on_ws_message(c, (char *)d, (size_t)len);
        else if (op == 9) {
            uint8_t f[140];
            size_t hl = frame_header(f, 10, (size_t)len);
            memcpy(f + hl, d, (size_t)len);
            rc = send_frame(c, (char *)f, hl + (size_t)len);
        } else if (op == 8) {
            uint8_t f[4] = {0x88, 2, 0x03, 0xe8};
            send_frame(c, (char *)f, 4);
            return -1;
        }
        if (rc < 0)
            return -1;
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
    return 0;
}

static int on_readable(conn *c) {
    for (;;) {
        if (c->in_cap - c->in_len < 65536) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 65536;
            c->in = xrealloc(c->in, c->in_cap);
        }
        ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (n == 0)
            return -1;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : (errno == EINTR ? 0 : -1);
        c->in_len += (size_t)n;
        if (!c->ws && handle_http(c) < 0)
            return -1;
        if (c->ws && handle_frames(c) < 0)
            return -1;
        if (c->in_cap > 65536 * 4 && c->in_len < 65536) {
            c->in_cap = 65536 * 2;
            c->in = xrealloc(c->in, c->in_cap);
        }
        return 0;
    }
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 8080;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--host") && i + 1 < argc)
            host = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--host A] [--port N]\n", argv[0]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || bind(ls, (struct sockaddr *)&a, sizeof a) ||
        listen(ls, 4096)) {
        perror("c-epoll-ref: listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
    fprintf(stderr, "c-epoll-ref: listening on %s:%d\n", host, port);
    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 250);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) {
                for (int k = 0; k < 64; k++) {
                    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            int dead = 0;
            if (evs[i].events & EPOLLOUT)
                dead = q_flush(c) < 0;
            if (!dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                dead = on_readable(c) < 0;
            if (dead)
                conn_free(c);
        }
    }
    return 0;
}
