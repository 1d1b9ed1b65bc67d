/* wsclient: a small blocking RFC 6455 client for the wsnotify tests. */
#define _GNU_SOURCE
#include "wsclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h> /* lws_SHA1, lws_b64_encode_string */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <zlib.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct wsc {
    int fd;
    unsigned char *rbuf; /* bytes received, not yet parsed: [rpos, rlen) */
    size_t rpos, rlen, rcap;
    uint32_t rng;
    int auto_pong;
    int auto_close; /* answer a close frame (wsc_opts.no_auto_close) */
    int close_sent; /* we sent a close frame (ours or the echo) */
    int pings, pongs;
    char subprotocol[128];
    char extensions[256];
    int deflate;          /* permessage-deflate negotiated */
    int server_no_ctx;    /* server_no_context_takeover */
    int client_no_ctx;    /* client_no_context_takeover */
    int inflate_ready, deflate_ready;
    z_stream inf, def;
    SSL_CTX *ssl_ctx; /* TLS: both set, else NULL */
    SSL *ssl;
};

/* ---- time ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(int64_t deadline)
{
    int64_t r = deadline - now_ms();
    return r < 0 ? 0 : (int)r;
}

const char *wsc_strerror(int rc)
{
    switch (rc) {
    case WSC_OK: return "WSC_OK";
    case WSC_EOF: return "WSC_EOF (peer closed TCP)";
    case WSC_TIMEOUT: return "WSC_TIMEOUT";
    case WSC_ECONN: return "WSC_ECONN (connect failed)";
    case WSC_EPROTO: return "WSC_EPROTO (protocol violation)";
    case WSC_EHTTP: return "WSC_EHTTP (not upgraded)";
    case WSC_EIO: return "WSC_EIO";
    case WSC_ENOMEM: return "WSC_ENOMEM";
    case WSC_ETLS: return "WSC_ETLS (TLS handshake failed or TLS alert)";
    }
    return "WSC_?";
}

void wsc_msg_clear(wsc_msg *m)
{
    if (!m)
        return;
    free(m->data);
    memset(m, 0, sizeof *m);
}

/* ---- sockets ---- */

static int tcp_connect(const char *addr, int port, int rcvbuf, int timeout_ms)
{
    struct addrinfo hints, *res = NULL;
    char portstr[16];
    int fd, rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    snprintf(portstr, sizeof portstr, "%d", port);
    if (getaddrinfo(addr, portstr, &hints, &res) != 0 || !res)
        return -1;
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return -1;
    }
    if (rcvbuf > 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    /* Non-blocking connect with a deadline. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    rc = connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd p = {fd, POLLOUT, 0};
        int err = 0;
        socklen_t el = sizeof err;
        if (poll(&p, 1, timeout_ms) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err) {
            close(fd);
            return -1;
        }
        rc = 0;
    }
    if (rc != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Waits until fd is ready for events, within deadline: WSC_OK,
 * WSC_TIMEOUT, WSC_EIO. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd pf = {fd, events, 0};
    int r = remaining(deadline), pr;
    if (r == 0)
        return WSC_TIMEOUT;
    pr = poll(&pf, 1, r);
    if (pr == 0)
        return WSC_TIMEOUT;
    if (pr < 0 && errno != EINTR)
        return WSC_EIO;
    return WSC_OK;
}

/* TLS: waits until the socket is ready for what OpenSSL asked (err is
 * SSL_get_error's), or turns err into a WSC_ code. */
static int ssl_wait(wsc *c, int ret, int64_t deadline)
{
    int err = SSL_get_error(c->ssl, ret);
    if (err == SSL_ERROR_ZERO_RETURN)
        return WSC_EOF;
    if (err == SSL_ERROR_SYSCALL) {
        ERR_clear_error();
        return (errno == 0 || errno == ECONNRESET || errno == EPIPE) ? WSC_EOF : WSC_EIO;
    }
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return WSC_ETLS;
    }
    return wait_fd(c->fd, err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, deadline);
}

