/* A request header lws parsed, copied out of lws's table of tokens. */
#ifndef WSN_TRANSPORT_HEADERS_H
#define WSN_TRANSPORT_HEADERS_H

#include <libwebsockets.h>

/* The value of token as a malloc'd NUL-terminated string (its length in
 * *len when len is not NULL), or NULL when the request has none or memory
 * ran out. */
char *wsni_header_copy(struct lws *wsi, enum lws_token_indexes token, int *len);

#endif
