/*
 * NativeClient: one retained wsn_client handle and its metadata calls.
 * index.js wraps it in the public Client class; the handle outlives the
 * connection (metadata stays readable after disconnect) and is released
 * by the garbage collector.
 */
#include <stdlib.h>
#include <string.h>

#include "client.h"

static const napi_type_tag CLIENT_TAG = {0x77736e636c69656eULL,
                                         0x742d6e6f64652d31ULL};

/* A value replaced by another thread with one of another type while we
 * read it: try again this many times. */
#define READ_RETRIES 8

static void client_finalize(napi_env env, void *data, void *hint) {
    (void)env;
    (void)hint;
    wsn_client_release(data);
}

static napi_value client_ctor(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1], self;
    void *ptr = NULL;
    NW_CALL(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
    napi_valuetype t;
    if (argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok ||
        t != napi_external) {
        napi_throw_type_error(env, "WSN_EINVAL",
                              "clients are made by the server, not by new");
        return NULL;
    }
    NW_CALL(env, napi_get_value_external(env, argv[0], &ptr));
    if (napi_type_tag_object(env, self, &CLIENT_TAG) != napi_ok ||
        napi_wrap(env, self, ptr, client_finalize, NULL, NULL) != napi_ok) {
        wsn_client_release(ptr);
        return nw_check(env, napi_generic_failure), NULL;
    }
    return self;
}

napi_value nw_client_wrap(napi_env env, wsn_client *borrowed) {
    struct addon *a = nw_addon_of(env);
    napi_value ctor, ext, obj = NULL;
    wsn_client *c = wsn_client_retain(borrowed);
    if (napi_get_reference_value(env, a->client_ctor, &ctor) != napi_ok ||
        napi_create_external(env, c, NULL, NULL, &ext) != napi_ok) {
        wsn_client_release(c);
        return NULL;
    }
    /* the constructor owns the reference from here, even on failure */
    if (napi_new_instance(env, ctor, 1, &ext, &obj) != napi_ok)
        return NULL;
    return obj;
}

wsn_client *nw_client_unwrap(napi_env env, napi_value v) {
    bool ok = false;
    void *p = NULL;
    napi_valuetype t;
    if (napi_typeof(env, v, &t) == napi_ok && t == napi_object &&
        napi_check_object_type_tag(env, v, &CLIENT_TAG, &ok) == napi_ok && ok &&
        napi_unwrap(env, v, &p) == napi_ok)
        return p;
    napi_throw_type_error(env, "WSN_EINVAL",
                          "client must be a Client given by the server");
    return NULL;
}

/* this, its handle and up to 2 arguments. */
static wsn_client *self_args(napi_env env, napi_callback_info info,
                             napi_value *argv, size_t want) {
    size_t argc = want;
    napi_value self;
    napi_value undef;
    napi_get_undefined(env, &undef);
    for (size_t i = 0; i < want; i++)
        argv[i] = undef;
    if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok)
        return NULL;
    return nw_client_unwrap(env, self);
}

static napi_value str_or_empty(napi_env env, const char *s) {
    napi_value r;
    napi_create_string_utf8(env, s ? s : "", NAPI_AUTO_LENGTH, &r);
    return r;
}

static napi_value js_id(napi_env env, napi_callback_info info) {
    wsn_client *c = self_args(env, info, NULL, 0);
    return c ? str_or_empty(env, wsn_client_id(c)) : NULL;
}

static napi_value js_remote_address(napi_env env, napi_callback_info info) {
    wsn_client *c = self_args(env, info, NULL, 0);
    return c ? str_or_empty(env, wsn_client_remote_address(c)) : NULL;
}

static napi_value js_subprotocol(napi_env env, napi_callback_info info) {
    wsn_client *c = self_args(env, info, NULL, 0);
    return c ? str_or_empty(env, wsn_client_subprotocol(c)) : NULL;
}

static napi_value js_connected(napi_env env, napi_callback_info info) {
    napi_value r;
    wsn_client *c = self_args(env, info, NULL, 0);
    if (!c)
        return NULL;
    napi_get_boolean(env, wsn_client_is_connected(c) == 1, &r);
    return r;
}

/* The setters take (key, value); JS has picked the kind. */
enum set_kind { SET_STRING, SET_INT, SET_DOUBLE, SET_BOOL, SET_BYTES,
                SET_JSON };

