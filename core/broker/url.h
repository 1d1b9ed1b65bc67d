/* The broker option's value: redis://[:password@]host[:port][/db] or
 * unix:/path. Parsed when the server is made, so a bad URL is refused by
 * wsn_server_new with its reason.
 *
 * Owns: the address struct and its parser. Any thread. */
#ifndef WSN_BROKER_URL_H
#define WSN_BROKER_URL_H

#include <stddef.h>

typedef struct wsni_broker_addr {
    char host[256];     /* "" for a unix socket */
    int port;           /* 6379 unless given */
    char path[108];     /* unix socket path (sun_path's size) */
    char password[256]; /* "" = no AUTH */
    int db;             /* SELECT db when > 0 */
} wsni_broker_addr;

/* 0 with *out filled, or -1 with why (for the host's error text), or -2
 * with why for rediss:// (no TLS in this build's hiredis). */
int wsni_broker_url_parse(const char *url, wsni_broker_addr *out, char *why, size_t why_len);

#endif
