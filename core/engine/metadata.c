/* Typed per-client metadata. Guarded by the client's own lock, so hosts
 * may read and write it from any thread; values are copied in and out. */
#include "engine/objects.h"
#include "util/strlist.h"
#include "util/text.h"

#include <stdlib.h>
#include <string.h>

struct meta_entry {
    char *key;
    wsn_value_type type;
    union {
        int64_t i;
        double d;
    } num;
    unsigned char *data; /* string, bytes, JSON: NUL-terminated copy */
    size_t len;
    UT_hash_handle hh;
};

/* What an entry counts against max_metadata_bytes: its key and its value. */
static size_t entry_cost(const struct meta_entry *e) { return strlen(e->key) + e->len + 8; }

static void entry_free(struct meta_entry *e)
{
    free(e->key);
    free(e->data);
    free(e);
}

void wsni_metadata_clear(wsn_client *c)
{
    struct meta_entry *e, *tmp;
    HASH_ITER(hh, c->meta, e, tmp)
    {
        HASH_DEL(c->meta, e);
        entry_free(e);
    }
    c->meta_bytes = 0;
}

static int check_key(const char *key)
{
    return key && *key && wsni_utf8_valid_str(key) ? WSN_OK : WSN_EINVAL;
}

static int store(wsn_client *c, const char *key, wsn_value_type type, int64_t i, double d,
                 const void *data, size_t len)
{
    if (!c)
        return WSN_EINVAL;
    int rc = check_key(key);
    if (rc)
        return rc;
    if (!atomic_load(&c->connected))
        return WSN_EGONE;
    struct meta_entry *e = calloc(1, sizeof(*e));
    if (!e || !(e->key = strdup(key))) {
        free(e);
        return WSN_ENOMEM;
    }
    e->type = type;
    if (type == WSN_VALUE_DOUBLE)
        e->num.d = d;
    else
        e->num.i = i;
    if (data) {
        if (!(e->data = malloc(len + 1))) {
            entry_free(e);
            return WSN_ENOMEM;
        }
        memcpy(e->data, data, len);
        e->data[len] = 0;
        e->len = len;
    }
    pthread_mutex_lock(&c->meta_lock);
    struct meta_entry *old = NULL;
    HASH_FIND_STR(c->meta, key, old);
    size_t bytes = c->meta_bytes - (old ? entry_cost(old) : 0) + entry_cost(e);
    if (bytes > c->srv->max_metadata_bytes) {
        pthread_mutex_unlock(&c->meta_lock);
        entry_free(e);
        return WSN_ELIMIT;
    }
    if (old) {
        HASH_DEL(c->meta, old);
        entry_free(old);
    }
    HASH_ADD_KEYPTR(hh, c->meta, e->key, strlen(e->key), e);
    c->meta_bytes = bytes;
    pthread_mutex_unlock(&c->meta_lock);
    return WSN_OK;
}

WSN_API int wsn_client_set_string(wsn_client *c, const char *key, const char *value)
{
    if (!value || !wsni_utf8_valid_str(value))
        return WSN_EINVAL;
    return store(c, key, WSN_VALUE_STRING, 0, 0, value, strlen(value));
}

WSN_API int wsn_client_set_int(wsn_client *c, const char *key, int64_t value)
{
    return store(c, key, WSN_VALUE_INT, value, 0, NULL, 0);
}

WSN_API int wsn_client_set_double(wsn_client *c, const char *key, double value)
{
    return store(c, key, WSN_VALUE_DOUBLE, 0, value, NULL, 0);
}

WSN_API int wsn_client_set_bool(wsn_client *c, const char *key, int value)
{
    return store(c, key, WSN_VALUE_BOOL, value ? 1 : 0, 0, NULL, 0);
}

WSN_API int wsn_client_set_bytes(wsn_client *c, const char *key, const void *data, size_t len)
{
    if (!data && len)
        return WSN_EINVAL;
    return store(c, key, WSN_VALUE_BYTES, 0, 0, data ? data : "", len);
}

WSN_API int wsn_client_set_json(wsn_client *c, const char *key, const char *json)
{
    if (!json)
        return WSN_EINVAL;
    if (wsn_json_validate(json, strlen(json)))
        return WSN_EJSON;
    return store(c, key, WSN_VALUE_JSON, 0, 0, json, strlen(json));
}

WSN_API int wsn_client_delete(wsn_client *c, const char *key)
{
    if (!c || !key)
        return WSN_EINVAL;
    pthread_mutex_lock(&c->meta_lock);
    struct meta_entry *e = NULL;
    HASH_FIND_STR(c->meta, key, e);
    if (e) {
        HASH_DEL(c->meta, e);
        c->meta_bytes -= entry_cost(e);
    }
    pthread_mutex_unlock(&c->meta_lock);
    if (!e)
        return WSN_ENOTFOUND;
    entry_free(e);
    return WSN_OK;
}

