#include "engine/codec_msgpack.h"

#include "util/base64.h"
#include "util/text.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int strbuf_write(void *data, const char *buf, size_t len)
{
    strbuf *sb = data;
    wsni_strbuf_append(sb, buf, len);
    return sb->failed ? -1 : 0;
}

void wsni_msgpack_packer_to_strbuf(msgpack_packer *pk, strbuf *sb)
{
    msgpack_packer_init(pk, sb, strbuf_write);
}

void wsni_msgpack_pack_cstr(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

static void pack_key(msgpack_packer *pk, const char *key) { wsni_msgpack_pack_cstr(pk, key, strlen(key)); }

static void pack_json(msgpack_packer *pk, json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *item;
        msgpack_pack_map(pk, json_object_size(v));
        json_object_foreach(v, key, item)
        {
            pack_key(pk, key);
            pack_json(pk, item);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *item;
        msgpack_pack_array(pk, json_array_size(v));
        json_array_foreach(v, i, item) { pack_json(pk, item); }
        break;
    }
    case JSON_STRING:
        wsni_msgpack_pack_cstr(pk, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(v));
        break;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(v));
        break;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        break;
    case JSON_NULL:
        msgpack_pack_nil(pk);
        break;
    }
}

int wsni_msgpack_pack_json_text(msgpack_packer *pk, const char *json, size_t len)
{
    json_t *v = wsni_json_load_any(json, len, JSON_DECODE_ANY);
    if (!v)
        return WSN_EJSON;
    pack_json(pk, v);
    json_decref(v);
    return WSN_OK;
}

static wsn_frame *frame_of(strbuf *sb)
{
    wsn_frame *f = sb->failed ? NULL : wsni_frame_from(sb->data, sb->len, 1);
    wsni_strbuf_free(sb);
    return f;
}

wsn_frame *wsni_msgpack_envelope_frame(const char *channel, wsn_message_type type, const char *time,
                                  const char *value, size_t value_len, const char *message_id,
                                  const char *reply_to_id)
{
    strbuf sb;
    msgpack_packer pk;
    wsni_strbuf_init(&sb);
    wsni_msgpack_packer_to_strbuf(&pk, &sb);
    int has_mid = message_id && *message_id, has_rid = reply_to_id && *reply_to_id;
    msgpack_pack_map(&pk, (size_t)(4 + has_mid + has_rid));
    pack_key(&pk, "channel");
    pack_key(&pk, channel);
    pack_key(&pk, "type");
    pack_key(&pk, wsn_message_type_name(type));
    pack_key(&pk, "time");
    pack_key(&pk, time);
    pack_key(&pk, "message");
    if (type == WSN_TYPE_JSON) {
        if (wsni_msgpack_pack_json_text(&pk, value, value_len))
            sb.failed = 1;
    } else if (type == WSN_TYPE_TEXT) {
        wsni_msgpack_pack_cstr(&pk, value, value_len);
    } else {
        msgpack_pack_bin(&pk, value_len);
        msgpack_pack_bin_body(&pk, value, value_len);
    }
    if (has_mid) {
        pack_key(&pk, "message_id");
        pack_key(&pk, message_id);
    }
    if (has_rid) {
        pack_key(&pk, "reply_to_id");
        pack_key(&pk, reply_to_id);
    }
    return frame_of(&sb);
}

wsn_frame *wsni_msgpack_error_frame(const char *client_id, const char *error, const char *time)
{
    strbuf sb;
    msgpack_packer pk;
    wsni_strbuf_init(&sb);
    wsni_msgpack_packer_to_strbuf(&pk, &sb);
    msgpack_pack_map(&pk, 5);
    pack_key(&pk, "client_id");
    pack_key(&pk, client_id);
    pack_key(&pk, "error");
    pack_key(&pk, error);
    pack_key(&pk, "reply_to");
    pack_key(&pk, "");
    pack_key(&pk, "time");
    pack_key(&pk, time);
    pack_key(&pk, "type");
    pack_key(&pk, "error");
    return frame_of(&sb);
}

/* --- incoming ------------------------------------------------------------ */

static uint64_t read_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* msgpack-c allocates every container's element array from the count in
 * its header before reading the elements, so a 10-byte message claiming a
 * billion elements would allocate gigabytes. This walk checks that every
 * declared count and length fits in the bytes actually present, and the
 * nesting depth, before msgpack-c sees the data. */
