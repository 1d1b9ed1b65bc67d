#include "engine/codec_json.h"

#include "engine/json_scan.h"
#include "util/base64.h"
#include "util/text.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {"json", "text", "binary"};

WSN_API const char *wsn_message_type_name(wsn_message_type type)
{
    if ((int)type < 0 || (int)type > 2)
        return NULL;
    return type_names[type];
}

json_t *wsni_json_load_any(const char *text, size_t len, size_t flags)
{
    json_error_t err;
    json_t *v = json_loadb(text, len, flags, &err);
    /* jansson holds integers in 64 bits and rejects bigger ones, which are
     * valid JSON (2^64-1 is a common id); those load as reals instead. */
    if (!v && json_error_code(&err) == json_error_numeric_overflow)
        v = json_loadb(text, len, flags | JSON_DECODE_INT_AS_REAL, &err);
    return v;
}

WSN_API int wsn_json_validate(const char *json, size_t len)
{
    if (!json)
        return WSN_EINVAL;
    return wsni_json_scan_valid(json, len) ? WSN_OK : WSN_EJSON;
}

WSN_API int wsn_json_get_string(const char *json, size_t len, const char *key, char *out,
                                size_t out_size, size_t *out_len)
{
    if (!json || !key || (!out && out_size))
        return WSN_EINVAL;
    json_members it;
    if (memchr(json, 0, len) || !wsni_json_scan_valid(json, len) || wsni_json_scan_object(&it, json, len))
        return WSN_EJSON;
    json_span k, v, found = {0};
    size_t key_len = strlen(key);
    while (wsni_json_scan_next_member(&it, &k, &v))
        if (wsni_json_scan_string_eq(&k, key, key_len))
            found = v;
    if (!found.text)
        return WSN_ENOTFOUND;
    if (*found.text != '"')
        return WSN_ETYPE;
    /* Decoding never lengthens, so the text's length bounds the result;
     * a small buffer gets the exact length from a trial decode. */
    if (out_size < found.len) {
        char *tmp = malloc(found.len);
        if (!tmp)
            return WSN_ENOMEM;
        size_t n = wsni_json_scan_unescape(found.text, found.len, tmp);
        if (n < out_size)
            memcpy(out, tmp, n + 1);
        free(tmp);
        if (out_len)
            *out_len = n;
        return n < out_size ? WSN_OK : WSN_ENOSPC;
    }
    size_t n = wsni_json_scan_unescape(found.text, found.len, out);
    if (out_len)
        *out_len = n;
    return WSN_OK;
}

void wsni_json_append_string(strbuf *out, const char *s, size_t len)
{
    /* jansson (as we call it) escapes only the quote, the backslash and
     * control characters; a string without any is its own escape, the
     * common case for channel names and ids. */
    size_t i = 0;
    while (i < len && (unsigned char)s[i] >= 0x20 && s[i] != '"' && s[i] != '\\')
        i++;
    if (i == len) {
        if (wsni_strbuf_reserve(out, len + 2))
            return;
        char *dst = out->data + out->len;
        dst[0] = '"';
        memcpy(dst + 1, s, len);
        dst[len + 1] = '"';
        out->len += len + 2;
        out->data[out->len] = '\0';
        return;
    }
    json_t *js = json_stringn_nocheck(s, len);
    if (!js) {
        out->failed = 1;
        return;
    }
    size_t need = json_dumpb(js, NULL, 0, JSON_ENCODE_ANY);
    if (need && !wsni_strbuf_reserve(out, need)) {
        json_dumpb(js, out->data + out->len, need, JSON_ENCODE_ANY);
        out->len += need;
        out->data[out->len] = '\0';
    } else {
        out->failed = 1;
    }
    json_decref(js);
}

/* Validated JSON is copied without the whitespace between tokens, so the
 * sender's number text (0.1, 1e3, 1.0) reaches browsers unchanged. */
static void append_minified(strbuf *out, const char *s, size_t len)
{
    if (wsni_strbuf_reserve(out, len))
        return;
    out->len += wsni_json_minify(out->data + out->len, s, len);
    out->data[out->len] = '\0';
}

size_t wsni_json_minify(char *dst, const char *s, size_t len)
{
    const char *p = s, *end = s + len;
    char *o = dst;
    while (p < end) {
        char c = *p;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            p++;
            continue;
        }
        if (c != '"') {
            *o++ = c;
            p++;
            continue;
        }
        /* A string goes over whole; valid text closes it before the end. */
        const char *start = p;
        p = wsni_json_scan_string_end(p, end);
        memcpy(o, start, (size_t)(p - start));
        o += p - start;
    }
    return (size_t)(o - dst);
}