/* Runs fetch on the entry under the lock; the entry never escapes it. */
static int with_entry(wsn_client *c, const char *key, wsn_value_type want,
                      int (*fetch)(const struct meta_entry *, void *, void *, size_t, size_t *),
                      void *out, void *buf, size_t cap, size_t *len)
{
    if (!c || !key)
        return WSN_EINVAL;
    pthread_mutex_lock(&c->meta_lock);
    struct meta_entry *e = NULL;
    HASH_FIND_STR(c->meta, key, e);
    int rc;
    if (!e)
        rc = WSN_ENOTFOUND;
    else if (want != WSN_VALUE_NONE && e->type != want)
        rc = WSN_ETYPE;
    else
        rc = fetch(e, out, buf, cap, len);
    pthread_mutex_unlock(&c->meta_lock);
    return rc;
}

static int fetch_type(const struct meta_entry *e, void *out, void *buf, size_t cap, size_t *len)
{
    (void)buf, (void)cap, (void)len;
    *(wsn_value_type *)out = e->type;
    return WSN_OK;
}

static int fetch_int(const struct meta_entry *e, void *out, void *buf, size_t cap, size_t *len)
{
    (void)buf, (void)cap, (void)len;
    *(int64_t *)out = e->num.i;
    return WSN_OK;
}

static int fetch_bool(const struct meta_entry *e, void *out, void *buf, size_t cap, size_t *len)
{
    (void)buf, (void)cap, (void)len;
    *(int *)out = (int)e->num.i;
    return WSN_OK;
}

static int fetch_double(const struct meta_entry *e, void *out, void *buf, size_t cap, size_t *len)
{
    (void)buf, (void)cap, (void)len;
    *(double *)out = e->num.d;
    return WSN_OK;
}

/* Strings and JSON get a NUL that the length leaves out; bytes do not. */
static int fetch_data(const struct meta_entry *e, void *out, void *buf, size_t cap, size_t *len)
{
    size_t need = e->len + (out ? 1 : 0);
    if (len)
        *len = e->len;
    if (!buf || cap < need)
        return WSN_ENOSPC;
    memcpy(buf, e->data, need);
    return WSN_OK;
}

static int nul_terminated = 1;

WSN_API int wsn_client_get_type(wsn_client *c, const char *key, wsn_value_type *type)
{
    if (!type)
        return WSN_EINVAL;
    return with_entry(c, key, WSN_VALUE_NONE, fetch_type, type, NULL, 0, NULL);
}

WSN_API int wsn_client_get_int(wsn_client *c, const char *key, int64_t *value)
{
    if (!value)
        return WSN_EINVAL;
    return with_entry(c, key, WSN_VALUE_INT, fetch_int, value, NULL, 0, NULL);
}

WSN_API int wsn_client_get_double(wsn_client *c, const char *key, double *value)
{
    if (!value)
        return WSN_EINVAL;
    return with_entry(c, key, WSN_VALUE_DOUBLE, fetch_double, value, NULL, 0, NULL);
}

WSN_API int wsn_client_get_bool(wsn_client *c, const char *key, int *value)
{
    if (!value)
        return WSN_EINVAL;
    return with_entry(c, key, WSN_VALUE_BOOL, fetch_bool, value, NULL, 0, NULL);
}

WSN_API int wsn_client_get_string(wsn_client *c, const char *key, char *buf, size_t cap, size_t *len)
{
    return with_entry(c, key, WSN_VALUE_STRING, fetch_data, &nul_terminated, buf, cap, len);
}

WSN_API int wsn_client_get_bytes(wsn_client *c, const char *key, void *buf, size_t cap, size_t *len)
{
    return with_entry(c, key, WSN_VALUE_BYTES, fetch_data, NULL, buf, cap, len);
}

WSN_API int wsn_client_get_json(wsn_client *c, const char *key, char *buf, size_t cap, size_t *len)
{
    return with_entry(c, key, WSN_VALUE_JSON, fetch_data, &nul_terminated, buf, cap, len);
}

WSN_API int wsn_client_metadata_keys(wsn_client *c, wsn_strlist **out)
{
    if (!c || !out)
        return WSN_EINVAL;
    *out = NULL;
    wsn_strlist *list = wsni_strlist_new();
    if (!list)
        return WSN_ENOMEM;
    int rc = WSN_OK;
    pthread_mutex_lock(&c->meta_lock);
    struct meta_entry *e, *tmp;
    HASH_ITER(hh, c->meta, e, tmp)
    {
        if ((rc = wsni_strlist_push(list, e->key)))
            break;
    }
    pthread_mutex_unlock(&c->meta_lock);
    if (rc) {
        wsn_strlist_free(list);
        return rc;
    }
    *out = list;
    return WSN_OK;
}