static int ssl_send_all(wsc *c, const void *data, size_t len, int timeout_ms)
{
    const unsigned char *p = data;
    int64_t deadline = now_ms() + timeout_ms;
    while (len > 0) {
        int n;
        errno = 0; /* SSL_ERROR_SYSCALL leaves the reason there */
        n = SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        n = ssl_wait(c, n, deadline);
        if (n != WSC_OK)
            return n;
    }
    return WSC_OK;
}

static int send_all(wsc *c, const void *data, size_t len, int timeout_ms)
{
    const unsigned char *p = data;
    int fd = c->fd;
    int64_t deadline = now_ms() + timeout_ms;
    if (c->ssl)
        return ssl_send_all(c, data, len, timeout_ms);
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pf = {fd, POLLOUT, 0};
            int r = remaining(deadline);
            if (r == 0)
                return WSC_TIMEOUT;
            if (poll(&pf, 1, r) < 0 && errno != EINTR)
                return WSC_EIO;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
            return WSC_EOF;
        return WSC_EIO;
    }
    return WSC_OK;
}

/* Reads more bytes into the buffer, waiting until deadline. */
static int fill(wsc *c, int64_t deadline)
{
    ssize_t n;
    if (c->rpos > 0 && c->rpos == c->rlen)
        c->rpos = c->rlen = 0;
    if (c->rcap - c->rlen < 65536) {
        if (c->rpos > 0) {
            memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
            c->rlen -= c->rpos;
            c->rpos = 0;
        }
        if (c->rcap - c->rlen < 65536) {
            size_t ncap = c->rcap ? c->rcap * 2 : 131072;
            unsigned char *nb = realloc(c->rbuf, ncap);
            if (!nb)
                return WSC_ENOMEM;
            c->rbuf = nb;
            c->rcap = ncap;
        }
    }
    while (c->ssl) {
        int r;
        errno = 0;
        r = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(c->rcap - c->rlen));
        if (r > 0) {
            c->rlen += (size_t)r;
            return WSC_OK;
        }
        r = ssl_wait(c, r, deadline);
        if (r != WSC_OK)
            return r;
    }
    for (;;) {
        n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);
        if (n > 0) {
            c->rlen += (size_t)n;
            return WSC_OK;
        }
        if (n == 0)
            return WSC_EOF;
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET)
            return WSC_EOF;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return WSC_EIO;
        {
            int w = wait_fd(c->fd, POLLIN, deadline);
            if (w != WSC_OK)
                return w;
        }
    }
}

static size_t avail(const wsc *c) { return c->rlen - c->rpos; }

/* ---- handshake ---- */

static void random_bytes(uint32_t *state, unsigned char *out, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t x = *state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *state = x;
        out[i] = (unsigned char)(x >> 7);
    }
}

static uint32_t seed(void)
{
    struct timespec ts;
    static const int anchor = 0;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ((uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec ^ (uint32_t)getpid() ^
           ((uint32_t)(uintptr_t)&ts ^ (uint32_t)(uintptr_t)&anchor)) | 1u;
}

/* Finds header `name` in the response headers (between the status line and
 * the blank line); copies its value. Returns 1 when found. */
static int find_header(const char *hdrs, const char *name, char *out,
                       size_t cap)
{
    const char *p = strstr(hdrs, "\r\n");
    size_t nl = strlen(name);
    while (p && p[2] != '\r' && p[2] != '\0') {
        const char *line = p + 2;
        const char *end = strstr(line, "\r\n");
        if (!end)
            break;
        if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 &&
            line[nl] == ':') {
            const char *v = line + nl + 1;
            size_t vl;
            while (*v == ' ' || *v == '\t')
                v++;
            vl = (size_t)(end - v);
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return 1;
        }
        p = end;
    }
    return 0;
}

/* Reads the HTTP response head (up to the blank line) into c's buffer.
 * Returns the head length (bytes including "\r\n\r\n") or an error. */
static int read_head(wsc *c, int64_t deadline, size_t *head_len)
{
    for (;;) {
        if (avail(c) >= 4) {
            unsigned char *s = c->rbuf + c->rpos;
            size_t i;
            for (i = 0; i + 3 < avail(c); i++)
                if (s[i] == '\r' && s[i + 1] == '\n' && s[i + 2] == '\r' &&
                    s[i + 3] == '\n') {
                    *head_len = i + 4;
                    return WSC_OK;
                }
            if (avail(c) > 65536)
                return WSC_EPROTO;
        }
        {
            int rc = fill(c, deadline);
            if (rc != WSC_OK)
                return rc;
        }
    }
}

