#include "shell/events.h"
#include "shell/event_socket.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void sync_fd(event_queue *q);

int wsni_event_queue_init(event_queue *q, size_t pause_at, size_t log_cap,
                          void (*free_event)(struct wsn_event *ev))
{
    q->pause_at = pause_at;
    q->free_event = free_event;
    q->log_lines = (wsni_list){0};
    q->log_count = 0;
    q->log_cap = log_cap;
    q->logs_dropped = 0;
    q->fd_readable = 0;
    q->paused = 0;
    q->paused_clients = 0;
    q->events = (wsni_list){0};
    q->messages = 0;
    q->bytes = 0;
    q->pause_bytes = 0;
    q->share_at = SIZE_MAX;
    q->share_bytes = 0;
    q->stopped_taken = 0;
    q->signal_due = 0;
    q->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->fd < 0)
        return WSN_ENOMEM;
    if (pthread_mutex_init(&q->lock, NULL)) {
        close(q->fd);
        return WSN_ENOMEM;
    }
    return WSN_OK;
}

/* Lock held: the counts agree with the lists (debug builds). */
static void check_counts(const event_queue *q)
{
    assert((q->events.head || q->messages == 0) && "MESSAGE count without events");
    assert((q->log_lines.head != NULL) == (q->log_count != 0) && "log count off");
    assert(q->log_count <= q->log_cap && "more log lines than log_cap");
    (void)q;
}

void wsni_event_queue_clear(event_queue *q)
{
    pthread_mutex_lock(&q->lock);
    wsni_list events = q->events, lines = q->log_lines;
    q->events = (wsni_list){0};
    q->messages = 0;
    q->bytes = 0;
    q->log_lines = (wsni_list){0};
    q->log_count = 0;
    sync_fd(q);
    pthread_mutex_unlock(&q->lock);
    wsni_list_node *n;
    while ((n = events.head)) {
        wsni_list_remove(&events, n);
        q->free_event(wsni_container_of(n, struct wsn_event, node));
    }
    while ((n = lines.head)) {
        wsni_list_remove(&lines, n);
        free(wsni_container_of(n, log_line, node));
    }
}

void wsni_event_queue_destroy(event_queue *q)
{
    wsni_event_queue_clear(q);
    close(q->fd);
    pthread_mutex_destroy(&q->lock);
}

/* Lock held. The fd is readable exactly while an event the host may take
 * now (not one whose wake-up is deferred to the end of the loop pass) or
 * a log line is queued; it is written only when that flips. */
static void sync_fd(event_queue *q)
{
    int want = (q->events.head && !q->signal_due) || q->log_lines.head;
    if (want == q->fd_readable)
        return;
    q->fd_readable = want;
    if (want && q->socket)
        wsni_event_socket_notify(q->socket);
    uint64_t value = 1;
    ssize_t n;
    do
        n = want ? write(q->fd, &value, sizeof(value)) : read(q->fd, &value, sizeof(value));
    while (n < 0 && errno == EINTR);
}

struct event_socket *wsni_event_queue_swap_socket(event_queue *q, struct event_socket *s)
{
    pthread_mutex_lock(&q->lock);
    struct event_socket *old = q->socket;
    q->socket = s;
    pthread_mutex_unlock(&q->lock);
    return old;
}

size_t wsni_event_bytes(const struct wsn_event *ev)
{
    return sizeof(*ev) + ev->msg.payload_len;
}

static int over_bytes(const event_queue *q, size_t limit)
{
    return q->pause_bytes && q->bytes >= limit;
}

int wsni_event_queue_push(event_queue *q, struct wsn_event *ev, int defer)
{
    pthread_mutex_lock(&q->lock);
    if (!q->events.head)
        q->signal_due = defer;
    wsni_list_append(&q->events, &ev->node);
    sync_fd(q);
    int pause = 0;
    if (ev->kind == WSN_EVENT_MESSAGE) {
        size_t bytes = wsni_event_bytes(ev);
        q->messages++;
        q->bytes += bytes;
        if (!q->paused && q->messages >= q->pause_at)
            pause = EVQ_PAUSE_ALL_COUNT, q->paused = 1;
        else if (!q->paused && over_bytes(q, q->pause_bytes))
            pause = EVQ_PAUSE_ALL_BYTES, q->paused = 1;
        wsn_client *c = ev->client;
        c->host_messages++;
        c->host_bytes += bytes;
        if (!c->host_paused && (c->host_messages >= q->share_at ||
                                (q->share_bytes && c->host_bytes >= q->share_bytes))) {
            c->host_paused = 1;
            q->paused_clients++;
            pause |= EVQ_PAUSE_CLIENT;
        }
        /* Clients' shares now pause them long before the whole backlog
         * is full; a quarter of it is still a spike worth a trim. */
        if (over_bytes(q, q->pause_bytes / 4))
            pause |= EVQ_BIG;
    }
    check_counts(q);
    pthread_mutex_unlock(&q->lock);
    return pause;
}

