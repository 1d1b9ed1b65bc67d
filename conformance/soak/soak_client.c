/*
 * wsnotify-soak-client: the client side of the soak test (run_soak.py).
 * One thread, epoll, non-blocking sockets, a minimal RFC 6455 client.
 *
 *   wsnotify-soak-client --port N [--clients 2000] [--duration SECS]
 *       [--channels 64] [--max-subs 4] [--slow 0.10] [--vanish 0.15]
 *       [--silent 0.002] [--min-life SECS] [--max-life SECS]
 *       [--slow-pause-ms 800] [--drop] [--seed N] [--report FILE]
 *       [--fat-channels F] [--fat-stride 4] [--stall] [--stall-read-ms 2000]
 *
 * Keeps --clients connections open for --duration seconds; each connects,
 * subscribes to 1..max-subs random channels (soak_server.c's protocol),
 * lives a random time and then leaves: with a close handshake, or
 * "vanishes" (close() without a close frame, or an RST), or goes silent
 * (stops reading and never closes: the server must drop it). A fraction
 * reads slowly (small receive buffer, pauses). With --stall (drop mode) a
 * slow reader instead alternates --stall-read-ms of reading at full speed
 * with a stall of slow-pause-ms/2..slow-pause-ms: the server's buffers
 * fill during the stall and it drops the client, whose close frame then
 * arrives when the client reads again (the server's close_grace must
 * exceed the stall). With --fat-channels F, slow readers subscribe to one
 * of ch0, chP, ..., ch(F-1)P (P: --fat-stride, the server's publisher
 * count, 4; the soak server pads those heavily) and everyone else only to
 * the other channels. A new client replaces each
 * one that leaves. Then it asks the server to stop publishing, lets every
 * remaining client drain, closes them, and checks the delivery accounting:
 *
 *  - every client that was not dropped by the server received, on each
 *    channel, consecutive numbers with no gap, duplicate or reordering,
 *    starting no later than S+1 (S from its subscribe ack);
 *  - a client that stayed to the end received everything up to the final
 *    number of each channel;
 *  - block mode: no client that reads is closed with 1001; one that stops
 *    reading (silent, or a slow reader in a long pause) may be, after
 *    write_wait, and then has not "stayed";
 *  - drop mode: every missing delivery belongs to a client the server
 *    closed with 1001 (what it got is still a gap-free prefix).
 * A client dropped while its socket is full cannot receive the 1001 frame:
 * the server cuts TCP after close_grace. A slow or silent client whose
 * connection ends without a close frame is counted as dropped that way
 * ("cut_slow"); for any other client it is a failure.
 *
 * Prints a summary, writes a JSON report (--report), and exits 0 only when
 * every check holds.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHANNELS 1024
#define MAX_SUBS 8

enum kind { K_LEAVE, K_VANISH_CLOSE, K_VANISH_RST, K_SILENT };
enum state { S_FREE, S_CONNECTING, S_HANDSHAKE, S_OPEN, S_CLOSING, S_DONE };

struct chan {
    int ch;
    int64_t ack; /* -1 until the ack arrived */
    int64_t first, last, count;
};

struct client {
    int fd;
    enum state st;
    enum kind kind;
    int slow, control, stayer, vanished, silent_now, leaving;
    int was_slow; /* slow reads during the run (the drain reads at full speed) */
    int64_t born, die_at, paused_until, close_sent_at;
    int64_t read_until; /* --stall: the current read phase ends then */
    unsigned char *rbuf;
    size_t rlen, rcap;
    unsigned char obuf[1024];
    size_t olen;
    int nsubs;
    struct chan subs[MAX_SUBS];
    int close_code; /* from the server; 0 none, -1 EOF without close */
    int local_port;
    int errors;
    int epoll_events;
};

static struct {
    int port, nclients, channels, max_subs, drop;
    double duration, slow, vanish, silent, min_life, max_life;
    int slow_pause_ms;
    int fat_channels, fat_stride, stall, stall_read_ms;
    unsigned seed;
    const char *report;
} cfg = {.nclients = 2000, .channels = 64, .max_subs = 4, .duration = 60, .slow = 0.10,
         .vanish = 0.15, .silent = 0.002, .min_life = 3, .max_life = 20, .slow_pause_ms = 800,
         .fat_stride = 4, .stall_read_ms = 2000, .seed = 1};

