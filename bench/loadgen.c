/*
 * wsn-loadgen: a load generator for any server that speaks the wsnotify
 * chat protocol (see docs/benchmarks.md).
 *
 * One thread, one epoll set, a minimal RFC 6455 client: masked frames,
 * 7/16/64-bit lengths, fragmented messages, pings answered, close
 * frames noticed, optional permessage-deflate (browser-like offer,
 * inflated with zlib). No JSON parser on the hot path: each broadcast
 * carries {"action":"broadcast","q":SEQ,"t":NS,"p":"pad"} and a receiver
 * finds "q": and "t": by a scan of the first bytes of the message.
 *
 * Formats (--format): json (the default: no subprotocol, JSON text frames,
 * as a browser), msgpack (offers Sec-WebSocket-Protocol: wsnotify.msgpack,
 * requires it in the answer, and sends the same envelopes hand-encoded as
 * MessagePack in binary frames; a receiver finds the fixstr "q" and "t"
 * keys and their integers by the same kind of scan, no MessagePack parser),
 * or mixed (even subscribers JSON, odd ones MessagePack, the publisher
 * JSON). The message is the same in every format: a --phase size is the
 * size of its JSON text. Each delivery's wire bytes (frame headers and
 * payload of every frame of the message) are counted per format.
 *
 * Modes
 *   fanout   N subscribers + 1 publisher that keeps a window W of
 *            broadcasts outstanding (complete = every live subscriber has
 *            it). Several --phase SIZE:WINDOW run one after the other on
 *            the same connections. Reports deliveries/s and lost deliveries.
 *   latency  N subscribers, broadcasts at a fixed rate; publish->receive
 *            percentiles of every delivery.
 *   idle     N connections (subscribed to one channel) held for a while;
 *            the server's RSS and CPU are read from /proc/PID.
 *
 * TLS (--tls): every connection is wss://, OpenSSL with the library's
 * defaults (TLS 1.3 on Debian 12), the server's certificate not checked
 * (loopback benchmark); TLS reads and writes go through the same buffers.
 *
 * Output: one JSON object per phase on stdout (one line each), a summary on
 * stderr. Every loop is bounded in time (and every load in count).
 * Loopback only: the target host must be in 127.0.0.0/8.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
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
#include <zlib.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define CAP 192          /* bytes of each message kept for the scan */
#define RING 8192        /* completion-tracking slots (> any window) */
#define MAX_PHASES 16
#define RBUF (256 * 1024)
#define CHANNEL "bench"

enum { ROLE_SUB = 0, ROLE_PUB = 1 };
enum { FMT_JSON = 0, FMT_MSGPACK = 1 };
enum { FORMAT_JSON = 0, FORMAT_MSGPACK = 1, FORMAT_MIXED = 2 };
static const char *const format_names[] = {"json", "msgpack", "mixed"};
enum { ST_FREE = 0, ST_CONNECTING, ST_TLS, ST_HANDSHAKE, ST_OPEN, ST_CLOSED };

typedef struct conn {
    int fd;
    SSL *ssl; /* --tls */
    uint32_t idx;
    uint8_t role, state, subscribed, want_out;
    uint8_t tries;
    uint8_t fmt; /* FMT_JSON or FMT_MSGPACK */
    /* outgoing bytes not yet taken by the kernel */
    char *out;
    uint32_t out_len, out_off, out_cap;
    /* HTTP response during the handshake */
    char *hdr;
    uint16_t hdr_len;
    /* frame parser */
    uint8_t hb[14];
    uint8_t hlen, hneed;
    uint8_t f_op, f_fin, f_masked;
    uint8_t mkey[4];
    uint64_t f_left, f_pos;
    uint8_t m_op, m_z, in_msg;
    uint16_t caplen;
    uint32_t m_wire, m_payload; /* bytes of the current message: all its
                                   frames' headers + payloads; payloads */
    uint8_t ctrl_len;
    char cap[CAP];
    char ctrl[125];
    z_stream *zin;
    uint32_t last_seq;
} conn;

typedef struct phase {
    int size, window;
} phase;

/* log-linear histogram of nanoseconds: 64 sub-buckets per power of two */
#define HBUCKETS (64 * 48)
typedef struct hist {
    uint64_t b[HBUCKETS];
    uint64_t n, max, sum;
} hist;

static struct {
    /* options */
    const char *mode;
    const char *host;
    int port;
    int sub_ports[16]; /* --sub-ports: subscribers round-robin over these */
    int nsub_ports;
    const char *path;
    int subs;
    int nsrc;
    int conc;
    double warmup, duration, drain, drain_max, connect_timeout, hold;
    double rate;
    int rate_size;
    phase phases[MAX_PHASES];
    int nphases;
    int compress;
    SSL_CTX *tls; /* --tls: the client context, else NULL */
    int format; /* FORMAT_* */
    int server_pid;
    int subscribe_idle;
    uint64_t max_broadcasts;
    int verbose;
    const char *label;
    /* state */
    int ep;
    conn *conns;
    int nconns;
    conn *pub;
    uint64_t t0;
    uint64_t rx_now; /* CLOCK_MONOTONIC at the latest recv() */
    char *rbuf;
    char *zbuf;
    uint32_t rng;
    /* connecting */
    int next_open, inflight, opened_ok, subscribed, connect_failures;
    int live_subs;
    int closes_by_server, close_codes[8];
    uint16_t close_code_seen[8];
    /* broadcast tracking */
    uint32_t next_seq;            /* next sequence number to send */
    uint32_t oldest;              /* oldest not yet complete */
    uint32_t slot_seq[RING];
    uint32_t slot_cnt[RING];
    uint64_t slot_sent[RING];
    uint32_t phase_first_seq;
    int measuring;                /* deliveries count toward the phase */
    uint64_t deliveries_measured, bytes_measured, deliveries_phase;
    uint64_t payload_measured;              /* payload bytes, no headers */
    uint64_t fmt_deliveries[2], fmt_bytes[2]; /* measured, per FMT_* */
    uint64_t completions_measured;
    uint64_t late, dup_or_old, gaps;
    hist lat, done;               /* per delivery; per completed broadcast */
    char msgbuf[4096 + 256];
    int cur_size;
} G;

/* ---- small utilities ---------------------------------------------------- */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void vlog(const char *fmt, ...) {
    if (!G.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%8.3f] ", (double)(now_ns() - G.t0) / 1e9);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static uint32_t rnd(void) {
    uint32_t x = G.rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return G.rng = x;
}

