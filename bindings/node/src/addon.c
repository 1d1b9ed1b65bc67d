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

#include "client.h"
#include "server.h"
#include "util.h"

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
    /* Ids may have gaps: stop after 32 unknown in a row (wsnotify.h). */
    for (int id = 1, unknown = 0; unknown < 32; id++) {
        wsn_option_type type;
        if (wsn_option_type_of((wsn_option)id, &type) != WSN_OK) {
            unknown++;
            continue;
        }
        unknown = 0;
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

/* handoff(path, fd, head): undefined, or throws the core's code. */
static napi_value js_handoff(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3];
    NW_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    struct arg path, head;
    int64_t fd;
    if (!nw_arg_int64(env, argv[1], "fd", 0, INT32_MAX, &fd) ||
        !nw_arg_string(env, argv[0], "path", &path))
        return NULL;
    if (!nw_arg_bytes(env, argv[2], "head", &head)) {
        nw_arg_free(&path);
        return NULL;
    }
    int rc = wsn_handoff(path.p, (int)fd, head.p, head.len);
    if (rc != WSN_OK)
        nw_throw_code(env, rc, "handoff", path.p);
    nw_arg_free(&path);
    nw_arg_free(&head);
    return NULL;
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
        NW_METHOD("handoff", js_handoff),
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