static int ep;
static struct client *cl; /* nclients + 1 (the last is the control) */
static uint64_t rng_state;

/* results */
static struct {
    long long connects, handshake_failures, created, leaves, vanish_close, vanish_rst, silent;
    long long messages, acks, stayers, closed_1001, closed_1001_stalled, closed_other, eof_unexpected;
    long long gaps, dups, start_late, missing_stayers, missing_1001, missing_acks, protocol_errors;
    long long drained_incomplete, cut_slow, missing_cut;
    long long codes[5000]; /* close codes seen by clients that did not vanish */
    long long code_eof;
    char examples[20][200];
    int nexamples;
} R;

static int64_t final_seq[MAX_CHANNELS];
/* Where each client dropped before the end stopped receiving, per channel:
 * once the final numbers are known, what it missed is counted from here. */
static struct dropped_at {
    int ch;
    int64_t got_to;
} *dropped;
static size_t ndropped, dropped_cap;
static long long missing_dropped_midway;
static int have_final, started;
/* What the control connection sends once upgraded. Each control
 * connection is short: one for "start", a fresh one for "stop". (A
 * connection that sent text and then lives past the server's ping period
 * is closed with 1007: docs/conformance.md, core bug 0. Client lifetimes
 * above the ping period show it.) */
static const char *ctl_action = "\"start\"";

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static double frand(void) { return (rnd() & 0xffffff) / (double)0x1000000; }

static void example(const char *fmt, ...)
{
    if (R.nexamples >= 20)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(R.examples[R.nexamples++], 200, fmt, ap);
    va_end(ap);
}

/* ---- sockets ---------------------------------------------------------------- */

static void set_events(struct client *c, int events)
{
    if (c->epoll_events == events)
        return;
    struct epoll_event ev = {.events = (uint32_t)events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->epoll_events = events;
}

static void drop_fd(struct client *c, int rst)
{
    if (c->fd < 0)
        return;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (rst) {
        struct linger l = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(c->fd);
    c->fd = -1;
}

static int flush_out(struct client *c)
{
    while (c->olen) {
        ssize_t n = send(c->fd, c->obuf, c->olen, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN)
                break;
            return -1;
        }
        memmove(c->obuf, c->obuf + n, c->olen - (size_t)n);
        c->olen -= (size_t)n;
    }
    int want = (c->slow && now_ms() < c->paused_until) || c->silent_now ? 0 : EPOLLIN;
    if (c->st == S_CONNECTING || c->olen)
        want |= EPOLLOUT;
    set_events(c, want);
    return 0;
}

static int queue_frame(struct client *c, int opcode, const void *data, size_t len)
{
    if (c->olen + len + 14 > sizeof c->obuf)
        return -1;
    unsigned char *p = c->obuf + c->olen;
    uint32_t key = rnd();
    unsigned char mask[4] = {(unsigned char)key, (unsigned char)(key >> 8),
                             (unsigned char)(key >> 16), (unsigned char)(key >> 24)};
    size_t h = 0;
    p[h++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        p[h++] = (unsigned char)(0x80 | len);
    } else {
        p[h++] = 0x80 | 126;
        p[h++] = (unsigned char)(len >> 8);
        p[h++] = (unsigned char)len;
    }
    memcpy(p + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        p[h + i] = ((const unsigned char *)data)[i] ^ mask[i & 3];
    c->olen += h + len;
    return 0;
}

static int send_json(struct client *c, const char *channel, const char *message)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "{\"type\":\"json\",\"channel\":\"%s\",\"message\":%s}",
                     channel, message);
    return queue_frame(c, 1, buf, (size_t)n);
}

