#include "transport/gate.h"
#include "transport/headers.h"

#include "shell/events.h"
#include "shell/options.h"
#include "shell/server.h"
#include "shell/upgrade_ids.h"
#include "transport/lws_state.h"
#include "util/hash.h"
#include "util/strbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* A request head bigger than this is refused with 431; what lws itself
 * allows is max_http_header_data (4096 by default), so nothing lws would
 * take is lost. */
#define GATE_HEAD_MAX 8192
/* After a refusal the peer gets this long to read it and hang up before
 * the socket is cut (closing with its bytes unread could turn our answer
 * into a reset it never reads). */
#define GATE_LINGER_US (1000 * 1000)
/* Close code of a refusal after a TLS handshake: 4000 + the HTTP status. */
#define HELD_CLOSE_BASE 4000

enum wait_stage { READING, ASKED, LINGER, HELD_CAPTURED, HELD_ASKED, HELD_REFUSED };

struct wsni_address_count {
    UT_hash_handle hh;
    int count;
    char addr[48];
};

/* What a connection carries through lws (its opaque user data). */
struct conn_tag {
    struct wsni_address_count *address; /* counted, or NULL */
    struct wsni_gate_wait *wait;        /* while it waits for the host */
    wsni_upgrade_answer *answer;        /* accepted: applied at connect */
};

struct wsni_gate_wait {
    UT_hash_handle hh; /* in waits_by_id while ASKED or HELD_ASKED */
    uint64_t id;
    wsn_server *srv;
    struct lws *wsi;
    int fd; /* the gate's raw socket; -1 when held */
    enum wait_stage stage;
    wsni_timer timer;
    char *buf; /* READING..ASKED: bytes read (head and what followed) */
    size_t len;
    wsn_event *event; /* HELD_CAPTURED: made at capture, emitted at connect */
    int close_code;   /* HELD_REFUSED */
    char reason[124];
};

static struct conn_tag *tag_of(struct lws *wsi) { return lws_get_opaque_user_data(wsi); }

/* --- the address cap ------------------------------------------------------ */

static struct wsni_address_count *address_take(wsn_server *srv, const char *addr)
{
    int cap = (int)opt_int(srv->opts, WSN_OPT_MAX_CLIENTS_PER_ADDRESS);
    struct wsni_address_count *a = NULL;
    HASH_FIND_STR(srv->lws->by_address, addr, a);
    if (a && a->count >= cap)
        return NULL;
    if (!a) {
        if (!(a = calloc(1, sizeof(*a))))
            return NULL;
        snprintf(a->addr, sizeof(a->addr), "%s", addr);
        HASH_ADD_STR(srv->lws->by_address, addr, a);
    }
    a->count++;
    return a;
}

static void address_give_back(wsn_server *srv, struct wsni_address_count *a)
{
    if (!a || --a->count > 0)
        return;
    HASH_DEL(srv->lws->by_address, a);
    free(a);
}

/* --- waits ---------------------------------------------------------------- */

/* The wait is no longer one the host may answer. */
static void unask(wsn_server *srv, struct wsni_gate_wait *w)
{
    HASH_DEL(srv->lws->waits_by_id, w);
    srv->lws->waits_asked--;
    wsni_upgrade_waiting(srv, w->id, 0);
}

static void wait_free(wsn_server *srv, struct wsni_gate_wait *w)
{
    if (w->stage == ASKED || w->stage == HELD_ASKED)
        unask(srv, w);
    wsni_timer_cancel(srv, &w->timer);
    wsn_event_free(w->event);
    free(w->buf);
    free(w);
}

static const char *status_text(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 500 ? "Client Error" : "Server Error";
    }
}

