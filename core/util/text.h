/* Small text helpers shared by the codec, options and registry. */
#ifndef WSN_TEXT_H
#define WSN_TEXT_H

#include <stddef.h>

/* 1 when buf holds well-formed UTF-8 (no overlongs, no surrogates). */
int wsni_utf8_valid(const unsigned char *buf, size_t len);
int wsni_utf8_valid_str(const char *s);

/* 1 when s is standard base64 with its padding (RFC 4648 section 4):
 * what a binary message must be in JSON. lws's decoder skips what it does
 * not know, so "***" would otherwise decode to nothing. */
int wsni_base64_std_valid(const char *s, size_t len);

/* UTC now as RFC 3339 with nanoseconds, trailing zeros trimmed (Go's
 * RFC3339Nano): "2025-08-18T10:30:00.123456789Z". out needs 40 bytes. */
void wsni_time_rfc3339nano(char out[40]);

#endif