static int msgpack_sane(const unsigned char *p, size_t len)
{
    size_t pending[WSN_MSGPACK_MAX_DEPTH + 1];
    int depth = 0;
    size_t pos = 0;
    pending[0] = 1; /* one top-level object */
    while (depth >= 0) {
        if (!pending[depth]) {
            depth--;
            continue;
        }
        pending[depth]--;
        if (pos >= len)
            return 0;
        unsigned char t = p[pos++];
        uint64_t skip = 0, count = 0;
        int container = 0;
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
        } else if ((t & 0xf0) == 0x80) {
            count = (uint64_t)(t & 0x0f) * 2, container = 1;
        } else if ((t & 0xf0) == 0x90) {
            count = t & 0x0f, container = 1;
        } else if ((t & 0xe0) == 0xa0) {
            skip = t & 0x1f;
        } else {
            int n = 0;
            switch (t) {
            case 0xc4: case 0xd9: n = 1; break; /* bin8, str8 */
            case 0xc5: case 0xda: n = 2; break;
            case 0xc6: case 0xdb: n = 4; break;
            case 0xc7: n = 1; skip = 1; break; /* ext8: len + type */
            case 0xc8: n = 2; skip = 1; break;
            case 0xc9: n = 4; skip = 1; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break; /* fixext 1..16 */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: case 0xdd: /* array16/32 */
            case 0xde: case 0xdf: { /* map16/32 */
                int w = (t == 0xdc || t == 0xde) ? 2 : 4;
                if (len - pos < (size_t)w)
                    return 0;
                count = read_be(p + pos, w) * ((t >= 0xde) ? 2 : 1);
                pos += (size_t)w;
                container = 1;
                break;
            }
            default:
                return 0; /* 0xc1: never used */
            }
            if (n) {
                if (len - pos < (size_t)n)
                    return 0;
                skip += read_be(p + pos, n);
                pos += (size_t)n;
            }
        }
        if (skip > len - pos)
            return 0;
        pos += skip;
        if (container && count) {
            if (count > len - pos || depth + 1 >= WSN_MSGPACK_MAX_DEPTH)
                return 0;
            pending[++depth] = (size_t)count;
        }
    }
    return pos == len;
}

static int obj_str_eq(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n && !memcmp(o->via.str.ptr, s, n);
}

/* MessagePack value → JSON text for the handler, so hosts see one shape
 * whichever format the client spoke. */
static int to_json(strbuf *sb, const msgpack_object *o)
{
    char num[32];
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        wsni_strbuf_append_str(sb, "null");
        return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        wsni_strbuf_append_str(sb, o->via.boolean ? "true" : "false");
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(num, sizeof(num), "%llu", (unsigned long long)o->via.u64);
        wsni_strbuf_append_str(sb, num);
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(num, sizeof(num), "%lld", (long long)o->via.i64);
        wsni_strbuf_append_str(sb, num);
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return wsni_json_append_real(sb, o->via.f64);
    case MSGPACK_OBJECT_STR:
        if (!wsni_utf8_valid((const unsigned char *)o->via.str.ptr, o->via.str.size))
            return -1;
        wsni_json_append_string(sb, o->via.str.ptr, o->via.str.size);
        return 0;
    case MSGPACK_OBJECT_ARRAY:
        wsni_strbuf_append_char(sb, '[');
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                wsni_strbuf_append_char(sb, ',');
            if (to_json(sb, &o->via.array.ptr[i]))
                return -1;
        }
        wsni_strbuf_append_char(sb, ']');
        return 0;
    case MSGPACK_OBJECT_MAP:
        wsni_strbuf_append_char(sb, '{');
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR)
                return -1;
            if (i)
                wsni_strbuf_append_char(sb, ',');
            if (to_json(sb, &kv->key))
                return -1;
            wsni_strbuf_append_char(sb, ':');
            if (to_json(sb, &kv->val))
                return -1;
        }
        wsni_strbuf_append_char(sb, '}');
        return 0;
    default:
        return -1; /* bin and ext have no JSON form */
    }
}

static char *str_field(const msgpack_object *o, int *bad)
{
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return strdup("");
    /* Fields are C strings for the host: a NUL inside would cut them. */
    if (o->type != MSGPACK_OBJECT_STR ||
        !wsni_utf8_valid((const unsigned char *)o->via.str.ptr, o->via.str.size) ||
        memchr(o->via.str.ptr, 0, o->via.str.size)) {
        *bad = 1;
        return strdup("");
    }
    return strndup(o->via.str.ptr, o->via.str.size);
}

