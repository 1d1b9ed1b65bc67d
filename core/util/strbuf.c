#include "util/strbuf.h"

#include <stdlib.h>
#include <string.h>

void wsni_strbuf_init(strbuf *sb) { memset(sb, 0, sizeof(*sb)); }

void wsni_strbuf_free(strbuf *sb)
{
    free(sb->data);
    wsni_strbuf_init(sb);
}

int wsni_strbuf_reserve(strbuf *sb, size_t extra)
{
    if (sb->failed)
        return -1;
    /* +1 keeps room for the terminating NUL that wsni_strbuf_take adds. */
    if (sb->len + extra + 1 <= sb->cap)
        return 0;
    size_t cap = sb->cap ? sb->cap : 128;
    while (cap < sb->len + extra + 1) {
        if (cap > ((size_t)-1) / 2) {
            sb->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    char *p = realloc(sb->data, cap);
    if (!p) {
        sb->failed = 1;
        return -1;
    }
    sb->data = p;
    sb->cap = cap;
    return 0;
}

void wsni_strbuf_append(strbuf *sb, const void *data, size_t len)
{
    if (!len || wsni_strbuf_reserve(sb, len))
        return;
    memcpy(sb->data + sb->len, data, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
}

void wsni_strbuf_append_str(strbuf *sb, const char *s) { wsni_strbuf_append(sb, s, strlen(s)); }

void wsni_strbuf_append_char(strbuf *sb, char c) { wsni_strbuf_append(sb, &c, 1); }

char *wsni_strbuf_take(strbuf *sb, size_t *len)
{
    if (sb->failed || wsni_strbuf_reserve(sb, 0)) {
        wsni_strbuf_free(sb);
        return NULL;
    }
    char *p = sb->data;
    p[sb->len] = '\0';
    if (len)
        *len = sb->len;
    wsni_strbuf_init(sb);
    return p;
}
