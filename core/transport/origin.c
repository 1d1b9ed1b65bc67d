#include "transport/origin.h"

#include <string.h>
#include <strings.h>

/* The host[:port] part of an Origin, or NULL when it is not a bare
 * scheme://host[:port] (an Origin never has a path, query or userinfo:
 * the Go original's substring test let "http://evil.example/?good.host"
 * through; any such extra makes this fail). */
static const char *origin_authority(const char *origin)
{
    const char *sep = strstr(origin, "://");
    if (!sep || sep == origin)
        return NULL;
    for (const char *p = origin; p < sep; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '+' || *p == '-' || *p == '.'))
            return NULL;
    const char *auth = sep + 3;
    if (!*auth || strpbrk(auth, "/?#@ \t\\"))
        return NULL;
    return auth;
}

static int in_list(const char *list, const char *origin)
{
    size_t olen = strlen(origin);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *last = end;
        while (last > p && last[-1] == ' ')
            last--;
        size_t len = (size_t)(last - p);
        if (len && ((len == 1 && *p == '*') || (len == olen && !strncasecmp(p, origin, len))))
            return 1;
        p = end;
    }
    return 0;
}

int wsni_origin_allowed(const char *allowed, const char *origin, const char *host)
{
    /* Non-browser clients send no Origin; browsers always do. */
    if (!origin)
        return 1;
    if (allowed && *allowed)
        return in_list(allowed, origin);
    const char *auth = origin_authority(origin);
    return auth && host && *host && !strcasecmp(auth, host);
}
