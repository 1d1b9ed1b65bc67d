#include "shell/events.h"

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
    q->log_head = q->log_tail = NULL;
    q->log_count = 0;
    q->log_cap = log_cap;
    q->logs_dropped = 0;
    q->fd_readable = 0;
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

void wsni_event_queue_clear(event_queue *q)
{
    pthread_mutex_lock(&q->lock);
    struct wsn_event *ev = q->head;
    q->head = q->tail = NULL;
    q->messages = 0;
    log_line *line = q->log_head;
    q->log_head = q->log_tail = NULL;
    q->log_count = 0;
    sync_fd(q);
    pthread_mutex_unlock(&q->lock);
    while (ev) {
        struct wsn_event *next = ev->next;
        q->free_event(ev);
        ev = next;
    }
    while (line) {
        log_line *next = line->next;
        free(line);
        line = next;
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
    int want = (q->head && !q->signal_due) || q->log_head;
    if (want == q->fd_readable)
        return;
    q->fd_readable = want;
    uint64_t value = 1;
    ssize_t n;
    do
        n = want ? write(q->fd, &value, sizeof(value)) : read(q->fd, &value, sizeof(value));
    while (n < 0 && errno == EINTR);
}

int wsni_event_queue_push(event_queue *q, struct wsn_event *ev, int defer)
{
    ev->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = ev;
    else {
        q->head = ev;
        q->signal_due = defer;
    }
    q->tail = ev;
    sync_fd(q);
    int pause = 0;
    if (ev->kind == WSN_EVENT_MESSAGE && ++q->messages >= q->pause_at && !q->paused)
        pause = q->paused = 1;
    pthread_mutex_unlock(&q->lock);
    return pause;
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
    struct wsn_event *ev = q->head;
    if (!ev) {
        int rc = q->stopped_taken ? WSN_ECLOSED : WSN_EAGAIN;
        pthread_mutex_unlock(&q->lock);
        return rc;
    }
    q->head = ev->next;
    if (!q->head) {
        q->tail = NULL;
        q->signal_due = 0;
    }
    sync_fd(q);
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
    line->next = NULL;
    line->level = level;
    line->len = len;
    memcpy(line->text, text, len);
    line->text[len] = '\0';
    if (q->log_tail)
        q->log_tail->next = line;
    else
        q->log_head = line;
    q->log_tail = line;
    q->log_count++;
    sync_fd(q);
    pthread_mutex_unlock(&q->lock);
}

int wsni_event_queue_pop_log(event_queue *q, wsn_log_level *level, char *buf, size_t cap,
                        size_t *len)
{
    pthread_mutex_lock(&q->lock);
    log_line *line = q->log_head;
    if (!line) {
        pthread_mutex_unlock(&q->lock);
        return WSN_EAGAIN;
    }
    *len = line->len;
    if (!buf || cap <= line->len) {
        pthread_mutex_unlock(&q->lock);
        return WSN_ENOSPC;
    }
    q->log_head = line->next;
    if (!q->log_head)
        q->log_tail = NULL;
    q->log_count--;
    sync_fd(q);
    pthread_mutex_unlock(&q->lock);
    *level = line->level;
    memcpy(buf, line->text, line->len + 1);
    free(line);
    return WSN_OK;
}

int wsni_event_queue_ready(event_queue *q, int *closed)
{
    pthread_mutex_lock(&q->lock);
    int ready = q->head != NULL || q->log_head != NULL;
    *closed = q->stopped_taken;
    pthread_mutex_unlock(&q->lock);
    return ready;
}
