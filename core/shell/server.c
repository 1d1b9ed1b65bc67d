/* Server lifecycle, handlers and the host's side of events. */
#include "engine/batch.h"
#include "engine/broker.h"
#include "shell/cluster.h"
#include "shell/commands.h"
#include "shell/event_socket.h"
#include "transport/loop.h"
#include "util/strlist.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void copy_error(char *errbuf, size_t len, const char *msg)
{
    if (errbuf && len)
        snprintf(errbuf, len, "%s", msg);
}

static int init_sync(wsn_server *srv)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr))
        return -1;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&srv->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (rc)
        return -1;
    if (pthread_mutex_init(&srv->lock, NULL) || pthread_mutex_init(&srv->err_lock, NULL) ||
        pthread_mutex_init(&srv->log_lock, NULL) || pthread_mutex_init(&srv->batch_lock, NULL))
        return -1;
    return 0;
}

WSN_API int wsn_server_new(const wsn_options *opts, wsn_server **out, char *errbuf,
                           size_t errbuf_len)
{
    if (!out)
        return WSN_EINVAL;
    *out = NULL;
    wsn_options *copy = opts ? wsni_options_clone(opts) : wsn_options_new();
    if (!copy) {
        copy_error(errbuf, errbuf_len, "out of memory");
        return WSN_ENOMEM;
    }
    char why[512];
    int rc = wsni_options_validate(copy, why, sizeof(why));
    /* Refused here, before anything runs, and not quietly turned off: the
     * host chose the pool (the default) and learns why it cannot have it. */
    if (!rc && opt_int(copy, WSN_OPT_RX_BUFFER_POOL) &&
        !wsni_loop_rx_pool_supported(why, sizeof(why)))
        rc = WSN_EUNSUPPORTED;
    if (rc) {
        copy_error(errbuf, errbuf_len, why);
        wsn_options_free(copy);
        return rc;
    }
    wsn_server *srv = calloc(1, sizeof(*srv));
    if (!srv || init_sync(srv)) {
        /* Partly initialised primitives are not destroyed: they hold no
         * resources on Linux, and this path only runs out of memory. */
        free(srv);
        wsn_options_free(copy);
        copy_error(errbuf, errbuf_len, "out of memory");
        return WSN_ENOMEM;
    }
    atomic_init(&srv->refs, 1);
    srv->transport = &wsni_lws_transport;
    wsni_broker_use(srv, &wsni_local_broker);
    srv->opts = copy;
    srv->write_wait_ms = opt_int(copy, WSN_OPT_WRITE_WAIT);
    srv->flush_delay_us = opt_int(copy, WSN_OPT_COALESCE_WINDOW) * 1000;
    srv->pong_wait_ms = opt_int(copy, WSN_OPT_PONG_WAIT);
    srv->ping_period_ms = opt_int(copy, WSN_OPT_PING_PERIOD);
    srv->close_grace_ms = opt_int(copy, WSN_OPT_CLOSE_GRACE);
    srv->read_limit = (size_t)opt_int(copy, WSN_OPT_READ_LIMIT);
    srv->max_channel_name = (size_t)opt_int(copy, WSN_OPT_MAX_CHANNEL_NAME);
    srv->max_metadata_bytes = (size_t)opt_int(copy, WSN_OPT_MAX_METADATA_BYTES);
    srv->max_subscriptions = (unsigned)opt_int(copy, WSN_OPT_MAX_SUBSCRIPTIONS);
    srv->send_buffer = (unsigned)opt_int(copy, WSN_OPT_SEND_BUFFER);
    srv->send_buffer_bytes = (size_t)opt_int(copy, WSN_OPT_SEND_BUFFER_BYTES);
    srv->drop_on_backpressure = (int)opt_int(copy, WSN_OPT_DROP_ON_BACKPRESSURE);
    srv->events_on_io_thread = (int)opt_int(copy, WSN_OPT_EVENTS_ON_IO_THREAD);
    srv->max_clients = (int)opt_int(copy, WSN_OPT_MAX_CLIENTS);
    srv->compression = (int)opt_int(copy, WSN_OPT_COMPRESSION);
    srv->raw_incoming = (int)opt_int(copy, WSN_OPT_RAW_INCOMING);
    srv->malloc_trim = (int)opt_int(copy, WSN_OPT_MALLOC_TRIM);
    srv->event_queue_limit = (size_t)opt_int(copy, WSN_OPT_EVENT_QUEUE_LIMIT);
    srv->max_partial_bytes = (size_t)opt_int(copy, WSN_OPT_MAX_PARTIAL_BYTES);
    srv->max_pending_batches = (size_t)opt_int(copy, WSN_OPT_MAX_PENDING_BATCHES);
    srv->max_batch_messages = (size_t)opt_int(copy, WSN_OPT_MAX_BATCH_MESSAGES);
    srv->max_batch_bytes = (size_t)opt_int(copy, WSN_OPT_MAX_BATCH_BYTES);
    /* Room is open until a publish finds none: the fd starts readable. */
    srv->room_open = 1;
    srv->room_fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    srv->events = calloc(1, sizeof(*srv->events));
    if (srv->room_fd < 0 || !srv->events ||
        wsni_event_queue_init(srv->events, srv->event_queue_limit,
                              (size_t)opt_int(copy, WSN_OPT_LOG_QUEUE), wsn_event_free)) {
        /* Nothing else holds resources yet. */
        if (srv->room_fd >= 0)
            close(srv->room_fd);
        free(srv->events);
        wsn_options_free(copy);
        free(srv);
        copy_error(errbuf, errbuf_len, "cannot create an eventfd");
        return WSN_ENOMEM;
    }
    wsni_event_queue_set_bytes(srv->events, (size_t)opt_int(copy, WSN_OPT_EVENT_QUEUE_BYTES));
    wsni_event_queue_set_share(srv->events, (size_t)opt_int(copy, WSN_OPT_CLIENT_EVENT_QUEUE),
                               (size_t)opt_int(copy, WSN_OPT_CLIENT_EVENT_QUEUE_BYTES));
    srv->backpressure_reason = opt_str(copy, WSN_OPT_BACKPRESSURE_REASON);
    srv->log_sink = wsni_log_sink;
    srv->log_level = copy->log_fn || srv->events->log_cap
                         ? (int)opt_int(copy, WSN_OPT_LOG_LEVEL)
                         : WSN_LOG_NONE;
    srv->state = SRV_NEW;
    srv->port = -1;
    if ((rc = wsni_cluster_setup(srv, why, sizeof(why)))) {
        copy_error(errbuf, errbuf_len, why);
        wsni_server_unref(srv);
        return rc;
    }
    *out = srv;
    return WSN_OK;
}

