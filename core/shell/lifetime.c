/* The server object's lifetime: the host's reference plus one per live
 * client object, the last of which frees what every layer left in it;
 * and the states the transport reports as its I/O thread starts and
 * ends. */
#include "engine/batch.h"
#include "shell/server.h"
#include "shell/upgrade_ids.h"

#include <assert.h>
#include <stdlib.h>
#include <unistd.h>

void wsni_server_ref(wsn_server *srv) { atomic_fetch_add_explicit(&srv->refs, 1, memory_order_relaxed); }

void wsni_server_unref(wsn_server *srv)
{
    int before = atomic_fetch_sub_explicit(&srv->refs, 1, memory_order_acq_rel);
    assert(before > 0 && "server reference dropped twice");
    if (before != 1)
        return;
    wsni_batch_table_clear(srv);
    wsni_upgrades_waiting_clear(srv);
    wsni_event_queue_destroy(srv->events);
    free(srv->events);
    close(srv->room_fd);
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->cond);
    pthread_mutex_destroy(&srv->err_lock);
    pthread_mutex_destroy(&srv->log_lock);
    pthread_mutex_destroy(&srv->batch_lock);
    wsn_options_free(srv->opts);
    free(srv->flush_list);
    free(srv);
}

int wsni_server_on_io_thread(const wsn_server *srv)
{
    /* io_tid is written before start() returns and never again. */
    return srv->start_called && pthread_equal(pthread_self(), srv->io_tid);
}

void wsni_server_started(wsn_server *srv, int port)
{
    pthread_mutex_lock(&srv->lock);
    srv->ctx_alive = 1;
    srv->port = port;
    srv->state = SRV_RUNNING;
    srv->start_result = WSN_OK;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
}

void wsni_server_start_failed(wsn_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    srv->start_result = WSN_EIO;
    srv->state = SRV_STOPPED;
    srv->io_done = 1;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
}

void wsni_server_ctx_closing(wsn_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    srv->ctx_alive = 0;
    pthread_mutex_unlock(&srv->lock);
}

void wsni_server_note_clients_cut(wsn_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    srv->clients_cut = 1;
    pthread_mutex_unlock(&srv->lock);
}

void wsni_server_io_ended(wsn_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    srv->state = SRV_STOPPED;
    srv->io_done = 1;
    wsni_stalls_reset(srv);
    wsni_room_update(srv);
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
}
