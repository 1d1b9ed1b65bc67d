/*
 * wsclient: a small blocking RFC 6455 client for the wsnotify tests.
 *
 * One wsc object is one TCP connection, used by one thread at a time. Every
 * call that waits takes a timeout in milliseconds and never blocks longer.
 * Frames sent by the client are masked (unless a raw call says otherwise);
 * frames from the server are checked to be unmasked.
 *
 * permessage-deflate: with opts.deflate the client offers the extension; if
 * the server accepts it, compressed (RSV1) messages are inflated on receipt
 * (zlib, raw deflate, RFC 7692) and wsc_send_compressed() can send one.
 *
 * TLS (wss://): with opts.tls_ca the connection is TLS (OpenSSL), the
 * server's certificate checked against that CA file and opts.tls_host;
 * opts.tls_cert/tls_key give a client certificate.
 */
#ifndef WSN_TEST_WSCLIENT_H
#define WSN_TEST_WSCLIENT_H

#include <stddef.h>
#include <stdint.h>

/* Results of wsc calls. */
enum {
    WSC_OK = 0,
    WSC_EOF = -1,      /* the peer closed TCP */
    WSC_TIMEOUT = -2,  /* nothing arrived in time */
    WSC_ECONN = -3,    /* connect() failed (refused, ...) */
    WSC_EPROTO = -4,   /* the peer broke the protocol (bad frame, bad accept) */
    WSC_EHTTP = -5,    /* the upgrade was answered with another status */
    WSC_EIO = -6,      /* a socket error other than EOF */
    WSC_ENOMEM = -7,
    WSC_ETLS = -8      /* the TLS handshake failed, or a TLS alert came */
};

/* Opcodes. */
enum {
    WSC_OP_CONT = 0x0,
    WSC_OP_TEXT = 0x1,
    WSC_OP_BINARY = 0x2,
    WSC_OP_CLOSE = 0x8,
    WSC_OP_PING = 0x9,
    WSC_OP_PONG = 0xA
};

typedef struct wsc wsc;

typedef struct wsc_opts {
    const char *addr;          /* "127.0.0.1" (default) or "::1" */
    int port;                  /* required */
    const char *path;          /* default "/ws" */
    const char *host_header;   /* default "addr:port" ("[::1]:port") */
    const char *origin;        /* NULL: no Origin header */
    const char *protocol;      /* NULL: no Sec-WebSocket-Protocol */
    const char *extra_headers; /* raw "Name: value\r\n" lines, or NULL */
    int rcvbuf;                /* >0: SO_RCVBUF set before connect() */
    int no_auto_pong;          /* 1: never answer pings */
    int no_auto_close;         /* 1: never answer a close frame */
    int deflate;               /* 1: offer permessage-deflate */
    int timeout_ms;            /* handshake timeout, default 5000 */
    const char *tls_ca;        /* non-NULL: TLS, the server verified with
                                  this CA file */
    const char *tls_host;      /* name the certificate must carry, default
                                  "localhost" (also sent as SNI) */
    const char *tls_cert;      /* client certificate (PEM) or NULL */
    const char *tls_key;       /* its key */
} wsc_opts;

/* One received frame or message. data is malloc'ed, NUL-terminated, owned by
 * the struct: wsc_msg_clear() frees it. */
typedef struct wsc_msg {
    int opcode;     /* WSC_OP_TEXT / BINARY / CLOSE (PING/PONG for frames) */
    int fin;        /* frames only */
    int rsv;        /* the RSV bits of the (first) frame, 0..7 */
    int compressed; /* the message was permessage-deflate compressed */
    unsigned char *data;
    size_t len;
    int close_code;        /* close frames: the code, 1005 when none */
    char close_reason[128];
} wsc_msg;

void wsc_msg_clear(wsc_msg *m);

/* Connects and upgrades. Returns WSC_OK and *out, or an error; with
 * WSC_EHTTP *http_status (may be NULL) receives the status code of the
 * answer (403, 404, 503...). *http_status is 101 on success, 0 when the
 * server answered nothing. */
int wsc_connect(const wsc_opts *opts, wsc **out, int *http_status);

/* Closes the socket (no close frame) and frees. NULL is fine. */
void wsc_free(wsc *c);

/* The response's Sec-WebSocket-Protocol / Sec-WebSocket-Extensions ("" when
 * absent). */
const char *wsc_subprotocol(const wsc *c);
const char *wsc_extensions(const wsc *c);
int wsc_deflate_active(const wsc *c);
int wsc_fd(const wsc *c);
/* TLS: SHA-256 of the server's certificate (DER) into out; 0, or -1
 * without TLS. */
int wsc_tls_fingerprint(const wsc *c, unsigned char out[32]);

/* Counters of control frames seen by the receive calls. */
int wsc_pings_received(const wsc *c);
int wsc_pongs_received(const wsc *c);
void wsc_set_auto_pong(wsc *c, int on);

/* --- sending (all masked unless said otherwise) --- */
int wsc_send_text(wsc *c, const char *text);
int wsc_send_textn(wsc *c, const void *data, size_t len);
int wsc_send_binary(wsc *c, const void *data, size_t len);
int wsc_send_ping(wsc *c, const void *data, size_t len);
int wsc_send_pong(wsc *c, const void *data, size_t len);
/* code 0: an empty close payload. */
int wsc_send_close(wsc *c, int code, const char *reason);
/* One frame with the first header byte given in full (FIN|RSV|opcode) and
 * masking chosen by the caller: for hostile-input tests. */
int wsc_send_frame_raw(wsc *c, unsigned char byte0, int masked,
                       const void *data, size_t len);
/* A message split into frames of at most frag bytes. */
int wsc_send_fragmented(wsc *c, int opcode, const void *data, size_t len,
                        size_t frag);
/* A compressed (RSV1) message; needs wsc_deflate_active(). */
int wsc_send_compressed(wsc *c, int opcode, const void *data, size_t len);
/* Arbitrary bytes on the socket. */
int wsc_send_bytes(wsc *c, const void *data, size_t len);

/* --- receiving --- */

/* The next frame of any kind (pings are still answered unless auto-pong is
 * off). Compressed frames are returned as they are (not inflated). */
int wsc_recv_frame(wsc *c, wsc_msg *m, int timeout_ms);

/* The next message: fragments are joined, compressed messages inflated,
 * pings answered (unless off) and counted, pongs counted; close frames are
 * returned as a message with opcode WSC_OP_CLOSE. The timeout is for the
 * whole message. */
int wsc_recv_msg(wsc *c, wsc_msg *m, int timeout_ms);

/* Reads until the peer closes TCP or timeout: WSC_EOF when it closed,
 * ignoring any data. *bytes (may be NULL) receives the count discarded. */
int wsc_wait_eof(wsc *c, int timeout_ms, size_t *bytes);

/* Text name of a WSC_* result. */
const char *wsc_strerror(int rc);

/* --- plain HTTP --- */

/* GET path with Connection: close. *status gets the code, *body (may be
 * NULL) a malloc'ed NUL-terminated body (Content-Length, chunked or
 * read-to-EOF). Returns WSC_OK or an error (timeout included). */
int wsc_http_get(const char *addr, int port, const char *path,
                 const char *extra_headers, int timeout_ms, int *status,
                 char **body, size_t *body_len);

/* Like wsc_http_get but the raw request is given in full. */
int wsc_http_raw(const char *addr, int port, const char *request,
                 int timeout_ms, int *status, char **body, size_t *body_len);

#endif
