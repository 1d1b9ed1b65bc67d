#include "events.h"

#include "server.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

int event_queue_init(event_queue *q, size_t pause_at)
{
    q->pause_at = pause_at;
    q->paused = 0;
    q->head = q->tail = NULL;
    q->messages = 0;
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

void event_queue_clear(event_queue *q)
{
    pthread_mutex_lock(&q->lock);
    struct wsn_event *ev = q->head;
    q->head = q->tail = NULL;
    q->messages = 0;
    pthread_mutex_unlock(&q->lock);
    while (ev) {
        struct wsn_event *next = ev->next;
        wsn_event_free(ev);
        ev = next;
    }
}

void event_queue_destroy(event_queue *q)
{
    event_queue_clear(q);
    close(q->fd);
    pthread_mutex_destroy(&q->lock);
}

static void signal_fd(int fd)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already nonzero: readable anyway. */
    while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
}

static void drain_fd(int fd)
{
    uint64_t value;
    while (read(fd, &value, sizeof(value)) < 0 && errno == EINTR) {
    }
}

int event_queue_push(event_queue *q, struct wsn_event *ev, int defer)
{
    ev->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = ev;
    else {
        q->head = ev;
        if (defer)
            q->signal_due = 1;
        else
            signal_fd(q->fd);
    }
    q->tail = ev;
    int pause = 0;
    if (ev->kind == WSN_EVENT_MESSAGE && ++q->messages >= q->pause_at && !q->paused)
        pause = q->paused = 1;
    pthread_mutex_unlock(&q->lock);
    return pause;
}

void event_queue_flush(event_queue *q)
{
    pthread_mutex_lock(&q->lock);
    /* Only while something is queued: the fd is readable exactly when the
     * queue is not empty, or a host polling it would spin. */
    if (q->signal_due && q->head)
        signal_fd(q->fd);
    q->signal_due = 0;
    pthread_mutex_unlock(&q->lock);
}

int event_queue_pop(event_queue *q, struct wsn_event **out, int *resume)
{
    pthread_mutex_lock(&q->lock);
    struct wsn_event *ev = q->head;
    if (!ev) {
        int rc = q->stopped_taken ? WSN_ECLOSED : WSN_EAGAIN;
        pthread_mutex_unlock(&q->lock);
        return rc;
    }
    q->head = ev->next;
    if (!q->head) {
        q->tail = NULL;
        drain_fd(q->fd);
    }
    if (ev->kind == WSN_EVENT_MESSAGE)
        q->messages--;
    if (ev->kind == WSN_EVENT_STOPPED)
        q->stopped_taken = 1;
    *resume = 0;
    if (q->paused && q->messages <= q->pause_at / 2) {
        q->paused = 0;
        *resume = 1;
    }
    pthread_mutex_unlock(&q->lock);
    ev->next = NULL;
    *out = ev;
    return WSN_OK;
}

struct wsn_event *event_new(wsn_event_type kind, wsn_client *client)
{
    struct wsn_event *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return NULL;
    ev->kind = kind;
    ev->client = client ? wsn_client_retain(client) : NULL;
    return ev;
}

WSN_API void wsn_event_free(wsn_event *ev)
{
    if (!ev)
        return;
    incoming_clear(&ev->msg);
    wsn_client_release(ev->client);
    free(ev);
}

WSN_API wsn_event_type wsn_event_kind(const wsn_event *ev) { return ev->kind; }

WSN_API wsn_client *wsn_event_client(const wsn_event *ev) { return ev ? ev->client : NULL; }

WSN_API const char *wsn_event_client_id(const wsn_event *ev)
{
    return ev && ev->client ? ev->client->id : "";
}

WSN_API wsn_message_type wsn_event_message_type(const wsn_event *ev) { return ev->msg.type; }

WSN_API const char *wsn_event_channel(const wsn_event *ev)
{
    return ev->msg.channel ? ev->msg.channel : "";
}

WSN_API const void *wsn_event_payload(const wsn_event *ev, size_t *len)
{
    if (len)
        *len = ev->msg.payload ? ev->msg.payload_len : 0;
    return ev->msg.payload ? (const void *)ev->msg.payload : (const void *)"";
}

WSN_API const char *wsn_event_message_id(const wsn_event *ev)
{
    return ev->msg.message_id ? ev->msg.message_id : "";
}

WSN_API const char *wsn_event_reply_to_id(const wsn_event *ev)
{
    return ev->msg.reply_to_id ? ev->msg.reply_to_id : "";
}
