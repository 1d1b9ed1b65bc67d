/*
 * wsnotify-soak-server: the server side of the soak test (run_soak.py).
 *
 *   wsnotify-soak-server [--port N] [--port-file PATH] [--drop]
 *       [--send-buffer N] [--write-wait MS] [--channels N]
 *       [--publishers N] [--rate MSGS_PER_SEC_PER_THREAD] [--pad BYTES]
 *       [--opt NAME=INT]...
 *
 * Protocol (JSON envelopes). Handlers run on the I/O thread
 * (WSN_OPT_EVENTS_ON_IO_THREAD): a subscribe takes effect at once and its
 * ack never waits, even in block mode while a client is stalled (from a
 * host thread the ack would wait for room, and acks would pile up behind
 * every stall). A "stop" is handed to the main thread, which joins the
 * publishers and answers.
 *   client -> {"channel":"sub","message":"ch17"}
 *       subscribes the sender to ch17, then answers it on channel "ack"
 *       with {"ch":17,"s":S}: S is the sequence number of the last publish
 *       on ch17 that may have been made before the subscription took
 *       effect. Every later one (S+1, S+2, ...) must reach the client.
 *   client -> {"channel":"ctl","message":"start"}   publishers start
 *       (again, after a stop; the numbers go on where they stopped)
 *   client -> {"channel":"ctl","message":"stop"}    publishers stop; the
 *       sender gets {"final":[N0,N1,...],"timeouts":T} on channel "ctl":
 *       Nk is the last sequence number published on channel k.
 * Publisher thread t publishes {"s":n} on every channel k with
 * k % publishers == t, in turn, n counting up per channel; one thread per
 * channel keeps each channel's order equal to its numbering. A publish
 * that is not accepted (WSN_ETIMEDOUT in block mode) is retried with the
 * same number, so the numbers on the wire have no holes.
 *
 * --autostart starts the publishers at once (no "start" needed), so an
 * RSS baseline can be taken with the server in its idle running state.
 *
 * SIGUSR1: malloc_trim(0) (glibc), then one "heap:" line on stderr;
 * SIGUSR2: only the "heap:" line (bytes in use per mallinfo2, RSS is read
 * by the caller from /proc). SIGTERM/SIGINT: publishers stop, graceful
 * shutdown, exit 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wsnotify.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#define MAX_CHANNELS 1024
#define MAX_PUBLISHERS 64

static volatile sig_atomic_t stop_signal, trim_signal, stats_signal;
static void on_signal(int sig) { stop_signal = sig; }
static void on_usr(int sig)
{
    if (sig == SIGUSR1)
        trim_signal = 1;
    stats_signal = 1;
}

static void heap_stats(void)
{
#if defined(__GLIBC__)
    if (trim_signal)
        malloc_trim(0);
    struct mallinfo2 mi = mallinfo2();
    fprintf(stderr, "heap: %zu bytes in use, %zu free in arenas, %zu in mmap%s\n", mi.uordblks,
            mi.fordblks, mi.hblkhd, trim_signal ? " (after malloc_trim)" : "");
#else
    fprintf(stderr, "heap: unknown\n");
#endif
    trim_signal = stats_signal = 0;
}

struct soak {
    wsn_server *srv;
    int channels, publishers;
    int pad; /* bytes of padding per message ("p"), to fill buffers sooner */
    double rate;
    atomic_int running;
    int publishers_started;
    pthread_t threads[MAX_PUBLISHERS];
    int ids[MAX_PUBLISHERS];
    /* started[k]: the number of the publish on channel k in progress or
     * last done; written only by k's publisher thread. */
    atomic_llong started[MAX_CHANNELS];
    atomic_llong timeouts, errors;
    unsigned long long subscribes; /* I/O thread */
    atomic_ullong acks_failed;
    pthread_mutex_t stop_lock;
    wsn_client *stop_from;  /* stop_lock: a "stop" to answer (retained) */
    wsn_client *start_from; /* stop_lock: a "start" to answer (retained) */
};

static struct soak S;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_until(int64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000LL), (long)(t % 1000000000LL)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void *publisher_main(void *arg)
{
    int t = *(int *)arg;
    int64_t period = (int64_t)(1e9 / S.rate), next = now_ns();
    int k = t;
    while (atomic_load(&S.running)) {
        char ch[16], msg[48 + 8192];
        long long n = atomic_load(&S.started[k]) + 1;
        atomic_store(&S.started[k], n);
        snprintf(ch, sizeof ch, "ch%d", k);
        int ml = snprintf(msg, 48, "{\"s\":%lld", n);
        if (S.pad) {
            memcpy(msg + ml, ",\"p\":\"", 6);
            memset(msg + ml + 6, 'p', (size_t)S.pad);
            ml += 6 + S.pad;
            msg[ml++] = '"';
        }
        msg[ml++] = '}';
        msg[ml] = 0;
        for (;;) {
            int rc = wsn_server_publish(S.srv, ch, msg);
            if (rc == WSN_OK)
                break;
            if (rc == WSN_ETIMEDOUT) {
                atomic_fetch_add(&S.timeouts, 1);
                if (atomic_load(&S.running))
                    continue; /* same number again: no holes */
            } else {
                atomic_fetch_add(&S.errors, 1);
                fprintf(stderr, "soak-server: publish %s #%lld: %s\n", ch, n, wsn_err_name(rc));
            }
            /* Stopped while not accepted: the number was never sent. */
            atomic_store(&S.started[k], n - 1);
            return NULL;
        }
        k += S.publishers;
        if (k >= S.channels)
            k = t;
        next += period;
        int64_t now = now_ns();
        if (next > now)
            sleep_until(next);
        else if (now - next > 1000000000LL)
            next = now; /* fell behind (block mode waited): do not burst */
    }
    return NULL;
}