static void start_client(struct client *c, int control)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->control = control;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("socket");
        exit(2);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    double r = frand();
    if (!control) {
        c->slow = c->was_slow = frand() < cfg.slow;
        if (r < cfg.silent)
            c->kind = K_SILENT;
        else if (r < cfg.silent + cfg.vanish / 2)
            c->kind = K_VANISH_CLOSE;
        else if (r < cfg.silent + cfg.vanish)
            c->kind = K_VANISH_RST;
        else
            c->kind = K_LEAVE;
        if (c->slow) {
            int small = 4096;
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
            if (cfg.stall) {
                /* A small MSS in our SYN: on loopback (MSS 64 KiB) the
                 * server's send buffer autotunes to about 2 MB and absorbs
                 * any stall (measured); the send buffer grows in MSS-sized
                 * steps, so with this it stays far smaller, like on a slow
                 * link, and a stall reaches the server's queue. */
                int mss = 1024;
                setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss);
            }
        }
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        R.handshake_failures++;
        example("connect: %s", strerror(errno));
        close(fd);
        c->st = S_DONE;
        return;
    }
    c->fd = fd;
    c->st = S_CONNECTING;
    {
        struct sockaddr_in me;
        socklen_t ml = sizeof me;
        if (getsockname(fd, (struct sockaddr *)&me, &ml) == 0)
            c->local_port = ntohs(me.sin_port);
    }
    c->born = now_ms();
    c->read_until = c->born + cfg.stall_read_ms;
    double life = cfg.min_life + frand() * (cfg.max_life - cfg.min_life);
    c->die_at = control ? INT64_MAX : c->born + (int64_t)(life * 1000);
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    c->epoll_events = EPOLLOUT;
    R.connects++;
    if (!control)
        R.created++;
}

static void on_connected(struct client *c)
{
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: c29ha2NsaWVudGtleTEyMw==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     cfg.port);
    memcpy(c->obuf, req, (size_t)n);
    c->olen = (size_t)n;
    c->st = S_HANDSHAKE;
}

static void subscribe_random(struct client *c)
{
    int want = 1 + (int)(rnd() % (unsigned)cfg.max_subs);
    int fat = cfg.fat_channels, stride = cfg.fat_stride;
    while (c->nsubs < want) {
        /* a slow reader: one fat channel first; everyone else: plain ones */
        int ch, dup = 0;
        if (fat && c->slow && c->nsubs == 0) {
            ch = stride * (int)(rnd() % (unsigned)fat);
        } else {
            ch = (int)(rnd() % (unsigned)cfg.channels);
            if (ch % stride == 0 && ch / stride < fat)
                continue;
        }
        for (int i = 0; i < c->nsubs; i++)
            dup |= c->subs[i].ch == ch;
        if (dup)
            continue;
        struct chan *s = &c->subs[c->nsubs++];
        s->ch = ch;
        s->ack = -1;
        char msg[32];
        snprintf(msg, sizeof msg, "\"ch%d\"", ch);
        send_json(c, "sub", msg);
    }
}

/* ---- accounting --------------------------------------------------------------- */

static struct chan *chan_of(struct client *c, int ch)
{
    for (int i = 0; i < c->nsubs; i++)
        if (c->subs[i].ch == ch)
            return &c->subs[i];
    return NULL;
}

static void on_text(struct client *c, const unsigned char *data, size_t len)
{
    json_t *root = json_loadb((const char *)data, len, 0, NULL);
    const char *channel = json_string_value(json_object_get(root, "channel"));
    json_t *msg = json_object_get(root, "message");
    if (!root || !channel) {
        R.protocol_errors++;
        example("client %d: not an envelope: %.80s", (int)(c - cl), (const char *)data);
        json_decref(root);
        return;
    }
    if (!strcmp(channel, "ack")) {
        struct chan *s = chan_of(c, (int)json_integer_value(json_object_get(msg, "ch")));
        if (s) {
            s->ack = json_integer_value(json_object_get(msg, "s"));
            R.acks++;
        }
    } else if (!strcmp(channel, "ctl")) {
        json_t *final = json_object_get(msg, "final");
        if (json_is_array(final)) {
            for (size_t i = 0; i < json_array_size(final) && i < MAX_CHANNELS; i++)
                final_seq[i] = json_integer_value(json_array_get(final, i));
            have_final = 1;
        } else if (json_is_string(msg) && !strcmp(json_string_value(msg), "started")) {
            started = 1;
        }
    } else if (!strncmp(channel, "ch", 2)) {
        int ch = atoi(channel + 2);
        int64_t n = json_integer_value(json_object_get(msg, "s"));
        struct chan *s = chan_of(c, ch);
        if (!s) {
            R.protocol_errors++;
            example("client %d: message on %s, not subscribed", (int)(c - cl), channel);
        } else {
            if (s->count == 0) {
                s->first = n;
            } else if (n != s->last + 1) {
                if (n <= s->last) {
                    R.dups++;
                    example("client %d ch%d: %lld after %lld (duplicate or reordered)",
                            (int)(c - cl), ch, (long long)n, (long long)s->last);
                } else {
                    R.gaps += n - s->last - 1;
                    example("client %d ch%d: gap %lld..%lld", (int)(c - cl), ch,
                            (long long)s->last + 1, (long long)n - 1);
                }
                c->errors++;
            }
            s->last = n;
            s->count++;
            R.messages++;
        }
    }
    json_decref(root);
}

