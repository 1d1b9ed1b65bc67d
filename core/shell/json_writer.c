/* The public JSON writer: hosts whose values are not JSON text (Lua
 * tables, C structs) build it here, so escaping, UTF-8 and number text are
 * decided once, by the same code as the core's own envelopes. */
#include "engine/codec_json.h"
#include "engine/json_scan.h"
#include "util/strbuf.h"
#include "util/text.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* What the innermost open container expects next. */
enum expect {
    OBJECT_FIRST_KEY,
    OBJECT_KEY,
    OBJECT_VALUE,
    ARRAY_FIRST,
    ARRAY_NEXT
};

struct wsn_json_writer {
    strbuf out;
    int error;
    int complete; /* one top-level value written */
    unsigned depth;
    unsigned char stack[WSN_JSON_MAX_DEPTH];
};

static int fail(wsn_json_writer *w, int rc)
{
    if (!w->error)
        w->error = rc;
    return w->error;
}

/* The sticky error, or an allocation that failed since. */
static int status(wsn_json_writer *w)
{
    if (!w->error && w->out.failed)
        w->error = WSN_ENOMEM;
    return w->error;
}

/* Checks that a value may come here and writes the comma before it. */
static int before_value(wsn_json_writer *w)
{
    if (status(w))
        return w->error;
    if (!w->depth)
        return w->complete ? fail(w, WSN_EINVAL) : WSN_OK;
    unsigned char *top = &w->stack[w->depth - 1];
    switch (*top) {
    case OBJECT_VALUE:
        *top = OBJECT_KEY;
        return WSN_OK;
    case ARRAY_FIRST:
        *top = ARRAY_NEXT;
        return WSN_OK;
    case ARRAY_NEXT:
        wsni_strbuf_append_char(&w->out, ',');
        return status(w);
    default: /* a key is due */
        return fail(w, WSN_EINVAL);
    }
}

static int after_value(wsn_json_writer *w)
{
    if (!w->depth)
        w->complete = 1;
    return status(w);
}

static int scalar(wsn_json_writer *w, const char *text, size_t len)
{
    int rc = before_value(w);
    if (rc)
        return rc;
    wsni_strbuf_append(&w->out, text, len);
    return after_value(w);
}

static int begin(wsn_json_writer *w, char open, enum expect first)
{
    int rc = before_value(w);
    if (rc)
        return rc;
    if (w->depth == WSN_JSON_MAX_DEPTH)
        return fail(w, WSN_ELIMIT);
    w->stack[w->depth++] = (unsigned char)first;
    wsni_strbuf_append_char(&w->out, open);
    return status(w);
}

static int end(wsn_json_writer *w, char close, enum expect first, enum expect next)
{
    if (status(w))
        return w->error;
    if (!w->depth || (w->stack[w->depth - 1] != first && w->stack[w->depth - 1] != next))
        return fail(w, WSN_EINVAL);
    w->depth--;
    wsni_strbuf_append_char(&w->out, close);
    return after_value(w);
}

WSN_API wsn_json_writer *wsn_json_writer_new(void)
{
    wsn_json_writer *w = calloc(1, sizeof(*w));
    if (w)
        wsni_strbuf_init(&w->out);
    return w;
}

WSN_API void wsn_json_writer_free(wsn_json_writer *w)
{
    if (!w)
        return;
    wsni_strbuf_free(&w->out);
    free(w);
}

WSN_API void wsn_json_writer_reset(wsn_json_writer *w)
{
    if (!w)
        return;
    w->out.len = 0;
    w->out.failed = 0;
    if (w->out.data)
        w->out.data[0] = '\0';
    w->error = 0;
    w->complete = 0;
    w->depth = 0;
}

WSN_API int wsn_json_begin_object(wsn_json_writer *w)
{
    return w ? begin(w, '{', OBJECT_FIRST_KEY) : WSN_EINVAL;
}

