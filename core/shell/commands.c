#include "shell/commands.h"

#include "engine/batch.h"
#include "engine/broker.h"
#include "engine/expiry.h"
#include "engine/upgrade_answer.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Consecutive publishes to one channel delivered in one walk, at most. */
#define PUBLISH_RUN_MAX 64

command *wsni_command_new(enum command_kind kind)
{
    command *cmd = calloc(1, sizeof(*cmd));
    if (cmd)
        cmd->kind = kind;
    return cmd;
}

/* Answers cmd's caller, once: the reply lives on the caller's stack, which
 * it leaves as soon as done is seen, so cmd forgets it first. */
static void reply_set(command *cmd, int rc)
{
    wsni_reply *r = cmd->reply;
    if (!r)
        return;
    cmd->reply = NULL;
    wsn_server *srv = r->srv;
    pthread_mutex_lock(&srv->lock);
    r->done = 1;
    r->rc = rc;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
}

void wsni_command_free(command *cmd)
{
    if (!cmd)
        return;
    reply_set(cmd, WSN_ECLOSED);
    wsn_client_release(cmd->client);
    free(cmd->channel);
    wsni_outgoing_free(cmd->out);
    free(cmd->batch_key);
    wsni_batch_free(cmd->batch);
    free(cmd->target);
    wsni_upgrade_answer_free(cmd->answer);
    free(cmd);
}

/* Reads resume while the server drains too: the host taking its events
 * during a shutdown must not leave a client it paused unread. */
static int is_resume(const command *cmd)
{
    return cmd->kind == CMD_RESUME_RX || cmd->kind == CMD_RESUME_CLIENT_RX;
}

static int is_publish(const command *cmd)
{
    return cmd->kind == CMD_PUBLISH || cmd->kind == CMD_SEND || cmd->kind == CMD_BATCH_FLUSH ||
           cmd->kind == CMD_SEND_REMOTE;
}