static void append_base64(strbuf *out, const void *data, size_t len)
{
    if (len > (size_t)(INT32_MAX / 4 * 3 - 4)) {
        out->failed = 1;
        return;
    }
    size_t b64len = (len + 2) / 3 * 4;
    /* The quotes and the encoder's NUL. */
    if (wsni_strbuf_reserve(out, b64len + 3))
        return;
    out->data[out->len++] = '"';
    out->len += wsni_base64_encode(data, len, out->data + out->len);
    out->data[out->len++] = '"';
    out->data[out->len] = '\0';
}

int wsni_json_message_value(wsn_message_type type, const void *data, size_t len, strbuf *out)
{
    if (!data && len)
        return WSN_EINVAL;
    switch (type) {
    case WSN_TYPE_JSON:
        if (!data || wsn_json_validate(data, len) != WSN_OK)
            return WSN_EJSON;
        append_minified(out, data, len);
        break;
    case WSN_TYPE_TEXT:
        if (!wsni_utf8_valid(data, len))
            return WSN_EINVAL;
        wsni_json_append_string(out, data, len);
        break;
    case WSN_TYPE_BINARY:
        append_base64(out, data, len);
        break;
    default:
        return WSN_EINVAL;
    }
    return out->failed ? WSN_ENOMEM : WSN_OK;
}

void wsni_json_envelope(strbuf *out, const char *channel, wsn_message_type type, const char *time,
                   const char *value, size_t value_len, const char *message_id,
                   const char *reply_to_id)
{
    wsni_strbuf_append_str(out, "{\"channel\":");
    wsni_json_append_string(out, channel, strlen(channel));
    wsni_strbuf_append_str(out, ",\"type\":\"");
    wsni_strbuf_append_str(out, type_names[type]);
    wsni_strbuf_append_str(out, "\",\"time\":\"");
    wsni_strbuf_append_str(out, time);
    wsni_strbuf_append_str(out, "\",\"message\":");
    wsni_strbuf_append(out, value, value_len);
    if (message_id && *message_id) {
        wsni_strbuf_append_str(out, ",\"message_id\":");
        wsni_json_append_string(out, message_id, strlen(message_id));
    }
    if (reply_to_id && *reply_to_id) {
        wsni_strbuf_append_str(out, ",\"reply_to_id\":");
        wsni_json_append_string(out, reply_to_id, strlen(reply_to_id));
    }
    wsni_strbuf_append_char(out, '}');
}

void wsni_json_error_payload(strbuf *out, const char *client_id, const char *error, const char *time)
{
    wsni_strbuf_append_str(out, "{\"client_id\":");
    wsni_json_append_string(out, client_id, strlen(client_id));
    wsni_strbuf_append_str(out, ",\"error\":");
    wsni_json_append_string(out, error, strlen(error));
    wsni_strbuf_append_str(out, ",\"reply_to\":\"\",\"time\":\"");
    wsni_strbuf_append_str(out, time);
    wsni_strbuf_append_str(out, "\",\"type\":\"error\"}");
}

/* Shortest decimal that reads back as the same double, like Go and Python
 * print floats; integral values keep a ".0" so they stay floats. */
int wsni_json_append_real(strbuf *out, double v)
{
    if (v != v || v - v != 0) /* NaN and infinities have no JSON form */
        return -1;
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    wsni_strbuf_append_str(out, buf);
    if (!strpbrk(buf, ".eE"))
        wsni_strbuf_append_str(out, ".0");
    return 0;
}

static int is_null(const json_span *m) { return !m->text || *m->text == 'n'; }

/* Room for a member's decoded string and its NUL (never longer than its
 * text), or for "" when it is absent, null or not a string. */
static size_t member_room(const json_span *m) { return is_null(m) ? 1 : m->len + 1; }

/* Writes a string member, decoded, at dst ("" when absent or null);
 * returns the bytes used with the NUL. Any other value sets *bad. */
static size_t put_member_string(const json_span *m, char *dst, int *bad)
{
    if (is_null(m) || *m->text != '"') {
        if (!is_null(m))
            *bad = 1;
        *dst = '\0';
        return 1;
    }
    return wsni_json_scan_unescape(m->text, m->len, dst) + 1;
}