static void linger_over(wsni_timer *t)
{
    struct wsni_gate_wait *w = wsni_container_of(t, struct wsni_gate_wait, timer);
    lws_set_timeout(w->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* The raw socket answers with the status and waits for the peer to hang
 * up (or GATE_LINGER_US). The answer is small: it fits a fresh socket's
 * send buffer, and a peer that will not take it loses only it. */
static void refuse_raw(wsn_server *srv, struct wsni_gate_wait *w, int status, const char *body)
{
    /* Unasked before the answer leaves: a peer that has read it may make
     * the host answer at once, and that answer must find the id gone. */
    if (w->stage == ASKED)
        unask(srv, w);
    char head[256];
    size_t body_len = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                     "content-length: %zu\r\nconnection: close\r\n\r\n",
                     status, status_text(status), body_len);
    if (send(w->fd, head, (size_t)n, MSG_NOSIGNAL | (body_len ? MSG_MORE : 0)) == n && body_len)
        (void)!send(w->fd, body, body_len, MSG_NOSIGNAL);
    shutdown(w->fd, SHUT_WR);
    w->stage = LINGER;
    free(w->buf);
    w->buf = NULL;
    lws_rx_flow_control(w->wsi, 1);
    wsni_timer_arm(srv, &w->timer, linger_over, GATE_LINGER_US);
}

static void refuse_held(wsn_server *srv, struct wsni_gate_wait *w, int status, const char *body)
{
    if (w->stage == HELD_ASKED)
        unask(srv, w);
    wsni_timer_cancel(srv, &w->timer);
    w->stage = HELD_REFUSED;
    w->close_code = HELD_CLOSE_BASE + status;
    /* A close reason is at most 123 bytes; cut at a UTF-8 boundary. */
    size_t n = body ? strlen(body) : 0;
    if (n > sizeof(w->reason) - 1) {
        n = sizeof(w->reason) - 1;
        while (n && ((unsigned char)body[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(w->reason, body ? body : "", n);
    w->reason[n] = 0;
    lws_callback_on_writable(w->wsi);
}

static void refuse(wsn_server *srv, struct wsni_gate_wait *w, int status, const char *body,
                   wsni_refusal why)
{
    wsni_count_io(&srv->counters.refused[why], 1);
    if (w->fd >= 0)
        refuse_raw(srv, w, status, body);
    else
        refuse_held(srv, w, status, body);
}

static void wait_timeout(wsni_timer *t)
{
    struct wsni_gate_wait *w = wsni_container_of(t, struct wsni_gate_wait, timer);
    wsn_server *srv = w->srv;
    if (w->stage == READING) {
        refuse(srv, w, 408, "request not received in time", WSNI_REFUSED_BAD_REQUEST);
        return;
    }
    unsigned n = wsni_ratelog_due(&srv->lws->gate_log);
    if (n)
        wsni_log(srv, WSN_LOG_WARN, "%u upgrades refused with 503: no answer from the host in %lld ms",
                 n, (long long)opt_int(srv->opts, WSN_OPT_AUTH_TIMEOUT));
    refuse(srv, w, 503, "no answer from the host in time", WSNI_REFUSED_AUTH_TIMEOUT);
}

/* The wait gets an id and its event; at the queue's bound it is refused
 * instead. Returns the event to emit, or NULL. */
static wsn_event *ask(wsn_server *srv, struct wsni_gate_wait *w, wsn_event *ev)
{
    if (srv->lws->waits_asked >= (size_t)opt_int(srv->opts, WSN_OPT_AUTH_QUEUE)) {
        wsn_event_free(ev);
        unsigned n = wsni_ratelog_due(&srv->lws->gate_log);
        if (n)
            wsni_log(srv, WSN_LOG_WARN, "%u upgrades refused with 503: auth_queue (%lld) full", n,
                     (long long)opt_int(srv->opts, WSN_OPT_AUTH_QUEUE));
        refuse(srv, w, 503, "too many upgrades waiting", WSNI_REFUSED_AUTH_QUEUE);
        return NULL;
    }
    char id[24];
    snprintf(id, sizeof(id), "%" PRIu64, ++srv->lws->last_upgrade_id);
    if (!(ev->msg.message_id = strdup(id))) {
        wsn_event_free(ev);
        refuse(srv, w, 503, "out of memory", WSNI_REFUSED_AUTH_QUEUE);
        return NULL;
    }
    ev->upgrade_id = w->id = srv->lws->last_upgrade_id;
    w->stage = w->fd >= 0 ? ASKED : HELD_ASKED;
    HASH_ADD(hh, srv->lws->waits_by_id, id, sizeof(w->id), w);
    srv->lws->waits_asked++;
    wsni_upgrade_waiting(srv, w->id, 1);
    return ev;
}

/* An UPGRADE event: path, query, header lines, peer (the id comes with
 * ask). Takes nothing; NULL without memory. */
static wsn_event *upgrade_event(const char *path, size_t path_len, const char *query,
                                size_t query_len, const char *headers, size_t headers_len,
                                const char *peer)
{
    wsn_event *ev = wsni_event_new(WSN_EVENT_UPGRADE, NULL);
    if (!ev)
        return NULL;
    ev->msg.type = WSN_TYPE_TEXT;
    ev->msg.channel = strndup(path, path_len);
    ev->query = strndup(query, query_len);
    /* The payload's length is headers_len: exactly that many bytes. */
    if ((ev->msg.payload = malloc(headers_len + 1))) {
        memcpy(ev->msg.payload, headers, headers_len);
        ev->msg.payload[headers_len] = 0;
    }
    ev->msg.payload_len = headers_len;
    ev->msg.reply_to_id = strdup(peer);
    if (!ev->msg.channel || !ev->query || !ev->msg.payload || !ev->msg.reply_to_id) {
        wsn_event_free(ev);
        return NULL;
    }
    return ev;
}

/* --- plain connections: the gate reads the request ------------------------ */

static int header_has_token(const char *head, size_t len, const char *name, const char *token)
{
    size_t name_len = strlen(name);
    for (const char *line = head; line < head + len;) {
        const char *eol = memchr(line, '\n', (size_t)(head + len - line));
        const char *end = eol ? eol : head + len;
        if ((size_t)(end - line) > name_len && line[name_len] == ':' &&
            !strncasecmp(line, name, name_len)) {
            size_t vlen = (size_t)(end - line) - name_len - 1;
            char *v = strndup(line + name_len + 1, vlen);
            int found = v && strcasestr(v, token);
            free(v);
            if (found)
                return 1;
        }
        line = eol ? eol + 1 : end;
    }
    return 0;
}

/* lws takes the socket and what was read, as if it had just accepted it;
 * the tag (address count, answer) goes with it. */
/* lws serves a socket given with bytes already read inside the adopt
 * call, before it returns the wsi: the tag waits in adopting for
 * wsni_gate_adopted. Returns the wsi or NULL; either way the tag is lws's
 * or freed. */
static struct lws *adopt(wsn_server *srv, int fd, struct conn_tag *tag, const void *buf,
                         size_t len)
{
    srv->lws->adopting = tag;
    uint64_t tls_refused = wsni_counter_read(&srv->counters.refused[WSNI_REFUSED_TLS]);
    /* On failure lws has closed fd. */
    struct lws *wsi = len ? lws_adopt_socket_vhost_readbuf(srv->lws->vhost, fd, buf, len)
                          : lws_adopt_socket_vhost(srv->lws->vhost, fd);
    if (srv->lws->adopting) {
        srv->lws->adopting = NULL;
        if (wsi) {
            lws_set_opaque_user_data(wsi, tag);
        } else if (tag) {
            wsni_upgrade_answer_free(tag->answer);
            address_give_back(srv, tag->address);
            free(tag);
        }
    }
    /* With bytes given, lws serves them inside the call: a request it
     * answered and closed at once comes back NULL too. So does a TLS
     * handshake that failed at once (plain HTTP on the port): tls.c
     * counted it. */
    if (!wsi && wsni_counter_read(&srv->counters.refused[WSNI_REFUSED_TLS]) == tls_refused)
        wsni_log(srv, len ? WSN_LOG_DEBUG : WSN_LOG_ERROR,
                 "lws did not keep an accepted connection");
    return wsi;
}

void wsni_gate_adopted(wsn_server *srv, struct lws *wsi)
{
    if (!srv->lws->adopting)
        return;
    lws_set_opaque_user_data(wsi, srv->lws->adopting);
    srv->lws->adopting = NULL;
}

/* lws takes the socket and what was read, as if it had just accepted it;
 * the tag (address count, answer) goes with it. */
static void hand_over(wsn_server *srv, struct wsni_gate_wait *w, wsni_upgrade_answer *answer)
{
    struct conn_tag *tag = tag_of(w->wsi);
    lws_set_opaque_user_data(w->wsi, NULL);
    tag->wait = NULL;
    tag->answer = answer;
    int fd = dup(w->fd);
    if (fd >= 0) {
        adopt(srv, fd, tag, w->buf, w->len);
    } else {
        wsni_upgrade_answer_free(answer);
        address_give_back(srv, tag->address);
        free(tag);
    }
    lws_set_timeout(w->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    wait_free(srv, w);
}

static const char *find_head_end(const char *buf, size_t len)
{
    for (size_t i = 3; i < len; i++)
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
            return buf + i + 1;
    return NULL;
}

/* The whole head is in: ask the host about an upgrade on our path, hand
 * anything else to lws. */
static wsn_event *head_complete(wsn_server *srv, struct wsni_gate_wait *w, const char *end)
{
    /* A NUL has no place in a request head, and every field below is
     * handed on as C text: refused rather than cut short. */
    if (memchr(w->buf, 0, (size_t)(end - w->buf))) {
        refuse(srv, w, 400, "NUL byte in the request", WSNI_REFUSED_BAD_REQUEST);
        return NULL;
    }
    const char *line_end = memchr(w->buf, '\r', (size_t)(end - w->buf));
    const char *sp1 = memchr(w->buf, ' ', (size_t)(line_end - w->buf));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
    const char *headers = line_end + 2;
    size_t headers_len = (size_t)(end - 2 - headers);
    int is_get = sp1 && (size_t)(sp1 - w->buf) == 3 && !memcmp(w->buf, "GET", 3);
    if (!sp2 || !is_get || !header_has_token(headers, headers_len, "upgrade", "websocket")) {
        hand_over(srv, w, NULL);
        return NULL;
    }
    const char *target = sp1 + 1;
    const char *q = memchr(target, '?', (size_t)(sp2 - target));
    const char *path_end = q ? q : sp2;
    const char *path = opt_str(srv->opts, WSN_OPT_PATH);
    if ((size_t)(path_end - target) != strlen(path) || memcmp(target, path, strlen(path))) {
        hand_over(srv, w, NULL); /* lws answers 404 */
        return NULL;
    }
    char peer[64] = "";
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (!getpeername(w->fd, (struct sockaddr *)&ss, &sl))
        lws_sa46_write_numeric_address((lws_sockaddr46 *)&ss, peer, sizeof(peer));
    const char *query = q ? q + 1 : sp2;
    wsn_event *ev = upgrade_event(target, (size_t)(path_end - target), query,
                                  (size_t)(sp2 - query), headers, headers_len, peer);
    if (!ev) {
        refuse(srv, w, 503, "out of memory", WSNI_REFUSED_AUTH_QUEUE);
        return NULL;
    }
    lws_rx_flow_control(w->wsi, 0); /* nothing more is read until the answer */
    return ask(srv, w, ev);
}

int wsni_gate_readable(wsn_server *srv, struct lws *wsi, wsn_event **emit)
{
    *emit = NULL;
    struct conn_tag *tag = tag_of(wsi);
    struct wsni_gate_wait *w = tag ? tag->wait : NULL;
    if (!w)
        return -1;
    if (w->stage == LINGER) {
        char sink[512];
        ssize_t n = read(w->fd, sink, sizeof(sink));
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ? -1 : 0;
    }
    if (w->stage != READING)
        return 0;
    if (!w->buf && !(w->buf = malloc(GATE_HEAD_MAX)))
        return -1;
    ssize_t n = read(w->fd, w->buf + w->len, GATE_HEAD_MAX - w->len);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (n == 0)
        return -1; /* the peer left before finishing its request */
    w->len += (size_t)n;
    const char *end = find_head_end(w->buf, w->len);
    if (end) {
        *emit = head_complete(srv, w, end);
        return 0;
    }
    if (w->len == GATE_HEAD_MAX)
        refuse(srv, w, 431, "request head over 8192 bytes", WSNI_REFUSED_BAD_REQUEST);
    return 0;
}

wsn_event *wsni_gate_admit(wsn_server *srv, int fd, const char *addr, const void *head,
                           size_t head_len)
{
    struct conn_tag *tag = NULL;
    if (opt_int(srv->opts, WSN_OPT_MAX_CLIENTS_PER_ADDRESS) ||
        opt_int(srv->opts, WSN_OPT_AUTHENTICATE)) {
        tag = calloc(1, sizeof(*tag));
        if (!tag) {
            close(fd);
            return NULL;
        }
    }
    if (tag && opt_int(srv->opts, WSN_OPT_MAX_CLIENTS_PER_ADDRESS) &&
        !(tag->address = address_take(srv, addr))) {
        free(tag);
        close(fd);
        wsni_count_io(&srv->counters.refused[WSNI_REFUSED_PER_ADDRESS], 1);
        unsigned n = wsni_ratelog_due(&srv->lws->address_log);
        if (n)
            wsni_log(srv, WSN_LOG_WARN,
                     "max_clients_per_address (%lld): %u connections from %s closed at accept",
                     (long long)opt_int(srv->opts, WSN_OPT_MAX_CLIENTS_PER_ADDRESS), n, addr);
        return NULL;
    }
    /* Over TLS lws must read the request: its connections wait after the
     * handshake instead (wsni_gate_hold). */
    if (!opt_int(srv->opts, WSN_OPT_AUTHENTICATE) || srv->lws->tls) {
        adopt(srv, fd, tag, head, head_len);
        return NULL;
    }
    struct wsni_gate_wait *w = calloc(1, sizeof(*w));
    if (!w) {
        address_give_back(srv, tag->address);
        free(tag);
        close(fd);
        return NULL;
    }
    w->srv = srv;
    w->fd = fd;
    w->stage = READING;
    tag->wait = w;
    lws_sock_file_fd_type desc = {.filefd = fd};
    w->wsi = lws_adopt_descriptor_vhost(srv->lws->vhost, LWS_ADOPT_RAW_FILE_DESC, desc,
                                        "wsnotify.json", NULL);
    if (!w->wsi) {
        /* lws has closed fd */
        address_give_back(srv, tag->address);
        free(tag);
        free(w);
        return NULL;
    }
    lws_set_opaque_user_data(w->wsi, tag);
    wsni_timer_arm(srv, &w->timer, wait_timeout, opt_int(srv->opts, WSN_OPT_AUTH_TIMEOUT) * 1000);
    if (!head_len)
        return NULL;
    /* A front read the head already: it is taken as if read here, and
     * the rest (if the front gave less than the head) comes from the
     * socket. */
    if (head_len > GATE_HEAD_MAX) {
        refuse(srv, w, 431, "request head over 8192 bytes", WSNI_REFUSED_BAD_REQUEST);
        return NULL;
    }
    if (!(w->buf = malloc(GATE_HEAD_MAX))) {
        refuse(srv, w, 503, "out of memory", WSNI_REFUSED_AUTH_QUEUE);
        return NULL;
    }
    memcpy(w->buf, head, head_len);
    w->len = head_len;
    const char *end = find_head_end(w->buf, w->len);
    return end ? head_complete(srv, w, end) : NULL;
}

void wsni_gate_closing(wsn_server *srv, struct lws *wsi)
{
    struct conn_tag *tag = tag_of(wsi);
    if (!tag || !tag->wait)
        return;
    wait_free(srv, tag->wait);
    tag->wait = NULL;
}

void wsni_gate_forget(wsn_server *srv, struct lws *wsi)
{
    struct conn_tag *tag = tag_of(wsi);
    if (!tag)
        return;
    lws_set_opaque_user_data(wsi, NULL);
    if (tag->wait)
        wait_free(srv, tag->wait);
    wsni_upgrade_answer_free(tag->answer);
    address_give_back(srv, tag->address);
    free(tag);
}

wsni_upgrade_answer *wsni_gate_take_answer(struct lws *wsi)
{
    struct conn_tag *tag = tag_of(wsi);
    if (!tag)
        return NULL;
    wsni_upgrade_answer *a = tag->answer;
    tag->answer = NULL;
    return a;
}

int wsni_gate_unanswered(struct lws *wsi)
{
    struct conn_tag *tag = tag_of(wsi);
    return !tag || !tag->answer;
}

/* --- TLS connections: held after the handshake ---------------------------- */

/* lws keeps the headers it knows in a table of tokens; their names come
 * with the colon ("host:"). Headers it does not know are not kept. */
static int held_headers(struct lws *wsi, strbuf *out)
{
    for (int t = WSI_TOKEN_HOST; t < WSI_TOKEN_COUNT; t++) {
        const char *name = (const char *)lws_token_to_string((enum lws_token_indexes)t);
        if (!name || !*name || name[strlen(name) - 1] != ':')
            continue;
        int len;
        char *v = wsni_header_copy(wsi, (enum lws_token_indexes)t, &len);
        if (!v)
            continue;
        wsni_strbuf_append(out, name, strlen(name) - 1);
        wsni_strbuf_append(out, ": ", 2);
        wsni_strbuf_append(out, v, (size_t)len);
        wsni_strbuf_append(out, "\r\n", 2);
        free(v);
    }
    return out->failed ? -1 : 0;
}

int wsni_gate_hold(wsn_server *srv, struct lws *wsi)
{
    struct conn_tag *tag = tag_of(wsi);
    if (!tag) {
        if (!(tag = calloc(1, sizeof(*tag))))
            return -1;
        lws_set_opaque_user_data(wsi, tag);
    }
    struct wsni_gate_wait *w = calloc(1, sizeof(*w));
    if (!w)
        return -1;
    w->srv = srv;
    w->fd = -1;
    w->wsi = wsi;
    w->stage = HELD_CAPTURED;
    tag->wait = w;
    int uri_len, args_len = 0;
    char *uri = wsni_header_copy(wsi, WSI_TOKEN_GET_URI, &uri_len);
    char query[2048] = "";
    /* lws splits the query into arguments; joined back with '&' */
    for (int i = 0; lws_hdr_copy_fragment(wsi, query + args_len, (int)sizeof(query) - args_len,
                                          WSI_TOKEN_HTTP_URI_ARGS, i) > 0; i++) {
        args_len += (int)strlen(query + args_len);
        if (args_len + 2 >= (int)sizeof(query))
            break;
        query[args_len++] = '&';
        query[args_len] = 0;
    }
    if (args_len && query[args_len - 1] == '&')
        query[--args_len] = 0;
    strbuf headers = {0};
    char peer[64] = "";
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    if (!uri || held_headers(wsi, &headers) ||
        !(w->event = upgrade_event(uri, (size_t)uri_len, query, (size_t)args_len,
                                   headers.data ? headers.data : "", headers.len, peer))) {
        free(uri);
        wsni_strbuf_free(&headers);
        return -1;
    }
    free(uri);
    wsni_strbuf_free(&headers);
    return 0;
}

wsn_event *wsni_gate_held_connected(wsn_server *srv, struct lws *wsi)
{
    struct conn_tag *tag = tag_of(wsi);
    struct wsni_gate_wait *w = tag ? tag->wait : NULL;
    if (!w || w->stage != HELD_CAPTURED)
        return NULL;
    lws_rx_flow_control(wsi, 0);
    wsn_event *ev = w->event;
    w->event = NULL;
    wsni_timer_arm(srv, &w->timer, wait_timeout, opt_int(srv->opts, WSN_OPT_AUTH_TIMEOUT) * 1000);
    return ask(srv, w, ev);
}

int wsni_gate_is_held(struct lws *wsi)
{
    struct conn_tag *tag = tag_of(wsi);
    return tag && tag->wait && tag->wait->fd < 0;
}

int wsni_gate_held_close(struct lws *wsi, const char **reason)
{
    struct conn_tag *tag = tag_of(wsi);
    struct wsni_gate_wait *w = tag ? tag->wait : NULL;
    if (!w || w->stage != HELD_REFUSED)
        return 0;
    *reason = w->reason;
    return w->close_code;
}

/* --- answers -------------------------------------------------------------- */

int wsni_gate_answer(wsn_server *srv, wsni_upgrade_answer *a)
{
    struct wsni_gate_wait *w = NULL;
    HASH_FIND(hh, srv->lws->waits_by_id, &a->id, sizeof(a->id), w);
    if (!w) {
        wsni_upgrade_answer_free(a);
        return WSN_EGONE;
    }
    if (!a->accept) {
        unsigned n = wsni_ratelog_due(&srv->lws->gate_log);
        if (n)
            wsni_log(srv, WSN_LOG_INFO, "%u upgrades refused by the host (last: %d)", n,
                     a->status);
        refuse(srv, w, a->status, a->body, WSNI_REFUSED_AUTH);
        wsni_upgrade_answer_free(a);
        return WSN_OK;
    }
    if (w->fd >= 0) {
        hand_over(srv, w, a);
        return WSN_OK;
    }
    /* Held: the connection becomes a client when it is next writeable
     * (the loop makes it), then reads resume. */
    struct lws *wsi = w->wsi;
    struct conn_tag *tag = tag_of(wsi);
    tag->answer = a;
    tag->wait = NULL;
    wait_free(srv, w);
    lws_callback_on_writable(wsi);
    return WSN_OK;
}

void wsni_gate_refuse_all(wsn_server *srv)
{
    struct wsni_gate_wait *w, *tmp;
    HASH_ITER(hh, srv->lws->waits_by_id, w, tmp)
    refuse(srv, w, 503, "server shutting down", WSNI_REFUSED_SHUTDOWN);
}