static double cpu_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* utime+stime of a process (all threads), seconds; -1 when unreadable */
static double cpu_of(int pid) {
    if (pid <= 0)
        return -1;
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    /* fields after ')': state(3) ... utime(14) stime(15) */
    unsigned long long ut = 0, st = 0;
    int field = 2;
    for (char *s = p + 1; *s && field < 15; s++) {
        if (*s == ' ') {
            field++;
            if (field == 14)
                ut = strtoull(s + 1, NULL, 10);
            else if (field == 15)
                st = strtoull(s + 1, NULL, 10);
        }
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* VmRSS of a process in KiB; -1 when unreadable */
static long rss_of(int pid) {
    if (pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

static int threads_of(int pid) {
    if (pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Threads:", 8) == 0) {
            n = atoi(line + 8);
            break;
        }
    fclose(f);
    return n;
}

static void hist_add(hist *h, uint64_t v) {
    int idx;
    if (v < 128)
        idx = (int)v;
    else {
        int msb = 63 - __builtin_clzll(v);
        int shift = msb - 6;
        idx = shift * 64 + (int)(v >> shift);
    }
    if (idx >= HBUCKETS)
        idx = HBUCKETS - 1;
    h->b[idx]++;
    h->n++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

static double hist_q(const hist *h, double q) {
    if (!h->n)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->n);
    if (want >= h->n)
        want = h->n - 1;
    uint64_t acc = 0;
    for (int i = 0; i < HBUCKETS; i++) {
        acc += h->b[i];
        if (acc > want) {
            if (i < 128)
                return i;
            int shift = i / 64 - 1;
            uint64_t lo = (uint64_t)(i - shift * 64) << shift;
            uint64_t hi = lo + (1ull << shift);
            double mid = (double)(lo + hi) / 2.0;
            return mid > (double)h->max ? (double)h->max : mid;
        }
    }
    return (double)h->max;
}

/* ---- output buffer ------------------------------------------------------ */

static void out_reserve(conn *c, uint32_t more) {
    if (c->out_off && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + more <= c->out_cap)
        return;
    if (c->out_off) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + more <= c->out_cap)
            return;
    }
    uint32_t cap = c->out_cap ? c->out_cap : 256;
    while (cap < c->out_len + more)
        cap *= 2;
    c->out = realloc(c->out, cap);
    if (!c->out)
        die("out of memory");
    c->out_cap = cap;
}

static void set_events(conn *c, int want_out) {
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0),
                             .data.ptr = c};
    if (epoll_ctl(G.ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl mod: %s", strerror(errno));
    c->want_out = (uint8_t)want_out;
}

static void conn_fail(conn *c, const char *why);

/* TLS: what SSL_write or SSL_read asked for. 0 = wait (epoll set),
 * -1 = the connection failed. */
static int tls_wait(conn *c, int ret) {
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        return 0;
    case SSL_ERROR_WANT_WRITE:
        set_events(c, 1);
        return 0;
    default:
        ERR_clear_error();
        return -1;
    }
}

static void flush_tls(conn *c) {
    while (c->out_off < c->out_len) {
        int n = SSL_write(c->ssl, c->out + c->out_off, (int)(c->out_len - c->out_off));
        if (n > 0) {
            c->out_off += (uint32_t)n;
            continue;
        }
        if (tls_wait(c, n) < 0)
            conn_fail(c, "SSL_write failed");
        return;
    }
    c->out_off = c->out_len = 0;
    set_events(c, 0);
}

static void flush(conn *c) {
    if (c->ssl) {
        flush_tls(c);
        return;
    }
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (uint32_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(c, 1);
            return;
        }
        if (n < 0 && errno == EINTR)
            continue;
        conn_fail(c, "send failed");
        return;
    }
    c->out_off = c->out_len = 0;
    if (c->state != ST_CONNECTING)
        set_events(c, 0);
}

/* Appends one masked frame (FIN set) to c's output. */
static void put_frame(conn *c, int opcode, const void *data, size_t len) {
    out_reserve(c, (uint32_t)len + 14);
    uint8_t *p = (uint8_t *)c->out + c->out_len;
    size_t h = 0;
    p[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126)
        p[h++] = (uint8_t)(0x80 | len);
    else if (len < 65536) {
        p[h++] = 0x80 | 126;
        p[h++] = (uint8_t)(len >> 8);
        p[h++] = (uint8_t)len;
    } else {
        p[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            p[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint32_t key = rnd();
    uint8_t mk[4];
    memcpy(mk, &key, 4);
    memcpy(p + h, mk, 4);
    h += 4;
    const uint8_t *src = data;
    uint8_t *dst = p + h;
    size_t i = 0;
    /* word-at-a-time masking */
    uint64_t m8;
    memcpy(&m8, mk, 4);
    memcpy((uint8_t *)&m8 + 4, mk, 4);
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= m8;
        memcpy(dst + i, &w, 8);
    }
    for (; i < len; i++)
        dst[i] = src[i] ^ mk[i & 3];
    c->out_len += (uint32_t)(h + len);
}

/* ---- connections -------------------------------------------------------- */

static void conn_close(conn *c) {
    if (c->state == ST_CLOSED || c->state == ST_FREE)
        return;
    if (c->role == ROLE_SUB && c->subscribed)
        G.live_subs--;
    epoll_ctl(G.ep, EPOLL_CTL_DEL, c->fd, NULL);
    SSL_free(c->ssl);
    c->ssl = NULL;
    close(c->fd);
    c->fd = -1;
    c->state = ST_CLOSED;
    free(c->hdr);
    c->hdr = NULL;
    if (c->zin) {
        inflateEnd(c->zin);
        free(c->zin);
        c->zin = NULL;
    }
}

static int open_conn(conn *c);

static void conn_fail(conn *c, const char *why) {
    int was_open = c->state == ST_OPEN;
    int was_ready = c->role == ROLE_PUB ? was_open : c->subscribed;
    vlog("conn %u failed (%s, errno %d)", c->idx, why, errno);
    conn_close(c);
    if (!was_ready) {
        /* still in the connect phase: retry a few times */
        G.inflight--;
        if (c->tries < 3) {
            c->state = ST_FREE;
            c->out_len = c->out_off = 0;
            c->hlen = c->hneed = 0;
            c->in_msg = 0;
            if (open_conn(c) == 0)
                return;
        }
        G.connect_failures++;
    }
}

static int open_conn(conn *c) {
    c->tries++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s (raise RLIMIT_NOFILE?)", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (G.nsrc > 1) {
        /* spread over 127.0.0.2 .. 127.0.0.(1+nsrc): ~28k ports each */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + (c->idx % (uint32_t)G.nsrc));
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0)
            die("bind source: %s", strerror(errno));
    }
    /* With --sub-ports, subscribers spread over several servers (a
     * cluster sharing a broker) and the publisher stays on --port. */
    int port = c->role == ROLE_SUB && G.nsub_ports ? G.sub_ports[c->idx % (uint32_t)G.nsub_ports]
                                                   : G.port;
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, G.host, &dst.sin_addr);
    c->fd = fd;
    c->state = ST_CONNECTING;
    c->want_out = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(G.ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl add: %s", strerror(errno));
    G.inflight++;
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        conn_fail(c, "connect");
        return -1;
    }
    return 0;
}

static void send_handshake(conn *c) {
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s:%d\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "%s%s"
                     "\r\n",
                     G.path, G.host, G.port,
                     G.compress ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                  "client_max_window_bits\r\n"
                                : "",
                     c->fmt == FMT_MSGPACK ? "Sec-WebSocket-Protocol: wsnotify.msgpack\r\n"
                                           : "");
    out_reserve(c, (uint32_t)n);
    memcpy(c->out + c->out_len, req, (size_t)n);
    c->out_len += (uint32_t)n;
    c->state = ST_HANDSHAKE;
    c->hdr = malloc(2048);
    c->hdr_len = 0;
    if (!c->hdr)
        die("out of memory");
    flush(c);
}

/* ---- hand-written MessagePack (the few shapes the load generator sends) -- */

static size_t mp_str(uint8_t *p, const char *s, size_t n) {
    size_t h = 0;
    if (n < 32) {
        p[h++] = (uint8_t)(0xa0 | n);
    } else if (n < 256) {
        p[h++] = 0xd9;
        p[h++] = (uint8_t)n;
    } else {
        p[h++] = 0xda;
        p[h++] = (uint8_t)(n >> 8);
        p[h++] = (uint8_t)n;
    }
    memcpy(p + h, s, n);
    return h + n;
}

static size_t mp_cstr(uint8_t *p, const char *s) { return mp_str(p, s, strlen(s)); }

