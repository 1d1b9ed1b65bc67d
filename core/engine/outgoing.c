#include "engine/outgoing.h"

#include "engine/codec_json.h"
#include "util/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

wsn_frame *wsni_outgoing_frame(outgoing *o, enum wire_format fmt)
{
    if (!o->frames[fmt])
        o->frames[fmt] = o->encode(o, fmt);
    return o->frames[fmt];
}

void wsni_outgoing_free(outgoing *o)
{
    if (!o)
        return;
    for (int i = 0; i < FORMAT_COUNT; i++)
        if (o->frames[i])
            wsni_frame_unref(o->frames[i]);
    o->destroy(o);
}

/* --- plain messages ----------------------------------------------------- */

static wsn_frame *message_encode(outgoing *o, enum wire_format fmt)
{
    message_out *m = (message_out *)o;
    return wsni_codec_of(fmt)->envelope(m->channel, m->type, m->time, m->value, m->value_len,
                                        m->message_id, m->reply_to_id);
}

static void message_destroy(outgoing *o) { free(o); }

outgoing *wsni_message_out_new(const char *channel, wsn_message_type type, const void *value,
                          size_t len, int minify, const char *message_id,
                          const char *reply_to_id)
{
    channel = channel ? channel : "";
    message_id = message_id ? message_id : "";
    reply_to_id = reply_to_id ? reply_to_id : "";
    size_t channel_size = strlen(channel) + 1, mid_size = strlen(message_id) + 1,
           rid_size = strlen(reply_to_id) + 1;
    /* One allocation: the struct, then its strings and the value. */
    message_out *m = malloc(sizeof(*m) + channel_size + mid_size + rid_size + len + 1);
    if (!m)
        return NULL;
    memset(m, 0, sizeof(*m));
    m->base.encode = message_encode;
    m->base.destroy = message_destroy;
    m->type = type;
    char *p = (char *)(m + 1);
    m->channel = memcpy(p, channel, channel_size);
    p += channel_size;
    m->message_id = memcpy(p, message_id, mid_size);
    p += mid_size;
    m->reply_to_id = memcpy(p, reply_to_id, rid_size);
    p += rid_size;
    m->value = p;
    if (minify)
        m->value_len = wsni_json_minify(p, value, len);
    else {
        if (len)
            memcpy(p, value, len);
        m->value_len = len;
    }
    p[m->value_len] = 0;
    wsni_time_rfc3339nano(m->time);
    return &m->base;
}

/* --- raw frames ------------------------------------------------------------ */

static wsn_frame *raw_encode(outgoing *o, enum wire_format fmt)
{
    (void)fmt;
    return o->frames[FORMAT_JSON] ? frame_ref(o->frames[FORMAT_JSON]) : NULL;
}

static void plain_destroy(outgoing *o) { free(o); }

outgoing *wsni_raw_out_new(wsn_frame *frame)
{
    outgoing *o = calloc(1, sizeof(*o));
    if (!o) {
        wsni_frame_unref(frame);
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
    return wsni_codec_of(fmt)->error(e->client_id, e->error, e->time);
}

outgoing *wsni_error_out_new(const char *client_id, const char *error)
{
    error_out *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->base.encode = error_encode;
    e->base.destroy = plain_destroy;
    snprintf(e->client_id, sizeof(e->client_id), "%s", client_id);
    e->error = error;
    wsni_time_rfc3339nano(e->time);
    return &e->base;
}
