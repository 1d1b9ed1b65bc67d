/* Work handed from any thread to the I/O thread. Commands queue in FIFO
 * order under srv->lock; the I/O thread swaps the whole list out on
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED and applies it without the lock. */
#ifndef WSN_COMMANDS_H
#define WSN_COMMANDS_H

#include "shell/server.h"

enum command_kind {
    CMD_PUBLISH,     /* channel, out; arg 1: this server only (the broker
                        was down when it was published) */
    CMD_SEND,        /* client, out */
    CMD_SUBSCRIBE,   /* client, channel */
    CMD_UNSUBSCRIBE, /* client, channel */
    CMD_SHUTDOWN,    /* arg = timeout ms */
    CMD_RESUME_RX,
    CMD_RESUME_CLIENT_RX, /* client: its share of the event queue has room again */
    CMD_BATCH_ARM,   /* batch_key, arg = ttl ms: start the batch's timer */
    CMD_BATCH_FLUSH, /* batch: deliver it now (it reached a bound) */
    CMD_SEND_REMOTE, /* target (a client of another server), out */
    CMD_UPGRADE_ANSWER, /* answer: the host's word on a waiting upgrade */
    CMD_SET_EXPIRY,  /* client, arg = Unix ms (0 = none) */
    CMD_TLS_RELOAD   /* reply: the certificate files again (transport) */
};

/* A caller waiting for its command's result: done and rc are set once,
 * under srv->lock, and srv->cond is broadcast; a command freed unapplied
 * (the loop ended) answers WSN_ECLOSED. */
typedef struct wsni_reply {
    wsn_server *srv;
    int done, rc;
} wsni_reply;


struct command {
    wsni_list_node node; /* in srv->commands */
    enum command_kind kind;
    wsn_client *client; /* a reference */
    char *channel;      /* owned */
    outgoing *out;      /* owned */
    int64_t arg;
    char *batch_key;      /* owned */
    size_t batch_key_len;
    uint64_t batch_generation;
    struct batch *batch;  /* owned */
    char *target;         /* owned: CMD_SEND_REMOTE's client id */
    struct wsni_upgrade_answer *answer; /* owned */
    wsni_reply *reply;    /* the waiting caller's, or NULL */
};

command *wsni_command_new(enum command_kind kind);
void wsni_command_free(command *cmd);

/* wsni_command_submit flags beyond WSN_PUBLISH_NONBLOCK (which refuses a
 * publish with WSN_EAGAIN where it would wait for room). */
enum { SUBMIT_NO_ROOM_CHECK = 0x100 /* queue a publish even without room */ };

/* Queues cmd for the I/O thread (taking ownership). Publish commands wait
 * for room as backpressure asks, or with WSN_PUBLISH_NONBLOCK are refused
 * (WSN_EAGAIN) and freed. Called on the I/O thread, it runs the queue and
 * then cmd at once and returns cmd's own result. */
int wsni_command_submit(wsn_server *srv, command *cmd, int flags);

/* One look under the lock before a publish that must not wait: WSN_OK,
 * WSN_ECLOSED (not running), or WSN_EAGAIN when flags has
 * WSN_PUBLISH_NONBLOCK and there is no room now (any thread). */
int wsni_command_publish_admission(wsn_server *srv, int flags);

/* Frees every queued command unapplied (io, the loop has ended). */
void wsni_commands_drop(wsn_server *srv);
/* Moves every queued command out and applies it (io). */
void wsni_commands_run(wsn_server *srv);
/* Whether commands wait for the I/O thread (any thread). */
int wsni_commands_pending(wsn_server *srv);

/* Queues cmd (its reply set) and waits for its result (any thread). */
int wsni_command_call(wsn_server *srv, command *cmd);

/* Applies one command on the I/O thread. may_wait: the caller could be
 * made to wait, so a full client in block mode gets an overflow entry. */
int wsni_command_apply(wsn_server *srv, command *cmd, int may_wait);

#endif