int wsni_msgpack_parse_incoming(const unsigned char *data, size_t len, incoming *out,
                           const char **error)
{
    memset(out, 0, sizeof(*out));
    *error = "invalid MessagePack format";
    if (!msgpack_sane(data, len))
        return -1;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (msgpack_unpack_next(&up, (const char *)data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(&up);
        return -1;
    }
    const msgpack_object *type = NULL, *chan = NULL, *msg = NULL, *mid = NULL, *rid = NULL;
    for (uint32_t i = 0; i < up.data.via.map.size; i++) {
        const msgpack_object_kv *kv = &up.data.via.map.ptr[i];
        if (obj_str_eq(&kv->key, "type"))
            type = &kv->val;
        else if (obj_str_eq(&kv->key, "channel"))
            chan = &kv->val;
        else if (obj_str_eq(&kv->key, "message"))
            msg = &kv->val;
        else if (obj_str_eq(&kv->key, "message_id"))
            mid = &kv->val;
        else if (obj_str_eq(&kv->key, "reply_to_id"))
            rid = &kv->val;
    }
    int bad = 0;
    out->type = WSN_TYPE_JSON;
    if (type && type->type != MSGPACK_OBJECT_NIL) {
        if (obj_str_eq(type, "text"))
            out->type = WSN_TYPE_TEXT;
        else if (obj_str_eq(type, "binary"))
            out->type = WSN_TYPE_BINARY;
        else if (!obj_str_eq(type, "json")) {
            msgpack_unpacked_destroy(&up);
            *error = "unknown message type";
            return -1;
        }
    }
    out->channel = str_field(chan, &bad);
    out->message_id = str_field(mid, &bad);
    out->reply_to_id = str_field(rid, &bad);
    strbuf sb;
    wsni_strbuf_init(&sb);
    if (out->type == WSN_TYPE_JSON) {
        if (!msg)
            wsni_strbuf_append_str(&sb, "null");
        else if (to_json(&sb, msg))
            bad = 1;
    } else if (msg && out->type == WSN_TYPE_TEXT && msg->type == MSGPACK_OBJECT_STR &&
               wsni_utf8_valid((const unsigned char *)msg->via.str.ptr, msg->via.str.size)) {
        wsni_strbuf_append(&sb, msg->via.str.ptr, msg->via.str.size);
    } else if (msg && out->type == WSN_TYPE_BINARY && msg->type == MSGPACK_OBJECT_BIN) {
        wsni_strbuf_append(&sb, msg->via.bin.ptr, msg->via.bin.size);
    } else if (msg && msg->type != MSGPACK_OBJECT_NIL) {
        bad = 1;
    }
    msgpack_unpacked_destroy(&up);
    wsni_strbuf_reserve(&sb, 0);
    out->payload = (unsigned char *)wsni_strbuf_take(&sb, &out->payload_len);
    if (bad || !out->payload || !out->channel || !out->message_id || !out->reply_to_id) {
        wsni_incoming_clear(out);
        *error = "invalid message format";
        return -1;
    }
    return 0;
}

/* --- the codec ------------------------------------------------------------ */

static wsn_frame *msgpack_batch_frame(const wsni_batch_wire *b, const char *time)
{
    strbuf sb;
    msgpack_packer pk;
    wsni_strbuf_init(&sb);
    wsni_msgpack_packer_to_strbuf(&pk, &sb);
    msgpack_pack_map(&pk, 4);
    wsni_msgpack_pack_cstr(&pk, "channel", 7);
    wsni_msgpack_pack_cstr(&pk, b->channel, strlen(b->channel));
    wsni_msgpack_pack_cstr(&pk, "type", 4);
    const char *type = b->type == WSN_TYPE_TEXT ? "text" : "json";
    wsni_msgpack_pack_cstr(&pk, type, strlen(type));
    wsni_msgpack_pack_cstr(&pk, "time", 4);
    wsni_msgpack_pack_cstr(&pk, time, strlen(time));
    wsni_msgpack_pack_cstr(&pk, "message", 7);
    if (b->type == WSN_TYPE_TEXT) {
        strbuf text;
        wsni_strbuf_init(&text);
        wsni_batch_joined_text(b, &text);
        wsni_msgpack_pack_cstr(&pk, text.data ? text.data : "", text.len);
        if (text.failed)
            sb.failed = 1;
        wsni_strbuf_free(&text);
    } else {
        msgpack_pack_map(&pk, 2);
        wsni_msgpack_pack_cstr(&pk, "messages", 8);
        msgpack_pack_array(&pk, b->count);
        for (const wsni_list_node *at = b->values->head; at; at = at->next) {
            const wsni_batch_value *e = wsni_container_of(at, wsni_batch_value, node);
            if (b->type == WSN_TYPE_JSON) {
                if (wsni_msgpack_pack_json_text(&pk, e->value, e->value_len))
                    sb.failed = 1;
                continue;
            }
            /* Binary entries hold "base64" for JSON; MessagePack gets bin. */
            size_t b64len = e->value_len - 2;
            char *raw = malloc(b64len + 1);
            int n = raw && b64len < INT32_MAX
                        ? (int)wsni_base64_decode(e->value + 1, b64len, raw)
                        : -1;
            if (n < 0) {
                sb.failed = 1;
                n = 0;
            }
            msgpack_pack_bin(&pk, (size_t)n);
            msgpack_pack_bin_body(&pk, raw, (size_t)n);
            free(raw);
        }
        wsni_msgpack_pack_cstr(&pk, "name", 4);
        wsni_msgpack_pack_cstr(&pk, b->name, strlen(b->name));
    }
    wsn_frame *f = sb.failed ? NULL : wsni_frame_from(sb.data, sb.len, 1);
    wsni_strbuf_free(&sb);
    return f;
}

const wsni_codec wsni_codec_msgpack = {
    .envelope = wsni_msgpack_envelope_frame,
    .error = wsni_msgpack_error_frame,
    .batch = msgpack_batch_frame,
    .parse = wsni_msgpack_parse_incoming,
};