/* Parses complete frames in rbuf. Returns -1 when the connection ended. */
static int parse_frames(struct client *c)
{
    size_t pos = 0;
    int ended = 0;
    while (!ended) {
        size_t avail = c->rlen - pos;
        unsigned char *p = c->rbuf + pos;
        if (avail < 2)
            break;
        int op = p[0] & 0x0f, masked = p[1] & 0x80;
        uint64_t len = p[1] & 0x7f;
        size_t h = 2;
        if (len == 126) {
            if (avail < 4)
                break;
            len = (uint64_t)p[2] << 8 | p[3];
            h = 4;
        } else if (len == 127) {
            if (avail < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | p[2 + i];
            h = 10;
        }
        if (masked || (p[0] & 0x70) || !(p[0] & 0x80)) {
            R.protocol_errors++;
            example("client %d: bad frame header %02x %02x", (int)(c - cl), p[0], p[1]);
            return -1;
        }
        if (avail < h + len)
            break;
        unsigned char *data = p + h;
        if (op == 1) {
            on_text(c, data, (size_t)len);
        } else if (op == 9) {
            queue_frame(c, 0xA, data, (size_t)len);
        } else if (op == 8) {
            c->close_code = len >= 2 ? (data[0] << 8 | data[1]) : 1005;
            if (c->st == S_OPEN) /* server-initiated: echo it */
                queue_frame(c, 8, data, len >= 2 ? 2 : 0);
            ended = 1;
        } else if (op != 0xA) {
            R.protocol_errors++;
            example("client %d: opcode %d", (int)(c - cl), op);
        }
        pos += h + (size_t)len;
    }
    memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
    c->rlen -= pos;
    return ended ? -1 : 0;
}

static void finish_client(struct client *c, int rst);

static void on_readable(struct client *c)
{
    int trickle = c->slow && !cfg.stall; /* one small read, then a pause */
    for (int rounds = 0; rounds < (trickle ? 1 : 16); rounds++) {
        if (c->rcap - c->rlen < 16384) {
            size_t cap = c->rcap ? c->rcap * 2 : 65536;
            unsigned char *p = realloc(c->rbuf, cap);
            if (!p)
                exit(2);
            c->rbuf = p;
            c->rcap = cap;
        }
        size_t want = trickle ? 2048 : c->rcap - c->rlen;
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, want, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            if (c->st != S_CLOSING && !c->close_code)
                c->close_code = -1;
            finish_client(c, 0);
            return;
        }
        if (n < 0)
            break;
        c->rlen += (size_t)n;
        if (c->st == S_HANDSHAKE) {
            unsigned char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
            if (!end)
                continue;
            if (c->rlen < 12 || memcmp(c->rbuf + 9, "101", 3)) {
                R.handshake_failures++;
                example("handshake refused: %.40s", (const char *)c->rbuf);
                c->close_code = -2;
                finish_client(c, 0);
                return;
            }
            size_t hl = (size_t)(end + 4 - c->rbuf);
            memmove(c->rbuf, c->rbuf + hl, c->rlen - hl);
            c->rlen -= hl;
            c->st = S_OPEN;
            if (c->control) {
                send_json(c, "ctl", ctl_action);
            } else {
                subscribe_random(c);
            }
        }
        if (parse_frames(c) < 0) {
            if (c->st == S_OPEN) {
                /* the server closed: our echo goes out, then we close */
                flush_out(c);
            }
            finish_client(c, 0);
            return;
        }
        if (trickle) {
            c->paused_until = now_ms() + (int64_t)(rnd() % (unsigned)(cfg.slow_pause_ms + 1));
        } else if (c->slow && c->st == S_OPEN && now_ms() >= c->read_until) {
            /* --stall: the read phase is over, stop reading for a while */
            int64_t half = cfg.slow_pause_ms / 2;
            c->paused_until = now_ms() + half + (int64_t)(rnd() % (unsigned)(half + 1));
            c->read_until = c->paused_until + cfg.stall_read_ms;
            break;
        }
    }
    flush_out(c);
}