static void deadline_after(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Lock held. A message to one client needs room in that client only: it
 * adds nothing to another client's overflow, so a stalled subscriber need
 * not hold up a reply to someone else. */
static int has_room_for(const wsn_server *srv, const command *cmd)
{
    if (cmd->kind == CMD_SEND_REMOTE)
        return srv->state != SRV_RUNNING || srv->cmd_publishes < WSNI_COMMAND_QUEUE_LIMIT;
    if (cmd->kind != CMD_SEND)
        return wsni_room_open(srv);
    return srv->state != SRV_RUNNING ||
           (!cmd->client->stalled && srv->cmd_publishes < WSNI_COMMAND_QUEUE_LIMIT);
}

/* Waits (lock held) while publishing would overfill: a stalled client in
 * block mode, or a full command queue. */
static int wait_for_room(wsn_server *srv, const command *cmd)
{
    struct timespec deadline;
    deadline_after(&deadline, srv->write_wait_ms);
    srv->publish_waiters++;
    int rc = WSN_OK;
    while (!has_room_for(srv, cmd)) {
        if (pthread_cond_timedwait(&srv->cond, &srv->lock, &deadline) == ETIMEDOUT) {
            if (!has_room_for(srv, cmd))
                rc = WSN_ETIMEDOUT;
            break;
        }
    }
    srv->publish_waiters--;
    return rc;
}

int wsni_command_publish_admission(wsn_server *srv, int flags)
{
    pthread_mutex_lock(&srv->lock);
    int rc = WSN_OK;
    if (srv->state != SRV_RUNNING)
        rc = WSN_ECLOSED;
    else if ((flags & WSN_PUBLISH_NONBLOCK) && !wsni_room_open(srv) && !wsni_server_on_io_thread(srv))
        rc = WSN_EAGAIN;
    pthread_mutex_unlock(&srv->lock);
    return rc;
}

int wsni_command_submit(wsn_server *srv, command *cmd, int flags)
{
    if (wsni_server_on_io_thread(srv)) {
        pthread_mutex_lock(&srv->lock);
        int running = srv->state == SRV_RUNNING || cmd->kind == CMD_SHUTDOWN || is_resume(cmd);
        pthread_mutex_unlock(&srv->lock);
        int rc = WSN_ECLOSED;
        if (running) {
            /* Commands queued before this call keep their place. */
            wsni_commands_run(srv);
            rc = wsni_command_apply(srv, cmd, 0);
        }
        wsni_command_free(cmd);
        return rc;
    }
    pthread_mutex_lock(&srv->lock);
    int rc = WSN_OK;
    if (is_publish(cmd) && srv->state == SRV_RUNNING && !(flags & SUBMIT_NO_ROOM_CHECK)) {
        /* Nothing of a refused message is queued: the caller keeps it. */
        if (!has_room_for(srv, cmd))
            rc = (flags & WSN_PUBLISH_NONBLOCK) ? WSN_EAGAIN : wait_for_room(srv, cmd);
    }
    if (!rc && srv->state != SRV_RUNNING &&
        !(cmd->kind == CMD_SHUTDOWN || (is_resume(cmd) && srv->ctx_alive)))
        rc = WSN_ECLOSED;
    if (!rc && !srv->ctx_alive)
        rc = WSN_ECLOSED;
    if (rc) {
        pthread_mutex_unlock(&srv->lock);
        wsni_command_free(cmd);
        if (rc == WSN_ETIMEDOUT)
            wsni_set_error(srv, "publish waited write_wait (%lld ms) for a slow client and gave up",
                      (long long)srv->write_wait_ms);
        return rc;
    }
    int was_empty = srv->commands.head == NULL;
    wsni_list_append(&srv->commands, &cmd->node);
    if (is_publish(cmd) && ++srv->cmd_publishes == WSNI_COMMAND_QUEUE_LIMIT)
        wsni_room_update(srv);
    /* Only the first command needs a wake-up: the I/O thread takes the whole
     * list when it wakes. Called under the lock so the context cannot be
     * destroyed in between (ctx_alive is cleared under it). */
    if (was_empty)
        srv->transport->wake(srv);
    pthread_mutex_unlock(&srv->lock);
    return WSN_OK;
}

int wsni_command_call(wsn_server *srv, command *cmd)
{
    wsni_reply reply = {.srv = srv};
    cmd->reply = &reply;
    int rc = wsni_command_submit(srv, cmd, 0);
    if (rc)
        return rc;
    /* Applied and freed by now on the I/O thread; else wait for it. */
    pthread_mutex_lock(&srv->lock);
    while (!reply.done)
        pthread_cond_wait(&srv->cond, &srv->lock);
    pthread_mutex_unlock(&srv->lock);
    return reply.rc;
}

static command *command_at(wsni_list_node *n)
{
    return n ? wsni_container_of(n, command, node) : NULL;
}

/* Publishes in a row to one channel are delivered together (order kept:
 * only consecutive ones, so a client in two channels still gets every
 * message in publish order). Takes the run out of list and frees it. */
static void apply_publish_run(wsn_server *srv, wsni_list *list)
{
    outgoing *outs[PUBLISH_RUN_MAX] = {0};
    size_t count = 0;
    command *first = command_at(list->head);
    for (command *at = first; at && count < PUBLISH_RUN_MAX && at->kind == CMD_PUBLISH &&
                              at->arg == first->arg && !strcmp(at->channel, first->channel);
         at = command_at(at->node.next))
        outs[count++] = at->out;
    if (first->arg)
        wsni_broker_publish_here(srv, first->channel, outs, count, 1);
    else
        wsni_broker_publish(srv, first->channel, outs, count, 1);
    while (count--) {
        command *done = command_at(list->head);
        wsni_list_remove(list, &done->node);
        wsni_command_free(done);
    }
}

/* Lock held: takes the whole queue; publishers waiting for room may go. */
static wsni_list take_all(wsn_server *srv)
{
    wsni_list list = srv->commands;
    srv->commands = (wsni_list){0};
    size_t publishes = srv->cmd_publishes;
    assert((list.head || publishes == 0) && "publish count without commands");
    srv->cmd_publishes = 0;
    wsni_room_update(srv);
    if (publishes && srv->publish_waiters)
        pthread_cond_broadcast(&srv->cond);
    return list;
}

int wsni_commands_pending(wsn_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    int pending = srv->commands.head != NULL;
    pthread_mutex_unlock(&srv->lock);
    return pending;
}

void wsni_commands_drop(wsn_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    wsni_list list = take_all(srv);
    pthread_mutex_unlock(&srv->lock);
    command *cmd;
    while ((cmd = command_at(list.head))) {
        wsni_list_remove(&list, &cmd->node);
        wsni_command_free(cmd);
    }
}

void wsni_commands_run(wsn_server *srv)
{
    /* What other servers published arrived before what is queued now. */
    wsni_broker_drain(srv);
    pthread_mutex_lock(&srv->lock);
    wsni_list list = take_all(srv);
    pthread_mutex_unlock(&srv->lock);
    command *cmd;
    while ((cmd = command_at(list.head))) {
        command *next = command_at(cmd->node.next);
        if (cmd->kind == CMD_PUBLISH && next && next->kind == CMD_PUBLISH &&
            next->arg == cmd->arg && !strcmp(next->channel, cmd->channel)) {
            apply_publish_run(srv, &list);
            continue;
        }
        wsni_list_remove(&list, &cmd->node);
        wsni_command_apply(srv, cmd, 1);
        wsni_command_free(cmd);
    }
}

int wsni_command_apply(wsn_server *srv, command *cmd, int may_wait)
{
    switch (cmd->kind) {
    case CMD_PUBLISH:
        if (cmd->arg)
            return wsni_broker_publish_here(srv, cmd->channel, &cmd->out, 1, may_wait);
        return wsni_broker_publish(srv, cmd->channel, &cmd->out, 1, may_wait);
    case CMD_SEND_REMOTE:
        if (cmd->arg) { /* refused at the call: numbered, not sent */
            if (srv->broker->kept_remote)
                srv->broker->kept_remote(srv, cmd->target);
            return WSN_EBROKER;
        }
        return srv->broker->publish_to_remote
                   ? srv->broker->publish_to_remote(srv, cmd->target, cmd->out)
                   : WSN_EGONE;
    case CMD_SEND:
        if (!atomic_load(&cmd->client->connected))
            return WSN_EGONE;
        return wsni_broker_publish_to_client(srv, cmd->client, cmd->out, may_wait);
    case CMD_SUBSCRIBE: {
        int joined = 0, rc = WSN_EGONE;
        if (atomic_load(&cmd->client->connected))
            rc = wsni_registry_join(&srv->reg, cmd->client, cmd->channel, &joined);
        if (!joined && srv->max_subscriptions)
            atomic_fetch_sub(&cmd->client->sub_slots, 1); /* its slot back */
        return rc;
    }
    case CMD_UNSUBSCRIBE:
        if (wsni_registry_leave(&srv->reg, cmd->client, cmd->channel) && srv->max_subscriptions)
            atomic_fetch_sub(&cmd->client->sub_slots, 1);
        return WSN_OK;
    case CMD_SHUTDOWN:
        srv->transport->begin_shutdown(srv, cmd->arg);
        return WSN_OK;
    case CMD_RESUME_RX:
        srv->transport->pause_rx(srv, 0);
        return WSN_OK;
    case CMD_RESUME_CLIENT_RX:
        srv->transport->resume_client_rx(cmd->client);
        return WSN_OK;
    case CMD_BATCH_ARM:
        return wsni_batch_arm(srv, cmd->batch_key, cmd->batch_key_len, cmd->batch_generation, cmd->arg);
    case CMD_TLS_RELOAD: {
        int rc = srv->transport->reload_tls ? srv->transport->reload_tls(srv) : WSN_EUNSUPPORTED;
        reply_set(cmd, rc);
        return rc;
    }
    case CMD_BATCH_FLUSH: {
        struct batch *b = cmd->batch;
        cmd->batch = NULL;
        return wsni_batch_deliver(srv, b);
    }
    case CMD_UPGRADE_ANSWER: {
        wsni_upgrade_answer *a = cmd->answer;
        cmd->answer = NULL;
        return srv->transport->answer_upgrade(srv, a);
    }
    case CMD_SET_EXPIRY:
        return wsni_expiry_set(cmd->client, cmd->arg);
    }
    return WSN_EINVAL;
}