/* Starts the publisher threads (again after a "stop": numbering goes on). */
static void start_publishers(void)
{
    if (atomic_load(&S.running))
        return;
    S.publishers_started = 1;
    atomic_store(&S.running, 1);
    for (int t = 0; t < S.publishers; t++) {
        S.ids[t] = t;
        if (pthread_create(&S.threads[t], NULL, publisher_main, &S.ids[t])) {
            fprintf(stderr, "soak-server: pthread_create failed\n");
            exit(1);
        }
    }
}

static void stop_publishers(void)
{
    if (!atomic_exchange(&S.running, 0))
        return;
    for (int t = 0; t < S.publishers; t++)
        pthread_join(S.threads[t], NULL);
}

static void reply(wsn_client *c, const char *channel, const char *json)
{
    int rc = wsn_server_publish_to_client(S.srv, c, channel, WSN_TYPE_JSON, json, strlen(json),
                                          NULL, NULL);
    if (rc && rc != WSN_EGONE) {
        atomic_fetch_add(&S.acks_failed, 1);
        fprintf(stderr, "soak-server: reply on %s to %s: %s\n", channel, wsn_client_id(c),
                wsn_err_name(rc));
    }
}

static void on_message(void *user, wsn_server *srv, const wsn_event *ev)
{
    (void)user;
    (void)srv;
    wsn_client *c = wsn_event_client(ev);
    const char *channel = wsn_event_channel(ev);
    size_t len;
    const char *payload = wsn_event_payload(ev, &len);
    json_t *v = json_loadb(payload, len, JSON_DECODE_ANY, NULL);
    const char *text = json_is_string(v) ? json_string_value(v) : "";
    if (!strcmp(channel, "sub")) {
        int k = -1;
        if (sscanf(text, "ch%d", &k) == 1 && k >= 0 && k < S.channels) {
            int rc = wsn_server_subscribe(S.srv, c, text);
            if (rc == WSN_OK) {
                /* On the I/O thread the subscription is in effect now:
                 * every publish numbered above this one started after it. */
                long long s = atomic_load(&S.started[k]);
                char ack[64];
                snprintf(ack, sizeof ack, "{\"ch\":%d,\"s\":%lld}", k, s);
                S.subscribes++;
                reply(c, "ack", ack);
            } else if (rc != WSN_EGONE) {
                fprintf(stderr, "soak-server: subscribe %s: %s\n", text, wsn_err_name(rc));
            }
        }
    } else if (!strcmp(channel, "ctl")) {
        /* Publisher threads are started and joined on the main thread
         * only: joining here could wait for room that only this thread
         * makes. */
        pthread_mutex_lock(&S.stop_lock);
        wsn_client **slot = !strcmp(text, "start") ? &S.start_from
                            : !strcmp(text, "stop") ? &S.stop_from
                                                    : NULL;
        if (slot && !*slot)
            *slot = wsn_client_retain(c);
        pthread_mutex_unlock(&S.stop_lock);
    }
    json_decref(v);
}

/* Main thread: starts the publishers and says so. */
static void answer_start(void)
{
    pthread_mutex_lock(&S.stop_lock);
    wsn_client *c = S.start_from;
    S.start_from = NULL;
    pthread_mutex_unlock(&S.stop_lock);
    if (!c)
        return;
    start_publishers();
    reply(c, "ctl", "\"started\"");
    wsn_client_release(c);
}

/* Main thread: stops the publishers and sends the final numbers. */
static void answer_stop(void)
{
    pthread_mutex_lock(&S.stop_lock);
    wsn_client *c = S.stop_from;
    S.stop_from = NULL;
    pthread_mutex_unlock(&S.stop_lock);
    if (!c)
        return;
    stop_publishers();
    json_t *final = json_array();
    for (int k = 0; k < S.channels; k++)
        json_array_append_new(final, json_integer(atomic_load(&S.started[k])));
    long long timeouts = atomic_load(&S.timeouts);
    long long errors = atomic_load(&S.errors);
    json_t *o = json_pack("{s:o,s:I,s:I}", "final", final, "timeouts", (json_int_t)timeouts,
                          "errors", (json_int_t)errors);
    char *s = json_dumps(o, JSON_COMPACT);
    int rc = wsn_server_publish_to_client(S.srv, c, "ctl", WSN_TYPE_JSON, s, strlen(s), NULL,
                                          NULL);
    if (rc)
        fprintf(stderr, "soak-server: final counts not sent: %s\n", wsn_err_name(rc));
    free(s);
    json_decref(o);
    wsn_client_release(c);
}

