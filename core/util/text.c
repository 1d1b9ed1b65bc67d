#include "util/text.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int wsni_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned int cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + n >= len) /* the sequence runs past the end */
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* The date and time to the second, formatted once per second per thread:
 * gmtime and strftime cost more than the rest of a small publish. */
static _Thread_local time_t cached_second = -1;
static _Thread_local char cached_prefix[24];
static _Thread_local size_t cached_prefix_len;

void wsni_time_rfc3339nano(char out[40])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_second) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        cached_prefix_len = strftime(cached_prefix, sizeof(cached_prefix), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_second = ts.tv_sec;
    }
    memcpy(out, cached_prefix, cached_prefix_len);
    size_t n = cached_prefix_len;
    if (ts.tv_nsec) {
        /* nine digits, then the trailing zeros dropped */
        char digits[9];
        long ns = ts.tv_nsec;
        for (int i = 8; i >= 0; i--, ns /= 10)
            digits[i] = (char)('0' + ns % 10);
        size_t len = 9;
        while (digits[len - 1] == '0')
            len--;
        out[n++] = '.';
        memcpy(out + n, digits, len);
        n += len;
    }
    out[n++] = 'Z';
    out[n] = '\0';
}

int wsni_utf8_valid_str(const char *s) { return wsni_utf8_valid((const unsigned char *)s, strlen(s)); }

int wsni_base64_std_valid(const char *s, size_t len)
{
    if (len % 4)
        return 0;
    size_t pad = 0;
    if (len && s[len - 1] == '=')
        pad = len >= 2 && s[len - 2] == '=' ? 2 : 1;
    for (size_t i = 0; i < len - pad; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return 0;
    }
    return 1;
}
