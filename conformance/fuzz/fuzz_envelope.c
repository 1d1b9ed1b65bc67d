/* libFuzzer target: the incoming envelope parser (json_parse_incoming,
 * what every client text frame goes through), then what an echo of it
 * builds (json_message_value + json_envelope, as publish_to_client does).
 *
 * Invariants: no crash or sanitizer report; on success every field is set
 * and NUL-terminated; a json payload is valid JSON equal (canonically) to
 * the envelope's "message"; a text payload is the message string, valid
 * UTF-8; the envelope built back from the fields is valid JSON whose
 * fields read back equal. JSON is loaded the way the core loads it
 * (json_load_any: integers beyond 64 bits turn the document's integers
 * into reals). Also: the scanner behind wsn_json_validate (json_scan.c)
 * accepts exactly the inputs jansson loads. */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "codec_json.h"
#include "fuzz_common.h"
#include "json_scan.h"
#include "text.h"

static char *canonical_of(json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *any = memchr(data, 0, size) ? NULL
                                        : json_load_any((const char *)data, size, JSON_DECODE_ANY);
    int scanned = json_scan_valid((const char *)data, size);
    FUZZ_CHECK(scanned == (any != NULL), "json_scan_valid says %d, jansson %s", scanned,
               any ? "loads it" : "refuses it");
    json_decref(any);

    incoming in;
    const char *error = NULL;
    if (json_parse_incoming((const char *)data, size, &in, &error)) {
        FUZZ_CHECK(error && *error, "failure without an error text");
        FUZZ_CHECK(!in.channel && !in.payload, "failure left fields set");
        return 0;
    }
    FUZZ_CHECK(in.channel && in.message_id && in.reply_to_id && in.payload, "a NULL field");
    FUZZ_CHECK((int)in.type >= 0 && (int)in.type <= 2, "type %d", (int)in.type);
    FUZZ_CHECK(in.payload[in.payload_len] == 0, "payload not NUL-terminated");

    json_t *root = json_load_any((const char *)data, size, 0);
    FUZZ_CHECK(root != NULL, "parsed by the core, not by jansson");
    json_t *msg = json_object_get(root, "message");
    if (in.type == WSN_TYPE_JSON) {
        FUZZ_CHECK(wsn_json_validate((const char *)in.payload, in.payload_len) == WSN_OK,
                   "json payload is not JSON: %s", in.payload);
        char *a = json_canonical((const char *)in.payload, in.payload_len);
        char *b = msg ? canonical_of(msg) : strdup("null");
        FUZZ_CHECK(a && b && !strcmp(a, b), "payload %s differs from message %s", a, b);
        free(a);
        free(b);
    } else if (in.type == WSN_TYPE_TEXT) {
        FUZZ_CHECK(utf8_valid(in.payload, in.payload_len), "text payload is not UTF-8");
        if (msg && json_is_string(msg))
            FUZZ_CHECK(in.payload_len == json_string_length(msg) &&
                           !memcmp(in.payload, json_string_value(msg), in.payload_len),
                       "text payload differs from the message string");
    }

    /* Echo it back the way publish_to_client encodes. */
    strbuf value, env;
    strbuf_init(&value);
    strbuf_init(&env);
    int rc = json_message_value(in.type, in.payload, in.payload_len, &value);
    FUZZ_CHECK(rc == WSN_OK, "json_message_value refused a parsed payload: %d", rc);
    json_envelope(&env, in.channel, in.type, "2025-01-01T00:00:00Z", value.data, value.len,
                  in.message_id, in.reply_to_id);
    FUZZ_CHECK(!env.failed, "envelope build failed");
    json_t *back = json_load_any(env.data, env.len, 0);
    FUZZ_CHECK(back != NULL, "the echo envelope is not JSON: %s", env.data);
    FUZZ_CHECK(!strcmp(json_string_value(json_object_get(back, "channel")), in.channel),
               "channel changed");
    if (in.type == WSN_TYPE_JSON) {
        char *a = canonical_of(json_object_get(back, "message"));
        char *b = json_canonical((const char *)in.payload, in.payload_len);
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
    strbuf_free(&value);
    strbuf_free(&env);
    incoming_clear(&in);
    return 0;
}
