/*
 * What every file of the wsnotify Node-API addon uses (util.c): the
 * per-environment state and the small argument helpers.
 *
 * Threads: everything here runs on the JS thread of one environment,
 * except what server.c says runs on its waiter thread.
 */
#ifndef WSN_NODE_UTIL_H
#define WSN_NODE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <node_api.h>

#include "wsnotify.h"

/* Per environment (main thread and each worker have their own). */
struct addon {
    napi_ref error_factory; /* JS (code, what, detail) => WsnotifyError */
    napi_ref client_ctor;   /* the NativeClient class */
};

/* A string or byte argument: points into the JS value's storage for
 * Buffers and typed arrays, or at a NUL-terminated UTF-8 copy of a JS
 * string (inline when short). Valid until nw_arg_free(). */
struct arg {
    const char *p;
    size_t len;
    char *heap;
    char small[256];
};

/* Returns false with a JS exception pending when something went wrong. */
bool nw_check(napi_env env, napi_status st);
#define NW_CALL(env, call)                                                   \
    do {                                                                       \
        if (!nw_check((env), (call)))                                  \
            return NULL;                                                       \
    } while (0)

/* A JS string as UTF-8 (TypeError naming `what` if it is not a string). */
bool nw_arg_string(napi_env env, napi_value v, const char *what, struct arg *out);
/* A JS string (as UTF-8) or Buffer / TypedArray / DataView / ArrayBuffer. */
bool nw_arg_bytes(napi_env env, napi_value v, const char *what, struct arg *out);
/* null / undefined / "" give NULL (an absent id), else as nw_arg_string. */
bool nw_arg_opt_string(napi_env env, napi_value v, const char *what,
                    struct arg *out);
void nw_arg_free(struct arg *a);

/* A safe-integer Number or a BigInt in [lo, hi] (TypeError / RangeError). */
bool nw_arg_int64(napi_env env, napi_value v, const char *what, int64_t lo,
               int64_t hi, int64_t *out);
bool nw_arg_uint64(napi_env env, napi_value v, const char *what, uint64_t *out);

/* Throws the JS WsnotifyError of a core code (with the server's last error
 * text as detail when given). Returns NULL for `return nw_throw_code(...)`. */
napi_value nw_throw_code(napi_env env, int code, const char *what,
                      const char *detail);

/* An int64 as a Number when it is a safe integer, else a BigInt. */
napi_value nw_make_int64(napi_env env, int64_t v);

struct addon *nw_addon_of(napi_env env);

/* The strings of a list as a JS array; frees the list. */
napi_value nw_strlist_array(napi_env env, wsn_strlist *list);

/* A method entry of napi_define_class. */
#define NW_METHOD(name, fn)                                                    \
    {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}

#endif