WSN_API int wsn_json_end_object(wsn_json_writer *w)
{
    return w ? end(w, '}', OBJECT_FIRST_KEY, OBJECT_KEY) : WSN_EINVAL;
}

WSN_API int wsn_json_begin_array(wsn_json_writer *w)
{
    return w ? begin(w, '[', ARRAY_FIRST) : WSN_EINVAL;
}

WSN_API int wsn_json_end_array(wsn_json_writer *w)
{
    return w ? end(w, ']', ARRAY_FIRST, ARRAY_NEXT) : WSN_EINVAL;
}

WSN_API int wsn_json_key(wsn_json_writer *w, const char *key, size_t len)
{
    if (!w)
        return WSN_EINVAL;
    if (status(w))
        return w->error;
    unsigned char *top = w->depth ? &w->stack[w->depth - 1] : NULL;
    if (!top || (*top != OBJECT_FIRST_KEY && *top != OBJECT_KEY) || (!key && len) ||
        !wsni_utf8_valid((const unsigned char *)key, len))
        return fail(w, WSN_EINVAL);
    if (*top == OBJECT_KEY)
        wsni_strbuf_append_char(&w->out, ',');
    *top = OBJECT_VALUE;
    wsni_json_append_string(&w->out, key ? key : "", len);
    wsni_strbuf_append_char(&w->out, ':');
    return status(w);
}

WSN_API int wsn_json_string(wsn_json_writer *w, const char *s, size_t len)
{
    if (!w)
        return WSN_EINVAL;
    if ((!s && len) || !wsni_utf8_valid((const unsigned char *)s, len))
        return status(w) ? w->error : fail(w, WSN_EINVAL);
    int rc = before_value(w);
    if (rc)
        return rc;
    wsni_json_append_string(&w->out, s ? s : "", len);
    return after_value(w);
}

WSN_API int wsn_json_integer(wsn_json_writer *w, int64_t v)
{
    if (!w)
        return WSN_EINVAL;
    char text[24];
    int n = snprintf(text, sizeof(text), "%" PRId64, v);
    return scalar(w, text, (size_t)n);
}

WSN_API int wsn_json_number(wsn_json_writer *w, double v)
{
    if (!w)
        return WSN_EINVAL;
    if (v != v || v - v != 0) /* NaN and the infinities have no JSON form */
        return status(w) ? w->error : fail(w, WSN_EINVAL);
    int rc = before_value(w);
    if (rc)
        return rc;
    wsni_json_append_real(&w->out, v);
    return after_value(w);
}

WSN_API int wsn_json_bool(wsn_json_writer *w, int v)
{
    if (!w)
        return WSN_EINVAL;
    return v ? scalar(w, "true", 4) : scalar(w, "false", 5);
}

WSN_API int wsn_json_null(wsn_json_writer *w)
{
    return w ? scalar(w, "null", 4) : WSN_EINVAL;
}

WSN_API int wsn_json_raw(wsn_json_writer *w, const char *json, size_t len)
{
    if (!w)
        return WSN_EINVAL;
    if (!json || !wsni_json_scan_valid(json, len))
        return status(w) ? w->error : fail(w, WSN_EINVAL);
    int rc = before_value(w);
    if (rc || wsni_strbuf_reserve(&w->out, len))
        return rc ? rc : status(w);
    w->out.len += wsni_json_minify(w->out.data + w->out.len, json, len);
    w->out.data[w->out.len] = '\0';
    return after_value(w);
}

WSN_API const char *wsn_json_writer_text(const wsn_json_writer *w, size_t *len)
{
    if (!w || w->error || w->out.failed || !w->complete)
        return NULL;
    if (len)
        *len = w->out.len;
    return w->out.data;
}

WSN_API int wsn_json_writer_error(const wsn_json_writer *w)
{
    if (!w)
        return WSN_EINVAL;
    return w->error ? w->error : (w->out.failed ? WSN_ENOMEM : 0);
}