int main(int argc, char **argv)
{
    const char *port_file = NULL;
    int autostart = 0;
    wsn_options *o = wsn_options_new();
    S.channels = 64;
    S.publishers = 4;
    S.rate = 100;
    wsn_options_set_string(o, WSN_OPT_HOST, "127.0.0.1");
    wsn_options_set_int(o, WSN_OPT_PORT, 0);
    wsn_options_set_int(o, WSN_OPT_WRITE_WAIT, 2000);
    wsn_options_set_int(o, WSN_OPT_EVENTS_ON_IO_THREAD, 1);
    pthread_mutex_init(&S.stop_lock, NULL);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(a, "--drop")) {
            rc = wsn_options_set_int(o, WSN_OPT_DROP_ON_BACKPRESSURE, 1);
            continue;
        }
        if (!strcmp(a, "--autostart")) {
            autostart = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "soak-server: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--port"))
            rc = wsn_options_set_int(o, WSN_OPT_PORT, atoll(v));
        else if (!strcmp(a, "--port-file"))
            port_file = v;
        else if (!strcmp(a, "--send-buffer"))
            rc = wsn_options_set_int(o, WSN_OPT_SEND_BUFFER, atoll(v));
        else if (!strcmp(a, "--write-wait"))
            rc = wsn_options_set_int(o, WSN_OPT_WRITE_WAIT, atoll(v));
        else if (!strcmp(a, "--channels"))
            S.channels = atoi(v);
        else if (!strcmp(a, "--publishers"))
            S.publishers = atoi(v);
        else if (!strcmp(a, "--rate"))
            S.rate = atof(v);
        else if (!strcmp(a, "--pad"))
            S.pad = atoi(v);
        else if (!strcmp(a, "--opt")) { /* --opt name=integer, any int/bool/ms option */
            char name[64];
            long long val;
            wsn_option id;
            if (sscanf(v, "%63[^=]=%lld", name, &val) != 2 || wsn_option_by_name(name, &id, NULL))
                rc = -1;
            else
                rc = wsn_options_set_int(o, id, val);
        }
        else
            rc = -1;
        if (rc) {
            fprintf(stderr, "soak-server: bad argument %s %s\n", a, v);
            return 2;
        }
    }
    if (S.channels < 1 || S.channels > MAX_CHANNELS || S.publishers < 1 ||
        S.publishers > MAX_PUBLISHERS || S.publishers > S.channels || !(S.rate > 0) ||
        S.pad < 0 || S.pad > 8192) {
        fprintf(stderr, "soak-server: bad --channels/--publishers/--rate\n");
        return 2;
    }
    char err[256] = "";
    int rc = wsn_server_new(o, &S.srv, err, sizeof err);
    wsn_options_free(o);
    if (rc) {
        fprintf(stderr, "soak-server: %s\n", err);
        return 1;
    }
    wsn_server_set_handler(S.srv, WSN_EVENT_MESSAGE, on_message, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_usr;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    if ((rc = wsn_server_start(S.srv))) {
        fprintf(stderr, "soak-server: start: %s\n", wsn_err_name(rc));
        return 1;
    }
    int port = wsn_server_port(S.srv);
    printf("PORT %d\n", port);
    fflush(stdout);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) || rename(tmp, port_file))
            return 1;
    }
    if (autostart)
        start_publishers();
    while (!stop_signal) {
        if (stats_signal)
            heap_stats();
        answer_start();
        answer_stop();
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    stop_publishers();
    rc = wsn_server_shutdown(S.srv, 5000);
    pthread_mutex_lock(&S.stop_lock);
    wsn_client_release(S.stop_from);
    wsn_client_release(S.start_from);
    S.stop_from = S.start_from = NULL;
    pthread_mutex_unlock(&S.stop_lock);
    while (wsn_server_dispatch(S.srv, 0) > 0) {
    }
    wsn_server_free(S.srv);
    long long total = 0;
    for (int k = 0; k < S.channels; k++)
        total += atomic_load(&S.started[k]);
    long long timeouts = atomic_load(&S.timeouts);
    long long errors = atomic_load(&S.errors);
    fprintf(stderr,
            "soak-server: stopped: %lld published, %lld publish timeouts (retried), %lld errors, "
            "%llu subscribes, %llu failed replies, shutdown %s\n",
            total, timeouts, errors, S.subscribes, (unsigned long long)atomic_load(&S.acks_failed),
            wsn_err_name(rc));
    return errors ? 3 : 0;
}
