/* The MessagePack wire format (subprotocol "wsnotify.msgpack"): the same
 * envelope keys as JSON in a map, json payloads as native values, text as
 * str, binary as bin. Pure functions, callable from any thread. */
#ifndef WSN_CODEC_MSGPACK_H
#define WSN_CODEC_MSGPACK_H

#include "engine/codec_json.h"
#include "engine/frame.h"
#include "util/strbuf.h"
#include "wsnotify.h"

#include <msgpack.h>

/* A packer whose output is appended to sb. */
void wsni_msgpack_packer_to_strbuf(msgpack_packer *pk, strbuf *sb);
void wsni_msgpack_pack_cstr(msgpack_packer *pk, const char *s, size_t len);
/* Packs validated JSON text as native MessagePack values; 0 or WSN_EJSON. */
int wsni_msgpack_pack_json_text(msgpack_packer *pk, const char *json, size_t len);

/* Binary frames. value: JSON text (json), UTF-8 (text) or bytes (binary). */
wsn_frame *wsni_msgpack_envelope_frame(const char *channel, wsn_message_type type, const char *time,
                                  const char *value, size_t value_len, const char *message_id,
                                  const char *reply_to_id);
wsn_frame *wsni_msgpack_error_frame(const char *client_id, const char *error, const char *time);

/* Parses a client's binary frame; same contract as wsni_json_parse_incoming. */
int wsni_msgpack_parse_incoming(const unsigned char *data, size_t len, incoming *out,
                           const char **error);

/* Deepest nesting accepted in incoming MessagePack (msgpack-c's own stack). */
#define WSN_MSGPACK_MAX_DEPTH 32

#endif