static void parse_deflate_params(wsc *c)
{
    /* "permessage-deflate; server_no_context_takeover; ..." */
    if (strncasecmp(c->extensions, "permessage-deflate", 18) != 0)
        return;
    c->deflate = 1;
    if (strstr(c->extensions, "server_no_context_takeover"))
        c->server_no_ctx = 1;
    if (strstr(c->extensions, "client_no_context_takeover"))
        c->client_no_ctx = 1;
}

/* The TLS handshake on c->fd, within deadline. */
static int tls_start(wsc *c, const wsc_opts *o, int64_t deadline)
{
    const char *host = o->tls_host ? o->tls_host : "localhost";
    int ret;
    c->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ssl_ctx)
        return WSC_ENOMEM;
    if (SSL_CTX_load_verify_locations(c->ssl_ctx, o->tls_ca, NULL) != 1 ||
        (o->tls_cert && (SSL_CTX_use_certificate_chain_file(c->ssl_ctx, o->tls_cert) != 1 ||
                         SSL_CTX_use_PrivateKey_file(c->ssl_ctx, o->tls_key,
                                                     SSL_FILETYPE_PEM) != 1))) {
        fprintf(stderr, "wsclient: cannot load the TLS files\n");
        ERR_clear_error();
        return WSC_ETLS;
    }
    SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
    c->ssl = SSL_new(c->ssl_ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd) || !SSL_set1_host(c->ssl, host) ||
        !SSL_set_tlsext_host_name(c->ssl, host))
        return WSC_ENOMEM;
    for (;;) {
        int rc;
        errno = 0;
        if ((ret = SSL_connect(c->ssl)) == 1)
            break;
        rc = ssl_wait(c, ret, deadline);
        if (rc != WSC_OK)
            return rc == WSC_EOF ? WSC_ETLS : rc;
    }
    return WSC_OK;
}

int wsc_tls_fingerprint(const wsc *c, unsigned char out[32])
{
    X509 *cert;
    unsigned int n = 32;
    int rc;
    if (!c->ssl || !(cert = SSL_get1_peer_certificate(c->ssl)))
        return -1;
    rc = X509_digest(cert, EVP_sha256(), out, &n) == 1 && n == 32 ? 0 : -1;
    X509_free(cert);
    return rc;
}

