/*
 * wsnotify-echo-server: a test server for conformance runs (Autobahn
 * fuzzingclient, the replay tests, hostile-input probes). It is not an
 * example: the chat example's behaviour is untouched.
 *
 *   wsnotify-echo-server [--echo] [--host ADDR] [--port N] [--compression]
 *                        [--read-limit BYTES] [--send-buffer N]
 *                        [--max-clients N] [--drop] [--write-wait MS]
 *                        [--log-level 0..4] [--port-file PATH]
 *
 * --echo       raw echo: every text or binary message a client sends comes
 *              back to that client as the same frame type with the same
 *              bytes and no envelope (WSN_OPT_RAW_INCOMING +
 *              wsn_server_send_raw). This is what Autobahn|Testsuite's
 *              fuzzingclient needs. The read limit defaults to 64 MiB here
 *              (Autobahn section 9 sends 16 MiB messages).
 * (no --echo)  envelope echo: a client's envelope comes back to it through
 *              wsn_server_publish_to_client with the same channel, type
 *              and payload, reply_to_id set to the request's message_id.
 *
 * The bound port is printed on stdout as "PORT <n>" once listening (and
 * written to --port-file when given), so scripts can use --port 0.
 * SIGINT/SIGTERM: graceful shutdown (clients get 1001), exit status 0.
 * Handlers run on the main thread (queued events), so a slow client makes
 * the echo wait (block mode) instead of losing messages.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsnotify.h"

/* Atomic: the handler may run on the engine's I/O thread (see the chat
 * example). */
static atomic_int stop_signal;

static void on_signal(int sig) { atomic_store(&stop_signal, sig); }

struct echo {
    int raw;
    unsigned long long messages, errors;
};

static void log_stderr(void *user, wsn_log_level level, const char *msg)
{
    (void)user;
    static const char *names[] = {"none", "error", "warn", "info", "debug"};
    fprintf(stderr, "echo-server [%s] %s\n", names[level <= 4 ? level : 0], msg);
}

static void on_message(void *user, wsn_server *srv, const wsn_event *ev)
{
    struct echo *e = user;
    wsn_client *c = wsn_event_client(ev);
    size_t len = 0;
    const void *data = wsn_event_payload(ev, &len);
    wsn_message_type type = wsn_event_message_type(ev);
    int rc;
    if (e->raw) {
        rc = wsn_server_send_raw(srv, c, type, data, len);
    } else {
        rc = wsn_server_publish_to_client(srv, c, wsn_event_channel(ev), type, data, len, NULL,
                                          wsn_event_message_id(ev));
    }
    e->messages++;
    /* A client that left before its echo was sent is not an error. */
    if (rc && rc != WSN_EGONE) {
        e->errors++;
        fprintf(stderr, "echo-server: echo to %s failed: %s\n", wsn_client_id(c),
                wsn_strerror(rc));
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: wsnotify-echo-server [--echo] [--host ADDR] [--port N] [--compression]\n"
            "         [--read-limit BYTES] [--send-buffer N] [--max-clients N] [--drop]\n"
            "         [--write-wait MS] [--log-level 0..4] [--port-file PATH]\n");
}