int wsni_event_queue_client_paused(event_queue *q, const wsn_client *c)
{
    pthread_mutex_lock(&q->lock);
    int paused = c->host_paused;
    pthread_mutex_unlock(&q->lock);
    return paused;
}

void wsni_event_queue_flush(event_queue *q)
{
    pthread_mutex_lock(&q->lock);
    /* Only while something is queued, or a host polling it would spin. */
    q->signal_due = 0;
    sync_fd(q);
    pthread_mutex_unlock(&q->lock);
}

int wsni_event_queue_pop(event_queue *q, struct wsn_event **out, int *resume)
{
    pthread_mutex_lock(&q->lock);
    struct wsn_event *ev = wsni_list_first(&q->events, struct wsn_event, node);
    if (!ev) {
        int rc = q->stopped_taken ? WSN_ECLOSED : WSN_EAGAIN;
        pthread_mutex_unlock(&q->lock);
        return rc;
    }
    wsni_list_remove(&q->events, &ev->node);
    if (!q->events.head)
        q->signal_due = 0;
    sync_fd(q);
    *resume = 0;
    if (ev->kind == WSN_EVENT_MESSAGE) {
        size_t bytes = wsni_event_bytes(ev);
        assert(q->messages > 0 && "MESSAGE count below zero");
        q->messages--;
        assert(q->bytes >= bytes && "MESSAGE bytes below zero");
        q->bytes -= bytes;
        wsn_client *c = ev->client;
        assert(c->host_messages > 0 && c->host_bytes >= bytes && "client share below zero");
        c->host_messages--;
        c->host_bytes -= bytes;
        if (c->host_paused && c->host_messages <= q->share_at / 2 &&
            (!q->share_bytes || c->host_bytes <= q->share_bytes / 2)) {
            c->host_paused = 0;
            assert(q->paused_clients > 0 && "paused client count below zero");
            q->paused_clients--;
            *resume |= EVQ_RESUME_CLIENT;
        }
    }
    if (ev->kind == WSN_EVENT_STOPPED)
        q->stopped_taken = 1;
    if (q->paused && q->messages <= q->pause_at / 2 && !over_bytes(q, q->pause_bytes / 2 + 1)) {
        q->paused = 0;
        *resume |= EVQ_RESUME_ALL;
    }
    check_counts(q);
    pthread_mutex_unlock(&q->lock);
    *out = ev;
    return WSN_OK;
}

void wsni_event_queue_push_log(event_queue *q, wsn_log_level level, const char *text, size_t len)
{
    log_line *line = malloc(sizeof(*line) + len + 1);
    pthread_mutex_lock(&q->lock);
    if (!line || q->log_count >= q->log_cap) {
        q->logs_dropped++;
        pthread_mutex_unlock(&q->lock);
        free(line);
        return;
    }
    line->node = (wsni_list_node){0};
    line->level = level;
    line->len = len;
    memcpy(line->text, text, len);
    line->text[len] = '\0';
    wsni_list_append(&q->log_lines, &line->node);
    q->log_count++;
    sync_fd(q);
    check_counts(q);
    pthread_mutex_unlock(&q->lock);
}

int wsni_event_queue_pop_log(event_queue *q, wsn_log_level *level, char *buf, size_t cap,
                        size_t *len)
{
    pthread_mutex_lock(&q->lock);
    log_line *line = wsni_list_first(&q->log_lines, log_line, node);
    if (!line) {
        pthread_mutex_unlock(&q->lock);
        return WSN_EAGAIN;
    }
    *len = line->len;
    if (!buf || cap <= line->len) {
        pthread_mutex_unlock(&q->lock);
        return WSN_ENOSPC;
    }
    wsni_list_remove(&q->log_lines, &line->node);
    assert(q->log_count > 0 && "log count below zero");
    q->log_count--;
    sync_fd(q);
    check_counts(q);
    pthread_mutex_unlock(&q->lock);
    *level = line->level;
    memcpy(buf, line->text, line->len + 1);
    free(line);
    return WSN_OK;
}

int wsni_event_queue_ready(event_queue *q, int *closed)
{
    pthread_mutex_lock(&q->lock);
    int ready = q->events.head != NULL || q->log_lines.head != NULL;
    *closed = q->stopped_taken;
    pthread_mutex_unlock(&q->lock);
    return ready;
}

void wsni_event_queue_stats_get(event_queue *q, wsni_event_queue_stats *out)
{
    pthread_mutex_lock(&q->lock);
    out->messages = q->messages;
    out->bytes = q->bytes;
    out->paused_clients = q->paused_clients;
    out->paused = q->paused;
    pthread_mutex_unlock(&q->lock);
}
