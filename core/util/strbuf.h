/* A growable byte buffer for building envelopes; owned by whoever made it. */
#ifndef WSN_STRBUF_H
#define WSN_STRBUF_H

#include <stddef.h>

typedef struct strbuf {
    char *data;
    size_t len;
    size_t cap;
    int failed; /* an allocation failed: later appends are no-ops */
} strbuf;

void wsni_strbuf_init(strbuf *sb);
void wsni_strbuf_free(strbuf *sb);
int wsni_strbuf_reserve(strbuf *sb, size_t extra);
void wsni_strbuf_append(strbuf *sb, const void *data, size_t len);
void wsni_strbuf_append_str(strbuf *sb, const char *s);
void wsni_strbuf_append_char(strbuf *sb, char c);
/* Hands the bytes to the caller (NUL-terminated) and resets sb. */
char *wsni_strbuf_take(strbuf *sb, size_t *len);

#endif