static size_t mp_uint(uint8_t *p, uint64_t v) {
    if (v < 128) {
        p[0] = (uint8_t)v;
        return 1;
    }
    int n = v < 256 ? 1 : v < 65536 ? 2 : v <= 0xffffffffu ? 4 : 8;
    p[0] = n == 1 ? 0xcc : n == 2 ? 0xcd : n == 4 ? 0xce : 0xcf;
    for (int i = 0; i < n; i++)
        p[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return (size_t)n + 1;
}

static void send_subscribe(conn *c) {
    if (c->fmt == FMT_MSGPACK) {
        /* {"type":"json","channel":CH,"message":{"action":"subscribe",
         *  "channel":CH},"message_id":"sIDX"} */
        uint8_t m[128];
        char id[16];
        size_t k = 0;
        m[k++] = 0x84;
        k += mp_cstr(m + k, "type");
        k += mp_cstr(m + k, "json");
        k += mp_cstr(m + k, "channel");
        k += mp_cstr(m + k, CHANNEL);
        k += mp_cstr(m + k, "message");
        m[k++] = 0x82;
        k += mp_cstr(m + k, "action");
        k += mp_cstr(m + k, "subscribe");
        k += mp_cstr(m + k, "channel");
        k += mp_cstr(m + k, CHANNEL);
        k += mp_cstr(m + k, "message_id");
        snprintf(id, sizeof id, "s%u", c->idx);
        k += mp_cstr(m + k, id);
        put_frame(c, 2, m, k);
        flush(c);
        return;
    }
    char m[256];
    int n = snprintf(m, sizeof m,
                     "{\"type\":\"json\",\"channel\":\"%s\",\"message\":{\"action\":"
                     "\"subscribe\",\"channel\":\"%s\"},\"message_id\":\"s%u\"}",
                     CHANNEL, CHANNEL, c->idx);
    put_frame(c, 1, m, (size_t)n);
    flush(c);
}

static void became_ready(conn *c) {
    G.inflight--;
    G.opened_ok++;
    if (c->role == ROLE_SUB) {
        G.subscribed++;
        G.live_subs++;
    }
}

/* ---- receiving ---------------------------------------------------------- */

static int scan_num(const char *p, const char *end, const char *key, size_t klen,
                    uint64_t *out) {
    const char *k = memmem(p, (size_t)(end - p), key, klen);
    if (!k)
        return 0;
    const char *s = k + klen;
    while (s < end && (*s == ' '))
        s++;
    uint64_t v = 0;
    const char *d = s;
    while (s < end && *s >= '0' && *s <= '9')
        v = v * 10 + (uint64_t)(*s++ - '0');
    if (s == d || s == end)
        return 0; /* no digits, or cut off by CAP */
    *out = v;
    return 1;
}

static void on_delivery(conn *c, uint32_t seq, uint64_t sent_ns, size_t bytes,
                        size_t payload) {
    uint64_t now = G.rx_now; /* taken once per recv(): the bytes arrived then */
    (void)c;
    if (c->last_seq && seq != c->last_seq + 1) {
        if (seq > c->last_seq + 1)
            G.gaps += seq - c->last_seq - 1;
        else
            G.dup_or_old++;
    }
    c->last_seq = seq;
    if (seq >= G.phase_first_seq)
        G.deliveries_phase++;
    if (G.measuring) {
        G.deliveries_measured++;
        G.bytes_measured += bytes;
        G.payload_measured += payload;
        G.fmt_deliveries[c->fmt]++;
        G.fmt_bytes[c->fmt] += bytes;
        uint64_t t = G.t0 + sent_ns;
        hist_add(&G.lat, now > t ? now - t : 0);
    }
    uint32_t slot = seq & (RING - 1);
    if (G.slot_seq[slot] == seq) {
        if (++G.slot_cnt[slot] == (uint32_t)G.live_subs) {
            if (G.measuring) {
                G.completions_measured++;
                hist_add(&G.done, now - G.slot_sent[slot]);
            }
        }
    } else {
        G.late++;
    }
}

/* Reads digits at s (after optional spaces); 1 when some were found and
 * they did not run into the end of the captured bytes. */
static int digits_at(const char *s, const char *end, uint64_t *out, const char **after) {
    while (s < end && *s == ' ')
        s++;
    const char *d = s;
    uint64_t v = 0;
    while (s < end && *s >= '0' && *s <= '9')
        v = v * 10 + (uint64_t)(*s++ - '0');
    if (s == d || s == end)
        return 0;
    *out = v;
    *after = s;
    return 1;
}

/* Finds "q":SEQ and then "t":NS. Fast path: memchr for the first 'q' (no
 * envelope key or fixed value before it has one) and the ,"t": that the
 * load generator writes right after; else a full memmem scan. */
static int find_seq(const char *p, const char *end, uint64_t *seq, uint64_t *t) {
    const char *q = p, *after;
    while ((q = memchr(q, 'q', (size_t)(end - q))) != NULL) {
        if (q > p && q[-1] == '"' && end - q > 3 && q[1] == '"' && q[2] == ':')
            break;
        q++;
    }
    if (!q) {
        const char *k = memmem(p, (size_t)(end - p), "\"q\":", 4);
        if (!k)
            return 0;
        q = k + 1;
    }
    if (!digits_at(q + 3, end, seq, &after))
        return 0;
    if (end - after > 5 && !memcmp(after, ",\"t\":", 5)) {
        if (!digits_at(after + 5, end, t, &after))
            *t = 0;
    } else if (!scan_num(after, end, "\"t\":", 4, t)) {
        *t = 0;
    }
    return 1;
}

/* A MessagePack unsigned integer at p (positive fixint, uint8..64; the
 * server packs non-negative integers that way); 0 when cut off or not one. */
static int mp_uint_at(const uint8_t *p, const uint8_t *end, uint64_t *out, const uint8_t **after) {
    if (p >= end)
        return 0;
    int n;
    if (*p < 0x80) {
        *out = *p;
        *after = p + 1;
        return 1;
    }
    switch (*p) {
    case 0xcc: n = 1; break;
    case 0xcd: n = 2; break;
    case 0xce: n = 4; break;
    case 0xcf: n = 8; break;
    default: return 0;
    }
    if (end - p < n + 1)
        return 0;
    uint64_t v = 0;
    for (int i = 1; i <= n; i++)
        v = (v << 8) | p[i];
    *out = v;
    *after = p + n + 1;
    return 1;
}

/* The MessagePack twin of find_seq: the fixstr key "q" (0xa1 'q') and its
 * integer, then "t" right after it. No envelope key or value before the
 * message holds the byte 0xa1 (keys are longer; the time is ASCII). */
static int find_seq_mp(const char *cp, const char *ce, uint64_t *seq, uint64_t *t) {
    const uint8_t *p = (const uint8_t *)cp, *end = (const uint8_t *)ce, *q = p, *after;
    while ((q = memchr(q, 0xa1, (size_t)(end - q))) != NULL) {
        if (end - q > 2 && q[1] == 'q')
            break;
        q++;
    }
    if (!q || !mp_uint_at(q + 2, end, seq, &after))
        return 0;
    if (end - after > 2 && after[0] == 0xa1 && after[1] == 't') {
        if (!mp_uint_at(after + 2, end, t, &after))
            *t = 0;
    } else {
        *t = 0;
    }
    return 1;
}

/* a whole message is in c->cap (first CAP bytes): wire bytes of its frames
 * (headers included) and payload bytes (as received: compressed if so) */
static void on_message(conn *c, size_t wire, size_t payload) {
    const char *p = c->cap, *end = c->cap + c->caplen;
    uint64_t seq, t;
    int mp = c->fmt == FMT_MSGPACK;
    if (c->role == ROLE_SUB && c->subscribed &&
        (mp ? find_seq_mp(p, end, &seq, &t) : find_seq(p, end, &seq, &t))) {
        on_delivery(c, (uint32_t)seq, t, wire, payload);
        return;
    }
    if (c->role == ROLE_SUB && !c->subscribed &&
        (mp ? memmem(p, (size_t)(end - p), "\xaasubscribed", 11)
            : memmem(p, (size_t)(end - p), "\"subscribed\"", 12))) {
        c->subscribed = 1;
        became_ready(c);
        return;
    }
    if (G.verbose > 1)
        vlog("conn %u: other message: %.*s", c->idx, (int)c->caplen, c->cap);
}

static void on_control(conn *c, int op) {
    if (op == 9) { /* ping -> pong */
        put_frame(c, 10, c->ctrl, c->ctrl_len);
        flush(c);
    } else if (op == 8) {
        uint16_t code = c->ctrl_len >= 2
                            ? (uint16_t)(((uint8_t)c->ctrl[0] << 8) | (uint8_t)c->ctrl[1])
                            : 1005;
        G.closes_by_server++;
        for (int i = 0; i < 8; i++) {
            if (G.close_code_seen[i] == code || G.close_code_seen[i] == 0) {
                G.close_code_seen[i] = code;
                G.close_codes[i]++;
                break;
            }
        }
        vlog("conn %u: close %u from server", c->idx, code);
        put_frame(c, 8, c->ctrl, c->ctrl_len >= 2 ? 2 : 0);
        flush(c);
        if (c->state != ST_CLOSED)
            conn_close(c);
    }
}

static void cap_append(conn *c, const uint8_t *d, size_t n) {
    if (c->caplen < CAP) {
        size_t k = CAP - c->caplen;
        if (k > n)
            k = n;
        memcpy(c->cap + c->caplen, d, k);
        c->caplen = (uint16_t)(c->caplen + k);
    }
}

static void inflate_feed(conn *c, const uint8_t *d, size_t n) {
    z_stream *z = c->zin;
    z->next_in = (Bytef *)d;
    z->avail_in = (uInt)n;
    while (z->avail_in) {
        z->next_out = (Bytef *)G.zbuf;
        z->avail_out = 65536;
        int rc = inflate(z, Z_SYNC_FLUSH);
        if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) {
            conn_fail(c, "inflate");
            return;
        }
        cap_append(c, (uint8_t *)G.zbuf, 65536 - z->avail_out);
        if (rc == Z_BUF_ERROR)
            break;
    }
}

