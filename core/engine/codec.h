/* One interface for the wire formats: what a codec encodes (a message's
 * envelope, the error reply, a publish_wait batch) and decodes (a client's
 * envelope). The table is indexed by wire format, so the engine and the
 * transport never name a format's functions: outgoing.c and batch.c
 * encode through it, the transport decodes through it.
 *
 * Owns: enum wire_format, the codec table's shape and the batch's wire
 * view. The JSON codec is codec_json.c, MessagePack codec_msgpack.c.
 * Pure functions, callable from any thread. */
#ifndef WSN_ENGINE_CODEC_H
#define WSN_ENGINE_CODEC_H

#include "engine/frame.h"
#include "engine/incoming.h"
#include "util/list.h"
#include "wsnotify.h"

enum wire_format { FORMAT_JSON = 0, FORMAT_MSGPACK = 1, FORMAT_COUNT };

/* One message of a publish_wait batch as the codecs read it: value is
 * JSON text (json; binary as a "base64" JSON string) or UTF-8 (text). */
typedef struct wsni_batch_value {
    wsni_list_node node; /* in wsni_batch_wire.values, arrival order */
    char *value;
    size_t value_len;
} wsni_batch_value;

typedef struct wsni_batch_wire {
    const char *channel;
    const char *name;
    wsn_message_type type;
    size_t count;
    const wsni_list *values; /* of wsni_batch_value */
} wsni_batch_wire;

typedef struct wsni_codec {
    /* The envelope of one message. value: JSON text (json), UTF-8 (text)
     * or bytes (binary). NULL: no memory. */
    wsn_frame *(*envelope)(const char *channel, wsn_message_type type, const char *time,
                           const char *value, size_t value_len, const char *message_id,
                           const char *reply_to_id);
    /* The reply to input that is not a valid envelope. */
    wsn_frame *(*error)(const char *client_id, const char *error, const char *time);
    /* A batch: {"messages": [...], "name"} (json, binary) or
     * "name\n\nm1\nm2" (text). NULL: no memory or a bad value. */
    wsn_frame *(*batch)(const wsni_batch_wire *b, const char *time);
    /* A client's envelope. Returns 0, or nonzero with *error set to the
     * text for the error reply ("invalid JSON format", ...). */
    int (*parse)(const unsigned char *data, size_t len, incoming *out, const char **error);
} wsni_codec;

extern const wsni_codec wsni_codec_json, wsni_codec_msgpack;

static inline const wsni_codec *wsni_codec_of(enum wire_format fmt)
{
    return fmt == FORMAT_MSGPACK ? &wsni_codec_msgpack : &wsni_codec_json;
}

#endif
