#include "codec_json.h"

#include "json_scan.h"
#include "text.h"

#include <jansson.h>
#include <libwebsockets.h>
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

static int parse_type_name(const char *s, wsn_message_type *type)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, type_names[i])) {
            *type = (wsn_message_type)i;
            return 0;
        }
    return -1;
}

json_t *json_load_any(const char *text, size_t len, size_t flags)
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
    return json_scan_valid(json, len) ? WSN_OK : WSN_EJSON;
}

void json_append_string(strbuf *out, const char *s, size_t len)
{
    json_t *js = json_stringn_nocheck(s, len);
    if (!js) {
        out->failed = 1;
        return;
    }
    size_t need = json_dumpb(js, NULL, 0, JSON_ENCODE_ANY);
    if (need && !strbuf_reserve(out, need)) {
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
    if (strbuf_reserve(out, len))
        return;
    char *dst = out->data + out->len;
    size_t n = 0;
    int in_string = 0, escaped = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (escaped)
                escaped = 0;
            else if (c == '\\')
                escaped = 1;
            else if (c == '"')
                in_string = 0;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            continue;
        } else if (c == '"') {
            in_string = 1;
        }
        dst[n++] = c;
    }
    out->len += n;
    out->data[out->len] = '\0';
}

static void append_base64(strbuf *out, const void *data, size_t len)
{
    if (len > (size_t)(INT32_MAX / 4 * 3 - 4)) {
        out->failed = 1;
        return;
    }
    size_t b64len = (len + 2) / 3 * 4;
    /* lws wants slack beyond the encoded length and its NUL. */
    if (strbuf_reserve(out, b64len + 8))
        return;
    out->data[out->len++] = '"';
    if (len) {
        int n = lws_b64_encode_string(data, (int)len, out->data + out->len, (int)b64len + 6);
        if (n < 0) {
            out->failed = 1;
            return;
        }
        out->len += (size_t)n;
    }
    out->data[out->len++] = '"';
    out->data[out->len] = '\0';
}

int json_message_value(wsn_message_type type, const void *data, size_t len, strbuf *out)
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
        if (!utf8_valid(data, len))
            return WSN_EINVAL;
        json_append_string(out, data, len);
        break;
    case WSN_TYPE_BINARY:
        append_base64(out, data, len);
        break;
    default:
        return WSN_EINVAL;
    }
    return out->failed ? WSN_ENOMEM : WSN_OK;
}

void json_envelope(strbuf *out, const char *channel, wsn_message_type type, const char *time,
                   const char *value, size_t value_len, const char *message_id,
                   const char *reply_to_id)
{
    strbuf_append_str(out, "{\"channel\":");
    json_append_string(out, channel, strlen(channel));
    strbuf_append_str(out, ",\"type\":\"");
    strbuf_append_str(out, type_names[type]);
    strbuf_append_str(out, "\",\"time\":\"");
    strbuf_append_str(out, time);
    strbuf_append_str(out, "\",\"message\":");
    strbuf_append(out, value, value_len);
    if (message_id && *message_id) {
        strbuf_append_str(out, ",\"message_id\":");
        json_append_string(out, message_id, strlen(message_id));
    }
    if (reply_to_id && *reply_to_id) {
        strbuf_append_str(out, ",\"reply_to_id\":");
        json_append_string(out, reply_to_id, strlen(reply_to_id));
    }
    strbuf_append_char(out, '}');
}

void json_error_payload(strbuf *out, const char *client_id, const char *error, const char *time)
{
    strbuf_append_str(out, "{\"client_id\":");
    json_append_string(out, client_id, strlen(client_id));
    strbuf_append_str(out, ",\"error\":");
    json_append_string(out, error, strlen(error));
    strbuf_append_str(out, ",\"reply_to\":\"\",\"time\":\"");
    strbuf_append_str(out, time);
    strbuf_append_str(out, "\",\"type\":\"error\"}");
}

/* Shortest decimal that reads back as the same double, like Go and Python
 * print floats; integral values keep a ".0" so they stay floats. */
int json_append_real(strbuf *out, double v)
{
    if (v != v || v - v != 0) /* NaN and infinities have no JSON form */
        return -1;
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    strbuf_append_str(out, buf);
    if (!strpbrk(buf, ".eE"))
        strbuf_append_str(out, ".0");
    return 0;
}

/* jansson prints reals with 17 significant digits (0.1 becomes
 * 0.10000000000000001), so values handed to the host are written here,
 * with jansson still doing the string escaping. */
