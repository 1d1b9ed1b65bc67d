/* Events travelling from the I/O thread to the host: a FIFO (one lock,
 * pointer moves only) with an eventfd that is readable while it is not
 * empty. Per-client order holds because there is one queue. */
#ifndef WSN_EVENTS_H
#define WSN_EVENTS_H

#include "codec_json.h"
#include "wsnotify.h"

#include <pthread.h>

struct wsn_event {
    struct wsn_event *next;
    wsn_event_type kind;
    wsn_client *client; /* a reference, NULL for STOPPED */
    incoming msg;       /* MESSAGE only */
};

typedef struct event_queue {
    pthread_mutex_t lock;
    struct wsn_event *head, *tail; /* lock */
    size_t messages;               /* lock: MESSAGE events queued */
    int stopped_taken;             /* lock */
    int fd;                        /* eventfd; const */
} event_queue;

int event_queue_init(event_queue *q);
/* Frees every queued event and the fd. */
void event_queue_destroy(event_queue *q);
/* Appends; returns the number of MESSAGE events now queued. */
size_t event_queue_push(event_queue *q, struct wsn_event *ev);
/* Takes the oldest event. Returns 0 with *out, WSN_EAGAIN, or WSN_ECLOSED
 * once STOPPED was taken; *messages_left gets the MESSAGE count left. */
int event_queue_pop(event_queue *q, struct wsn_event **out, size_t *messages_left);
/* Drops queued events without running them (server teardown). */
void event_queue_clear(event_queue *q);

struct wsn_event *event_new(wsn_event_type kind, wsn_client *client);

#endif
