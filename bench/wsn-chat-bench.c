/*
 * wsn-chat-bench: the chat protocol on libwsnotify with nothing else around
 * it (no page, no per-message logging), to measure the engine itself.
 *
 * The protocol is the chat example's (examples/chat/main.c):
 *   {"type":"json","channel":"X","message":{"action":"subscribe","channel":"X"},
 *    "message_id":"s1"}  -> subscribed, reply {"status":"subscribed","channel":"X"}
 *                           to the sender with reply_to_id "s1"
 *   {"type":"json","channel":"X","message":{"action":"broadcast",...}}
 *                        -> the message object is published to channel X
 * The message is parsed with jansson (as an application would); a broadcast
 * publishes the payload text as received (no re-serialisation).
 *
 *   wsn-chat-bench [--host A] [--port N] [--io-thread]
 *                  [--send-buffer N] [--drop] [--ping-ms N]
 *                  [--coalesce-window MS] [--read-buffer BYTES]
 *                  [--broker URL] [--tls-cert FILE --tls-key FILE]
 *
 * --io-thread runs handlers on the engine's I/O thread
 * (WSN_OPT_EVENTS_ON_IO_THREAD); the default queues events and dispatches
 * them on the main thread, like the examples. --ping-ms shortens the
 * keepalive (ping period N ms, pong_wait 3 N) to measure its cost with many
 * idle clients. Stops on SIGINT/SIGTERM.
 */
#define _POSIX_C_SOURCE 200809L

#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsnotify.h"

static atomic_int stop; /* atomic: the handler may run on the I/O thread */
static void on_signal(int sig) { atomic_store(&stop, sig); }

/* Dispatches as examples/chat does: only "action" (and "channel" to
 * subscribe) are read, with wsn_json_get_string, never a parse of the
 * whole message; a broadcast is forwarded as received. */
static void on_message(void *user, wsn_server *srv, const wsn_event *ev) {
    (void)user;
    wsn_client *client = wsn_event_client(ev);
    if (!client || wsn_event_message_type(ev) != WSN_TYPE_JSON)
        return;
    size_t len = 0;
    const char *payload = wsn_event_payload(ev, &len);
    char action[16];
    if (wsn_json_get_string(payload, len, "action", action, sizeof action, NULL) != WSN_OK)
        return;
    if (!strcmp(action, "subscribe")) {
        char ch[256];
        if (wsn_json_get_string(payload, len, "channel", ch, sizeof ch, NULL) == WSN_OK &&
            wsn_server_subscribe(srv, client, ch) == WSN_OK) {
            char reply[600];
            /* the name came out of a JSON string: re-escape it */
            json_t *name = json_string(ch);
            char *q = name ? json_dumps(name, JSON_ENCODE_ANY) : NULL;
            int n = q ? snprintf(reply, sizeof reply,
                                 "{\"status\":\"subscribed\",\"channel\":%s}", q)
                      : -1;
            if (n > 0 && (size_t)n < sizeof reply)
                wsn_server_publish_to_client(srv, client, ch, WSN_TYPE_JSON, reply,
                                             (size_t)n, NULL, wsn_event_message_id(ev));
            free(q);
            json_decref(name);
        }
    } else if (!strcmp(action, "broadcast")) {
        const char *ch = wsn_event_channel(ev);
        if (ch && *ch) {
            /* The payload is the core's own compact JSON: trusted. */
            int rc = wsn_server_publish_ex(srv, NULL, ch, WSN_TYPE_JSON, payload, len, NULL,
                                           NULL, WSN_PUBLISH_TRUSTED_JSON);
            if (rc != WSN_OK && rc != WSN_EBACKPRESSURE)
                fprintf(stderr, "wsn-chat-bench: publish: %s\n", wsn_strerror(rc));
        }
    }
}

