/* The host's side of authentication at the upgrade (WSN_OPT_AUTHENTICATE):
 * reading a waiting request from its UPGRADE event, answering it from any
 * thread, applying an accepted answer to the client it became, and moving
 * a client's expiry. The waiting itself is the transport's
 * (transport/gate.c). */
#include "engine/expiry.h"
#include "engine/json_scan.h"
#include "engine/upgrade_answer.h"
#include "shell/upgrade_ids.h"
#include "shell/commands.h"
#include "util/hash.h"
#include "util/text.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_REJECT_BODY 1024

/* --- reading the request ------------------------------------------------ */

WSN_API uint64_t wsn_event_upgrade_id(const wsn_event *ev)
{
    return ev && ev->kind == WSN_EVENT_UPGRADE ? ev->upgrade_id : 0;
}

WSN_API const char *wsn_event_upgrade_query(const wsn_event *ev)
{
    return ev && ev->kind == WSN_EVENT_UPGRADE && ev->query ? ev->query : "";
}

static int give(const char *value, size_t n, char *buf, size_t cap, size_t *len)
{
    *len = n;
    if (!buf || cap <= n)
        return WSN_ENOSPC;
    memcpy(buf, value, n);
    buf[n] = 0;
    return WSN_OK;
}

static const char *trim_start(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static const char *trim_end(const char *start, const char *p)
{
    while (p > start && (p[-1] == ' ' || p[-1] == '\t'))
        p--;
    return p;
}

/* The header lines are "Name: value" separated by CRLF (the gate and the
 * TLS path both write them so); repeats join with ", " as RFC 9110 allows. */
WSN_API int wsn_event_upgrade_header(const wsn_event *ev, const char *name, char *buf,
                                     size_t cap, size_t *len)
{
    if (!ev || !name || !len || ev->kind != WSN_EVENT_UPGRADE)
        return WSN_EINVAL;
    size_t name_len = strlen(name), total = 0;
    int found = 0;
    const char *p = (const char *)ev->msg.payload, *end = p + ev->msg.payload_len;
    /* Two passes: measure, then copy, so a too-small buf changes nothing. */
    for (int pass = 0; pass < 2; pass++) {
        size_t at = 0;
        for (const char *line = p; line < end;) {
            const char *eol = memchr(line, '\n', (size_t)(end - line));
            const char *next = eol ? eol + 1 : end;
            const char *stop = eol ? eol : end;
            if (stop > line && stop[-1] == '\r')
                stop--;
            const char *colon = memchr(line, ':', (size_t)(stop - line));
            if (colon && (size_t)(colon - line) == name_len && !strncasecmp(line, name, name_len)) {
                const char *v = trim_start(colon + 1, stop), *ve = trim_end(v, stop);
                size_t vn = (size_t)(ve - v);
                if (pass == 1) {
                    if (at) {
                        memcpy(buf + at, ", ", 2);
                        at += 2;
                    }
                    memcpy(buf + at, v, vn);
                    at += vn;
                } else {
                    total += (found ? 2 : 0) + vn;
                    found = 1;
                }
            }
            line = next;
        }
        if (pass == 0) {
            if (!found)
                return WSN_ENOTFOUND;
            *len = total;
            if (!buf || cap <= total)
                return WSN_ENOSPC;
        } else {
            buf[at] = 0;
        }
    }
    return WSN_OK;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes in place; a '%' not followed by two hex digits stays as it is. */
static size_t percent_decode(char *s, size_t n)
{
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            s[out++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && hex_value(s[i + 1]) >= 0 &&
                   hex_value(s[i + 2]) >= 0) {
            s[out++] = (char)(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            s[out++] = s[i];
        }
    }
    return out;
}

WSN_API int wsn_event_upgrade_query_arg(const wsn_event *ev, const char *name, char *buf,
                                        size_t cap, size_t *len)
{
    if (!ev || !name || !len || ev->kind != WSN_EVENT_UPGRADE)
        return WSN_EINVAL;
    const char *q = wsn_event_upgrade_query(ev);
    size_t qlen = strlen(q);
    for (const char *p = q; p <= q + qlen;) {
        const char *amp = memchr(p, '&', (size_t)(q + qlen - p));
        const char *end = amp ? amp : q + qlen;
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *key_end = eq ? eq : end;
        char *key = strndup(p, (size_t)(key_end - p));
        if (!key)
            return WSN_ENOMEM;
        size_t key_len = percent_decode(key, strlen(key));
        int match = key_len == strlen(name) && !memcmp(key, name, key_len);
        free(key);
        if (match) {
            const char *v = eq ? eq + 1 : end;
            char *value = strndup(v, (size_t)(end - v));
            if (!value)
                return WSN_ENOMEM;
            int rc = give(value, percent_decode(value, strlen(value)), buf, cap, len);
            free(value);
            return rc;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return WSN_ENOTFOUND;
}

/* --- answering ------------------------------------------------------------ */

static int running(wsn_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    int up = srv->state == SRV_RUNNING;
    pthread_mutex_unlock(&srv->lock);
    return up;
}

static int submit_answer(wsn_server *srv, wsni_upgrade_answer *a)
{
    command *cmd = wsni_command_new(CMD_UPGRADE_ANSWER);
    if (!cmd) {
        wsni_upgrade_answer_free(a);
        return WSN_ENOMEM;
    }
    cmd->answer = a;
    int rc = wsni_command_submit(srv, cmd, 0);
    /* on the I/O thread the wait was looked at already: claimed, so here */
    return rc == WSN_EGONE ? WSN_OK : rc;
}

static int check_metadata(wsn_server *srv, const char *json)
{
    size_t len = strlen(json);
    if (len > srv->max_metadata_bytes) {
        wsni_set_error(srv, "metadata is %zu bytes, max_metadata_bytes is %zu", len,
                       srv->max_metadata_bytes);
        return WSN_ELIMIT;
    }
    json_members it;
    if (!wsni_json_scan_valid(json, len) || wsni_json_scan_object(&it, json, len)) {
        wsni_set_error(srv, "metadata is not a JSON object");
        return WSN_EJSON;
    }
    return WSN_OK;
}

WSN_API int wsn_server_accept_upgrade(wsn_server *srv, uint64_t id, const char *metadata_json,
                                      const char *const *channels, size_t count,
                                      int64_t expires_at_ms)
{
    if (!srv || !id || (count && !channels) || expires_at_ms < 0)
        return WSN_EINVAL;
    if (!running(srv))
        return WSN_ECLOSED;
    int rc;
    if (metadata_json && (rc = check_metadata(srv, metadata_json)))
        return rc;
    if (srv->max_subscriptions && count > srv->max_subscriptions) {
        wsni_set_error(srv, "%zu channels, max_subscriptions is %u", count, srv->max_subscriptions);
        return WSN_ELIMIT;
    }
    for (size_t i = 0; i < count; i++)
        if ((rc = wsni_check_channel(srv, channels[i], 0)))
            return rc;
    if ((rc = wsni_upgrade_claim(srv, id)))
        return rc;
    wsni_upgrade_answer *a = calloc(1, sizeof(*a));
    if (!a)
        return WSN_ENOMEM;
    a->id = id;
    a->accept = 1;
    a->expires_at_ms = expires_at_ms;
    if (metadata_json && !(a->metadata_json = strdup(metadata_json)))
        goto oom;
    if (count && !(a->channels = calloc(count, sizeof(char *))))
        goto oom;
    for (; a->channel_count < count; a->channel_count++)
        if (!(a->channels[a->channel_count] = strdup(channels[a->channel_count])))
            goto oom;
    return submit_answer(srv, a);
oom:
    wsni_upgrade_answer_free(a);
    return WSN_ENOMEM;
}

WSN_API int wsn_server_reject_upgrade(wsn_server *srv, uint64_t id, int status, const char *body)
{
    if (!srv || !id || status < 400 || status > 599)
        return WSN_EINVAL;
    if (body && (strlen(body) > MAX_REJECT_BODY || !wsni_utf8_valid_str(body))) {
        wsni_set_error(srv, "a rejection's body is UTF-8 of at most %d bytes", MAX_REJECT_BODY);
        return WSN_EINVAL;
    }
    if (!running(srv))
        return WSN_ECLOSED;
    int rc = wsni_upgrade_claim(srv, id);
    if (rc)
        return rc;
    wsni_upgrade_answer *a = calloc(1, sizeof(*a));
    if (!a || (body && !(a->body = strdup(body)))) {
        wsni_upgrade_answer_free(a);
        return WSN_ENOMEM;
    }
    a->id = id;
    a->status = status;
    return submit_answer(srv, a);
}

WSN_API int wsn_client_set_expiry(wsn_client *c, int64_t expires_at_ms)
{
    if (!c || expires_at_ms < 0)
        return WSN_EINVAL;
    if (!running(c->srv))
        return WSN_ECLOSED;
    if (!atomic_load(&c->connected))
        return WSN_EGONE;
    command *cmd = wsni_command_new(CMD_SET_EXPIRY);
    if (!cmd)
        return WSN_ENOMEM;
    cmd->client = wsn_client_retain(c);
    cmd->arg = expires_at_ms;
    return wsni_command_submit(c->srv, cmd, 0);
}

/* --- applying an accepted answer ------------------------------------------ */

/* A JSON number without fraction or exponent that fits int64 stays an
 * integer; any other number is a double. */
static int set_number(wsn_client *c, const char *key, const char *text, size_t len)
{
    char *s = strndup(text, len);
    if (!s)
        return WSN_ENOMEM;
    int rc;
    if (!strpbrk(s, ".eE")) {
        errno = 0;
        long long v = strtoll(s, NULL, 10);
        if (!errno) {
            rc = wsn_client_set_int(c, key, v);
            free(s);
            return rc;
        }
    }
    rc = wsn_client_set_double(c, key, strtod(s, NULL));
    free(s);
    return rc;
}

static int set_member(wsn_client *c, const char *key, const json_span *v)
{
    if (v->len && v->text[0] == '"') {
        char *s = malloc(v->len);
        if (!s)
            return WSN_ENOMEM;
        size_t n = wsni_json_scan_unescape(v->text, v->len, s);
        /* A string with a NUL in it cannot be a C string: kept as bytes. */
        int rc = memchr(s, 0, n) ? wsn_client_set_bytes(c, key, s, n)
                                 : wsn_client_set_string(c, key, s);
        free(s);
        return rc;
    }
    if (v->len == 4 && !memcmp(v->text, "true", 4))
        return wsn_client_set_bool(c, key, 1);
    if (v->len == 5 && !memcmp(v->text, "false", 5))
        return wsn_client_set_bool(c, key, 0);
    if (v->len && (v->text[0] == '-' || (v->text[0] >= '0' && v->text[0] <= '9')))
        return set_number(c, key, v->text, v->len);
    char *json = strndup(v->text, v->len);
    if (!json)
        return WSN_ENOMEM;
    int rc = wsn_client_set_json(c, key, json);
    free(json);
    return rc;
}

static void apply_metadata(wsn_client *c, const char *json)
{
    json_members it;
    json_span key, value;
    if (wsni_json_scan_object(&it, json, strlen(json)))
        return;
    while (wsni_json_scan_next_member(&it, &key, &value) == 1) {
        char *k = malloc(key.len);
        if (!k)
            break;
        wsni_json_scan_unescape(key.text, key.len, k);
        int rc = set_member(c, k, &value);
        if (rc)
            wsni_log(c->srv, WSN_LOG_WARN, "client %s: metadata %s from its upgrade not set: %s",
                     c->id, k, wsn_strerror(rc));
        free(k);
    }
}

void wsni_upgrade_answer_apply(wsn_client *c, const wsni_upgrade_answer *a)
{
    if (a->metadata_json)
        apply_metadata(c, a->metadata_json);
    for (size_t i = 0; i < a->channel_count; i++) {
        int rc = wsn_server_subscribe(c->srv, c, a->channels[i]);
        if (rc)
            wsni_log(c->srv, WSN_LOG_WARN, "client %s: channel %s from its upgrade: %s", c->id,
                     a->channels[i], wsn_strerror(rc));
    }
    if (a->expires_at_ms) {
        int rc = wsni_expiry_set(c, a->expires_at_ms);
        if (rc)
            wsni_log(c->srv, WSN_LOG_WARN, "client %s: expiry not set: %s", c->id,
                     wsn_strerror(rc));
    }
}
