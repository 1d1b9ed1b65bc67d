/* Client handles: reference counting, identity, and the id table. */
#include "shell/server.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>



/* Ids must be unique for the life of the process, across servers, so this
 * counter is the one piece of process-wide state; it is atomic. */
static atomic_ullong next_client_number = 1;

wsn_client *wsni_client_new(wsn_server *srv)
{
    wsn_client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    /* The send queue is allocated when the first message is queued: an
     * idle connection costs no queue memory. */
    if (pthread_mutex_init(&c->meta_lock, NULL)) {
        free(c);
        return NULL;
    }
    atomic_init(&c->refs, 1);
    atomic_init(&c->connected, 0);
    c->srv = srv;
    wsni_server_ref(srv);
    unsigned long long n = atomic_fetch_add(&next_client_number, 1);
    /* With a broker the id also names the server (c_<server id>_<n>): it
     * must be unique across the cluster, and publish_to_client_id finds
     * the server's inbox from it. */
    if (srv->cluster_id[0])
        snprintf(c->id, sizeof(c->id), "c_%s_%llu", srv->cluster_id, n);
    else
        snprintf(c->id, sizeof(c->id), "c_%llu", n);
    c->subprotocol = "";
    return c;
}

void wsni_client_register(wsn_client *c)
{
    wsn_server *srv = c->srv;
    pthread_mutex_lock(&srv->lock);
    HASH_ADD_KEYPTR(hh, srv->clients_by_id, c->id, strlen(c->id), c);
    srv->connected++;
    pthread_mutex_unlock(&srv->lock);
}

wsn_client *wsni_client_find(wsn_server *srv, const char *id)
{
    pthread_mutex_lock(&srv->lock);
    wsn_client *c;
    HASH_FIND(hh, srv->clients_by_id, id, strlen(id), c);
    if (c)
        wsn_client_retain(c);
    pthread_mutex_unlock(&srv->lock);
    return c;
}

void wsni_client_forget(wsn_client *c)
{
    wsn_server *srv = c->srv;
    pthread_mutex_lock(&srv->lock);
    HASH_DEL(srv->clients_by_id, c);
    srv->connected--;
    pthread_mutex_unlock(&srv->lock);
}

WSN_API wsn_client *wsn_client_retain(wsn_client *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

WSN_API void wsn_client_release(wsn_client *c)
{
    if (!c)
        return;
    int before = atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
    assert(before > 0 && "client released more often than retained");
    if (before != 1)
        return;
    /* The queue and the transport's part are empty by now: the I/O thread
     * clears them at disconnect. */
    wsn_server *srv = c->srv;
    wsni_metadata_clear(c);
    pthread_mutex_destroy(&c->meta_lock);
    free(c->ring);
    free(c->close_reason);
    free(c);
    wsni_server_unref(srv);
}

WSN_API const char *wsn_client_id(const wsn_client *c) { return c ? c->id : ""; }

WSN_API int wsn_client_is_connected(const wsn_client *c)
{
    return c ? atomic_load(&c->connected) : 0;
}

WSN_API const char *wsn_client_remote_address(const wsn_client *c) { return c ? c->remote : ""; }

WSN_API const char *wsn_client_subprotocol(const wsn_client *c) { return c ? c->subprotocol : ""; }
