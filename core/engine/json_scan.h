/* Validates JSON text without building it: accepts exactly what the core's
 * jansson parse accepts. */
#ifndef WSN_JSON_SCAN_H
#define WSN_JSON_SCAN_H

#include <stddef.h>

/* 1 if text[0..len) is one JSON value with optional surrounding whitespace. */
int wsni_json_scan_valid(const char *text, size_t len);

/* The calls below walk text that wsni_json_scan_valid accepted; on anything
 * else their result is undefined. */

/* p is at a string's opening quote: returns the byte after its closing
 * one (end bounds the reads of its fast path only). */
const char *wsni_json_scan_string_end(const char *p, const char *end);

/* p is at the first byte of a value: returns the byte after it. */
const char *wsni_json_scan_skip(const char *p, const char *end);

/* Decodes the string literal quoted[0..len) (quotes included) into out,
 * which has room for len bytes: decoding never lengthens. Returns the
 * decoded length; out is NUL-terminated. */
size_t wsni_json_scan_unescape(const char *quoted, size_t len, char *out);

/* A piece of the text: a key with its quotes, or a whole value. */
typedef struct json_span {
    const char *text;
    size_t len;
} json_span;

/* Walks the members of a top-level object, in the order written. */
typedef struct json_members {
    const char *p, *end;
} json_members;

/* -1 if the (valid) text is not an object. */
int wsni_json_scan_object(json_members *it, const char *text, size_t len);
/* 1 with the next member's key and value, 0 after the last. */
int wsni_json_scan_next_member(json_members *it, json_span *key, json_span *value);
/* Whether a string literal (a key, or a value starting with a quote),
 * decoded, is name[0..name_len). */
int wsni_json_scan_string_eq(const json_span *key, const char *name, size_t name_len);
/* The same for a string constant. */
#define json_scan_string_is(key, literal) wsni_json_scan_string_eq((key), "" literal, sizeof(literal) - 1)

#endif