/* The payload of a text or binary message: the string decoded (binary:
 * then base64-decoded) at dst. Returns its length, or -1 if it is not
 * what the type needs. */
static long put_decoded_payload(wsn_message_type type, const json_span *m, char *dst)
{
    if (is_null(m)) {
        *dst = '\0';
        return 0;
    }
    if (*m->text != '"')
        return -1;
    if (type == WSN_TYPE_TEXT)
        return (long)wsni_json_scan_unescape(m->text, m->len, dst);
    /* Binary in JSON travels as standard base64, as we send it. */
    char *b64 = malloc(m->len);
    if (!b64)
        return -1;
    size_t b64_len = wsni_json_scan_unescape(m->text, m->len, b64);
    long n = -1;
    if (b64_len <= INT32_MAX && wsni_base64_std_valid(b64, b64_len))
        n = wsni_base64_decode(b64, b64_len, dst);
    free(b64);
    if (n >= 0)
        dst[n] = '\0';
    return n < 0 ? -1 : n;
}

/* The envelope is validated once and then walked, never built: the
 * message's text is kept as the client wrote it (minified), so numbers
 * beyond what a double or an int64 holds reach the host unchanged, and a
 * big message costs one scan and one copy. Where a key repeats, the last
 * one counts, as with jansson. */
int wsni_json_parse_incoming(const char *text, size_t len, incoming *out, const char **error)
{
    memset(out, 0, sizeof(*out));
    json_members it;
    if (memchr(text, 0, len) || !wsni_json_scan_valid(text, len) || wsni_json_scan_object(&it, text, len)) {
        *error = "invalid JSON format";
        return -1;
    }
    json_span type = {0}, channel = {0}, message = {0}, message_id = {0}, reply_to_id = {0};
    json_span key, value;
    while (wsni_json_scan_next_member(&it, &key, &value)) {
        if (json_scan_string_is(&key, "message"))
            message = value;
        else if (json_scan_string_is(&key, "channel"))
            channel = value;
        else if (json_scan_string_is(&key, "type"))
            type = value;
        else if (json_scan_string_is(&key, "message_id"))
            message_id = value;
        else if (json_scan_string_is(&key, "reply_to_id"))
            reply_to_id = value;
    }

    out->type = WSN_TYPE_JSON;
    if (!is_null(&type)) {
        int known = 0;
        for (int i = 0; i < 3 && !known; i++)
            if (wsni_json_scan_string_eq(&type, type_names[i], strlen(type_names[i]))) {
                out->type = (wsn_message_type)i;
                known = 1;
            }
        if (!known) {
            *error = "unknown message type";
            return -1;
        }
    }
    /* One allocation holds every field: the payload, then the strings. */
    size_t payload_room = message.text ? message.len + 1 : 5;
    char *storage = malloc(payload_room + member_room(&channel) + member_room(&message_id) +
                           member_room(&reply_to_id));
    if (!storage) {
        *error = "invalid message format";
        return -1;
    }
    int bad = 0;
    char *p = storage;
    out->storage = storage;
    out->payload = (unsigned char *)p;
    if (out->type == WSN_TYPE_JSON) {
        out->payload_len = message.text ? wsni_json_minify(p, message.text, message.len) : 4;
        if (!message.text)
            memcpy(p, "null", 4);
        p[out->payload_len] = '\0';
    } else {
        long n = put_decoded_payload(out->type, &message, p);
        if (n < 0)
            bad = 1;
        out->payload_len = n < 0 ? 0 : (size_t)n;
    }
    p += payload_room;
    out->channel = p;
    p += put_member_string(&channel, p, &bad);
    out->message_id = p;
    p += put_member_string(&message_id, p, &bad);
    out->reply_to_id = p;
    put_member_string(&reply_to_id, p, &bad);
    if (bad) {
        wsni_incoming_clear(out);
        *error = "invalid message format";
        return -1;
    }
    return 0;
}

char *wsni_json_canonical(const char *text, size_t len)
{
    json_error_t err;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY, &err);
    if (!v) {
        /* Integers beyond 64 bits would load as rounded reals, so two
         * different ids could compare equal: such messages are compared
         * by their (minified) text instead. */
        if (json_error_code(&err) == json_error_numeric_overflow) {
            strbuf sb;
            wsni_strbuf_init(&sb);
            append_minified(&sb, text, len);
            wsni_strbuf_reserve(&sb, 0);
            return wsni_strbuf_take(&sb, NULL);
        }
        return NULL;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(v);
    return s;
}

