#include "outgoing.h"

#include "codec_json.h"
#include "codec_msgpack.h"
#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

wsn_frame *outgoing_frame(outgoing *o, enum wire_format fmt)
{
    if (!o->frames[fmt])
        o->frames[fmt] = o->encode(o, fmt);
    return o->frames[fmt];
}

void outgoing_free(outgoing *o)
{
    if (!o)
        return;
    for (int i = 0; i < FORMAT_COUNT; i++)
        if (o->frames[i])
            frame_unref(o->frames[i]);
    o->destroy(o);
}

/* --- plain messages ----------------------------------------------------- */

static wsn_frame *message_encode(outgoing *o, enum wire_format fmt)
{
    message_out *m = (message_out *)o;
    if (fmt == FORMAT_MSGPACK)
        return msgpack_envelope_frame(m->channel, m->type, m->time, m->value, m->value_len,
                                      m->message_id, m->reply_to_id);
    strbuf value, env;
    strbuf_init(&value);
    strbuf_init(&env);
    wsn_frame *f = NULL;
    if (m->type == WSN_TYPE_JSON)
        strbuf_append(&value, m->value, m->value_len);
    else
        json_message_value(m->type, m->value, m->value_len, &value);
    if (!value.failed) {
        json_envelope(&env, m->channel, m->type, m->time, value.data ? value.data : "",
                      value.len, m->message_id, m->reply_to_id);
        if (!env.failed)
            f = frame_from(env.data, env.len, 0);
    }
    strbuf_free(&value);
    strbuf_free(&env);
    return f;
}

static void message_destroy(outgoing *o)
{
    message_out *m = (message_out *)o;
    free(m->channel);
    free(m->value);
    free(m->message_id);
    free(m->reply_to_id);
    free(m);
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

outgoing *message_out_new(const char *channel, wsn_message_type type, const void *value,
                          size_t len, const char *message_id, const char *reply_to_id)
{
    message_out *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->base.encode = message_encode;
    m->base.destroy = message_destroy;
    m->type = type;
    m->value = malloc(len + 1);
    m->channel = dup_or_empty(channel);
    m->message_id = dup_or_empty(message_id);
    m->reply_to_id = dup_or_empty(reply_to_id);
    if (!m->value || !m->channel || !m->message_id || !m->reply_to_id) {
        message_destroy(&m->base);
        return NULL;
    }
    if (len)
        memcpy(m->value, value, len);
    m->value[len] = 0;
    m->value_len = len;
    time_rfc3339nano(m->time);
    return &m->base;
}

/* --- raw frames ------------------------------------------------------------ */

static wsn_frame *raw_encode(outgoing *o, enum wire_format fmt)
{
    (void)fmt;
    return o->frames[FORMAT_JSON] ? frame_ref(o->frames[FORMAT_JSON]) : NULL;
}

static void plain_destroy(outgoing *o) { free(o); }

outgoing *raw_out_new(wsn_frame *frame)
{
    outgoing *o = calloc(1, sizeof(*o));
    if (!o) {
        frame_unref(frame);
        return NULL;
    }
    o->encode = raw_encode;
    o->destroy = plain_destroy;
    o->frames[FORMAT_JSON] = frame;
    return o;
}

/* --- error replies ----------------------------------------------------------- */

typedef struct error_out {
    outgoing base;
    char client_id[24];
    const char *error; /* static text */
    char time[40];
} error_out;

static wsn_frame *error_encode(outgoing *o, enum wire_format fmt)
{
    error_out *e = (error_out *)o;
    if (fmt == FORMAT_MSGPACK)
        return msgpack_error_frame(e->client_id, e->error, e->time);
    strbuf sb;
    strbuf_init(&sb);
    json_error_payload(&sb, e->client_id, e->error, e->time);
    wsn_frame *f = sb.failed ? NULL : frame_from(sb.data, sb.len, 0);
    strbuf_free(&sb);
    return f;
}

outgoing *error_out_new(const char *client_id, const char *error)
{
    error_out *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->base.encode = error_encode;
    e->base.destroy = plain_destroy;
    snprintf(e->client_id, sizeof(e->client_id), "%s", client_id);
    e->error = error;
    time_rfc3339nano(e->time);
    return &e->base;
}