int wsc_connect(const wsc_opts *o, wsc **out, int *http_status)
{
    const char *addr = o->addr ? o->addr : "127.0.0.1";
    const char *path = o->path ? o->path : "/ws";
    int timeout = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    int64_t deadline = now_ms() + timeout;
    char hostbuf[128], req[8192], key[32], expect[64], got[128], *head;
    unsigned char nonce[16], sha[20];
    char keyguid[128];
    size_t head_len;
    int rc, status = 0;
    wsc *c;

    *out = NULL;
    if (http_status)
        *http_status = 0;
    c = calloc(1, sizeof *c);
    if (!c)
        return WSC_ENOMEM;
    c->rng = seed();
    c->auto_pong = !o->no_auto_pong;
    c->auto_close = !o->no_auto_close;
    c->fd = tcp_connect(addr, o->port, o->rcvbuf, timeout);
    if (c->fd < 0) {
        free(c);
        return WSC_ECONN;
    }
    if (o->tls_ca && (rc = tls_start(c, o, deadline)) != WSC_OK)
        goto fail;
    if (o->host_header)
        snprintf(hostbuf, sizeof hostbuf, "%s", o->host_header);
    else if (strchr(addr, ':'))
        snprintf(hostbuf, sizeof hostbuf, "[%s]:%d", addr, o->port);
    else
        snprintf(hostbuf, sizeof hostbuf, "%s:%d", addr, o->port);

    random_bytes(&c->rng, nonce, sizeof nonce);
    lws_b64_encode_string((const char *)nonce, (int)sizeof nonce, key,
                          (int)sizeof key);
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\n"
             "Host: %s\r\n"
             "Upgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\n"
             "Sec-WebSocket-Version: 13\r\n"
             "%s%s%s"
             "%s%s%s"
             "%s"
             "%s"
             "\r\n",
             path, hostbuf, key, o->origin ? "Origin: " : "",
             o->origin ? o->origin : "", o->origin ? "\r\n" : "",
             o->protocol ? "Sec-WebSocket-Protocol: " : "",
             o->protocol ? o->protocol : "", o->protocol ? "\r\n" : "",
             o->deflate ? "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                        : "",
             o->extra_headers ? o->extra_headers : "");
    rc = send_all(c, req, strlen(req), remaining(deadline));
    if (rc != WSC_OK)
        goto fail;
    rc = read_head(c, deadline, &head_len);
    if (rc != WSC_OK)
        goto fail;
    head = malloc(head_len + 1);
    if (!head) {
        rc = WSC_ENOMEM;
        goto fail;
    }
    memcpy(head, c->rbuf + c->rpos, head_len);
    head[head_len] = '\0';
    c->rpos += head_len;
    if (sscanf(head, "HTTP/1.%*d %d", &status) != 1) {
        free(head);
        rc = WSC_EPROTO;
        goto fail;
    }
    if (http_status)
        *http_status = status;
    if (status != 101) {
        free(head);
        rc = WSC_EHTTP;
        goto fail;
    }
    snprintf(keyguid, sizeof keyguid, "%s%s", key, WS_GUID);
    lws_SHA1((const unsigned char *)keyguid, strlen(keyguid), sha);
    lws_b64_encode_string((const char *)sha, 20, expect, (int)sizeof expect);
    if (!find_header(head, "Sec-WebSocket-Accept", got, sizeof got) ||
        strcmp(got, expect) != 0) {
        fprintf(stderr, "wsclient: bad Sec-WebSocket-Accept '%s' (want %s)\n",
                got, expect);
        free(head);
        rc = WSC_EPROTO;
        goto fail;
    }
    if (!find_header(head, "Sec-WebSocket-Protocol", c->subprotocol,
                     sizeof c->subprotocol))
        c->subprotocol[0] = '\0';
    if (!find_header(head, "Sec-WebSocket-Extensions", c->extensions,
                     sizeof c->extensions))
        c->extensions[0] = '\0';
    free(head);
    parse_deflate_params(c);
    *out = c;
    return WSC_OK;
fail:
    wsc_free(c);
    return rc;
}

void wsc_free(wsc *c)
{
    if (!c)
        return;
    SSL_free(c->ssl);
    SSL_CTX_free(c->ssl_ctx);
    if (c->fd >= 0)
        close(c->fd);
    if (c->inflate_ready)
        inflateEnd(&c->inf);
    if (c->deflate_ready)
        deflateEnd(&c->def);
    free(c->rbuf);
    free(c);
}

const char *wsc_subprotocol(const wsc *c) { return c->subprotocol; }
const char *wsc_extensions(const wsc *c) { return c->extensions; }
int wsc_deflate_active(const wsc *c) { return c->deflate; }
int wsc_fd(const wsc *c) { return c->fd; }
int wsc_pings_received(const wsc *c) { return c->pings; }
int wsc_pongs_received(const wsc *c) { return c->pongs; }
void wsc_set_auto_pong(wsc *c, int on) { c->auto_pong = on; }

/* ---- sending ---- */

int wsc_send_frame_raw(wsc *c, unsigned char byte0, int masked,
                       const void *data, size_t len)
{
    unsigned char hdr[14], mask[4];
    size_t hl = 0, i;
    unsigned char *buf;
    int rc;

    hdr[hl++] = byte0;
    if (len < 126) {
        hdr[hl++] = (unsigned char)((masked ? 0x80 : 0) | len);
    } else if (len <= 0xffff) {
        hdr[hl++] = (unsigned char)((masked ? 0x80 : 0) | 126);
        hdr[hl++] = (unsigned char)(len >> 8);
        hdr[hl++] = (unsigned char)len;
    } else {
        hdr[hl++] = (unsigned char)((masked ? 0x80 : 0) | 127);
        for (i = 0; i < 8; i++)
            hdr[hl++] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    }
    if (masked) {
        random_bytes(&c->rng, mask, 4);
        memcpy(hdr + hl, mask, 4);
        hl += 4;
    }
    buf = malloc(hl + len + 1);
    if (!buf)
        return WSC_ENOMEM;
    memcpy(buf, hdr, hl);
    for (i = 0; i < len; i++)
        buf[hl + i] = masked ? (unsigned char)(((const unsigned char *)data)[i] ^
                                               mask[i & 3])
                             : ((const unsigned char *)data)[i];
    rc = send_all(c, buf, hl + len, 10000);
    free(buf);
    return rc;
}