/* payload bytes of the current frame (already unmasked if needed) */
static void frame_payload(conn *c, uint8_t *d, size_t n) {
    if (c->f_masked)
        for (size_t i = 0; i < n; i++)
            d[i] ^= c->mkey[(c->f_pos + i) & 3];
    if (c->f_op >= 8) {
        size_t room = sizeof c->ctrl - c->ctrl_len;
        if (n > room)
            n = room;
        memcpy(c->ctrl + c->ctrl_len, d, n);
        c->ctrl_len = (uint8_t)(c->ctrl_len + n);
    } else if (c->m_z && c->zin) {
        inflate_feed(c, d, n);
    } else {
        cap_append(c, d, n);
    }
    if (c->f_op < 8) {
        c->m_wire += (uint32_t)n;
        c->m_payload += (uint32_t)n;
    }
    c->f_pos += n;
}

static void frame_end(conn *c) {
    if (c->f_op >= 8) {
        on_control(c, c->f_op);
        return;
    }
    if (c->f_fin) {
        if (c->m_z && c->zin) {
            static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
            inflate_feed(c, tail, 4);
        }
        c->in_msg = 0;
        on_message(c, c->m_wire, c->m_payload);
    }
}

/* Parses frames out of d[0..n). Returns -1 once the connection is gone. */
static int parse_frames(conn *c, uint8_t *d, size_t n) {
    while (n) {
        if (c->state == ST_CLOSED)
            return -1;
        if (c->f_left == 0 && c->hneed == 0) {
            /* start of a header */
            c->hlen = 0;
            c->hneed = 2;
        }
        if (c->hneed) {
            while (n && c->hlen < c->hneed) {
                c->hb[c->hlen++] = *d++;
                n--;
                if (c->hlen == 2) {
                    uint8_t l7 = c->hb[1] & 0x7f;
                    c->hneed = (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) +
                                         ((c->hb[1] & 0x80) ? 4 : 0));
                }
            }
            if (c->hlen < c->hneed)
                return 0;
            uint8_t b0 = c->hb[0], b1 = c->hb[1];
            uint64_t len = b1 & 0x7f;
            size_t h = 2;
            if (len == 126) {
                len = ((uint64_t)c->hb[2] << 8) | c->hb[3];
                h = 4;
            } else if (len == 127) {
                len = 0;
                for (int i = 0; i < 8; i++)
                    len = (len << 8) | c->hb[2 + i];
                h = 10;
            }
            c->f_masked = (b1 & 0x80) != 0;
            if (c->f_masked)
                memcpy(c->mkey, c->hb + h, 4);
            c->f_fin = (b0 & 0x80) != 0;
            c->f_op = b0 & 0x0f;
            c->f_left = len;
            c->f_pos = 0;
            c->hneed = 0;
            if (c->f_op >= 8) {
                c->ctrl_len = 0;
            } else if (c->f_op != 0) {
                /* first frame of a message */
                c->m_op = c->f_op;
                c->m_z = (b0 & 0x40) != 0;
                c->in_msg = 1;
                c->caplen = 0;
                c->m_wire = c->m_payload = 0;
            }
            if (c->f_op < 8)
                c->m_wire += c->hlen; /* this frame's header */
            if (len == 0) {
                frame_end(c);
                continue;
            }
        }
        size_t take = c->f_left < n ? (size_t)c->f_left : n;
        frame_payload(c, d, take);
        d += take;
        n -= take;
        c->f_left -= take;
        if (c->f_left == 0)
            frame_end(c);
    }
    return c->state == ST_CLOSED ? -1 : 0;
}

static void handshake_bytes(conn *c, uint8_t *d, size_t n) {
    size_t room = 2047 - c->hdr_len;
    size_t take = n < room ? n : room;
    memcpy(c->hdr + c->hdr_len, d, take);
    c->hdr_len = (uint16_t)(c->hdr_len + take);
    c->hdr[c->hdr_len] = 0;
    char *end = strstr(c->hdr, "\r\n\r\n");
    if (!end) {
        if (c->hdr_len >= 2047)
            conn_fail(c, "response header too long");
        return;
    }
    if (strncmp(c->hdr, "HTTP/1.1 101", 12) != 0) {
        vlog("conn %u: handshake refused: %.60s", c->idx, c->hdr);
        conn_fail(c, "handshake refused");
        return;
    }
    size_t hdr_total = (size_t)(end + 4 - c->hdr);
    if (c->fmt == FMT_MSGPACK) {
        /* the answer must pick our subprotocol, else frames are JSON */
        char *sp = strcasestr(c->hdr, "\r\nSec-WebSocket-Protocol:");
        if (!sp || (size_t)(sp - c->hdr) >= hdr_total) {
            vlog("conn %u: no Sec-WebSocket-Protocol in the answer", c->idx);
            conn_fail(c, "subprotocol not accepted");
            return;
        }
        sp += 26;
        while (*sp == ' ' || *sp == '\t')
            sp++;
        if (strncasecmp(sp, "wsnotify.msgpack", 16) != 0 ||
            (sp[16] != '\r' && sp[16] != ' ' && sp[16] != '\t')) {
            conn_fail(c, "subprotocol not accepted");
            return;
        }
    }
    int deflate = strcasestr(c->hdr, "permessage-deflate") != NULL &&
                  (size_t)(strcasestr(c->hdr, "permessage-deflate") - c->hdr) < hdr_total;
    if (deflate) {
        c->zin = calloc(1, sizeof *c->zin);
        if (!c->zin || inflateInit2(c->zin, -15) != Z_OK)
            die("inflateInit2 failed");
    }
    /* bytes after the header belong to frames */
    size_t rest_in_hdr = c->hdr_len - hdr_total;
    size_t used_from_d = take - rest_in_hdr;
    free(c->hdr);
    c->hdr = NULL;
    c->state = ST_OPEN;
    if (c->role == ROLE_PUB || (!G.subscribe_idle && !strcmp(G.mode, "idle")))
        became_ready(c);
    else
        send_subscribe(c);
    if (c->state == ST_OPEN && n > used_from_d)
        parse_frames(c, d + used_from_d, n - used_from_d);
}

/* TLS handshake steps; then the WebSocket upgrade. */
static void tls_step(conn *c) {
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        send_handshake(c);
        return;
    }
    if (tls_wait(c, r) < 0)
        conn_fail(c, "TLS handshake failed");
    else if (SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ)
        set_events(c, 0);
}

