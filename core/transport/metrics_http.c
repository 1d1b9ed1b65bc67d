#include "transport/metrics_http.h"

#include "shell/options.h"
#include "transport/lws_state.h"
#include "transport/queue_depth.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Body bytes per writable turn: a long answer leaves in several turns, so
 * other clients are served in between and lws never has to copy a large
 * remainder into its own buffer. */
#define BODY_CHUNK 4096
/* The text is a few kilobytes; it grows only with the broker's lines. */
#define FIRST_GUESS 8192

struct wsni_metrics_reply {
    size_t len, off;
    unsigned char data[]; /* LWS_PRE, then the body */
};

static const char content_type[] = "text/plain; version=0.0.4; charset=utf-8";

const struct lws_http_mount *wsni_metrics_http_mount(wsn_server *srv,
                                                     const struct lws_http_mount *next)
{
    if (!opt_int(srv->opts, WSN_OPT_METRICS))
        return next;
    srv->lws->mount_metrics = (struct lws_http_mount){
        .mount_next = next,
        .mountpoint = "/metrics",
        .origin_protocol = LWSMPRO_CALLBACK,
        .protocol = "wsnotify.json",
        .mountpoint_len = 8,
    };
    return &srv->lws->mount_metrics;
}

int wsni_metrics_http_wanted(wsn_server *srv, struct lws *wsi)
{
    char uri[16];
    if (!opt_int(srv->opts, WSN_OPT_METRICS) ||
        lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) != 8 ||
        lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0)
        return 0;
    return !strcmp(uri, "/metrics");
}

/* "Authorization: Bearer <token>", the scheme in any case (RFC 7235);
 * compared in constant time, so the answer's timing tells nothing of how
 * much of a guess was right. */
static int authorized(wsn_server *srv, struct lws *wsi)
{
    const char *token = opt_str(srv->opts, WSN_OPT_METRICS_TOKEN);
    size_t want = strlen(token);
    if (!want)
        return 1;
    char got[512];
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n <= 7 || (size_t)n >= sizeof(got) ||
        lws_hdr_copy(wsi, got, sizeof(got), WSI_TOKEN_HTTP_AUTHORIZATION) < 0 ||
        strncasecmp(got, "Bearer ", 7))
        return 0;
    const char *given = got + 7;
    size_t len = strlen(given);
    unsigned char diff = len != want;
    for (size_t i = 0; i < want; i++)
        diff |= (unsigned char)(token[i] ^ given[i < len ? i : 0]);
    return !diff;
}

static struct wsni_metrics_reply *reply_new(size_t cap)
{
    struct wsni_metrics_reply *r = malloc(sizeof(*r) + LWS_PRE + cap);
    if (r)
        r->len = r->off = 0;
    return r;
}

/* The text, made now: the fullest queue is walked first, since this runs
 * on the I/O thread anyway. */
static struct wsni_metrics_reply *metrics_body(wsn_server *srv)
{
    wsni_queue_depth_refresh(srv);
    size_t cap = FIRST_GUESS;
    for (int tries = 0; tries < 4; tries++) {
        struct wsni_metrics_reply *r = reply_new(cap);
        if (!r)
            return NULL;
        size_t len;
        int rc = wsn_server_metrics_text(srv, (char *)r->data + LWS_PRE, cap, &len);
        if (rc == WSN_OK) {
            r->len = len;
            return r;
        }
        free(r);
        if (rc != WSN_ENOSPC)
            return NULL;
        cap = len + 1024;
    }
    return NULL;
}

static struct wsni_metrics_reply *text_body(const char *text)
{
    size_t len = strlen(text);
    struct wsni_metrics_reply *r = reply_new(len);
    if (r) {
        memcpy(r->data + LWS_PRE, text, len);
        r->len = len;
    }
    return r;
}

int wsni_metrics_http_headers(wsn_server *srv, struct lws *wsi, struct wsni_metrics_reply **reply)
{
    unsigned char buf[LWS_PRE + 512];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
    wsni_metrics_http_free(reply);
    int ok = authorized(srv, wsi);
    if (!(*reply = ok ? metrics_body(srv) : text_body("a bearer token is required\n")))
        return lws_return_http_status(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR, NULL) ? -1 : 1;
    if (lws_add_http_common_headers(wsi, ok ? HTTP_STATUS_OK : HTTP_STATUS_UNAUTHORIZED,
                                    ok ? content_type : "text/plain", (*reply)->len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        (!ok && lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_WWW_AUTHENTICATE,
                                             (const unsigned char *)"Bearer", 6, &p, end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    lws_callback_on_writable(wsi);
    return 0;
}

int wsni_metrics_http_body(struct lws *wsi, struct wsni_metrics_reply **reply)
{
    struct wsni_metrics_reply *r = *reply;
    size_t n = r->len - r->off;
    int last = n <= BODY_CHUNK;
    if (!last)
        n = BODY_CHUNK;
    /* lws may write its framing into the LWS_PRE bytes before the part
     * (over body bytes already sent: harmless). */
    enum lws_write_protocol kind = last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP;
    if (lws_write(wsi, r->data + LWS_PRE + r->off, n, kind) != (int)n)
        return -1;
    r->off += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    wsni_metrics_http_free(reply);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void wsni_metrics_http_free(struct wsni_metrics_reply **reply)
{
    free(*reply);
    *reply = NULL;
}