WSN_API int wsn_server_set_handler(wsn_server *srv, wsn_event_type type, wsn_event_fn fn,
                                   void *user)
{
    if (!srv || type < WSN_EVENT_CONNECT || type > WSN_EVENT_UPGRADE)
        return WSN_EINVAL;
    pthread_mutex_lock(&srv->lock);
    int started = srv->start_called;
    if (!started) {
        srv->handlers[type].fn = fn;
        srv->handlers[type].user = user;
    }
    pthread_mutex_unlock(&srv->lock);
    return started ? WSN_ESTATE : WSN_OK;
}

/* Before the I/O thread runs, so that its first event is announced. */
static int open_event_socket(wsn_server *srv)
{
    const char *path = opt_str(srv->opts, WSN_OPT_EVENT_SOCKET);
    if (!path || !*path)
        return WSN_OK;
    char why[256];
    event_socket *s = wsni_event_socket_open(path, why, sizeof(why));
    if (!s) {
        wsni_set_error(srv, "%s", why);
        return WSN_EIO;
    }
    wsni_event_queue_swap_socket(srv->events, s);
    return WSN_OK;
}

static void close_event_socket(wsn_server *srv)
{
    wsni_event_socket_close(wsni_event_queue_swap_socket(srv->events, NULL));
}