static void append_value(strbuf *out, json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *item;
        int first = 1;
        strbuf_append_char(out, '{');
        json_object_foreach(v, key, item)
        {
            if (!first)
                strbuf_append_char(out, ',');
            first = 0;
            json_append_string(out, key, strlen(key));
            strbuf_append_char(out, ':');
            append_value(out, item);
        }
        strbuf_append_char(out, '}');
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *item;
        strbuf_append_char(out, '[');
        json_array_foreach(v, i, item)
        {
            if (i)
                strbuf_append_char(out, ',');
            append_value(out, item);
        }
        strbuf_append_char(out, ']');
        break;
    }
    case JSON_STRING:
        json_append_string(out, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: {
        char buf[24];
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        strbuf_append_str(out, buf);
        break;
    }
    case JSON_REAL:
        json_append_real(out, json_real_value(v));
        break;
    case JSON_TRUE:
        strbuf_append_str(out, "true");
        break;
    case JSON_FALSE:
        strbuf_append_str(out, "false");
        break;
    case JSON_NULL:
        strbuf_append_str(out, "null");
        break;
    }
}

static char *dup_field(json_t *obj, const char *key, int *bad)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return strdup("");
    if (!json_is_string(v)) {
        *bad = 1;
        return strdup("");
    }
    return strndup(json_string_value(v), json_string_length(v));
}

void incoming_clear(incoming *in)
{
    free(in->channel);
    free(in->payload);
    free(in->message_id);
    free(in->reply_to_id);
    memset(in, 0, sizeof(*in));
}

int json_parse_incoming(const char *text, size_t len, incoming *out, const char **error)
{
    memset(out, 0, sizeof(*out));
    json_t *root = memchr(text, 0, len) ? NULL : json_load_any(text, len, 0);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        *error = "invalid JSON format";
        return -1;
    }
    int bad = 0;
    out->type = WSN_TYPE_JSON;
    json_t *type = json_object_get(root, "type");
    if (type && !json_is_null(type)) {
        if (!json_is_string(type) || parse_type_name(json_string_value(type), &out->type)) {
            json_decref(root);
            *error = "unknown message type";
            return -1;
        }
    }
    out->channel = dup_field(root, "channel", &bad);
    out->message_id = dup_field(root, "message_id", &bad);
    out->reply_to_id = dup_field(root, "reply_to_id", &bad);

    json_t *msg = json_object_get(root, "message");
    strbuf sb;
    strbuf_init(&sb);
    if (out->type == WSN_TYPE_JSON) {
        if (msg)
            append_value(&sb, msg);
        else
            strbuf_append_str(&sb, "null");
    } else if (msg && json_is_string(msg)) {
        if (out->type == WSN_TYPE_TEXT) {
            strbuf_append(&sb, json_string_value(msg), json_string_length(msg));
        } else {
            /* Binary in JSON travels as standard base64, as we send it. */
            size_t b64len = json_string_length(msg);
            if (b64len > INT32_MAX || strbuf_reserve(&sb, b64len + 1)) {
                bad = 1;
            } else {
                int n = lws_b64_decode_string_len(json_string_value(msg), (int)b64len, sb.data,
                                                  (int)b64len + 1);
                if (n < 0)
                    bad = 1;
                else
                    sb.len = (size_t)n;
            }
        }
    } else if (msg && !json_is_null(msg)) {
        bad = 1;
    }
    json_decref(root);
    out->payload = (unsigned char *)strbuf_take(&sb, &out->payload_len);
    if (!out->payload) {
        out->payload = (unsigned char *)strdup("");
        out->payload_len = 0;
    }
    if (bad || !out->channel || !out->message_id || !out->reply_to_id || !out->payload) {
        incoming_clear(out);
        *error = "invalid message format";
        return -1;
    }
    return 0;
}

char *json_canonical(const char *text, size_t len)
{
    json_error_t err;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY, &err);
    if (!v) {
        /* Integers beyond 64 bits would load as rounded reals, so two
         * different ids could compare equal: such messages are compared
         * by their (minified) text instead. */
        if (json_error_code(&err) == json_error_numeric_overflow) {
            strbuf sb;
            strbuf_init(&sb);
            append_minified(&sb, text, len);
            strbuf_reserve(&sb, 0);
            return strbuf_take(&sb, NULL);
        }
        return NULL;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(v);
    return s;
}
