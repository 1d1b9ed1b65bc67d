/* Standard base64 (RFC 4648, with padding): what binary payloads are in
 * JSON envelopes. The engine's own, so no codec needs the transport's
 * library for it. */
#ifndef WSN_UTIL_BASE64_H
#define WSN_UTIL_BASE64_H

#include <stddef.h>

/* Writes (len + 2) / 3 * 4 characters and a NUL at out; returns the count
 * of characters (without the NUL). */
size_t wsni_base64_encode(const void *data, size_t len, char *out);

/* Decodes text that wsni_base64_std_valid() accepted into out (room for
 * len / 4 * 3 bytes); returns the byte count, or -1 on a character that
 * is not base64. */
long wsni_base64_decode(const char *text, size_t len, void *out);

#endif