/* The connection is over: fold its accounting into the totals. */
static void account(struct client *c)
{
    if (c->control)
        return;
    if (c->vanished)
        return; /* it left without telling: nothing to check */
    if (c->close_code > 0 && c->close_code < 5000)
        R.codes[c->close_code]++;
    else if (c->close_code == -1)
        R.code_eof++;
    /* Dropped for backpressure: a 1001 close frame, or, when the client's
     * socket was too full for that frame to go out, TCP cut after
     * close_grace. Only a client that stops reading (slow or silent) can
     * be cut like that. */
    int cut = c->close_code == -1 && (c->was_slow || c->silent_now) && !c->leaving;
    int dropped_1001 = c->close_code == 1001 || cut;
    if (cut)
        R.cut_slow++;
    if (c->close_code == 1001) {
        if (c->silent_now || c->was_slow)
            R.closed_1001_stalled++;
        else
            R.closed_1001++;
    } else if (c->close_code > 0 && c->close_code != 1000) {
        R.closed_other++;
        example("client %d: closed by the server with %d", (int)(c - cl), c->close_code);
    } else if (c->close_code == -1 && !c->silent_now && !cut) {
        R.eof_unexpected++;
        example("client %d: the server closed TCP without a close frame", (int)(c - cl));
    }
    for (int i = 0; i < c->nsubs; i++) {
        struct chan *s = &c->subs[i];
        if (s->ack < 0) {
            /* A client that left before its ack came has nothing to
             * check; one that stayed to the end must have it. */
            if (c->stayer && !dropped_1001) {
                R.missing_acks++;
                example("client %d ch%d: stayed, no subscribe ack", (int)(c - cl), s->ch);
            }
            continue;
        }
        if (s->count && s->first > s->ack + 1) {
            R.start_late++;
            example("client %d ch%d: first %lld, ack said %lld", (int)(c - cl), s->ch,
                    (long long)s->first, (long long)s->ack);
        }
        if (!c->stayer && dropped_1001) {
            if (ndropped == dropped_cap) {
                size_t cap = dropped_cap ? dropped_cap * 2 : 1024;
                struct dropped_at *p = realloc(dropped, cap * sizeof(*p));
                if (!p)
                    exit(2);
                dropped = p;
                dropped_cap = cap;
            }
            dropped[ndropped].ch = s->ch;
            dropped[ndropped++].got_to = s->count ? s->last : s->ack;
        }
        if (!c->stayer || !have_final)
            continue;
        int64_t fin = final_seq[s->ch];
        int64_t got_to = s->count ? s->last : s->ack;
        if (got_to < fin) {
            if (dropped_1001 || c->silent_now) {
                R.missing_1001 += fin - got_to;
                if (cut)
                    R.missing_cut += fin - got_to;
            } else {
                R.missing_stayers += fin - got_to;
                example("client %d (port %d) ch%d: stayed, got up to %lld of %lld (ack %lld)%s",
                        (int)(c - cl), c->local_port, s->ch, (long long)got_to, (long long)fin,
                        (long long)s->ack, c->was_slow ? " (a slow reader)" : "");
            }
        }
    }
}

static void finish_client(struct client *c, int rst)
{
    drop_fd(c, rst);
    if (c->st != S_DONE) {
        c->st = S_DONE;
        account(c);
    }
    free(c->rbuf);
    c->rbuf = NULL;
    c->rlen = c->rcap = 0;
}