WSN_API int wsn_server_start(wsn_server *srv)
{
    if (!srv)
        return WSN_EINVAL;
    pthread_mutex_lock(&srv->lock);
    if (srv->start_called || srv->state != SRV_NEW) {
        int rc = srv->state == SRV_STOPPED ? WSN_ECLOSED : WSN_ESTATE;
        pthread_mutex_unlock(&srv->lock);
        return rc;
    }
    srv->start_called = 1;
    srv->start_result = 1;
    pthread_mutex_unlock(&srv->lock);

    int rc = open_event_socket(srv);
    if (!rc && (rc = wsni_loop_start(srv)))
        close_event_socket(srv);
    /* The broker thread connects while the loop starts: channels that get
     * members meanwhile wait in its table. */
    if (!rc && wsni_cluster_start(srv))
        wsni_log(srv, WSN_LOG_ERROR, "broker: cannot start its thread: this server only");
    pthread_mutex_lock(&srv->lock);
    if (rc) {
        srv->start_result = rc;
        srv->state = SRV_STOPPED;
        srv->io_done = srv->joined = srv->join_claimed = 1;
    }
    while (srv->start_result == 1)
        pthread_cond_wait(&srv->cond, &srv->lock);
    rc = srv->start_result;
    pthread_mutex_unlock(&srv->lock);
    return rc;
}

WSN_API int wsn_server_port(const wsn_server *srv)
{
    if (!srv)
        return -1;
    pthread_mutex_lock((pthread_mutex_t *)&srv->lock);
    int port = srv->port;
    pthread_mutex_unlock((pthread_mutex_t *)&srv->lock);
    return port;
}

/* Joins the I/O thread once, whichever thread gets here first; the others
 * wait for that join. Lock held on entry and exit. */
static void join_io_thread_locked(wsn_server *srv)
{
    if (!srv->start_called)
        return;
    if (!srv->join_claimed) {
        srv->join_claimed = 1;
        pthread_mutex_unlock(&srv->lock);
        pthread_join(srv->io_tid, NULL);
        pthread_mutex_lock(&srv->lock);
        srv->joined = 1;
        pthread_cond_broadcast(&srv->cond);
    }
    while (!srv->joined)
        pthread_cond_wait(&srv->cond, &srv->lock);
}

static void emit_stopped_without_loop(wsn_server *srv)
{
    struct wsn_event *ev = wsni_event_new(WSN_EVENT_STOPPED, NULL);
    if (ev)
        wsni_event_queue_push(srv->events, ev, 0);
}

WSN_API int wsn_server_shutdown(wsn_server *srv, int64_t timeout_ms)
{
    if (!srv || timeout_ms < 0)
        return WSN_EINVAL;
    pthread_mutex_lock(&srv->lock);
    if (srv->state == SRV_NEW) {
        srv->state = SRV_STOPPED;
        pthread_mutex_unlock(&srv->lock);
        emit_stopped_without_loop(srv);
        return WSN_OK;
    }
    if (srv->state == SRV_RUNNING) {
        command *cmd = wsni_command_new(CMD_SHUTDOWN);
        srv->state = SRV_DRAINING;
        wsni_room_update(srv);
        /* Publishers waiting for room give up now. */
        pthread_cond_broadcast(&srv->cond);
        pthread_mutex_unlock(&srv->lock);
        if (!cmd)
            return WSN_ENOMEM;
        cmd->arg = timeout_ms;
        wsni_command_submit(srv, cmd, 0);
        pthread_mutex_lock(&srv->lock);
    }
    if (wsni_server_on_io_thread(srv)) {
        pthread_mutex_unlock(&srv->lock);
        return WSN_OK;
    }
    join_io_thread_locked(srv);
    int rc = srv->clients_cut ? WSN_ETIMEDOUT : WSN_OK;
    pthread_mutex_unlock(&srv->lock);
    /* After the join: STOPPED, the last event, has been announced. */
    close_event_socket(srv);
    return rc;
}

