/* The shell's side of a scale-out broker (WSN_OPT_BROKER): making it with
 * the server, its state for the host (call, event, /healthz) and messages
 * to a client of another server. The broker itself is core/broker/. */
#include "shell/cluster.h"

#include "broker/redis.h"
#include "engine/broker.h"
#include "shell/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The broker thread's wake-up for the I/O thread: as a command would. */
static void wake_io(wsn_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    if (srv->ctx_alive)
        srv->transport->wake(srv);
    pthread_mutex_unlock(&srv->lock);
}

/* io: a BROKER event (the state's name as its channel, the reason as its
 * payload), where the host takes its other events. */
static void state_changed(wsn_server *srv, int state, const char *reason)
{
    struct wsn_event *ev = wsni_event_new(WSN_EVENT_BROKER, NULL);
    if (!ev)
        return;
    ev->msg.type = WSN_TYPE_TEXT;
    ev->msg.channel = strdup(wsni_redis_state_name(state));
    ev->msg.payload = (unsigned char *)strdup(reason);
    ev->msg.payload_len = strlen(reason);
    ev->msg.message_id = strdup("");
    ev->msg.reply_to_id = strdup("");
    if (!ev->msg.channel || !ev->msg.payload || !ev->msg.message_id || !ev->msg.reply_to_id) {
        wsn_event_free(ev);
        return;
    }
    if (srv->events_on_io_thread) {
        handler h = srv->handlers[WSN_EVENT_BROKER];
        if (h.fn)
            h.fn(h.user, srv, ev);
        wsn_event_free(ev);
        return;
    }
    wsni_event_queue_push(srv->events, ev, 0);
}

/* io: a message from another server's publish_to_client_id. */
static void deliver_to_id(wsn_server *srv, const char *client_id, outgoing *o)
{
    wsn_client *c = wsni_client_find(srv, client_id);
    if (!c)
        return;
    if (atomic_load(&c->connected))
        wsni_deliver_to_client(srv, c, o, 1);
    wsn_client_release(c);
}

static const wsni_redis_hooks hooks = {
    .wake = wake_io, .state_changed = state_changed, .deliver_to_id = deliver_to_id};

int wsni_cluster_setup(wsn_server *srv, char *why, size_t why_len)
{
    const char *url = srv->opts->strings[WSN_OPT_BROKER];
    if (!url || !url[0])
        return WSN_OK;
    return wsni_redis_new(srv, url, (int)srv->opts->ints[WSN_OPT_BROKER_SHARDED], &hooks, why,
                          why_len);
}

int wsni_cluster_start(wsn_server *srv)
{
    return srv->broker_impl ? wsni_redis_start(srv) : WSN_OK;
}

void wsni_cluster_end(wsn_server *srv)
{
    if (srv->broker_impl)
        wsni_redis_free(srv);
}

int wsni_cluster_healthy(wsn_server *srv, char *why, size_t cap)
{
    if (!srv->broker_impl)
        return 1;
    wsn_broker_info info = {.size = sizeof(info)};
    if (wsni_redis_state(srv, &info) == WSN_BROKER_UP)
        return 1;
    snprintf(why, cap, "broker %s: %s", wsni_redis_state_name(info.state), info.reason);
    return 0;
}

int wsni_cluster_publish_check(wsn_server *srv)
{
    if (srv->broker_impl && wsni_redis_state_now(srv) != WSN_BROKER_UP) {
        wsni_set_error(srv, "the broker is down: the message reached this server's "
                            "subscribers only");
        return WSN_EBROKER;
    }
    return WSN_OK;
}

uint64_t wsni_cluster_lost(wsn_server *srv)
{
    return srv->broker_impl ? wsni_redis_lost(srv) : 0;
}

WSN_API int wsn_server_broker_state(wsn_server *srv, wsn_broker_info *info)
{
    if (!srv || (info && info->size < sizeof(wsn_broker_info)))
        return WSN_EINVAL;
    if (srv->broker_impl)
        return wsni_redis_state(srv, info);
    if (info) {
        size_t size = info->size;
        memset(info, 0, sizeof(*info));
        info->size = size;
        info->state = WSN_BROKER_NONE;
    }
    return WSN_BROKER_NONE;
}