static void tls_start(conn *c) {
    if (!(c->ssl = SSL_new(G.tls)) || !SSL_set_fd(c->ssl, c->fd))
        die("SSL_new: out of memory");
    SSL_set_connect_state(c->ssl);
    c->state = ST_TLS;
    tls_step(c);
}

/* One read: plain recv() or SSL_read (a record at a time). 0 = EOF, -1
 * with errno EAGAIN = nothing now, -1 otherwise = failed. */
static ssize_t read_some(conn *c) {
    if (!c->ssl)
        return recv(c->fd, G.rbuf, RBUF, 0);
    int n = SSL_read(c->ssl, G.rbuf, RBUF);
    if (n > 0)
        return n;
    int err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (err == SSL_ERROR_WANT_WRITE)
            set_events(c, 1);
        errno = EAGAIN;
        return -1;
    }
    ERR_clear_error();
    errno = ECONNRESET;
    return -1;
}

static void on_readable(conn *c) {
    for (int rounds = 0; rounds < 4; rounds++) {
        ssize_t n = read_some(c);
        if (n > 0) {
            G.rx_now = now_ns();
            if (c->state == ST_HANDSHAKE)
                handshake_bytes(c, (uint8_t *)G.rbuf, (size_t)n);
            else if (parse_frames(c, (uint8_t *)G.rbuf, (size_t)n) < 0)
                return;
            if (c->state != ST_OPEN && c->state != ST_HANDSHAKE)
                return;
            /* SSL_read gives one record (16 KiB) at a time: read on */
            if (n < RBUF && !c->ssl)
                return;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        if (c->state == ST_OPEN && (c->role == ROLE_PUB || c->subscribed)) {
            vlog("conn %u: closed by server without close frame", c->idx);
            G.closes_by_server++;
            conn_close(c);
        } else {
            conn_fail(c, n == 0 ? "eof" : "recv");
        }
        return;
    }
}

static void on_event(conn *c, uint32_t ev) {
    if (c->state == ST_CONNECTING) {
        if (ev & (EPOLLERR | EPOLLHUP)) {
            conn_fail(c, "connect refused");
            return;
        }
        if (ev & EPOLLOUT) {
            if (G.tls)
                tls_start(c);
            else
                send_handshake(c);
            return;
        }
    }
    if (c->state == ST_TLS) {
        tls_step(c);
        return;
    }
    if ((ev & EPOLLOUT) && c->state != ST_CLOSED)
        flush(c);
    if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->state != ST_CLOSED)
        on_readable(c);
}

