#include "broker/url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *why, size_t why_len, const char *url, const char *what)
{
    snprintf(why, why_len, "broker \"%.200s\": %s (redis://[:password@]host[:port][/db] or "
             "unix:/path)", url, what);
    return -1;
}

/* A decimal number in [min, max] spanning exactly [s, end). */
static int number(const char *s, const char *end, long min, long max, int *out)
{
    if (s == end || end - s > 9)
        return -1;
    long v = 0;
    for (const char *p = s; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

int wsni_broker_url_parse(const char *url, wsni_broker_addr *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (!strncmp(url, "unix:", 5)) {
        const char *path = url + 5;
        if (!strncmp(path, "//", 2))
            path += 2;
        if (path[0] != '/')
            return fail(why, why_len, url, "a unix socket path must be absolute");
        if (strlen(path) >= sizeof(out->path))
            return fail(why, why_len, url, "unix socket path too long");
        strcpy(out->path, path);
        return 0;
    }
    if (!strncmp(url, "rediss://", 9)) {
        /* hiredis 0.14 (Debian 12) has no TLS: refused rather than sent in
         * clear to a port that expects TLS. */
        snprintf(why, why_len,
                 "broker \"%.200s\": rediss:// (TLS) is not supported: this build's hiredis "
                 "has no TLS; reach Redis through a TLS tunnel on loopback (stunnel, spiped) and "
                 "give its redis:// address (docs/scale-out.md)",
                 url);
        return -2;
    }
    if (strncmp(url, "redis://", 8))
        return fail(why, why_len, url, "unknown scheme");
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) {
        /* redis://:password@host and redis://user:password@host: Redis 6
         * ACL users are not supported, only the default user's password. */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon || colon != p)
            return fail(why, why_len, url, "only ':password@' is supported before the host");
        size_t n = (size_t)(at - colon - 1);
        if (n == 0 || n >= sizeof(out->password))
            return fail(why, why_len, url, "empty or too long password");
        memcpy(out->password, colon + 1, n);
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *hostend = slash ? slash : p + strlen(p);
    const char *colon = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(hostend - p));
        if (!close)
            return fail(why, why_len, url, "unclosed [ in the host");
        if ((size_t)(close - p - 1) >= sizeof(out->host) || close == p + 1)
            return fail(why, why_len, url, "bad host");
        memcpy(out->host, p + 1, (size_t)(close - p - 1));
        if (close + 1 < hostend) {
            if (close[1] != ':')
                return fail(why, why_len, url, "bad host");
            colon = close + 1;
        }
    } else {
        colon = memchr(p, ':', (size_t)(hostend - p));
        const char *he = colon ? colon : hostend;
        if (he == p || (size_t)(he - p) >= sizeof(out->host))
            return fail(why, why_len, url, "missing or too long host");
        memcpy(out->host, p, (size_t)(he - p));
    }
    if (colon && number(colon + 1, hostend, 1, 65535, &out->port))
        return fail(why, why_len, url, "port must be 1..65535");
    if (slash && slash[1] && number(slash + 1, slash + strlen(slash), 0, 1000000, &out->db))
        return fail(why, why_len, url, "db must be a number");
    return 0;
}
