#include "transport/headers.h"

#include <stdlib.h>

char *wsni_header_copy(struct lws *wsi, enum lws_token_indexes token, int *len)
{
    int n = lws_hdr_total_length(wsi, token);
    if (len)
        *len = n;
    if (n <= 0)
        return NULL;
    char *v = malloc((size_t)n + 1);
    if (v && lws_hdr_copy(wsi, v, n + 1, token) < 0) {
        free(v);
        return NULL;
    }
    return v;
}
