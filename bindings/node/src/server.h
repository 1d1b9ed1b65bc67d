/*
 * The state behind one NativeServer, shared by server.c (calls from JS)
 * and events.c (the waiter thread that hands events and log lines to JS).
 */
#ifndef WSN_NODE_SERVER_H
#define WSN_NODE_SERVER_H

#include <pthread.h>
#include <stdbool.h>

#include "addon.h"

struct nserver {
    /* JS thread only */
    napi_env env;
    wsn_server *srv;           /* owned; freed by server_teardown() */
    int64_t write_wait_ms;     /* what wsn_server_free() would wait */
    napi_threadsafe_function log_tsfn; /* NULL without a logger */
    bool waiter_started;
    bool waiter_joined;
    bool torn_down;
    bool hook_added;
    int refs; /* the JS wrapper, and the event function once made */

    /* the waiter thread; the fields below it are under mu */
    pthread_t waiter;
    napi_threadsafe_function ev_tsfn; /* held by the waiter */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool pending;  /* a drain is queued for the JS thread */
    bool stopped;  /* JS took the STOPPED event: the waiter ends */
    bool closing;  /* the environment is going: the waiter ends */
    int busy;      /* shutdown calls running on the thread pool */
};

/* events.c */
bool nw_events_start(napi_env env, struct nserver *ns, napi_value on_events);
void nw_events_join(struct nserver *ns);
bool nw_log_attach(napi_env env, struct nserver *ns, wsn_options *opts,
                napi_value on_log);
void nw_log_detach(struct nserver *ns);
/* server.c: drops one of ns->refs, freeing ns at zero (JS thread). */
void nw_server_unref(struct nserver *ns);

#endif