static napi_value set_value(napi_env env, napi_callback_info info,
                            enum set_kind kind) {
    napi_value argv[2];
    wsn_client *c = self_args(env, info, argv, 2);
    if (!c)
        return NULL;
    struct arg key, val = {0};
    if (!nw_arg_string(env, argv[0], "metadata key", &key))
        return NULL;
    int rc = WSN_OK;
    bool ok = true;
    switch (kind) {
    case SET_STRING:
    case SET_JSON:
        ok = nw_arg_string(env, argv[1], "metadata value", &val);
        if (ok)
            rc = kind == SET_STRING ? wsn_client_set_string(c, key.p, val.p)
                                    : wsn_client_set_json(c, key.p, val.p);
        break;
    case SET_BYTES:
        ok = nw_arg_bytes(env, argv[1], "metadata value", &val);
        if (ok)
            rc = wsn_client_set_bytes(c, key.p, val.p, val.len);
        break;
    case SET_INT: {
        int64_t x = 0;
        ok = nw_arg_int64(env, argv[1], "metadata value", INT64_MIN, INT64_MAX,
                       &x);
        if (ok)
            rc = wsn_client_set_int(c, key.p, x);
        break;
    }
    case SET_DOUBLE: {
        double d = 0;
        ok = napi_get_value_double(env, argv[1], &d) == napi_ok;
        if (ok)
            rc = wsn_client_set_double(c, key.p, d);
        else
            napi_throw_type_error(env, "WSN_EINVAL", "value must be a number");
        break;
    }
    case SET_BOOL: {
        bool b = false;
        ok = napi_get_value_bool(env, argv[1], &b) == napi_ok;
        if (ok)
            rc = wsn_client_set_bool(c, key.p, b ? 1 : 0);
        else
            napi_throw_type_error(env, "WSN_EINVAL", "value must be a boolean");
        break;
    }
    }
    if (ok && rc != WSN_OK)
        nw_throw_code(env, rc, "setMetadata", key.p);
    nw_arg_free(&key);
    nw_arg_free(&val);
    return NULL;
}

static napi_value js_set_string(napi_env env, napi_callback_info info) {
    return set_value(env, info, SET_STRING);
}
static napi_value js_set_int(napi_env env, napi_callback_info info) {
    return set_value(env, info, SET_INT);
}
static napi_value js_set_double(napi_env env, napi_callback_info info) {
    return set_value(env, info, SET_DOUBLE);
}
static napi_value js_set_bool(napi_env env, napi_callback_info info) {
    return set_value(env, info, SET_BOOL);
}
static napi_value js_set_bytes(napi_env env, napi_callback_info info) {
    return set_value(env, info, SET_BYTES);
}
static napi_value js_set_json(napi_env env, napi_callback_info info) {
    return set_value(env, info, SET_JSON);
}

typedef int (*get_buf_fn)(wsn_client *, const char *, void *, size_t,
                          size_t *);

/* A string, bytes or JSON value: 0 with *out set, or the core's code. */
static int get_buffer(napi_env env, wsn_client *c, const char *key,
                      wsn_value_type vt, napi_value *out) {
    char small[256];
    size_t n = 0;
    get_buf_fn fn = vt == WSN_VALUE_BYTES    ? wsn_client_get_bytes
                    : vt == WSN_VALUE_STRING ? (get_buf_fn)wsn_client_get_string
                                             : (get_buf_fn)wsn_client_get_json;
    char *buf = small;
    size_t cap = sizeof small;
    int rc;
    for (int i = 0; i < READ_RETRIES; i++) {
        rc = fn(c, key, buf, cap, &n);
        if (rc != WSN_ENOSPC)
            break;
        if (buf != small)
            free(buf);
        cap = n + 1;
        buf = malloc(cap);
        if (!buf)
            return WSN_ENOMEM;
    }
    if (rc == WSN_OK) {
        if (vt == WSN_VALUE_BYTES) {
            void *dst = NULL;
            napi_create_buffer_copy(env, n, buf, &dst, out);
        } else {
            napi_create_string_utf8(env, buf, n, out);
        }
    }
    if (buf != small)
        free(buf);
    return rc;
}

/* setExpiry(unixMs): 0 clears it. */
static napi_value js_set_expiry(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    wsn_client *c = self_args(env, info, argv, 1);
    if (!c)
        return NULL;
    int64_t at = 0;
    if (!nw_arg_int64(env, argv[0], "expiresAt", 0, INT64_MAX, &at))
        return NULL;
    int rc = wsn_client_set_expiry(c, at);
    if (rc != WSN_OK)
        nw_throw_code(env, rc, "setExpiry", "");
    return NULL;
}

