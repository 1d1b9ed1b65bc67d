#include "util/strlist.h"

#include <stdlib.h>
#include <string.h>

struct wsn_strlist {
    char **items;
    size_t count;
    size_t cap;
};

wsn_strlist *wsni_strlist_new(void) { return calloc(1, sizeof(wsn_strlist)); }

int wsni_strlist_push(wsn_strlist *l, const char *s)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **p = realloc(l->items, cap * sizeof(*p));
        if (!p)
            return WSN_ENOMEM;
        l->items = p;
        l->cap = cap;
    }
    if (!(l->items[l->count] = strdup(s)))
        return WSN_ENOMEM;
    l->count++;
    return WSN_OK;
}

WSN_API size_t wsn_strlist_count(const wsn_strlist *l) { return l ? l->count : 0; }

WSN_API const char *wsn_strlist_get(const wsn_strlist *l, size_t i)
{
    return l && i < l->count ? l->items[i] : NULL;
}

WSN_API void wsn_strlist_free(wsn_strlist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    free(l);
}