static int set_int(wsn_options *o, wsn_option id, const char *text)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || end == text) {
        fprintf(stderr, "echo-server: not a number: %s\n", text);
        return -1;
    }
    int rc = wsn_options_set_int(o, id, v);
    if (rc) {
        fprintf(stderr, "echo-server: %s = %s: %s\n", wsn_option_name(id), text,
                wsn_strerror(rc));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct echo e = {0};
    const char *port_file = NULL;
    int read_limit_set = 0;
    wsn_options *o = wsn_options_new();
    if (!o)
        return 2;
    wsn_options_set_string(o, WSN_OPT_HOST, "127.0.0.1");
    wsn_options_set_int(o, WSN_OPT_PORT, 9001);
    wsn_options_set_int(o, WSN_OPT_LOG_LEVEL, WSN_LOG_WARN);
    /* Autobahn sends thousands of messages as fast as it can (cases 1, 9):
     * a conformance peer, not a client the rate limit is for. */
    wsn_options_set_int(o, WSN_OPT_CLIENT_RATE, 0);
    wsn_options_set_logger(o, log_stderr, NULL);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--echo")) {
            e.raw = 1;
        } else if (!strcmp(a, "--compression")) {
            wsn_options_set_int(o, WSN_OPT_COMPRESSION, 1);
        } else if (!strcmp(a, "--drop")) {
            wsn_options_set_int(o, WSN_OPT_DROP_ON_BACKPRESSURE, 1);
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            wsn_options_free(o);
            return 0;
        } else if (!v) {
            bad = 1;
        } else if (!strcmp(a, "--host")) {
            bad = wsn_options_set_string(o, WSN_OPT_HOST, v) != 0;
            i++;
        } else if (!strcmp(a, "--port-file")) {
            port_file = v;
            i++;
        } else {
            static const struct {
                const char *flag;
                wsn_option id;
            } ints[] = {
                {"--port", WSN_OPT_PORT},           {"--read-limit", WSN_OPT_READ_LIMIT},
                {"--send-buffer", WSN_OPT_SEND_BUFFER}, {"--max-clients", WSN_OPT_MAX_CLIENTS},
                {"--write-wait", WSN_OPT_WRITE_WAIT}, {"--log-level", WSN_OPT_LOG_LEVEL},
            };
            size_t k;
            for (k = 0; k < sizeof(ints) / sizeof(ints[0]); k++)
                if (!strcmp(a, ints[k].flag))
                    break;
            if (k == sizeof(ints) / sizeof(ints[0]) || set_int(o, ints[k].id, v)) {
                bad = 1;
            } else {
                if (ints[k].id == WSN_OPT_READ_LIMIT)
                    read_limit_set = 1;
                i++;
            }
        }
        if (bad) {
            fprintf(stderr, "echo-server: bad argument: %s\n", a);
            usage();
            wsn_options_free(o);
            return 2;
        }
    }
    if (e.raw) {
        wsn_options_set_int(o, WSN_OPT_RAW_INCOMING, 1);
        if (!read_limit_set)
            wsn_options_set_int(o, WSN_OPT_READ_LIMIT, 64LL << 20);
    }

    wsn_server *srv = NULL;
    char err[256] = "";
    int rc = wsn_server_new(o, &srv, err, sizeof(err));
    wsn_options_free(o);
    if (rc) {
        fprintf(stderr, "echo-server: %s: %s\n", wsn_strerror(rc), err);
        return 1;
    }
    wsn_server_set_handler(srv, WSN_EVENT_MESSAGE, on_message, &e);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if ((rc = wsn_server_start(srv))) {
        wsn_server_last_error(srv, err, sizeof(err));
        fprintf(stderr, "echo-server: start: %s: %s\n", wsn_strerror(rc), err);
        wsn_server_free(srv);
        return 1;
    }
    int port = wsn_server_port(srv);
    printf("PORT %d\n", port);
    fflush(stdout);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) || rename(tmp, port_file)) {
            fprintf(stderr, "echo-server: cannot write %s\n", port_file);
            wsn_server_free(srv);
            return 1;
        }
    }
    while (!atomic_load(&stop_signal)) {
        rc = wsn_server_wait(srv, 250);
        if (rc < 0)
            break;
        if (rc > 0 && wsn_server_dispatch(srv, 0) < 0)
            break;
    }
    rc = wsn_server_shutdown(srv, 5000);
    /* Take what is left (disconnects, STOPPED) so every handle is freed. */
    while (wsn_server_dispatch(srv, 0) > 0) {
    }
    wsn_server_free(srv);
    fprintf(stderr, "echo-server: stopped (%llu messages echoed, %llu errors, shutdown %s)\n",
            e.messages, e.errors, wsn_err_name(rc));
    return 0;
}
