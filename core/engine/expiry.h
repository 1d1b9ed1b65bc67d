/* A client's authorisation expiry: at that time it is closed with 4001
 * "authorization expired" unless the host moved it first (a client that
 * refreshed its credentials in band). Kept off wsn_client but for one
 * pointer, since most servers never set one.
 *
 * Owns: expiry.c. I/O thread only. */
#ifndef WSN_ENGINE_EXPIRY_H
#define WSN_ENGINE_EXPIRY_H

#include "engine/objects.h"

#include <stdint.h>

#define WSNI_CLOSE_EXPIRED 4001

/* Sets (at_ms, Unix ms) or with 0 clears c's expiry; a time already past
 * closes c now. WSN_OK, WSN_ENOMEM, WSN_EGONE (c closing or gone). */
int wsni_expiry_set(wsn_client *c, int64_t at_ms);
/* Forgets c's expiry (c is going). */
void wsni_expiry_clear(wsn_client *c);

#endif
