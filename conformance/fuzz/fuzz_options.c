/* libFuzzer target: option parsing as bindings drive it. The input is a
 * list of records "op name\0value\0": op (1 byte) picks the call:
 * by-name lookup + set_int (value parsed as a decimal), set_string, get,
 * bounds, or set by a raw id taken from the value. At the end
 * wsn_server_new() validates the options together (never started) and the
 * server is freed.
 *
 * Invariants: every call returns a documented code; a set that returned
 * WSN_OK reads back the same value; set_int stays within the option's
 * bounds; lookups by name agree with wsn_option_name(); wsn_server_new
 * either succeeds or returns WSN_EINVAL with a message. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "wsnotify.h"

static const char *next_str(const uint8_t **p, const uint8_t *end, char *buf, size_t cap)
{
    size_t n = 0;
    while (*p < end && **p && n + 1 < cap)
        buf[n++] = (char)*(*p)++;
    buf[n] = 0;
    while (*p < end && **p)
        (*p)++; /* over-long: the rest is skipped */
    if (*p < end)
        (*p)++; /* the NUL */
    return buf;
}

static int documented(int rc)
{
    return rc == WSN_OK || rc == WSN_EINVAL || rc == WSN_ETYPE || rc == WSN_ERANGE ||
           rc == WSN_ENOTFOUND || rc == WSN_ENOMEM;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wsn_options *o = wsn_options_new();
    if (!o)
        return 0;
    const uint8_t *p = data, *end = data + size;
    char name[128], value[512];
    for (int steps = 0; p < end && steps < 64; steps++) {
        uint8_t op = *p++;
        next_str(&p, end, name, sizeof name);
        next_str(&p, end, value, sizeof value);
        wsn_option id = (wsn_option)0;
        wsn_option_type type = (wsn_option_type)0;
        int rc = wsn_option_by_name(name, &id, &type);
        FUZZ_CHECK(rc == WSN_OK || rc == WSN_ENOTFOUND, "by_name rc %d", rc);
        if (op & 0x80) /* a raw id instead of a name */
            id = (wsn_option)(int)strtol(value, NULL, 10);
        else if (rc == WSN_OK)
            FUZZ_CHECK(wsn_option_name(id) && !strcmp(wsn_option_name(id), name),
                       "name of id %d is %s, looked up as %s", (int)id, wsn_option_name(id),
                       name);
        switch (op & 3) {
        case 0: { /* set_int */
            errno = 0;
            int64_t v = strtoll(value, NULL, 0);
            rc = wsn_options_set_int(o, id, v);
            FUZZ_CHECK(documented(rc), "set_int rc %d", rc);
            if (rc == WSN_OK) {
                int64_t got = 0, lo = 0, hi = 0;
                FUZZ_CHECK(wsn_options_get_int(o, id, &got) == WSN_OK && got == v,
                           "set_int %" PRId64 " read back %" PRId64, v, got);
                FUZZ_CHECK(wsn_option_bounds(id, &lo, &hi) == WSN_OK && v >= lo && v <= hi,
                           "value %" PRId64 " outside [%" PRId64 ",%" PRId64 "]", v, lo, hi);
            }
            break;
        }
        case 1: { /* set_string */
            rc = wsn_options_set_string(o, id, value);
            FUZZ_CHECK(documented(rc), "set_string rc %d", rc);
            if (rc == WSN_OK) {
                const char *got = NULL;
                FUZZ_CHECK(wsn_options_get_string(o, id, &got) == WSN_OK && got &&
                               !strcmp(got, value),
                           "set_string '%s' read back '%s'", value, got ? got : "(null)");
            }
            break;
        }
        case 2: { /* getters and type queries on any id */
            int64_t v;
            const char *s;
            wsn_option_type t;
            FUZZ_CHECK(documented(wsn_options_get_int(o, id, &v)), "get_int");
            FUZZ_CHECK(documented(wsn_options_get_string(o, id, &s)), "get_string");
            FUZZ_CHECK(documented(wsn_option_type_of(id, &t)), "type_of");
            (void)wsn_option_name(id);
            break;
        }
        default: { /* bounds, and NULL arguments */
            int64_t lo, hi;
            FUZZ_CHECK(documented(wsn_option_bounds(id, &lo, &hi)), "bounds");
            FUZZ_CHECK(wsn_options_set_string(o, id, NULL) == WSN_EINVAL ||
                           wsn_options_set_string(o, id, NULL) == WSN_ENOTFOUND,
                       "set_string NULL");
            FUZZ_CHECK(wsn_options_set_int(NULL, id, 1) == WSN_EINVAL, "set_int on NULL");
            break;
        }
        }
    }
    wsn_server *srv = NULL;
    char err[256] = "";
    int rc = wsn_server_new(o, &srv, err, sizeof err);
    /* compression=1 is refused with its own code (docs/api.md, "Compression"). */
    int64_t compression = 0;
    wsn_options_get_int(o, WSN_OPT_COMPRESSION, &compression);
    FUZZ_CHECK(rc == WSN_OK || (rc == WSN_EINVAL && err[0]) ||
                   (rc == WSN_EUNSUPPORTED && compression == 1 && err[0]),
               "server_new rc %d '%s'", rc, err);
    FUZZ_CHECK((rc == WSN_OK) == (srv != NULL), "server_new result and handle disagree");
    wsn_server_free(srv);
    wsn_options_free(o);
    return 0;
}