static int send_frame(wsc *c, int opcode, int fin, const void *data,
                      size_t len)
{
    return wsc_send_frame_raw(c, (unsigned char)((fin ? 0x80 : 0) | opcode),
                              1, data, len);
}

int wsc_send_text(wsc *c, const char *text)
{
    return send_frame(c, WSC_OP_TEXT, 1, text, strlen(text));
}
int wsc_send_textn(wsc *c, const void *data, size_t len)
{
    return send_frame(c, WSC_OP_TEXT, 1, data, len);
}
int wsc_send_binary(wsc *c, const void *data, size_t len)
{
    return send_frame(c, WSC_OP_BINARY, 1, data, len);
}
int wsc_send_ping(wsc *c, const void *data, size_t len)
{
    return send_frame(c, WSC_OP_PING, 1, data, len);
}
int wsc_send_pong(wsc *c, const void *data, size_t len)
{
    return send_frame(c, WSC_OP_PONG, 1, data, len);
}

int wsc_send_close(wsc *c, int code, const char *reason)
{
    unsigned char p[125];
    c->close_sent = 1;
    size_t n = 0, rl = reason ? strlen(reason) : 0;
    if (code) {
        p[n++] = (unsigned char)(code >> 8);
        p[n++] = (unsigned char)code;
        if (rl > sizeof p - 2)
            rl = sizeof p - 2;
        if (rl)
            memcpy(p + n, reason, rl);
        n += rl;
    }
    return send_frame(c, WSC_OP_CLOSE, 1, p, n);
}

int wsc_send_fragmented(wsc *c, int opcode, const void *data, size_t len,
                        size_t frag)
{
    const unsigned char *p = data;
    size_t off = 0;
    int first = 1;
    if (frag == 0)
        frag = 1;
    do {
        size_t n = len - off < frag ? len - off : frag;
        int fin = off + n == len;
        int rc = send_frame(c, first ? opcode : WSC_OP_CONT, fin, p + off, n);
        if (rc != WSC_OK)
            return rc;
        off += n;
        first = 0;
    } while (off < len);
    return WSC_OK;
}