static void on_log(void *user, wsn_log_level level, const char *msg) {
    (void)user;
    fprintf(stderr, "wsn-chat-bench: [%d] %s\n", (int)level, msg);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 8080, io_thread = 0, drop = 0;
    long send_buffer = 0, ping_ms = 0, coalesce_ms = -1, read_buffer = 0;
    const char *broker = "", *tls_cert = "", *tls_key = "";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--host") && i + 1 < argc)
            host = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--io-thread"))
            io_thread = 1;
        else if (!strcmp(argv[i], "--drop"))
            drop = 1;
        else if (!strcmp(argv[i], "--send-buffer") && i + 1 < argc)
            send_buffer = atol(argv[++i]);
        else if (!strcmp(argv[i], "--ping-ms") && i + 1 < argc)
            ping_ms = atol(argv[++i]);
        else if (!strcmp(argv[i], "--coalesce-window") && i + 1 < argc)
            coalesce_ms = atol(argv[++i]);
        else if (!strcmp(argv[i], "--read-buffer") && i + 1 < argc)
            read_buffer = atol(argv[++i]);
        else if (!strcmp(argv[i], "--broker") && i + 1 < argc)
            broker = argv[++i];
        else if (!strcmp(argv[i], "--tls-cert") && i + 1 < argc)
            tls_cert = argv[++i];
        else if (!strcmp(argv[i], "--tls-key") && i + 1 < argc)
            tls_key = argv[++i];
        else {
            fprintf(stderr,
                    "usage: %s [--host A] [--port N] [--io-thread] "
                    "[--send-buffer N] [--drop] [--ping-ms N] [--coalesce-window MS] "
                    "[--read-buffer BYTES] [--broker URL] [--tls-cert FILE --tls-key FILE]\n",
                    argv[0]);
            return 2;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    wsn_options *o = wsn_options_new();
    int rc = 0;
    rc |= wsn_options_set_string(o, WSN_OPT_HOST, host);
    rc |= wsn_options_set_int(o, WSN_OPT_PORT, port);
    rc |= wsn_options_set_string(o, WSN_OPT_PATH, "/ws");
    rc |= wsn_options_set_int(o, WSN_OPT_EVENTS_ON_IO_THREAD, io_thread);
    rc |= wsn_options_set_int(o, WSN_OPT_DROP_ON_BACKPRESSURE, drop);
    rc |= wsn_options_set_int(o, WSN_OPT_LOG_LEVEL, WSN_LOG_WARN);
    if (ping_ms > 0) { /* keepalive stress: ping every N ms, pong_wait 3 N */
        rc |= wsn_options_set_int(o, WSN_OPT_PONG_WAIT, 3 * ping_ms);
        rc |= wsn_options_set_int(o, WSN_OPT_PING_PERIOD, ping_ms);
    }
    if (coalesce_ms >= 0) { /* by name: the option is newer than some cores */
        wsn_option id;
        if (wsn_option_by_name("coalesce_window", &id, NULL) != WSN_OK) {
            fprintf(stderr, "wsn-chat-bench: this wsnotify has no coalesce_window\n");
            return 2;
        }
        rc |= wsn_options_set_int(o, id, coalesce_ms);
    }
    if (send_buffer > 0)
        rc |= wsn_options_set_int(o, WSN_OPT_SEND_BUFFER, send_buffer);
    if (broker[0]) { /* by name: the option is newer than some cores */
        wsn_option id;
        if (wsn_option_by_name("broker", &id, NULL) != WSN_OK) {
            fprintf(stderr, "wsn-chat-bench: this wsnotify has no broker\n");
            return 2;
        }
        rc |= wsn_options_set_string(o, id, broker);
    }
    { /* The publisher sends thousands of broadcasts a second: no inbound
       * rate limit (by name: the option is newer than some cores). */
        wsn_option id;
        if (wsn_option_by_name("client_rate", &id, NULL) == WSN_OK)
            rc |= wsn_options_set_int(o, id, 0);
    }
    if (tls_cert[0]) { /* by name: the options are newer than some cores */
        wsn_option cert, key;
        if (wsn_option_by_name("tls_cert", &cert, NULL) != WSN_OK ||
            wsn_option_by_name("tls_key", &key, NULL) != WSN_OK) {
            fprintf(stderr, "wsn-chat-bench: this wsnotify has no TLS\n");
            return 2;
        }
        rc |= wsn_options_set_string(o, cert, tls_cert);
        rc |= wsn_options_set_string(o, key, tls_key);
    }
    if (read_buffer > 0) { /* by name: the option is newer than some cores */
        wsn_option id;
        if (wsn_option_by_name("read_buffer", &id, NULL) != WSN_OK) {
            fprintf(stderr, "wsn-chat-bench: this wsnotify has no read_buffer\n");
            return 2;
        }
        rc |= wsn_options_set_int(o, id, read_buffer);
    }
    rc |= wsn_options_set_logger(o, on_log, NULL);
    if (rc) {
        fprintf(stderr, "wsn-chat-bench: bad option\n");
        return 2;
    }
    wsn_server *srv = NULL;
    char err[256];
    if ((rc = wsn_server_new(o, &srv, err, sizeof err)) != WSN_OK) {
        fprintf(stderr, "wsn-chat-bench: %s\n", err);
        return 1;
    }
    wsn_options_free(o);
    wsn_server_set_handler(srv, WSN_EVENT_MESSAGE, on_message, NULL);
    if ((rc = wsn_server_start(srv)) != WSN_OK) {
        wsn_server_last_error(srv, err, sizeof err);
        fprintf(stderr, "wsn-chat-bench: start: %s\n", err);
        wsn_server_free(srv);
        return 1;
    }
    fprintf(stderr, "wsn-chat-bench: listening on %s:%d (wsnotify %s%s)\n", host,
            wsn_server_port(srv), wsn_version_string(), io_thread ? ", handlers on the I/O thread" : "");
    while (!atomic_load(&stop)) {
        int w = wsn_server_wait(srv, 250);
        if (w == WSN_ECLOSED)
            break;
        if (w > 0 && wsn_server_dispatch(srv, 0) == WSN_ECLOSED)
            break;
    }
    wsn_server_shutdown(srv, 2000);
    wsn_server_free(srv);
    return 0;
}
