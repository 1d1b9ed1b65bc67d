/* libFuzzer target: the incoming envelope parser (wsni_json_parse_incoming,
 * what every client text frame goes through), then what an echo of it
 * builds (wsni_json_message_value + wsni_json_envelope, as publish_to_client does).
 *
 * The parser walks the text without building it; jansson is the oracle.
 * Invariants: no crash or sanitizer report; it accepts and refuses exactly
 * what a jansson reading of the envelope would (same error text); on
 * success every field is set, NUL-terminated and equal to jansson's
 * string; a json payload is the message's text, equal to jansson's value
 * (integers read as reals on both sides, so 2^64 and beyond compare); a
 * text payload is the message string, valid UTF-8; the envelope built back
 * from the fields is valid JSON whose fields read back equal. Also: the
 * scanner behind wsn_json_validate (json_scan.c) accepts exactly the
 * inputs jansson loads. */
#include <jansson.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "engine/codec_json.h"
#include "fuzz_common.h"
#include "engine/json_scan.h"
#include "util/text.h"

static char *canonical_of(json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/* Canonical text with every number a real: comparable whatever integer
 * widths the two sides saw. */
static char *canonical_as_reals(const char *text, size_t len)
{
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
    char *s = v ? canonical_of(v) : NULL;
    json_decref(v);
    return s;
}

static int field_ok(json_t *root, const char *key)
{
    json_t *v = json_object_get(root, key);
    return !v || json_is_null(v) || json_is_string(v);
}

static const char *field_value(json_t *root, const char *key)
{
    json_t *v = json_object_get(root, key);
    return v && json_is_string(v) ? json_string_value(v) : "";
}

/* What the envelope means to jansson: NULL when it is acceptable, else
 * the error text the client must get. */
static const char *oracle_error(json_t *root, wsn_message_type *type)
{
    if (!root || !json_is_object(root))
        return "invalid JSON format";
    *type = WSN_TYPE_JSON;
    json_t *t = json_object_get(root, "type");
    if (t && !json_is_null(t)) {
        const char *name = json_is_string(t) ? json_string_value(t) : "";
        if (!strcmp(name, "json"))
            *type = WSN_TYPE_JSON;
        else if (!strcmp(name, "text"))
            *type = WSN_TYPE_TEXT;
        else if (!strcmp(name, "binary"))
            *type = WSN_TYPE_BINARY;
        else
            return "unknown message type";
    }
    if (!field_ok(root, "channel") || !field_ok(root, "message_id") ||
        !field_ok(root, "reply_to_id"))
        return "invalid message format";
    json_t *msg = json_object_get(root, "message");
    if (*type == WSN_TYPE_JSON || !msg || json_is_null(msg))
        return NULL;
    if (!json_is_string(msg))
        return "invalid message format";
    if (*type == WSN_TYPE_BINARY) {
        size_t n = json_string_length(msg);
        if (!wsni_base64_std_valid(json_string_value(msg), n))
            return "invalid message format";
        char *out = malloc(n + 1);
        int rc = out ? lws_b64_decode_string_len(json_string_value(msg), (int)n, out, (int)n + 1)
                     : -1;
        free(out);
        if (rc < 0)
            return "invalid message format";
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *any = memchr(data, 0, size) ? NULL
                                        : wsni_json_load_any((const char *)data, size, JSON_DECODE_ANY);
    int scanned = wsni_json_scan_valid((const char *)data, size);
    FUZZ_CHECK(scanned == (any != NULL), "wsni_json_scan_valid says %d, jansson %s", scanned,
               any ? "loads it" : "refuses it");
    json_decref(any);

    json_t *root = memchr(data, 0, size)
                       ? NULL
                       : json_loadb((const char *)data, size, JSON_DECODE_INT_AS_REAL, NULL);
    wsn_message_type want_type = WSN_TYPE_JSON;
    const char *want_error = oracle_error(root, &want_type);

    incoming in;
    const char *error = NULL;
    if (wsni_json_parse_incoming((const char *)data, size, &in, &error)) {
        FUZZ_CHECK(error && *error, "failure without an error text");
        FUZZ_CHECK(!in.channel && !in.payload, "failure left fields set");
        FUZZ_CHECK(want_error && !strcmp(error, want_error), "refused with \"%s\", jansson: %s",
                   error, want_error ? want_error : "acceptable");
        json_decref(root);
        return 0;
    }
    FUZZ_CHECK(!want_error, "accepted, jansson says \"%s\"", want_error ? want_error : "");
    FUZZ_CHECK(in.channel && in.message_id && in.reply_to_id && in.payload, "a NULL field");
    FUZZ_CHECK(in.type == want_type, "type %d, jansson %d", (int)in.type, (int)want_type);
    FUZZ_CHECK(in.payload[in.payload_len] == 0, "payload not NUL-terminated");
    FUZZ_CHECK(!strcmp(in.channel, field_value(root, "channel")), "channel differs");
    FUZZ_CHECK(!strcmp(in.message_id, field_value(root, "message_id")), "message_id differs");
    FUZZ_CHECK(!strcmp(in.reply_to_id, field_value(root, "reply_to_id")), "reply_to_id differs");

    json_t *msg = json_object_get(root, "message");
    if (in.type == WSN_TYPE_JSON) {
        FUZZ_CHECK(wsn_json_validate((const char *)in.payload, in.payload_len) == WSN_OK,
                   "json payload is not JSON: %s", in.payload);
        char *a = canonical_as_reals((const char *)in.payload, in.payload_len);
        char *b = msg ? canonical_of(msg) : strdup("null");
        FUZZ_CHECK(a && b && !strcmp(a, b), "payload %s differs from message %s", a, b);
        free(a);
        free(b);
    } else if (in.type == WSN_TYPE_TEXT) {
        FUZZ_CHECK(wsni_utf8_valid(in.payload, in.payload_len), "text payload is not UTF-8");
        if (msg && json_is_string(msg))
            FUZZ_CHECK(in.payload_len == json_string_length(msg) &&
                           !memcmp(in.payload, json_string_value(msg), in.payload_len),
                       "text payload differs from the message string");
    }

    /* Our quoting of strings that need no escape must be jansson's. */
    {
        strbuf ours;
        wsni_strbuf_init(&ours);
        wsni_json_append_string(&ours, in.channel, strlen(in.channel));
        json_t *js = json_string(in.channel);
        char *theirs = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
        FUZZ_CHECK(theirs && ours.data && !strcmp(ours.data, theirs), "channel quoted as %s, jansson %s",
                   ours.data ? ours.data : "(null)", theirs ? theirs : "(null)");
        free(theirs);
        json_decref(js);
        wsni_strbuf_free(&ours);
    }

    /* Echo it back the way publish_to_client encodes. */
    strbuf value, env;
    wsni_strbuf_init(&value);
    wsni_strbuf_init(&env);
    int rc = wsni_json_message_value(in.type, in.payload, in.payload_len, &value);
    FUZZ_CHECK(rc == WSN_OK, "wsni_json_message_value refused a parsed payload: %d", rc);
    wsni_json_envelope(&env, in.channel, in.type, "2025-01-01T00:00:00Z", value.data, value.len,
                  in.message_id, in.reply_to_id);
    FUZZ_CHECK(!env.failed, "envelope build failed");
    json_t *back = wsni_json_load_any(env.data, env.len, 0);
    FUZZ_CHECK(back != NULL, "the echo envelope is not JSON: %s", env.data);
    FUZZ_CHECK(!strcmp(json_string_value(json_object_get(back, "channel")), in.channel),
               "channel changed");
    if (in.type == WSN_TYPE_JSON) {
        json_t *back_reals = json_loadb(env.data, env.len, JSON_DECODE_INT_AS_REAL, NULL);
        char *a = back_reals ? canonical_of(json_object_get(back_reals, "message")) : NULL;
        json_decref(back_reals);
        char *b = canonical_as_reals((const char *)in.payload, in.payload_len);
        FUZZ_CHECK(a && b && !strcmp(a, b), "echoed message %s differs from %s", a, b);
        free(a);
        free(b);
    } else if (in.type == WSN_TYPE_TEXT) {
        json_t *s = json_object_get(back, "message");
        FUZZ_CHECK(json_is_string(s) && json_string_length(s) == in.payload_len &&
                       !memcmp(json_string_value(s), in.payload, in.payload_len),
                   "echoed text differs");
    }
    json_decref(back);
    json_decref(root);
    wsni_strbuf_free(&value);
    wsni_strbuf_free(&env);
    wsni_incoming_clear(&in);
    return 0;
}
