/*
 * Module entry of the wsnotify Node-API addon: per-environment state, the
 * argument helpers, errors, and the core's free functions (version,
 * error names, option table, json_get_string).
 *
 * Only node_api.h (NAPI_VERSION pinned by the build), so one binary serves
 * every Node from 18 on.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addon.h"

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

static napi_value set_error_factory(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    NW_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    struct addon *a = nw_addon_of(env);
    if (a->error_factory)
        napi_delete_reference(env, a->error_factory);
    NW_CALL(env, napi_create_reference(env, argv[0], 1, &a->error_factory));
    return NULL;
}

/* ---- free functions ----------------------------------------------------- */

static napi_value js_version(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value r, n, s, h, rs;
    NW_CALL(env, napi_create_object(env, &r));
    /* index.js reads the event records at this stride (events.c) */
    napi_create_uint32(env, (uint32_t)sizeof(wsn_event_record), &rs);
    napi_set_named_property(env, r, "eventRecordSize", rs);
    napi_create_int32(env, wsn_version(), &n);
    napi_create_string_utf8(env, wsn_version_string(), NAPI_AUTO_LENGTH, &s);
    napi_create_int32(env, WSN_VERSION_NUMBER, &h);
    napi_set_named_property(env, r, "number", n);
    napi_set_named_property(env, r, "string", s);
    napi_set_named_property(env, r, "headerNumber", h);
    return r;
}

/* fn(code) of the code argument, as a string. */
static napi_value code_text(napi_env env, napi_callback_info info,
                            const char *(*fn)(int)) {
    size_t argc = 1;
    napi_value argv[1], r;
    int32_t code = 0;
    NW_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    napi_get_value_int32(env, argv[0], &code);
    napi_create_string_utf8(env, fn(code), NAPI_AUTO_LENGTH, &r);
    return r;
}

static napi_value js_err_name(napi_env env, napi_callback_info info) {
    return code_text(env, info, wsn_err_name);
}

static napi_value js_strerror(napi_env env, napi_callback_info info) {
    return code_text(env, info, wsn_strerror);
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
static napi_value js_options(napi_env env, napi_callback_info info) {
    (void)info;
    static const char *const type_names[] = {"", "int", "bool", "string",
                                             "duration"};
    napi_value list;
    NW_CALL(env, napi_create_array(env, &list));
    wsn_options *defaults = wsn_options_new();
    if (!defaults)
        return nw_throw_code(env, WSN_ENOMEM, "options", NULL);
    uint32_t n = 0;
    for (int id = 1;; id++) {
        wsn_option_type type;
        if (wsn_option_type_of((wsn_option)id, &type) != WSN_OK)
            break;
        napi_value o, v;
        napi_create_object(env, &o);
        napi_create_string_utf8(env, wsn_option_name((wsn_option)id),
                                NAPI_AUTO_LENGTH, &v);
        napi_set_named_property(env, o, "name", v);
        napi_create_string_utf8(env,
                                type >= 1 && type <= 4 ? type_names[type] : "",
                                NAPI_AUTO_LENGTH, &v);
        napi_set_named_property(env, o, "type", v);
        if (type == WSN_OPTTYPE_STRING) {
            const char *s = "";
            wsn_options_get_string(defaults, (wsn_option)id, &s);
            napi_create_string_utf8(env, s ? s : "", NAPI_AUTO_LENGTH, &v);
        } else {
            int64_t x = 0, lo = 0, hi = 0;
            wsn_options_get_int(defaults, (wsn_option)id, &x);
            if (type == WSN_OPTTYPE_BOOL)
                napi_get_boolean(env, x != 0, &v);
            else
                v = nw_make_int64(env, x);
            if (wsn_option_bounds((wsn_option)id, &lo, &hi) == WSN_OK) {
                napi_set_named_property(env, o, "min", nw_make_int64(env, lo));
                napi_set_named_property(env, o, "max", nw_make_int64(env, hi));
            }
        }
        napi_set_named_property(env, o, "default", v);
        napi_set_element(env, list, n++, o);
    }
    wsn_options_free(defaults);
    return list;
}

/* jsonGetString(text, key): the decoded string, or throws the core's code
 * (WSN_ENOTFOUND, WSN_ETYPE, WSN_EJSON). */
static napi_value js_json_get_string(napi_env env, napi_callback_info info) {
    size_t argc = 2;
    napi_value argv[2], r = NULL;
    NW_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    struct arg text, key;
    if (!nw_arg_bytes(env, argv[0], "text", &text))
        return NULL;
    if (!nw_arg_string(env, argv[1], "key", &key)) {
        nw_arg_free(&text);
        return NULL;
    }
    char small[256];
    size_t need = 0;
    int rc = wsn_json_get_string(text.p, text.len, key.p, small, sizeof small,
                                 &need);
    if (rc == WSN_OK) {
        napi_create_string_utf8(env, small, need, &r);
    } else if (rc == WSN_ENOSPC) {
        char *big = malloc(need + 1);
        rc = big ? wsn_json_get_string(text.p, text.len, key.p, big, need + 1,
                                       &need)
                 : WSN_ENOMEM;
        if (rc == WSN_OK)
            napi_create_string_utf8(env, big, need, &r);
        free(big);
    }
    if (rc != WSN_OK)
        nw_throw_code(env, rc, "jsonGetString", key.p);
    nw_arg_free(&text);
    nw_arg_free(&key);
    return r;
}

/* ---- module ------------------------------------------------------------- */

static void addon_free(napi_env env, void *data, void *hint) {
    (void)hint;
    struct addon *a = data;
    if (a->error_factory)
        napi_delete_reference(env, a->error_factory);
    if (a->client_ctor)
        napi_delete_reference(env, a->client_ctor);
    free(a);
}

static napi_value init(napi_env env, napi_value exports) {
    struct addon *a = calloc(1, sizeof *a);
    if (!a) {
        napi_throw_error(env, "WSN_ENOMEM", "out of memory");
        return NULL;
    }
    NW_CALL(env, napi_set_instance_data(env, a, addon_free, NULL));
    napi_property_descriptor props[] = {
        NW_METHOD("setErrorFactory", set_error_factory),
        NW_METHOD("version", js_version),
        NW_METHOD("errName", js_err_name),
        NW_METHOD("strerror", js_strerror),
        NW_METHOD("options", js_options),
        NW_METHOD("jsonGetString", js_json_get_string),
    };
    NW_CALL(env, napi_define_properties(env, exports,
                                          sizeof props / sizeof props[0],
                                          props));
    napi_value cls = nw_server_class(env);
    if (!cls)
        return NULL;
    NW_CALL(env, napi_set_named_property(env, exports, "NativeServer", cls));
    cls = nw_client_class(env);
    if (!cls)
        return NULL;
    NW_CALL(env, napi_set_named_property(env, exports, "NativeClient", cls));
    return exports;
}

/* The macro defines the exported entry points without prototypes. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
NAPI_MODULE_INIT() { return init(env, exports); }
#pragma GCC diagnostic pop
