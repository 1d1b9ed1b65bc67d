/*
 * The state behind one NativeServer, shared by server.c (calls from JS)
 * and events.c (the waiter thread that hands events and log lines to JS),
 * and its last reference (nserver.c), which both drop.
 */
#ifndef WSN_NODE_NSERVER_H
#define WSN_NODE_NSERVER_H

#include <pthread.h>
#include <stdbool.h>

#include "util.h"

struct nserver {
    /* JS thread only */
    napi_env env;
    wsn_server *srv;           /* owned; freed by server_teardown() */
    int64_t write_wait_ms;     /* what wsn_server_free() would wait */
    uint64_t logs_dropped;     /* as last reported to JS */
    bool waiter_started;
    bool waiter_joined;
    bool torn_down;
    bool hook_added;
    int refs; /* the JS wrapper, and the event function once made */

    /* set before the waiter starts */
    pthread_t waiter;
    int wake_fd; /* eventfd: wakes the waiter's poll(); -1 before start */
    napi_threadsafe_function ev_tsfn; /* held by the waiter */

    /* JS thread: one batch of events (events.c take_events); rec and
     * arena point into the JS buffers the two references hold. */
    wsn_event **evs;
    wsn_event_record *rec;
    char *arena;
    napi_ref rec_ref, arena_ref;

    /* shared with the waiter and the thread pool, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool pending;  /* a drain is queued for the JS thread */
    bool want_room; /* a publish waits: poll the room fd */
    bool stopped;  /* JS took the STOPPED event: the waiter ends */
    bool closing;  /* the server is being freed: the waiter ends */
    int busy;      /* shutdown calls running on the thread pool */
};

/* Drops one of ns->refs, freeing ns at zero (JS thread). */
void nw_server_unref(struct nserver *ns);

#endif
