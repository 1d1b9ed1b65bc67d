/* libFuzzer target: origin/Host matching (wsni_origin_allowed), the check every
 * WebSocket upgrade goes through. The input holds up to three strings
 * separated by NUL bytes: allowed_origins, Origin, Host (a missing part is
 * NULL for Origin and Host). The result is compared with a reference
 * written here from the documented rules:
 *   - no Origin: allowed;
 *   - allowed_origins set: allowed iff a comma-separated, space-trimmed
 *     entry is "*" or equals Origin ignoring case;
 *   - else (same origin): Origin is scheme "://" authority, the scheme
 *     only [A-Za-z0-9+.-], the authority non-empty without / ? # @ space
 *     tab backslash, and equal to Host ignoring case. */
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "fuzz_common.h"
#include "transport/origin.h"

static int ref_in_list(const char *list, const char *origin)
{
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && *a == ' ')
            a++;
        while (b > a && b[-1] == ' ')
            b--;
        size_t len = (size_t)(b - a);
        if (len == 1 && *a == '*')
            return 1;
        if (len && len == strlen(origin) && !strncasecmp(a, origin, len))
            return 1;
        p = *end ? end + 1 : end;
    }
    return 0;
}

static int ref_same_origin(const char *origin, const char *host)
{
    const char *sep = strstr(origin, "://");
    if (!sep || sep == origin || !host || !*host)
        return 0;
    for (const char *p = origin; p < sep; p++)
        if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' && *p != '.')
            return 0;
    const char *auth = sep + 3;
    if (!*auth)
        return 0;
    for (const char *p = auth; *p; p++)
        if (strchr("/?#@ \t\\", *p))
            return 0;
    return !strcasecmp(auth, host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *buf = malloc(size + 3);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = buf[size + 2] = 0;
    const char *allowed = buf;
    const char *origin = NULL, *host = NULL;
    size_t l = strlen(allowed);
    if (l < size) {
        origin = buf + l + 1;
        size_t l2 = l + 1 + strlen(origin);
        if (l2 < size)
            host = buf + l2 + 1;
    }
    int got = wsni_origin_allowed(allowed, origin, host);
    int want;
    if (!origin)
        want = 1;
    else if (*allowed)
        want = ref_in_list(allowed, origin);
    else
        want = ref_same_origin(origin, host);
    FUZZ_CHECK(got == want, "allowed='%s' origin='%s' host='%s': got %d, want %d", allowed,
               origin ? origin : "(null)", host ? host : "(null)", got, want);
    /* The hole the Go original had: without a list, an Origin whose
     * authority is not exactly the Host is never allowed. */
    if (got && origin && !*allowed)
        FUZZ_CHECK(host && strcasestr(origin, host), "allowed without the host in it");
    free(buf);
    return 0;
}