static void leave(struct client *c)
{
    switch (c->kind) {
    case K_LEAVE:
        if (c->st == S_OPEN) {
            queue_frame(c, 8, "\x03\xe8", 2);
            c->st = S_CLOSING;
            c->leaving = 1;
            c->paused_until = 0; /* read the close reply at once */
            c->slow = 0;
            c->close_sent_at = now_ms();
            R.leaves++;
            flush_out(c);
            return;
        }
        finish_client(c, 0);
        return;
    case K_SILENT:
        /* stops reading and answering, keeps the socket until the end */
        if (c->st == S_OPEN && !c->silent_now) {
            R.silent++;
            c->silent_now = 1;
            set_events(c, 0);
        }
        return;
    case K_VANISH_CLOSE:
    case K_VANISH_RST:
        if (c->kind == K_VANISH_CLOSE)
            R.vanish_close++;
        else
            R.vanish_rst++;
        c->vanished = 1;
        finish_client(c, c->kind == K_VANISH_RST);
        return;
    }
}

/* ---- main loop ----------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "see the comment at the top of soak_client.c\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--drop")) {
            cfg.drop = 1;
            continue;
        }
        if (!strcmp(a, "--stall")) {
            cfg.stall = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--port"))
            cfg.port = atoi(v);
        else if (!strcmp(a, "--clients"))
            cfg.nclients = atoi(v);
        else if (!strcmp(a, "--duration"))
            cfg.duration = atof(v);
        else if (!strcmp(a, "--channels"))
            cfg.channels = atoi(v);
        else if (!strcmp(a, "--max-subs"))
            cfg.max_subs = atoi(v);
        else if (!strcmp(a, "--slow"))
            cfg.slow = atof(v);
        else if (!strcmp(a, "--vanish"))
            cfg.vanish = atof(v);
        else if (!strcmp(a, "--silent"))
            cfg.silent = atof(v);
        else if (!strcmp(a, "--min-life"))
            cfg.min_life = atof(v);
        else if (!strcmp(a, "--max-life"))
            cfg.max_life = atof(v);
        else if (!strcmp(a, "--slow-pause-ms"))
            cfg.slow_pause_ms = atoi(v);
        else if (!strcmp(a, "--fat-channels"))
            cfg.fat_channels = atoi(v);
        else if (!strcmp(a, "--fat-stride"))
            cfg.fat_stride = atoi(v);
        else if (!strcmp(a, "--stall-read-ms"))
            cfg.stall_read_ms = atoi(v);
        else if (!strcmp(a, "--seed"))
            cfg.seed = (unsigned)atoi(v);
        else if (!strcmp(a, "--report"))
            cfg.report = v;
        else
            usage();
    }
    if (!cfg.port || cfg.nclients < 1 || cfg.channels < 1 || cfg.channels > MAX_CHANNELS ||
        cfg.max_subs < 1 || cfg.max_subs > MAX_SUBS ||
        cfg.fat_channels < 0 || cfg.fat_stride < 1 ||
        cfg.fat_channels * cfg.fat_stride > cfg.channels ||
        cfg.max_subs > cfg.channels - cfg.fat_channels ||
        cfg.slow_pause_ms < 0 || cfg.stall_read_ms < 0 ||
        cfg.duration <= 0 || cfg.duration > 3600 || cfg.max_life < cfg.min_life)
        usage();
}

static void handle(struct client *c, uint32_t events)
{
    if (c->st == S_DONE || c->fd < 0)
        return;
    if (c->st == S_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            R.handshake_failures++;
            example("connect failed: %s", strerror(err));
            c->close_code = -2;
            finish_client(c, 0);
            return;
        }
        on_connected(c);
        if (flush_out(c) < 0)
            finish_client(c, 0);
        return;
    }
    if (events & EPOLLOUT) {
        if (flush_out(c) < 0) {
            if (!c->close_code)
                c->close_code = -1;
            finish_client(c, 0);
            return;
        }
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        on_readable(c);
}

static int pump(int timeout_ms)
{
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, timeout_ms);
    for (int i = 0; i < n; i++)
        handle(evs[i].data.ptr, evs[i].events);
    /* slow readers: resume reading after a pause */
    int64_t now = now_ms();
    for (int i = 0; i < cfg.nclients; i++) {
        struct client *c = &cl[i];
        if (c->st != S_DONE && c->st != S_FREE && c->slow && !c->silent_now &&
            c->paused_until && now >= c->paused_until) {
            c->paused_until = 0;
            flush_out(c);
        }
    }
    return n;
}

