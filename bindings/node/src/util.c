/*
 * What every file of the addon uses and that uses nothing of theirs:
 * per-environment state, argument conversion, errors as JS exceptions,
 * int64 and string-list values. Apart from addon.c, which registers the
 * classes, so that the files depend one way: addon -> server -> events ->
 * client -> util, and server and events -> nserver (farm-studio found
 * them calling each other in a circle).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MAX_SAFE_INTEGER 9007199254740991LL

struct addon *nw_addon_of(napi_env env) {
    void *data = NULL;
    if (napi_get_instance_data(env, &data) != napi_ok)
        return NULL;
    return data;
}

bool nw_check(napi_env env, napi_status st) {
    if (st == napi_ok)
        return true;
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) {
        const napi_extended_error_info *info = NULL;
        napi_get_last_error_info(env, &info);
        napi_throw_error(env, NULL,
                         info && info->error_message ? info->error_message
                                                     : "Node-API call failed");
    }
    return false;
}

/* ---- arguments ---------------------------------------------------------- */

static bool throw_type(napi_env env, const char *what, const char *want) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s must be %s", what, want);
    napi_throw_type_error(env, "WSN_EINVAL", msg);
    return false;
}

bool nw_arg_string(napi_env env, napi_value v, const char *what,
                struct arg *out) {
    out->p = NULL;
    out->len = 0;
    out->heap = NULL;
    napi_valuetype t;
    if (napi_typeof(env, v, &t) != napi_ok || t != napi_string)
        return throw_type(env, what, "a string");
    size_t len = 0;
    /* Short strings in one call: a result that fills the buffer may have
     * been cut, then measure and copy to the heap. */
    if (napi_get_value_string_utf8(env, v, out->small, sizeof out->small,
                                   &len) != napi_ok)
        return nw_check(env, napi_generic_failure);
    if (len + 1 < sizeof out->small) {
        out->p = out->small;
        out->len = len;
    } else {
        if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok)
            return nw_check(env, napi_generic_failure);
        out->heap = malloc(len + 1);
        if (!out->heap) {
            napi_throw_error(env, "WSN_ENOMEM", "out of memory");
            return false;
        }
        napi_get_value_string_utf8(env, v, out->heap, len + 1, &len);
        out->p = out->heap;
        out->len = len;
    }
    if (memchr(out->p, '\0', out->len)) {
        nw_arg_free(out);
        return throw_type(env, what, "a string without NUL characters");
    }
    return true;
}

bool nw_arg_bytes(napi_env env, napi_value v, const char *what,
               struct arg *out) {
    out->p = NULL;
    out->len = 0;
    out->heap = NULL;
    bool is = false;
    void *data = NULL;
    size_t len = 0;
    napi_valuetype t;
    if (napi_typeof(env, v, &t) == napi_ok && t == napi_string)
        return nw_arg_string(env, v, what, out);
    if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
        napi_typedarray_type tt;
        size_t n = 0, off = 0;
        napi_value ab;
        if (napi_get_typedarray_info(env, v, &tt, &n, &data, &ab, &off) !=
            napi_ok)
            return nw_check(env, napi_generic_failure);
        /* n counts elements; every view is read as its bytes */
        size_t esize = 1;
        switch (tt) {
        case napi_int16_array:
        case napi_uint16_array:
            esize = 2;
            break;
        case napi_int32_array:
        case napi_uint32_array:
        case napi_float32_array:
            esize = 4;
            break;
        case napi_float64_array:
        case napi_bigint64_array:
        case napi_biguint64_array:
            esize = 8;
            break;
        default:
            break;
        }
        len = n * esize;
    } else if (napi_is_dataview(env, v, &is) == napi_ok && is) {
        napi_value ab;
        size_t off = 0;
        if (napi_get_dataview_info(env, v, &len, &data, &ab, &off) != napi_ok)
            return nw_check(env, napi_generic_failure);
    } else if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
        if (napi_get_arraybuffer_info(env, v, &data, &len) != napi_ok)
            return nw_check(env, napi_generic_failure);
    } else {
        return throw_type(env, what,
                          "a string, Buffer, TypedArray or ArrayBuffer");
    }
    /* An empty view may have no storage: the core wants a pointer. */
    out->p = data ? data : "";
    out->len = len;
    return true;
}

