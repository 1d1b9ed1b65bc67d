/* What the engine asks of the network, and all it may ask: it includes no
 * libwebsockets header. The lws transport (transport/lws_transport.c)
 * implements this; engine tests implement it with a recorder.
 *
 * Owns: the interface and the timer record. Every call is made on the I/O
 * thread (the thread that runs the transport's loop). */
#ifndef WSN_ENGINE_TRANSPORT_H
#define WSN_ENGINE_TRANSPORT_H

#include "util/list.h"
#include "wsnotify.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

/* Room for the transport's own timer record (lws 4.1's sorted usec list
 * entry is 48 bytes on 64-bit; the lws transport checks it fits). */
#define WSNI_TIMER_IMPL_SIZE 64

/* Room for the transport's part of a client (the lws transport's struct
 * wsni_conn; it checks it fits), embedded in wsn_client so that an idle
 * connection stays one allocation. */
#define WSNI_CONN_IMPL_SIZE 112
#define WSNI_CONN_IMPL_ALIGN 8

typedef struct wsni_timer wsni_timer;
struct wsni_upgrade_answer;
typedef void (*wsni_timer_fn)(wsni_timer *t);

/* Embedded in the object it serves; the callback finds that object with
 * wsni_container_of (util/list.h). Zeroed = not armed. */
struct wsni_timer {
    alignas(max_align_t) unsigned char impl[WSNI_TIMER_IMPL_SIZE]; /* first: the transport's */
    wsni_timer_fn fn;
};

typedef struct wsni_transport {
    /* Tell the transport that c has frames queued (or a close pending):
     * it calls back when c's socket can take them. */
    void (*want_write)(wsn_client *c);
    /* Cut c's connection now, without a close frame (a polite close is
     * the engine's: wsni_client_begin_close queues it behind the data). */
    void (*cut)(wsn_client *c);
    /* Run fn(t) once after delay_us; re-arming replaces the deadline. */
    void (*timer_arm)(wsn_server *srv, wsni_timer *t, wsni_timer_fn fn, int64_t delay_us);
    /* Forget t if armed; harmless if not. */
    void (*timer_cancel)(wsni_timer *t);
    /* Monotonic microseconds, the clock of timer_arm. */
    int64_t (*now_us)(wsn_server *srv);

    /* Asked by the shell's command queue, never by the engine (a
     * transport for engine tests may leave them NULL): */
    /* Lock held: wake the I/O thread to take the queued commands. */
    void (*wake)(wsn_server *srv);
    /* io: refuse new clients, flush, close everyone, end the loop. */
    void (*begin_shutdown)(wsn_server *srv, int64_t timeout_ms);
    /* io: stop (1) or resume (0) reading from every client (a client
     * paused for its own share stays paused). */
    void (*pause_rx)(wsn_server *srv, int pause);
    /* io: resume reading from c, paused for its share of the event queue,
     * unless a later event paused it again or every client is paused. */
    void (*resume_client_rx)(wsn_client *c);
    /* io: the host's answer to the waiting upgrade a->id (taking a):
     * WSN_OK, or WSN_EGONE when no such upgrade waits any more. */
    int (*answer_upgrade)(wsn_server *srv, struct wsni_upgrade_answer *a);
    /* io: read the TLS certificate and key files again; a WSN_* code. */
    int (*reload_tls)(wsn_server *srv);
} wsni_transport;

#endif
