/* One message on its way out, with at most one encoded frame per wire
 * format. Frames are made on first need: the publisher encodes the formats
 * its server has clients for; the I/O thread fills in a format only when
 * a client of it appeared meanwhile. */
#ifndef WSN_OUTGOING_H
#define WSN_OUTGOING_H

#include "engine/codec.h"
#include "engine/frame.h"
#include "wsnotify.h"

typedef struct outgoing outgoing;
struct outgoing {
    wsn_frame *frames[FORMAT_COUNT];
    /* Encodes for one format; NULL on failure. */
    wsn_frame *(*encode)(outgoing *o, enum wire_format fmt);
    void (*destroy)(outgoing *o);
};

/* A plain message (publish, publish_to_client, error replies). */
typedef struct message_out {
    outgoing base;
    char *channel;
    wsn_message_type type;
    char time[40];
    char *value; /* json: minified JSON text; text: UTF-8; binary: bytes */
    size_t value_len;
    char *message_id;
    char *reply_to_id;
} message_out;

/* Copies everything (minify: value is valid JSON, copied without its
 * whitespace); value must already be validated. NULL: no memory. */
outgoing *wsni_message_out_new(const char *channel, wsn_message_type type, const void *value,
                          size_t len, int minify, const char *message_id,
                          const char *reply_to_id);
/* The same frame for every format (raw sends). Takes the reference. */
outgoing *wsni_raw_out_new(wsn_frame *frame);
/* The error reply to bad input: {"client_id","error","reply_to","time","type"}. */
outgoing *wsni_error_out_new(const char *client_id, const char *error);

wsn_frame *wsni_outgoing_frame(outgoing *o, enum wire_format fmt);
void wsni_outgoing_free(outgoing *o);

#endif