WSN_API void wsn_server_free(wsn_server *srv)
{
    if (!srv)
        return;
    if (wsni_server_on_io_thread(srv)) {
        /* Joining ourselves would deadlock; leaking is the lesser harm. */
        wsni_log(srv, WSN_LOG_ERROR, "wsn_server_free called on the I/O thread: ignored");
        return;
    }
    wsn_server_shutdown(srv, srv->write_wait_ms);
    wsni_cluster_end(srv);
    /* Events nobody will take hold client references, which hold ours. */
    wsni_event_queue_clear(srv->events);
    wsni_server_unref(srv);
}

/* --- monitoring ------------------------------------------------------- */

WSN_API int wsn_server_connected_clients(wsn_server *srv)
{
    if (!srv)
        return 0;
    pthread_mutex_lock(&srv->lock);
    int n = srv->connected;
    pthread_mutex_unlock(&srv->lock);
    return n;
}

WSN_API int wsn_server_client_list(wsn_server *srv, wsn_strlist **out)
{
    if (!srv || !out)
        return WSN_EINVAL;
    *out = NULL;
    wsn_strlist *list = wsni_strlist_new();
    if (!list)
        return WSN_ENOMEM;
    int rc = WSN_OK;
    pthread_mutex_lock(&srv->lock);
    wsn_client *c, *tmp;
    HASH_ITER(hh, srv->clients_by_id, c, tmp)
    {
        if ((rc = wsni_strlist_push(list, c->id)))
            break;
    }
    pthread_mutex_unlock(&srv->lock);
    if (rc) {
        wsn_strlist_free(list);
        return rc;
    }
    *out = list;
    return WSN_OK;
}

/* --- events, host side -------------------------------------------------- */

WSN_API int wsn_server_event_fd(wsn_server *srv) { return srv ? srv->events->fd : -1; }

WSN_API int wsn_server_room_fd(wsn_server *srv) { return srv ? srv->room_fd : -1; }

WSN_API int wsn_server_wait(wsn_server *srv, int timeout_ms)
{
    if (!srv)
        return WSN_EINVAL;
    struct pollfd pfd = {.fd = srv->events->fd, .events = POLLIN};
    for (;;) {
        int closed;
        int ready = wsni_event_queue_ready(srv->events, &closed);
        if (ready)
            return 1;
        if (closed)
            return WSN_ECLOSED;
        int n = poll(&pfd, 1, timeout_ms);
        if (n < 0 && errno == EINTR)
            return 0; /* let the host look at its signals */
        if (n <= 0)
            return 0;
        /* Readable: loop to confirm under the lock (another thread may have
         * taken the event). */
        timeout_ms = 0;
    }
}

/* Reading paused when the host fell behind (for every client, or for one
 * client over its share); it resumes once the host has taken half. */
static void resume_rx(wsn_server *srv, int resume, wsn_client *c)
{
    if (resume & EVQ_RESUME_CLIENT) {
        command *cmd = wsni_command_new(CMD_RESUME_CLIENT_RX);
        if (cmd) {
            cmd->client = wsn_client_retain(c);
            wsni_command_submit(srv, cmd, 0);
        }
    }
    if (resume & EVQ_RESUME_ALL) {
        command *cmd = wsni_command_new(CMD_RESUME_RX);
        if (cmd)
            wsni_command_submit(srv, cmd, 0);
    }
}

WSN_API int wsn_server_next_event(wsn_server *srv, wsn_event **out)
{
    if (!srv || !out)
        return WSN_EINVAL;
    *out = NULL;
    int resume = 0;
    int rc = wsni_event_queue_pop(srv->events, out, &resume);
    if (resume)
        resume_rx(srv, resume, (*out)->client);
    return rc;
}

WSN_API int wsn_server_dispatch(wsn_server *srv, int max)
{
    if (!srv)
        return WSN_EINVAL;
    int n = 0;
    while (max <= 0 || n < max) {
        wsn_event *ev;
        int rc = wsn_server_next_event(srv, &ev);
        if (rc == WSN_EAGAIN)
            break;
        if (rc)
            return n ? n : rc;
        handler h = srv->handlers[ev->kind];
        if (h.fn)
            h.fn(h.user, srv, ev);
        wsn_event_free(ev);
        n++;
    }
    return n;
}
