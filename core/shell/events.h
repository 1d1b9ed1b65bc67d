/* Events travelling from the I/O thread to the host: a FIFO (one lock,
 * pointer moves only) with an eventfd that is readable while it is not
 * empty. Per-client order holds because there is one queue. Reads pause
 * for every client when the whole backlog is too big, and for one client
 * when its own share of it is (a fast sender would otherwise put its
 * thousands of events ahead of everyone else's next one). Log lines
 * for a host without a logger (WSN_OPT_LOG_QUEUE) share the lock and the
 * fd: a host drains both where it drains events. */
#ifndef WSN_EVENTS_H
#define WSN_EVENTS_H

#include "engine/incoming.h"
#include "engine/objects.h"
#include "util/list.h"
#include "wsnotify.h"

#include <pthread.h>
#include <stdint.h>

struct wsn_event {
    wsni_list_node node; /* in the queue's events */
    wsn_event_type kind;
    wsn_client *client; /* a reference, NULL for STOPPED */
    incoming msg;       /* MESSAGE; UPGRADE: path, header lines, id, peer */
    uint64_t upgrade_id; /* UPGRADE only */
    char *query;         /* UPGRADE only: owned, never NULL there */
};

typedef struct log_line {
    wsni_list_node node; /* in the queue's log lines */
    wsn_log_level level;
    size_t len;
    char text[]; /* NUL-terminated */
} log_line;

typedef struct event_queue {
    pthread_mutex_t lock;
    wsni_list events;              /* lock: of struct wsn_event, oldest first */
    size_t messages;               /* lock: MESSAGE events queued */
    size_t bytes;                  /* lock: what those hold (wsni_event_bytes) */
    int stopped_taken;             /* lock */
    size_t pause_at;               /* const: MESSAGE events that pause reads */
    size_t pause_bytes;            /* const: their bytes that do; 0 = none */
    size_t share_at;               /* const: one client's MESSAGE events that pause its reads */
    size_t share_bytes;            /* const: their bytes that do; 0 = none */
    int paused;                    /* lock: reads from clients are paused */
    size_t paused_clients;         /* lock: clients with host_paused set */
    int signal_due;                /* lock: pushed with the wake-up deferred */
    int fd;                        /* eventfd; const */
    int fd_readable;               /* lock: the eventfd's counter is nonzero */
    wsni_list log_lines;           /* lock: of log_line, oldest first */
    size_t log_count;              /* lock: lines in log_lines */
    size_t log_cap;                /* const: WSN_OPT_LOG_QUEUE, 0 = off */
    uint64_t logs_dropped;         /* lock */
    struct event_socket *socket;   /* lock: told when the fd turns readable; NULL = none */
    /* const: frees an event the host never took (wsn_event_free, given by
     * the server, so the queue needs nothing of clients) */
    void (*free_event)(struct wsn_event *ev);
} event_queue;

int wsni_event_queue_init(event_queue *q, size_t pause_at, size_t log_cap,
                          void (*free_event)(struct wsn_event *ev));
/* Frees every queued event and the fd. */
void wsni_event_queue_destroy(event_queue *q);
/* What a MESSAGE event counts against pause_bytes: its payload and the
 * event itself. */
size_t wsni_event_bytes(const struct wsn_event *ev);
/* Sets the byte bound (WSN_OPT_EVENT_QUEUE_BYTES) before first use. */
static inline void wsni_event_queue_set_bytes(event_queue *q, size_t pause_bytes)
{
    q->pause_bytes = pause_bytes;
}
/* Sets one client's share (WSN_OPT_CLIENT_EVENT_QUEUE, _BYTES) before
 * first use. */
static inline void wsni_event_queue_set_share(event_queue *q, size_t at, size_t bytes)
{
    q->share_at = at;
    q->share_bytes = bytes;
}

/* Hands the queue an event socket to tell (NULL: none); returns the one
 * it had, for the caller to close. */
struct event_socket *wsni_event_queue_swap_socket(event_queue *q, struct event_socket *s);

/* What a push asks of the I/O thread (bits). */
enum {
    EVQ_PAUSE_ALL_COUNT = 1, /* the backlog reached pause_at: pause every client */
    EVQ_PAUSE_ALL_BYTES = 2, /* the backlog reached pause_bytes: pause every client */
    EVQ_PAUSE_CLIENT = 4,    /* the event's client reached its share: pause it */
    EVQ_BIG = 8              /* the backlog holds a quarter of pause_bytes or more:
                              * memory worth giving back once it is taken */
};
/* Appends; returns EVQ_* bits for the pauses due now. With defer, the fd
 * is not made readable yet but by the next wsni_event_queue_flush: the I/O
 * thread wakes the host once per loop pass, not once per message (with
 * both threads on one core every wake-up preempted the I/O thread, so the
 * host took one event per switch). */
int wsni_event_queue_push(event_queue *q, struct wsn_event *ev, int defer);
/* Whether c's reads are paused for its share (the I/O thread checks it
 * before resuming c: a push after the host's resume may have paused it
 * again). */
int wsni_event_queue_client_paused(event_queue *q, const wsn_client *c);
/* Makes the fd readable if deferred pushes left events queued. */
void wsni_event_queue_flush(event_queue *q);
/* What a pop asks of the I/O thread (bits). */
enum {
    EVQ_RESUME_ALL = 1,   /* the backlog fell to half of pause_at and of pause_bytes */
    EVQ_RESUME_CLIENT = 2 /* the event's client fell to half of its share */
};
/* Takes the oldest event. Returns 0 with *out, WSN_EAGAIN, or WSN_ECLOSED
 * once STOPPED was taken. *resume gets EVQ_RESUME_* bits. */
int wsni_event_queue_pop(event_queue *q, struct wsn_event **out, int *resume);
/* Drops queued events without running them (server teardown). */
void wsni_event_queue_clear(event_queue *q);

struct wsn_event *wsni_event_new(wsn_event_type kind, wsn_client *client);

/* Queues a copy of a log line, or counts it dropped when log_cap lines
 * are queued already (any thread). */
void wsni_event_queue_push_log(event_queue *q, wsn_log_level level, const char *text, size_t len);
/* wsn_server_next_log's contract. */
int wsni_event_queue_pop_log(event_queue *q, wsn_log_level *level, char *buf, size_t cap,
                        size_t *len);
/* What the metrics report of the queue (any thread). */
typedef struct wsni_event_queue_stats {
    size_t messages, bytes, paused_clients;
    int paused;
} wsni_event_queue_stats;
void wsni_event_queue_stats_get(event_queue *q, wsni_event_queue_stats *out);

/* Whether events or log lines wait (any thread). */
int wsni_event_queue_ready(event_queue *q, int *closed);

#endif