/* --- the codec ------------------------------------------------------------ */

static wsn_frame *json_envelope_frame(const char *channel, wsn_message_type type, const char *time,
                                      const char *value, size_t value_len, const char *message_id,
                                      const char *reply_to_id)
{
    strbuf text, env;
    wsni_strbuf_init(&text);
    wsni_strbuf_init(&env);
    if (type != WSN_TYPE_JSON) {
        wsni_json_message_value(type, value, value_len, &text);
        value = text.data ? text.data : "";
        value_len = text.len;
    }
    /* Built in a scratch buffer, then copied into a frame of the exact
     * size: strbuf grows in powers of two, and queued frames are most of a
     * busy server's memory (docs/architecture.md, "Measurements behind the
     * code"). */
    wsn_frame *f = NULL;
    if (!text.failed && !wsni_strbuf_reserve(&env, value_len + strlen(channel) +
                                                       strlen(message_id) + strlen(reply_to_id) +
                                                       128)) {
        wsni_json_envelope(&env, channel, type, time, value, value_len, message_id, reply_to_id);
        if (!env.failed)
            f = wsni_frame_from(env.data, env.len, 0);
    }
    wsni_strbuf_free(&text);
    wsni_strbuf_free(&env);
    return f;
}

static wsn_frame *json_error_frame(const char *client_id, const char *error, const char *time)
{
    strbuf sb;
    wsni_strbuf_init(&sb);
    wsni_json_error_payload(&sb, client_id, error, time);
    wsn_frame *f = sb.failed ? NULL : wsni_frame_from(sb.data, sb.len, 0);
    wsni_strbuf_free(&sb);
    return f;
}

void wsni_batch_joined_text(const wsni_batch_wire *b, strbuf *text)
{
    wsni_strbuf_append_str(text, b->name);
    wsni_strbuf_append(text, "\n\n", 2);
    for (const wsni_list_node *n = b->values->head; n; n = n->next) {
        const wsni_batch_value *v = wsni_container_of(n, wsni_batch_value, node);
        if (n != b->values->head)
            wsni_strbuf_append_char(text, '\n');
        wsni_strbuf_append(text, v->value, v->value_len);
    }
}

static wsn_frame *json_batch_frame(const wsni_batch_wire *b, const char *time)
{
    strbuf msg, env;
    wsni_strbuf_init(&msg);
    wsni_strbuf_init(&env);
    wsn_message_type wire_type = WSN_TYPE_JSON;
    if (b->type == WSN_TYPE_TEXT) {
        strbuf text;
        wsni_strbuf_init(&text);
        wsni_batch_joined_text(b, &text);
        wsni_json_append_string(&msg, text.data ? text.data : "", text.len);
        if (text.failed)
            msg.failed = 1;
        wsni_strbuf_free(&text);
        wire_type = WSN_TYPE_TEXT;
    } else {
        wsni_strbuf_append_str(&msg, "{\"messages\":[");
        for (const wsni_list_node *n = b->values->head; n; n = n->next) {
            const wsni_batch_value *v = wsni_container_of(n, wsni_batch_value, node);
            if (n != b->values->head)
                wsni_strbuf_append_char(&msg, ',');
            wsni_strbuf_append(&msg, v->value, v->value_len);
        }
        wsni_strbuf_append_str(&msg, "],\"name\":");
        wsni_json_append_string(&msg, b->name, strlen(b->name));
        wsni_strbuf_append_char(&msg, '}');
    }
    wsni_json_envelope(&env, b->channel, wire_type, time, msg.data ? msg.data : "null", msg.len,
                       NULL, NULL);
    wsn_frame *f = NULL;
    if (!msg.failed && !env.failed)
        f = wsni_frame_from(env.data, env.len, 0);
    wsni_strbuf_free(&msg);
    wsni_strbuf_free(&env);
    return f;
}

static int json_parse(const unsigned char *data, size_t len, incoming *out, const char **error)
{
    return wsni_json_parse_incoming((const char *)data, len, out, error);
}

const wsni_codec wsni_codec_json = {
    .envelope = json_envelope_frame,
    .error = json_error_frame,
    .batch = json_batch_frame,
    .parse = json_parse,
};
