/* The JSON wire format: the codec wsni_codec_json (engine/codec.h) and
 * the JSON helpers the shell and the MessagePack codec share. Pure
 * functions, callable from any thread. */
#ifndef WSN_CODEC_JSON_H
#define WSN_CODEC_JSON_H

#include "engine/codec.h"
#include "util/strbuf.h"

#include <jansson.h>
#include "wsnotify.h"

/* Appends the envelope's "message" value for a publish: validated and
 * minified JSON, an escaped string for text, base64 for binary.
 * Returns 0, WSN_EJSON, WSN_EINVAL (text not UTF-8) or WSN_ENOMEM. */
int wsni_json_message_value(wsn_message_type type, const void *data, size_t len, strbuf *out);

/* Copies valid JSON text without the whitespace between tokens into dst
 * (room for len bytes); returns the length written. */
size_t wsni_json_minify(char *dst, const char *text, size_t len);

/* Appends a JSON string literal (escaped by jansson). s must be UTF-8. */
void wsni_json_append_string(strbuf *out, const char *s, size_t len);

/* json_loadb that also takes integers beyond 64 bits (as reals). */
json_t *wsni_json_load_any(const char *text, size_t len, size_t flags);

/* Appends the shortest decimal that reads back as v; -1 for NaN/inf. */
int wsni_json_append_real(strbuf *out, double v);

/* Appends a whole envelope in the wire order channel, type, time, message,
 * message_id, reply_to_id (ids omitted when empty). value is a JSON value. */
void wsni_json_envelope(strbuf *out, const char *channel, wsn_message_type type, const char *time,
                   const char *value, size_t value_len, const char *message_id,
                   const char *reply_to_id);

/* The reply to input that is not a valid envelope (keys sorted, as the Go
 * original marshals a map). */
void wsni_json_error_payload(strbuf *out, const char *client_id, const char *error, const char *time);

/* Parses a client text frame. Returns 0, or nonzero with *error set to the
 * text for the error payload ("invalid JSON format", ...). */
int wsni_json_parse_incoming(const char *text, size_t len, incoming *out, const char **error);

/* A text batch's payload: name "\n\n" messages joined by "\n". */
void wsni_batch_joined_text(const wsni_batch_wire *b, strbuf *text);

/* Canonical text of JSON (sorted keys, compact) for de-duplication; NULL
 * if text is not JSON. Caller frees. */
char *wsni_json_canonical(const char *text, size_t len);

#endif