int wsc_send_compressed(wsc *c, int opcode, const void *data, size_t len)
{
    unsigned char *out;
    size_t cap = len + len / 2 + 64, outlen;
    int rc;
    if (!c->deflate)
        return WSC_EPROTO;
    if (!c->deflate_ready) {
        memset(&c->def, 0, sizeof c->def);
        if (deflateInit2(&c->def, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            return WSC_ENOMEM;
        c->deflate_ready = 1;
    }
    out = malloc(cap);
    if (!out)
        return WSC_ENOMEM;
    c->def.next_in = (Bytef *)(uintptr_t)data;
    c->def.avail_in = (uInt)len;
    c->def.next_out = out;
    c->def.avail_out = (uInt)cap;
    if (deflate(&c->def, Z_SYNC_FLUSH) != Z_OK || c->def.avail_in != 0) {
        free(out);
        return WSC_EIO;
    }
    outlen = cap - c->def.avail_out;
    if (outlen >= 4 && memcmp(out + outlen - 4, "\x00\x00\xff\xff", 4) == 0)
        outlen -= 4;
    if (c->client_no_ctx)
        deflateReset(&c->def);
    rc = wsc_send_frame_raw(c, (unsigned char)(0x80 | 0x40 | opcode), 1, out,
                            outlen);
    free(out);
    return rc;
}

int wsc_send_bytes(wsc *c, const void *data, size_t len)
{
    return send_all(c, data, len, 10000);
}

/* ---- receiving ---- */

int wsc_recv_frame_deadline(wsc *c, wsc_msg *m, int64_t deadline);

int wsc_recv_frame_deadline(wsc *c, wsc_msg *m, int64_t deadline)
{
    memset(m, 0, sizeof *m);
    for (;;) {
        unsigned char *s = c->rbuf + c->rpos;
        size_t have = avail(c), hl = 2;
        uint64_t plen;
        int masked;
        if (have >= 2) {
            masked = s[1] & 0x80;
            plen = s[1] & 0x7f;
            if (plen == 126)
                hl += 2;
            else if (plen == 127)
                hl += 8;
            if (masked)
                hl += 4;
            if (have >= hl) {
                if (plen == 126)
                    plen = ((uint64_t)s[2] << 8) | s[3];
                else if (plen == 127) {
                    size_t i;
                    plen = 0;
                    for (i = 0; i < 8; i++)
                        plen = (plen << 8) | s[2 + i];
                }
                if (masked) {
                    fprintf(stderr, "wsclient: server sent a masked frame\n");
                    return WSC_EPROTO;
                }
                if (plen > ((uint64_t)1 << 31))
                    return WSC_EPROTO;
                if (have >= hl + plen) {
                    m->fin = !!(s[0] & 0x80);
                    m->rsv = (s[0] >> 4) & 7;
                    m->opcode = s[0] & 0x0f;
                    m->len = (size_t)plen;
                    m->data = malloc(m->len + 1);
                    if (!m->data)
                        return WSC_ENOMEM;
                    memcpy(m->data, s + hl, m->len);
                    m->data[m->len] = '\0';
                    c->rpos += hl + m->len;
                    if (m->opcode == WSC_OP_CLOSE) {
                        if (m->len >= 2) {
                            size_t rl = m->len - 2;
                            m->close_code = (m->data[0] << 8) | m->data[1];
                            if (rl >= sizeof m->close_reason)
                                rl = sizeof m->close_reason - 1;
                            memcpy(m->close_reason, m->data + 2, rl);
                            m->close_reason[rl] = '\0';
                        } else {
                            m->close_code = 1005;
                        }
                        /* Answer the close as a browser does (RFC 6455
                         * 5.5.1), so the server can close TCP at once. */
                        if (c->auto_close && !c->close_sent) {
                            int code = m->close_code == 1005 ? 0 : m->close_code;
                            (void)wsc_send_close(c, code, NULL);
                        }
                    } else if (m->opcode == WSC_OP_PING) {
                        c->pings++;
                        if (c->auto_pong) {
                            int rc = wsc_send_pong(c, m->data, m->len);
                            if (rc != WSC_OK && rc != WSC_EOF)
                                return rc;
                        }
                    } else if (m->opcode == WSC_OP_PONG) {
                        c->pongs++;
                    }
                    return WSC_OK;
                }
            }
        }
        {
            int rc = fill(c, deadline);
            if (rc != WSC_OK)
                return rc;
        }
    }
}

int wsc_recv_frame(wsc *c, wsc_msg *m, int timeout_ms)
{
    return wsc_recv_frame_deadline(c, m, now_ms() + timeout_ms);
}

static int inflate_msg(wsc *c, wsc_msg *m)
{
    unsigned char *in, *out = NULL;
    size_t inlen = m->len + 4, cap = m->len * 4 + 1024, outlen = 0;
    int zr;
    if (!c->inflate_ready) {
        memset(&c->inf, 0, sizeof c->inf);
        if (inflateInit2(&c->inf, -15) != Z_OK)
            return WSC_ENOMEM;
        c->inflate_ready = 1;
    }
    in = malloc(inlen);
    if (!in)
        return WSC_ENOMEM;
    memcpy(in, m->data, m->len);
    memcpy(in + m->len, "\x00\x00\xff\xff", 4);
    c->inf.next_in = in;
    c->inf.avail_in = (uInt)inlen;
    for (;;) {
        unsigned char *nb = realloc(out, cap + 1);
        if (!nb) {
            free(in);
            free(out);
            return WSC_ENOMEM;
        }
        out = nb;
        c->inf.next_out = out + outlen;
        c->inf.avail_out = (uInt)(cap - outlen);
        zr = inflate(&c->inf, Z_SYNC_FLUSH);
        outlen = cap - c->inf.avail_out;
        if (zr != Z_OK && zr != Z_BUF_ERROR && zr != Z_STREAM_END) {
            fprintf(stderr, "wsclient: inflate error %d\n", zr);
            free(in);
            free(out);
            return WSC_EPROTO;
        }
        if (c->inf.avail_in == 0 && c->inf.avail_out > 0)
            break;
        if (zr == Z_BUF_ERROR && c->inf.avail_out > 0)
            break;
        cap *= 2;
    }
    free(in);
    if (c->server_no_ctx)
        inflateReset(&c->inf);
    free(m->data);
    out[outlen] = '\0';
    m->data = out;
    m->len = outlen;
    m->compressed = 1;
    return WSC_OK;
}

int wsc_recv_msg(wsc *c, wsc_msg *m, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    wsc_msg f;
    int rc;
    memset(m, 0, sizeof *m);
    for (;;) {
        rc = wsc_recv_frame_deadline(c, &f, deadline);
        if (rc != WSC_OK) {
            wsc_msg_clear(m);
            return rc;
        }
        if (f.opcode == WSC_OP_PING || f.opcode == WSC_OP_PONG) {
            wsc_msg_clear(&f);
            continue;
        }
        if (f.opcode == WSC_OP_CLOSE) {
            if (m->data) { /* close inside a fragmented message */
                wsc_msg_clear(m);
            }
            *m = f;
            return WSC_OK;
        }
        if (f.opcode == WSC_OP_CONT) {
            unsigned char *nb;
            if (!m->data && m->opcode == 0) {
                fprintf(stderr, "wsclient: continuation without start\n");
                wsc_msg_clear(&f);
                return WSC_EPROTO;
            }
            nb = realloc(m->data, m->len + f.len + 1);
            if (!nb) {
                wsc_msg_clear(&f);
                return WSC_ENOMEM;
            }
            m->data = nb;
            memcpy(m->data + m->len, f.data, f.len);
            m->len += f.len;
            m->data[m->len] = '\0';
            m->fin = f.fin;
            wsc_msg_clear(&f);
        } else if (f.opcode == WSC_OP_TEXT || f.opcode == WSC_OP_BINARY) {
            if (m->opcode != 0) {
                fprintf(stderr, "wsclient: new message inside a fragmented one\n");
                wsc_msg_clear(&f);
                wsc_msg_clear(m);
                return WSC_EPROTO;
            }
            *m = f;
        } else {
            fprintf(stderr, "wsclient: unknown opcode %d\n", f.opcode);
            wsc_msg_clear(&f);
            wsc_msg_clear(m);
            return WSC_EPROTO;
        }
        if (m->fin)
            break;
    }
    if (m->rsv & 4) {
        if (!c->deflate) {
            fprintf(stderr, "wsclient: RSV1 without permessage-deflate\n");
            wsc_msg_clear(m);
            return WSC_EPROTO;
        }
        rc = inflate_msg(c, m);
        if (rc != WSC_OK) {
            wsc_msg_clear(m);
            return rc;
        }
    } else if (m->rsv) {
        fprintf(stderr, "wsclient: reserved bits %d set\n", m->rsv);
        wsc_msg_clear(m);
        return WSC_EPROTO;
    }
    return WSC_OK;
}

int wsc_wait_eof(wsc *c, int timeout_ms, size_t *bytes)
{
    int64_t deadline = now_ms() + timeout_ms;
    size_t total = 0;
    for (;;) {
        int rc;
        total += avail(c);
        c->rpos = c->rlen = 0;
        rc = fill(c, deadline);
        if (rc != WSC_OK) {
            if (bytes)
                *bytes = total;
            return rc;
        }
    }
}

/* ---- plain HTTP ---- */

static int http_exchange(const char *addr, int port, const char *req,
                         int timeout_ms, int *status, char **body,
                         size_t *body_len)
{
    int64_t deadline = now_ms() + timeout_ms;
    wsc *c;
    size_t head_len;
    char *head, val[64];
    int rc, chunked = 0;
    long clen = -1;
    unsigned char *b = NULL;
    size_t bl = 0;

    *status = 0;
    if (body)
        *body = NULL;
    if (body_len)
        *body_len = 0;
    c = calloc(1, sizeof *c);
    if (!c)
        return WSC_ENOMEM;
    c->fd = tcp_connect(addr, port, 0, timeout_ms);
    if (c->fd < 0) {
        free(c);
        return WSC_ECONN;
    }
    rc = send_all(c, req, strlen(req), remaining(deadline));
    if (rc != WSC_OK)
        goto out;
    rc = read_head(c, deadline, &head_len);
    if (rc != WSC_OK)
        goto out;
    head = malloc(head_len + 1);
    if (!head) {
        rc = WSC_ENOMEM;
        goto out;
    }
    memcpy(head, c->rbuf + c->rpos, head_len);
    head[head_len] = '\0';
    c->rpos += head_len;
    if (sscanf(head, "HTTP/1.%*d %d", status) != 1) {
        free(head);
        rc = WSC_EPROTO;
        goto out;
    }
    if (find_header(head, "Content-Length", val, sizeof val))
        clen = strtol(val, NULL, 10);
    if (find_header(head, "Transfer-Encoding", val, sizeof val) &&
        strcasestr(val, "chunked"))
        chunked = 1;
    free(head);
    if (chunked) {
        /* Decode chunks: size line, data, CRLF; 0 ends. */
        for (;;) {
            unsigned char *s = c->rbuf + c->rpos;
            size_t have = avail(c), i;
            int found = 0;
            for (i = 0; i + 1 < have; i++)
                if (s[i] == '\r' && s[i + 1] == '\n') {
                    found = 1;
                    break;
                }
            if (found) {
                unsigned long sz = strtoul((const char *)s, NULL, 16);
                if (have >= i + 2 + sz + 2) {
                    unsigned char *nb;
                    if (sz == 0)
                        break;
                    nb = realloc(b, bl + sz + 1);
                    if (!nb) {
                        rc = WSC_ENOMEM;
                        goto out;
                    }
                    b = nb;
                    memcpy(b + bl, s + i + 2, sz);
                    bl += sz;
                    c->rpos += i + 2 + sz + 2;
                    continue;
                }
            }
            rc = fill(c, deadline);
            if (rc != WSC_OK)
                goto out;
        }
    } else {
        for (;;) {
            if (clen >= 0 && avail(c) >= (size_t)clen)
                break;
            rc = fill(c, deadline);
            if (rc == WSC_EOF && clen < 0)
                break;
            if (rc != WSC_OK)
                goto out;
        }
        bl = clen >= 0 ? (size_t)clen : avail(c);
        b = malloc(bl + 1);
        if (!b) {
            rc = WSC_ENOMEM;
            goto out;
        }
        memcpy(b, c->rbuf + c->rpos, bl);
    }
    rc = WSC_OK;
    if (!b)
        b = calloc(1, 1);
    if (b)
        b[bl] = '\0';
    if (body) {
        *body = (char *)b;
        b = NULL;
    }
    if (body_len)
        *body_len = bl;
out:
    free(b);
    wsc_free(c);
    return rc;
}

int wsc_http_raw(const char *addr, int port, const char *request,
                 int timeout_ms, int *status, char **body, size_t *body_len)
{
    return http_exchange(addr ? addr : "127.0.0.1", port, request, timeout_ms,
                         status, body, body_len);
}

int wsc_http_get(const char *addr, int port, const char *path,
                 const char *extra_headers, int timeout_ms, int *status,
                 char **body, size_t *body_len)
{
    char req[4096];
    const char *a = addr ? addr : "127.0.0.1";
    if (strchr(a, ':'))
        snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: [%s]:%d\r\nConnection: close\r\n%s\r\n",
                 path, a, port, extra_headers ? extra_headers : "");
    else
        snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n%s\r\n",
                 path, a, port, extra_headers ? extra_headers : "");
    return http_exchange(a, port, req, timeout_ms, status, body, body_len);
}