static void poll_once(int timeout_ms) {
    struct epoll_event evs[512];
    int n = epoll_wait(G.ep, evs, 512, timeout_ms);
    if (n < 0) {
        if (errno == EINTR)
            return;
        die("epoll_wait: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++)
        on_event(evs[i].data.ptr, evs[i].events);
}

/* ---- publishing ---------------------------------------------------------- */

static void publish_one(int size) {
    conn *c = G.pub;
    if (!c || c->state != ST_OPEN)
        return;
    uint32_t seq = G.next_seq++;
    uint64_t now = now_ns();
    uint64_t t = now - G.t0;
    /* the message object is exactly `size` bytes when size allows */
    char head[128];
    int hn = snprintf(head, sizeof head,
                      "{\"action\":\"broadcast\",\"q\":%u,\"t\":%" PRIu64 ",\"p\":\"", seq,
                      t);
    int pad = size - hn - 2;
    if (pad < 0)
        pad = 0;
    char *m = G.msgbuf;
    int k;
    int mp = c->fmt == FMT_MSGPACK;
    if (mp) {
        /* the same message in MessagePack: {"type":"json","channel":CH,
         * "message":{"action":"broadcast","q":SEQ,"t":NS,"p":PAD}} */
        uint8_t *u = (uint8_t *)m;
        size_t j = 0;
        u[j++] = 0x83;
        j += mp_cstr(u + j, "type");
        j += mp_cstr(u + j, "json");
        j += mp_cstr(u + j, "channel");
        j += mp_cstr(u + j, CHANNEL);
        j += mp_cstr(u + j, "message");
        u[j++] = 0x84;
        j += mp_cstr(u + j, "action");
        j += mp_cstr(u + j, "broadcast");
        j += mp_cstr(u + j, "q");
        j += mp_uint(u + j, seq);
        j += mp_cstr(u + j, "t");
        j += mp_uint(u + j, t);
        j += mp_cstr(u + j, "p");
        /* str header for pad bytes; the letters follow */
        if (pad < 32) {
            u[j++] = (uint8_t)(0xa0 | pad);
        } else if (pad < 256) {
            u[j++] = 0xd9;
            u[j++] = (uint8_t)pad;
        } else {
            u[j++] = 0xda;
            u[j++] = (uint8_t)(pad >> 8);
            u[j++] = (uint8_t)pad;
        }
        k = (int)j;
    } else {
        k = snprintf(m, 64, "{\"type\":\"json\",\"channel\":\"%s\",\"message\":", CHANNEL);
        memcpy(m + k, head, (size_t)hn);
        k += hn;
    }
    /* random letters: deflate cannot shrink them much, so compression
     * runs measure real compression work (the worst case for it) */
    static const char al[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    for (int i = 0; i < pad; i += 4) {
        uint32_t r = rnd();
        for (int j = 0; j < 4 && i + j < pad; j++)
            m[k + i + j] = al[(r >> (6 * j)) & 63];
    }
    k += pad;
    if (!mp) {
        memcpy(m + k, "\"}}", 3);
        k += 3;
    }
    uint32_t slot = seq & (RING - 1);
    G.slot_seq[slot] = seq;
    G.slot_cnt[slot] = 0;
    G.slot_sent[slot] = now;
    put_frame(c, mp ? 2 : 1, m, (size_t)k);
    flush(c);
}

/* advances G.oldest past complete broadcasts; returns outstanding count */
static uint32_t outstanding(void) {
    while (G.oldest < G.next_seq) {
        uint32_t slot = G.oldest & (RING - 1);
        if (G.slot_cnt[slot] < (uint32_t)G.live_subs)
            break;
        G.oldest++;
    }
    return G.next_seq - G.oldest;
}

/* ---- phases ---------------------------------------------------------------- */

static void connect_all(int total) {
    uint64_t start = now_ns();
    uint64_t deadline = start + (uint64_t)(G.connect_timeout * 1e9);
    G.next_open = 0;
    while (G.opened_ok + G.connect_failures < total) {
        while (G.next_open < total && G.inflight < G.conc)
            open_conn(&G.conns[G.next_open++]);
        poll_once(50);
        if (now_ns() > deadline)
            die("connect phase timed out: %d of %d ready, %d failed, %d in flight",
                G.opened_ok, total, G.connect_failures, G.inflight);
    }
    double secs = (double)(now_ns() - start) / 1e9;
    fprintf(stderr, "loadgen: %d connections ready in %.2f s (%d failed)\n", G.opened_ok,
            secs, G.connect_failures);
    if (G.connect_failures)
        die("%d connections failed", G.connect_failures);
}

/* waits until every broadcast is complete, no delivery arrived for
 * G.drain seconds, or G.drain_max seconds passed */
static void drain_all(void) {
    uint64_t start = now_ns(), last = start;
    uint64_t seen = G.deliveries_phase;
    while (outstanding() > 0 && G.live_subs > 0) {
        uint64_t now = now_ns();
        if (G.deliveries_phase != seen) {
            seen = G.deliveries_phase;
            last = now;
        }
        if (now - last > (uint64_t)(G.drain * 1e9) ||
            now - start > (uint64_t)(G.drain_max * 1e9))
            break;
        poll_once(10);
    }
}

static void run_for(double secs) {
    uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
    while (now_ns() < end)
        poll_once(20);
}

static void print_common(FILE *f, double wall, double cpu_lg, double cpu_srv, long rss) {
    fprintf(f,
            "\"server_pid\":%d,\"wall_s\":%.4f,\"loadgen_cpu_pct\":%.1f,"
            "\"server_cpu_pct\":%.1f,\"server_rss_kib\":%ld,\"server_threads\":%d,"
            "\"closes_by_server\":%d,\"close_codes\":{",
            G.server_pid, wall, wall > 0 ? 100.0 * cpu_lg / wall : 0,
            cpu_srv >= 0 && wall > 0 ? 100.0 * cpu_srv / wall : -1, rss,
            threads_of(G.server_pid), G.closes_by_server);
    for (int i = 0; i < 8 && G.close_code_seen[i]; i++)
        fprintf(f, "%s\"%u\":%d", i ? "," : "", G.close_code_seen[i], G.close_codes[i]);
    fprintf(f, "}");
}

static void print_hist(FILE *f, const char *name, const hist *h) {
    fprintf(f,
            ",\"%s\":{\"n\":%" PRIu64 ",\"mean_ms\":%.4f,\"p1_ms\":%.4f,\"p10_ms\":%.4f,"
            "\"p50_ms\":%.4f,\"p90_ms\":%.4f,"
            "\"p99_ms\":%.4f,\"p999_ms\":%.4f,\"max_ms\":%.4f}",
            name, h->n, h->n ? (double)h->sum / (double)h->n / 1e6 : 0, hist_q(h, 0.01) / 1e6,
            hist_q(h, 0.1) / 1e6, hist_q(h, 0.5) / 1e6,
            hist_q(h, 0.9) / 1e6, hist_q(h, 0.99) / 1e6, hist_q(h, 0.999) / 1e6,
            (double)h->max / 1e6);
}

/* "format", and per format that has subscribers: deliveries/s and wire
 * bytes per delivery over the measured window */
static void print_formats(FILE *f, double wall) {
    fprintf(f, "\"format\":\"%s\",\"formats\":{", format_names[G.format]);
    int first = 1;
    for (int i = 0; i < 2; i++) {
        if (!G.fmt_deliveries[i])
            continue;
        fprintf(f, "%s\"%s\":{\"deliveries\":%" PRIu64 ",\"deliveries_per_s\":%.1f,"
                   "\"wire_bytes_per_delivery\":%.1f}",
                first ? "" : ",", format_names[i], G.fmt_deliveries[i],
                wall > 0 ? (double)G.fmt_deliveries[i] / wall : 0,
                (double)G.fmt_bytes[i] / (double)G.fmt_deliveries[i]);
        first = 0;
    }
    fprintf(f, "},");
}

static void run_fanout(void) {
    for (int pi = 0; pi < G.nphases; pi++) {
        phase ph = G.phases[pi];
        memset(&G.lat, 0, sizeof G.lat);
        memset(&G.done, 0, sizeof G.done);
        G.deliveries_measured = G.bytes_measured = G.deliveries_phase = 0;
        G.payload_measured = 0;
        memset(G.fmt_deliveries, 0, sizeof G.fmt_deliveries);
        memset(G.fmt_bytes, 0, sizeof G.fmt_bytes);
        G.completions_measured = 0;
        G.gaps = G.late = G.dup_or_old = 0;
        G.phase_first_seq = G.next_seq;
        G.measuring = 0;
        G.closes_by_server = 0;
        memset(G.close_codes, 0, sizeof G.close_codes);
        memset(G.close_code_seen, 0, sizeof G.close_code_seen);

        uint64_t t_start = now_ns();
        uint64_t t_meas = t_start + (uint64_t)(G.warmup * 1e9);
        uint64_t t_end = t_meas + (uint64_t)(G.duration * 1e9);
        uint64_t sent_limit = G.max_broadcasts ? G.max_broadcasts : UINT64_MAX;
        uint64_t sent = 0;
        double cpu_lg0 = 0, cpu_srv0 = 0, w0 = 0;
        uint32_t meas_first = 0, meas_last = 0;
        int stalled = 0;
        uint64_t last_progress = now_ns();
        uint32_t last_oldest = G.oldest;
        for (;;) {
            uint64_t now = now_ns();
            if (!G.measuring && now >= t_meas) {
                G.measuring = 1;
                cpu_lg0 = cpu_self();
                cpu_srv0 = cpu_of(G.server_pid);
                w0 = (double)now / 1e9;
                meas_first = G.next_seq;
            }
            if (now >= t_end)
                break;
            if (G.live_subs <= 0)
                break;
            while (outstanding() < (uint32_t)ph.window && sent < sent_limit &&
                   G.pub->state == ST_OPEN) {
                publish_one(ph.size);
                sent++;
            }
            if (G.oldest != last_oldest) {
                last_oldest = G.oldest;
                last_progress = now;
            } else if (now - last_progress > 10ull * 1000000000ull) {
                stalled = 1; /* nothing completed for 10 s: give up */
                break;
            }
            if (G.pub->state != ST_OPEN)
                break;
            poll_once(10);
        }
        /* end of the measured window */
        uint64_t now = now_ns();
        double wall = (double)now / 1e9 - w0;
        double cpu_lg = cpu_self() - cpu_lg0;
        double cpu_srv1 = cpu_of(G.server_pid);
        double cpu_srv = cpu_srv0 >= 0 && cpu_srv1 >= 0 ? cpu_srv1 - cpu_srv0 : -1;
        long rss = rss_of(G.server_pid);
        uint64_t deliveries = G.deliveries_measured, bytes = G.bytes_measured;
        uint64_t payload = G.payload_measured;
        uint64_t completions = G.completions_measured;
        meas_last = G.next_seq;
        G.measuring = 0;
        /* drain: wait for every broadcast of this phase (bounded) */
        drain_all();
        run_for(0.05);
        uint64_t phase_sent = G.next_seq - G.phase_first_seq;
        uint64_t expected = phase_sent * (uint64_t)G.subs;
        uint64_t lost = expected > G.deliveries_phase ? expected - G.deliveries_phase : 0;

        printf("{\"mode\":\"fanout\",\"label\":\"%s\",\"subs\":%d,\"size\":%d,\"window\":%d,"
               "\"compress\":%d,\"measure_s\":%.3f,\"broadcasts_measured\":%u,"
               "\"deliveries\":%" PRIu64 ",\"deliveries_per_s\":%.1f,"
               "\"broadcasts_completed_per_s\":%.1f,\"wire_bytes_per_delivery\":%.1f,"
               "\"sent\":%" PRIu64 ",\"expected\":%" PRIu64 ",\"received\":%" PRIu64
               ",\"lost\":%" PRIu64 ",\"gaps\":%" PRIu64 ",\"live_subs\":%d,"
               "\"stalled\":%d,\"payload_bytes_per_delivery\":%.1f,",
               G.label, G.subs, ph.size, ph.window, G.compress, wall, meas_last - meas_first,
               deliveries, wall > 0 ? (double)deliveries / wall : 0,
               wall > 0 ? (double)completions / wall : 0,
               deliveries ? (double)bytes / (double)deliveries : 0, phase_sent, expected,
               G.deliveries_phase, lost, G.gaps, G.live_subs, stalled,
               deliveries ? (double)payload / (double)deliveries : 0);
        print_formats(stdout, wall);
        print_common(stdout, wall, cpu_lg, cpu_srv, rss);
        print_hist(stdout, "latency", &G.lat);
        print_hist(stdout, "completion", &G.done);
        printf("}\n");
        fflush(stdout);
        fprintf(stderr,
                "loadgen: fanout %s subs=%d size=%d window=%d: %.0f deliveries/s, %.1f wire "
                "bytes/delivery, lost %" PRIu64
                ", loadgen cpu %.0f%%, server cpu %.0f%%, p50 %.2f ms p99 %.2f ms%s\n",
                format_names[G.format], G.subs, ph.size, ph.window,
                wall > 0 ? (double)deliveries / wall : 0,
                deliveries ? (double)bytes / (double)deliveries : 0, lost,
                wall > 0 ? 100 * cpu_lg / wall : 0, wall > 0 ? 100 * cpu_srv / wall : 0,
                hist_q(&G.lat, 0.5) / 1e6, hist_q(&G.lat, 0.99) / 1e6,
                stalled ? " STALLED" : "");
        if (G.live_subs <= 0 || G.pub->state != ST_OPEN)
            break;
    }
}

static void run_latency(void) {
    memset(&G.lat, 0, sizeof G.lat);
    memset(&G.done, 0, sizeof G.done);
    G.phase_first_seq = G.next_seq;
    G.deliveries_phase = G.deliveries_measured = G.bytes_measured = 0;
    G.payload_measured = 0;
    memset(G.fmt_deliveries, 0, sizeof G.fmt_deliveries);
    memset(G.fmt_bytes, 0, sizeof G.fmt_bytes);
    G.completions_measured = 0;
    uint64_t interval = (uint64_t)(1e9 / G.rate);
    uint64_t start = now_ns();
    uint64_t t_meas = start + (uint64_t)(G.warmup * 1e9);
    uint64_t t_end = t_meas + (uint64_t)(G.duration * 1e9);
    uint64_t next = start;
    uint64_t sent = 0, limit = G.max_broadcasts ? G.max_broadcasts : UINT64_MAX;
    double cpu_lg0 = 0, cpu_srv0 = 0;
    uint64_t w0 = 0;
    uint32_t meas_first = 0;
    for (;;) {
        uint64_t now = now_ns();
        if (!G.measuring && now >= t_meas) {
            G.measuring = 1;
            cpu_lg0 = cpu_self();
            cpu_srv0 = cpu_of(G.server_pid);
            w0 = now;
            meas_first = G.next_seq;
        }
        if (now >= t_end || G.live_subs <= 0)
            break;
        if (now >= next && sent < limit) {
            publish_one(G.rate_size);
            sent++;
            next += interval;
            if (next < now) /* fell behind: do not burst */
                next = now + interval;
        }
        now = now_ns();
        int wait = next > now ? (int)((next - now) / 1000000) : 0;
        if (wait > 20)
            wait = 20;
        poll_once(wait);
    }
    /* deliveries of broadcasts sent during the window still count */
    uint32_t meas_last = G.next_seq;
    drain_all();
    G.measuring = 0;
    double wall = (double)(now_ns() - w0) / 1e9;
    double cpu_lg = cpu_self() - cpu_lg0;
    double cpu_srv1 = cpu_of(G.server_pid);
    double cpu_srv = cpu_srv0 >= 0 && cpu_srv1 >= 0 ? cpu_srv1 - cpu_srv0 : -1;
    uint64_t phase_sent = G.next_seq - G.phase_first_seq;
    uint64_t expected = phase_sent * (uint64_t)G.subs;
    uint64_t lost = expected > G.deliveries_phase ? expected - G.deliveries_phase : 0;
    printf("{\"mode\":\"latency\",\"label\":\"%s\",\"subs\":%d,\"size\":%d,\"rate\":%.1f,"
           "\"compress\":%d,\"measure_s\":%.3f,\"broadcasts_measured\":%u,"
           "\"deliveries\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"expected\":%" PRIu64
           ",\"received\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"gaps\":%" PRIu64
           ",\"live_subs\":%d,\"wire_bytes_per_delivery\":%.1f,",
           G.label, G.subs, G.rate_size, G.rate, G.compress, wall, meas_last - meas_first,
           G.deliveries_measured, phase_sent, expected, G.deliveries_phase, lost, G.gaps,
           G.live_subs,
           G.deliveries_measured ? (double)G.bytes_measured / (double)G.deliveries_measured
                                 : 0);
    print_formats(stdout, wall);
    print_common(stdout, wall, cpu_lg, cpu_srv, rss_of(G.server_pid));
    print_hist(stdout, "latency", &G.lat);
    print_hist(stdout, "completion", &G.done);
    printf("}\n");
    fflush(stdout);
    fprintf(stderr,
            "loadgen: latency subs=%d rate=%.0f/s: p50 %.3f p99 %.3f p999 %.3f max %.3f ms, "
            "lost %" PRIu64 ", loadgen cpu %.0f%%\n",
            G.subs, G.rate, hist_q(&G.lat, 0.5) / 1e6, hist_q(&G.lat, 0.99) / 1e6,
            hist_q(&G.lat, 0.999) / 1e6, (double)G.lat.max / 1e6, lost,
            wall > 0 ? 100 * cpu_lg / wall : 0);
}

static void run_idle(long rss0, double connect_s) {
    /* let the server settle after the connect storm */
    run_for(1.0);
    long rss1 = rss_of(G.server_pid);
    double cpu0 = cpu_of(G.server_pid), lg0 = cpu_self();
    uint64_t w0 = now_ns();
    run_for(G.hold);
    double wall = (double)(now_ns() - w0) / 1e9;
    double cpu1 = cpu_of(G.server_pid);
    double cpu_srv = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
    double cpu_lg = cpu_self() - lg0;
    long rss2 = rss_of(G.server_pid);
    int held = 0;
    for (int i = 0; i < G.nconns; i++)
        held += G.conns[i].state == ST_OPEN;
    double per = rss0 >= 0 && rss2 >= 0 && held ? (double)(rss2 - rss0) * 1024.0 / held : -1;
    printf("{\"mode\":\"idle\",\"label\":\"%s\",\"conns\":%d,\"held\":%d,\"subscribed\":%d,"
           "\"connect_s\":%.3f,\"hold_s\":%.3f,\"rss_before_kib\":%ld,\"rss_after_connect_kib\":%ld,"
           "\"rss_end_kib\":%ld,\"rss_bytes_per_conn\":%.1f,",
           G.label, G.subs, held, G.subscribe_idle, connect_s, wall, rss0, rss1, rss2, per);
    print_common(stdout, wall, cpu_lg, cpu_srv, rss2);
    printf("}\n");
    fflush(stdout);
    fprintf(stderr,
            "loadgen: idle %d conns held %.1f s: server RSS %ld -> %ld KiB (%.0f B/conn), "
            "server cpu %.2f%%\n",
            held, wall, rss0, rss2, per, wall > 0 ? 100 * cpu_srv / wall : -1);
}

/* ---- main ------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --mode fanout|latency|idle --port N [options]\n"
            "  --host A           server address, 127.0.0.0/8 only (127.0.0.1)\n"
            "  --path P           WebSocket path (/ws)\n"
            "  --subs N           subscribers (fanout/latency) or connections (idle)\n"
            "  --phase S:W        fanout: message object size S bytes, window W;\n"
            "                     repeatable (default 64:20)\n"
            "  --rate R           latency: broadcasts per second (20)\n"
            "  --size S           latency: message size (64)\n"
            "  --warmup S         seconds before measuring (1)\n"
            "  --duration S       seconds measured per phase (5)\n"
            "  --drain S          after the load: stop waiting for stragglers once\n"
            "                     nothing arrived for S seconds (5)\n"
            "  --drain-max S      ... or after S seconds in all (120)\n"
            "  --hold S           idle: seconds to hold (10)\n"
            "  --max-broadcasts N bound on broadcasts per phase (0 = time only)\n"
            "  --server-pid P     read CPU and RSS of P from /proc\n"
            "  --compress         offer permessage-deflate (and inflate)\n"
            "  --tls              wss:// (the server's certificate is not checked)\n"
            "  --format F         json (default: no subprotocol), msgpack (offer\n"
            "                     wsnotify.msgpack, MessagePack envelopes), or mixed\n"
            "                     (even subscribers JSON, odd MessagePack, JSON publisher)\n"
            "  --no-subscribe     idle: connect only\n"
            "  --src-addrs K      spread over 127.0.0.2..K+1 (auto: N/20000+1)\n"
            "  --concurrency C    handshakes in flight (256)\n"
            "  --connect-timeout S (180)\n"
            "  --label L          copied into the JSON output\n"
            "  --sub-ports P,..   subscribers round-robin over these ports (servers\n"
            "                     sharing a broker); the publisher uses --port\n"
            "  -v                 verbose\n");
    exit(2);
}

int main(int argc, char **argv) {
    G.mode = "fanout";
    G.host = "127.0.0.1";
    G.path = "/ws";
    G.subs = 100;
    G.nsrc = -1;
    G.conc = 256;
    G.warmup = 1;
    G.duration = 5;
    G.drain = 5;
    G.drain_max = 120;
    G.hold = 10;
    G.connect_timeout = 180;
    G.rate = 20;
    G.rate_size = 64;
    G.subscribe_idle = 1;
    G.label = "";
    G.rng = 0x9e3779b9u ^ (uint32_t)getpid();
    static struct option lo[] = {
        {"mode", 1, 0, 'm'},     {"host", 1, 0, 'H'},        {"port", 1, 0, 'p'},
        {"path", 1, 0, 'P'},     {"subs", 1, 0, 'n'},        {"phase", 1, 0, 'f'},
        {"rate", 1, 0, 'r'},     {"size", 1, 0, 's'},        {"warmup", 1, 0, 'w'},
        {"duration", 1, 0, 'd'}, {"drain", 1, 0, 'D'},       {"drain-max", 1, 0, 'X'},       {"hold", 1, 0, 'h'},
        {"max-broadcasts", 1, 0, 'M'}, {"server-pid", 1, 0, 'S'}, {"compress", 0, 0, 'z'},
        {"no-subscribe", 0, 0, 'N'},   {"src-addrs", 1, 0, 'a'},  {"concurrency", 1, 0, 'c'},
        {"connect-timeout", 1, 0, 'T'}, {"label", 1, 0, 'l'},     {"help", 0, 0, '?'},
        {"format", 1, 0, 'F'},         {"sub-ports", 1, 0, 'U'},  {"tls", 0, 0, 'L'},
        {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "v", lo, NULL)) != -1) {
        switch (o) {
        case 'm': G.mode = optarg; break;
        case 'H': G.host = optarg; break;
        case 'p': G.port = atoi(optarg); break;
        case 'P': G.path = optarg; break;
        case 'n': G.subs = atoi(optarg); break;
        case 'f':
            if (G.nphases >= MAX_PHASES)
                die("too many phases");
            if (sscanf(optarg, "%d:%d", &G.phases[G.nphases].size,
                       &G.phases[G.nphases].window) != 2)
                die("bad --phase %s (want SIZE:WINDOW)", optarg);
            if (G.phases[G.nphases].window < 1 || G.phases[G.nphases].window > RING / 2)
                die("window must be 1..%d", RING / 2);
            if (G.phases[G.nphases].size < 0 || G.phases[G.nphases].size > 4096)
                die("size must be 0..4096");
            G.nphases++;
            break;
        case 'r': G.rate = atof(optarg); break;
        case 's': G.rate_size = atoi(optarg); break;
        case 'w': G.warmup = atof(optarg); break;
        case 'd': G.duration = atof(optarg); break;
        case 'D': G.drain = atof(optarg); break;
        case 'X': G.drain_max = atof(optarg); break;
        case 'h': G.hold = atof(optarg); break;
        case 'M': G.max_broadcasts = strtoull(optarg, NULL, 10); break;
        case 'S': G.server_pid = atoi(optarg); break;
        case 'z': G.compress = 1; break;
        case 'L':
            if (!(G.tls = SSL_CTX_new(TLS_client_method())))
                die("SSL_CTX_new failed");
            SSL_CTX_set_mode(G.tls, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                        SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
            break;
        case 'N': G.subscribe_idle = 0; break;
        case 'a': G.nsrc = atoi(optarg); break;
        case 'c': G.conc = atoi(optarg); break;
        case 'T': G.connect_timeout = atof(optarg); break;
        case 'l': G.label = optarg; break;
        case 'F':
            if (!strcmp(optarg, "json"))
                G.format = FORMAT_JSON;
            else if (!strcmp(optarg, "msgpack"))
                G.format = FORMAT_MSGPACK;
            else if (!strcmp(optarg, "mixed"))
                G.format = FORMAT_MIXED;
            else
                die("bad --format %s (json, msgpack or mixed)", optarg);
            break;
        case 'U':
            for (char *tok = strtok(optarg, ","); tok; tok = strtok(NULL, ",")) {
                if (G.nsub_ports == 16)
                    die("at most 16 --sub-ports");
                G.sub_ports[G.nsub_ports++] = atoi(tok);
            }
            break;
        case 'v': G.verbose++; break;
        default: usage();
        }
    }
    if (G.port <= 0 || G.port > 65535)
        usage();
    struct in_addr a;
    if (inet_pton(AF_INET, G.host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127)
        die("--host must be an IPv4 loopback address (127.0.0.0/8)");
    if (strcmp(G.mode, "fanout") && strcmp(G.mode, "latency") && strcmp(G.mode, "idle"))
        usage();
    if (G.subs < 1 || G.subs > 1000000)
        die("--subs must be 1..1000000");
    if (G.rate <= 0 || G.rate > 1e6)
        die("--rate must be in (0, 1e6]");
    if (G.rate_size < 0 || G.rate_size > 4096)
        die("--size must be 0..4096");
    if (G.duration <= 0 || G.duration > 3600 || G.hold < 0 || G.hold > 3600 || G.warmup < 0 ||
        G.warmup > 600 || G.drain < 0 || G.drain > 600 || G.drain_max < 0 ||
        G.drain_max > 600)
        die("durations are bounded: duration/hold <= 3600 s, warmup/drain <= 600 s");
    if (!G.nphases) {
        G.phases[0] = (phase){64, 20};
        G.nphases = 1;
    }
    int with_pub = strcmp(G.mode, "idle") != 0;
    G.nconns = G.subs + with_pub;
    if (G.nsrc < 0)
        G.nsrc = G.nconns > 20000 ? G.nconns / 20000 + 1 : 1;

    /* file descriptors: one per connection plus slack */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t want = (rlim_t)G.nconns + 64;
    if (rl.rlim_cur < want) {
        if (rl.rlim_max < want)
            rl.rlim_max = want; /* needs CAP_SYS_RESOURCE */
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            die("cannot raise RLIMIT_NOFILE to %lu: %s", (unsigned long)want, strerror(errno));
    }
    signal(SIGPIPE, SIG_IGN);

    G.t0 = now_ns();
    G.ep = epoll_create1(EPOLL_CLOEXEC);
    G.rbuf = malloc(RBUF);
    G.zbuf = malloc(65536);
    G.conns = calloc((size_t)G.nconns, sizeof(conn));
    if (G.ep < 0 || !G.rbuf || !G.zbuf || !G.conns)
        die("setup failed");
    for (int i = 0; i < G.nconns; i++) {
        G.conns[i].idx = (uint32_t)i;
        G.conns[i].fd = -1;
        G.conns[i].role = ROLE_SUB;
        G.conns[i].fmt = G.format == FORMAT_MSGPACK || (G.format == FORMAT_MIXED && (i & 1))
                             ? FMT_MSGPACK
                             : FMT_JSON;
    }
    if (with_pub) {
        G.pub = &G.conns[G.subs];
        G.pub->role = ROLE_PUB;
        G.pub->fmt = G.format == FORMAT_MSGPACK ? FMT_MSGPACK : FMT_JSON;
    }
    G.next_seq = 1;
    G.oldest = 1;

    long rss0 = rss_of(G.server_pid);
    uint64_t c0 = now_ns();
    connect_all(G.nconns);
    double connect_s = (double)(now_ns() - c0) / 1e9;
    /* replies to subscribe can still be in flight for the publisher: none */
    if (!strcmp(G.mode, "fanout"))
        run_fanout();
    else if (!strcmp(G.mode, "latency"))
        run_latency();
    else
        run_idle(rss0, connect_s);

    for (int i = 0; i < G.nconns; i++)
        conn_close(&G.conns[i]);
    return 0;
}