/* get(key): undefined, or [valueType, value] (JSON as its text). */
static napi_value js_get(napi_env env, napi_callback_info info) {
    napi_value argv[1], r = NULL, v = NULL, t;
    wsn_client *c = self_args(env, info, argv, 1);
    if (!c)
        return NULL;
    struct arg key;
    if (!nw_arg_string(env, argv[0], "metadata key", &key))
        return NULL;
    int rc = WSN_ETYPE;
    wsn_value_type vt = WSN_VALUE_NONE;
    for (int i = 0; i < READ_RETRIES && rc == WSN_ETYPE; i++) {
        rc = wsn_client_get_type(c, key.p, &vt);
        if (rc != WSN_OK)
            break;
        switch (vt) {
        case WSN_VALUE_INT: {
            int64_t x = 0;
            rc = wsn_client_get_int(c, key.p, &x);
            if (rc == WSN_OK)
                v = nw_make_int64(env, x);
            break;
        }
        case WSN_VALUE_DOUBLE: {
            double d = 0;
            rc = wsn_client_get_double(c, key.p, &d);
            if (rc == WSN_OK)
                napi_create_double(env, d, &v);
            break;
        }
        case WSN_VALUE_BOOL: {
            int b = 0;
            rc = wsn_client_get_bool(c, key.p, &b);
            if (rc == WSN_OK)
                napi_get_boolean(env, b != 0, &v);
            break;
        }
        case WSN_VALUE_STRING:
        case WSN_VALUE_BYTES:
        case WSN_VALUE_JSON:
            rc = get_buffer(env, c, key.p, vt, &v);
            break;
        default:
            napi_get_null(env, &v);
            break;
        }
    }
    if (rc == WSN_OK) {
        napi_create_array_with_length(env, 2, &r);
        napi_create_int32(env, (int32_t)vt, &t);
        napi_set_element(env, r, 0, t);
        napi_set_element(env, r, 1, v);
    } else if (rc == WSN_ENOTFOUND) {
        napi_get_undefined(env, &r);
    } else {
        nw_throw_code(env, rc, "getMetadata", key.p);
    }
    nw_arg_free(&key);
    return r;
}

static napi_value js_delete(napi_env env, napi_callback_info info) {
    napi_value argv[1], r = NULL;
    wsn_client *c = self_args(env, info, argv, 1);
    if (!c)
        return NULL;
    struct arg key;
    if (!nw_arg_string(env, argv[0], "metadata key", &key))
        return NULL;
    int rc = wsn_client_delete(c, key.p);
    if (rc == WSN_OK || rc == WSN_ENOTFOUND)
        napi_get_boolean(env, rc == WSN_OK, &r);
    else
        nw_throw_code(env, rc, "deleteMetadata", key.p);
    nw_arg_free(&key);
    return r;
}

static napi_value js_keys(napi_env env, napi_callback_info info) {
    wsn_client *c = self_args(env, info, NULL, 0);
    if (!c)
        return NULL;
    wsn_strlist *list = NULL;
    int rc = wsn_client_metadata_keys(c, &list);
    if (rc != WSN_OK)
        return nw_throw_code(env, rc, "metadataKeys", NULL);
    return nw_strlist_array(env, list);
}

napi_value nw_client_class(napi_env env) {
    napi_property_descriptor props[] = {
        NW_METHOD("id", js_id),
        NW_METHOD("remoteAddress", js_remote_address),
        NW_METHOD("subprotocol", js_subprotocol),
        NW_METHOD("connected", js_connected),
        NW_METHOD("setString", js_set_string),
        NW_METHOD("setInt", js_set_int),
        NW_METHOD("setDouble", js_set_double),
        NW_METHOD("setBool", js_set_bool),
        NW_METHOD("setBytes", js_set_bytes),
        NW_METHOD("setJson", js_set_json),
        NW_METHOD("get", js_get),
        NW_METHOD("delete", js_delete),
        NW_METHOD("keys", js_keys),
        NW_METHOD("setExpiry", js_set_expiry),
    };
    napi_value cls;
    NW_CALL(env, napi_define_class(env, "NativeClient", NAPI_AUTO_LENGTH,
                                     client_ctor, NULL,
                                     sizeof props / sizeof props[0], props,
                                     &cls));
    struct addon *a = nw_addon_of(env);
    NW_CALL(env, napi_create_reference(env, cls, 1, &a->client_ctor));
    return cls;
}