static int stayer_done(struct client *c)
{
    if (c->st != S_OPEN)
        return 1;
    if (c->silent_now)
        return 1;
    for (int i = 0; i < c->nsubs; i++) {
        struct chan *s = &c->subs[i];
        if (s->ack < 0)
            return 0;
        int64_t got_to = s->count ? s->last : s->ack;
        if (got_to < final_seq[s->ch])
            return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    rng_state = 0x9E3779B97F4A7C15ULL ^ cfg.seed;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)cfg.nclients + 100) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    cl = calloc((size_t)cfg.nclients + 1, sizeof *cl);
    if (!cl)
        return 2;
    for (int i = 0; i <= cfg.nclients; i++) {
        cl[i].fd = -1;
        cl[i].st = S_FREE;
    }
    struct client *ctl = &cl[cfg.nclients];
    start_client(ctl, 1);
    int64_t t0 = now_ms();
    while (!started && now_ms() - t0 < 10000)
        pump(50);
    if (!started) {
        fprintf(stderr, "soak-client: the server did not start publishing\n");
        return 1;
    }
    finish_client(ctl, 0); /* done with it: "stop" comes on a fresh one */
    /* Churn: ramp up 100 connections per 50 ms, replace whoever leaves. */
    int64_t end = now_ms() + (int64_t)(cfg.duration * 1000);
    int64_t next_report = now_ms() + 10000;
    while (now_ms() < end) {
        int64_t now = now_ms();
        int opened = 0;
        for (int i = 0; i < cfg.nclients; i++) {
            struct client *c = &cl[i];
            if ((c->st == S_FREE || c->st == S_DONE) && opened < 100) {
                start_client(c, 0);
                opened++;
            } else if (c->st == S_OPEN && now >= c->die_at && !c->silent_now) {
                leave(c);
            } else if (c->st == S_CLOSING && now - c->close_sent_at > 10000) {
                c->close_code = -1;
                R.eof_unexpected++;
                example("client %d: no close reply within 10 s", i);
                finish_client(c, 0);
            }
        }
        pump(opened ? 0 : 20);
        if (now >= next_report) {
            int open = 0;
            for (int i = 0; i < cfg.nclients; i++)
                open += cl[i].st == S_OPEN;
            fprintf(stderr, "soak-client: %llds: %d open, %lld created, %lld messages\n",
                    (long long)((now - t0) / 1000), open, R.created, R.messages);
            next_report = now + 10000;
        }
    }
    /* Stop publishing; whoever is open now is a stayer. */
    for (int i = 0; i < cfg.nclients; i++)
        if (cl[i].st == S_OPEN && !cl[i].silent_now) {
            cl[i].stayer = 1;
            R.stayers++;
        } else if (cl[i].st == S_CONNECTING || cl[i].st == S_HANDSHAKE) {
            finish_client(&cl[i], 0); /* too late to take part */
        }
    ctl_action = "\"stop\"";
    start_client(ctl, 1);
    int64_t deadline = now_ms() + 60000;
    while (!have_final && now_ms() < deadline)
        pump(20);
    if (!have_final) {
        fprintf(stderr, "soak-client: no final counts from the server (control connection %s, "
                        "close code %d)\n",
                ctl->st == S_OPEN ? "open" : "closed", ctl->close_code);
        return 1;
    }
    /* Drain: every stayer reads up to the final numbers (bounded), slow
     * readers now at full speed. */
    for (int i = 0; i < cfg.nclients; i++)
        if (cl[i].stayer && cl[i].slow) {
            cl[i].slow = 0;
            cl[i].paused_until = 0;
            flush_out(&cl[i]);
        }
    deadline = now_ms() + 60000;
    for (;;) {
        int waiting = 0;
        for (int i = 0; i < cfg.nclients; i++)
            waiting += cl[i].stayer && !stayer_done(&cl[i]);
        if (!waiting)
            break;
        if (now_ms() > deadline) {
            R.drained_incomplete = waiting;
            break;
        }
        pump(20);
    }
    /* Close everybody politely; silent ones just go. */
    for (int i = 0; i <= cfg.nclients; i++) {
        struct client *c = &cl[i];
        if (c->st == S_OPEN && !c->silent_now) {
            c->kind = K_LEAVE;
            leave(c);
        } else if (c->st != S_DONE && c->st != S_FREE && c->st != S_CLOSING) {
            finish_client(c, 0);
        }
    }
    deadline = now_ms() + 15000;
    for (;;) {
        int closing = 0;
        for (int i = 0; i <= cfg.nclients; i++)
            closing += cl[i].st == S_CLOSING;
        if (!closing || now_ms() > deadline)
            break;
        pump(20);
    }
    for (int i = 0; i <= cfg.nclients; i++)
        if (cl[i].st == S_CLOSING) {
            R.eof_unexpected++;
            example("client %d: no close reply at the end", i);
            finish_client(&cl[i], 0);
        }

    for (size_t i = 0; i < ndropped; i++)
        if (final_seq[dropped[i].ch] > dropped[i].got_to)
            missing_dropped_midway += final_seq[dropped[i].ch] - dropped[i].got_to;
    free(dropped);
    long long failures = R.gaps + R.dups + R.start_late + R.missing_stayers + R.missing_acks +
                         R.protocol_errors + R.closed_other + R.eof_unexpected +
                         R.handshake_failures + (cfg.drop ? 0 : R.closed_1001);
    json_t *rep = json_pack(
        "{s:s,s:i,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
        "s:I,s:I,s:I}",
        "mode", cfg.drop ? "drop" : "block", "clients", cfg.nclients, "duration", cfg.duration,
        "connections", (json_int_t)R.created, "handshake_failures",
        (json_int_t)R.handshake_failures, "leaves", (json_int_t)R.leaves, "vanish_close",
        (json_int_t)R.vanish_close, "vanish_rst", (json_int_t)R.vanish_rst, "silent",
        (json_int_t)R.silent, "stayers", (json_int_t)R.stayers, "messages",
        (json_int_t)R.messages, "acks", (json_int_t)R.acks, "closed_1001",
        (json_int_t)R.closed_1001, "closed_1001_stalled", (json_int_t)R.closed_1001_stalled,
        "closed_other", (json_int_t)R.closed_other, "eof_unexpected",
        (json_int_t)R.eof_unexpected, "gaps", (json_int_t)R.gaps, "duplicates",
        (json_int_t)R.dups, "start_late", (json_int_t)R.start_late, "missing_for_stayers",
        (json_int_t)R.missing_stayers, "missing_for_1001_clients", (json_int_t)R.missing_1001,
        "missing_acks", (json_int_t)R.missing_acks, "protocol_errors",
        (json_int_t)R.protocol_errors, "failures", (json_int_t)failures);
    json_t *ex = json_array();
    for (int i = 0; i < R.nexamples; i++)
        json_array_append_new(ex, json_string(R.examples[i]));
    json_object_set_new(rep, "examples", ex);
    json_object_set_new(rep, "drained_incomplete", json_integer(R.drained_incomplete));
    json_object_set_new(rep, "cut_slow", json_integer(R.cut_slow));
    json_object_set_new(rep, "missing_for_cut_clients", json_integer(R.missing_cut));
    /* Clients dropped (1001 or cut) before publishing stopped: what they
     * missed up to the final numbers. With missing_for_1001_clients (those
     * dropped at the end) this is every missing delivery of the run. */
    json_object_set_new(rep, "missing_for_dropped_midway", json_integer(missing_dropped_midway));
    json_object_set_new(rep, "dropped_midway_subscriptions", json_integer((json_int_t)ndropped));
    json_t *codes = json_object();
    for (int k = 0; k < 5000; k++)
        if (R.codes[k]) {
            char key[8];
            snprintf(key, sizeof key, "%d", k);
            json_object_set_new(codes, key, json_integer(R.codes[k]));
        }
    if (R.code_eof)
        json_object_set_new(codes, "eof", json_integer(R.code_eof));
    json_object_set_new(rep, "close_codes", codes);
    char *text = json_dumps(rep, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", text);
    if (cfg.report) {
        FILE *f = fopen(cfg.report, "w");
        if (f) {
            fputs(text, f);
            fclose(f);
        }
    }
    free(text);
    json_decref(rep);
    for (int i = 0; i <= cfg.nclients; i++)
        free(cl[i].rbuf);
    free(cl);
    close(ep);
    return failures ? 1 : 0;
}
