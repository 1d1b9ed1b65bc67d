/* A client's message, decoded by the codec of its wire format
 * (engine/codec.h), carried to the host in a MESSAGE event.
 *
 * Owns: the type and its clearing (incoming.c). Any thread. */
#ifndef WSN_ENGINE_INCOMING_H
#define WSN_ENGINE_INCOMING_H

#include "wsnotify.h"

#include <stddef.h>

/* Strings are owned (each its own allocation, or all in storage), never
 * NULL. */
typedef struct incoming {
    void *storage; /* when set, the fields point into it and only it is freed */
    wsn_message_type type;
    char *channel;
    unsigned char *payload; /* NUL-terminated */
    size_t payload_len;
    char *message_id;
    char *reply_to_id;
} incoming;

void wsni_incoming_clear(incoming *in);

#endif