bool nw_arg_opt_string(napi_env env, napi_value v, const char *what,
                    struct arg *out) {
    napi_valuetype t;
    out->p = NULL;
    out->len = 0;
    out->heap = NULL;
    if (napi_typeof(env, v, &t) != napi_ok || t == napi_undefined ||
        t == napi_null)
        return true;
    if (!nw_arg_string(env, v, what, out))
        return false;
    if (out->len == 0)
        out->p = NULL;
    return true;
}

void nw_arg_free(struct arg *a) {
    free(a->heap);
    a->heap = NULL;
    a->p = NULL;
}

bool nw_arg_int64(napi_env env, napi_value v, const char *what, int64_t lo,
               int64_t hi, int64_t *out) {
    napi_valuetype t;
    char msg[256];
    if (napi_typeof(env, v, &t) != napi_ok)
        return nw_check(env, napi_generic_failure);
    int64_t x;
    if (t == napi_bigint) {
        bool lossless = false;
        if (napi_get_value_bigint_int64(env, v, &x, &lossless) != napi_ok)
            return nw_check(env, napi_generic_failure);
        if (!lossless)
            goto range;
    } else if (t == napi_number) {
        double d;
        napi_get_value_double(env, v, &d);
        if (d != d || d < (double)-MAX_SAFE_INTEGER ||
            d > (double)MAX_SAFE_INTEGER || d != (double)(int64_t)d) {
            if (d == d && d == (double)(int64_t)d)
                goto range;
            return throw_type(env, what, "an integer");
        }
        x = (int64_t)d;
    } else {
        return throw_type(env, what, "an integer (number or bigint)");
    }
    if (x < lo || x > hi)
        goto range;
    *out = x;
    return true;
range:
    snprintf(msg, sizeof msg, "%s is out of range (%" PRId64 " to %" PRId64 ")",
             what, lo, hi);
    napi_throw_range_error(env, "WSN_ERANGE", msg);
    return false;
}

bool nw_arg_uint64(napi_env env, napi_value v, const char *what,
                uint64_t *out) {
    napi_valuetype t;
    if (napi_typeof(env, v, &t) != napi_ok)
        return nw_check(env, napi_generic_failure);
    if (t == napi_bigint) {
        /* a negative BigInt is not lossless as uint64 */
        bool lossless = false;
        if (napi_get_value_bigint_uint64(env, v, out, &lossless) != napi_ok ||
            !lossless) {
            char msg[200];
            snprintf(msg, sizeof msg, "%s must be between 0 and 2**64-1",
                     what);
            napi_throw_range_error(env, "WSN_ERANGE", msg);
            return false;
        }
        return true;
    }
    int64_t x;
    if (!nw_arg_int64(env, v, what, 0, MAX_SAFE_INTEGER, &x))
        return false;
    *out = (uint64_t)x;
    return true;
}

napi_value nw_make_int64(napi_env env, int64_t v) {
    napi_value r = NULL;
    if (v >= -MAX_SAFE_INTEGER && v <= MAX_SAFE_INTEGER)
        napi_create_int64(env, v, &r);
    else
        napi_create_bigint_int64(env, v, &r);
    return r;
}

/* ---- errors ------------------------------------------------------------- */

napi_value nw_throw_code(napi_env env, int code, const char *what,
                      const char *detail) {
    struct addon *a = nw_addon_of(env);
    napi_value fn, argv[3], err, undef;
    napi_get_undefined(env, &undef);
    if (!a || napi_get_reference_value(env, a->error_factory, &fn) != napi_ok ||
        !fn) {
        napi_throw_error(env, wsn_err_name(code), wsn_strerror(code));
        return NULL;
    }
    napi_create_int32(env, code, &argv[0]);
    napi_create_string_utf8(env, what ? what : "", NAPI_AUTO_LENGTH, &argv[1]);
    if (detail && *detail)
        napi_create_string_utf8(env, detail, NAPI_AUTO_LENGTH, &argv[2]);
    else
        argv[2] = undef;
    if (napi_call_function(env, undef, fn, 3, argv, &err) == napi_ok)
        napi_throw(env, err);
    return NULL;
}

napi_value nw_strlist_array(napi_env env, wsn_strlist *list) {
    napi_value arr, v;
    size_t n = wsn_strlist_count(list);
    napi_create_array_with_length(env, n, &arr);
    for (size_t i = 0; i < n; i++) {
        const char *s = wsn_strlist_get(list, i);
        napi_create_string_utf8(env, s ? s : "", NAPI_AUTO_LENGTH, &v);
        napi_set_element(env, arr, (uint32_t)i, v);
    }
    wsn_strlist_free(list);
    return arr;
}

/* [{name, type, min, max, default}] for every option id the core knows. */
