/*
 * wsnotify-soak-server: the server side of the soak test (run_soak.py).
 *
 *   wsnotify-soak-server [--port N] [--port-file PATH] [--drop]
 *       [--send-buffer N] [--write-wait MS] [--channels N]
 *       [--publishers N] [--rate MSGS_PER_SEC_PER_THREAD] [--pad BYTES]
 *       [--fat-channels F] [--fat-pad BYTES] [--fat-burst M]
 *       [--status-file PATH]
 *       [--opt NAME=INT]...
 *
 * Protocol (JSON envelopes). Handlers run on the I/O thread
 * (WSN_OPT_EVENTS_ON_IO_THREAD): a subscribe takes effect at once and its
 * ack never waits, even in block mode while a client is stalled (from a
 * host thread the ack would wait for room, and acks would pile up behind
 * every stall). A "stop" is handed to the main thread, which parks the
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
#define MAX_PAD (64 * 1024)

/* Lock-free atomics rather than volatile sig_atomic_t: the kernel may run
 * the handler on the engine's I/O thread while main reads them, which is a
 * data race for TSan (and for C11) unless they are atomic. */
static atomic_int stop_signal, trim_signal, stats_signal;
static void on_signal(int sig) { atomic_store(&stop_signal, sig); }
static void on_usr(int sig)
{
    if (sig == SIGUSR1)
        atomic_store(&trim_signal, 1);
    atomic_store(&stats_signal, 1);
}

static void heap_stats(void)
{
#if defined(__GLIBC__)
    int trimmed = atomic_load(&trim_signal);
    if (trimmed)
        malloc_trim(0);
    struct mallinfo2 mi = mallinfo2();
    fprintf(stderr, "heap: %zu bytes in use, %zu free in arenas, %zu in mmap%s\n", mi.uordblks,
            mi.fordblks, mi.hblkhd, trimmed ? " (after malloc_trim)" : "");
    /* WSN_SOAK_MALLOC_INFO=PATH appends malloc_info()'s XML (per arena:
     * free chunks by size, system bytes) to PATH, for RSS investigations. */
    const char *mi_path = getenv("WSN_SOAK_MALLOC_INFO");
    if (mi_path && *mi_path) {
        FILE *f = fopen(mi_path, "a");
        if (f) {
            fprintf(f, "<!-- %s -->\n", trimmed ? "after malloc_trim" : "no trim");
            malloc_info(0, f);
            fclose(f);
        }
    }
#else
    fprintf(stderr, "heap: unknown\n");
#endif
    atomic_store(&trim_signal, 0);
    atomic_store(&stats_signal, 0);
}

struct soak {
    wsn_server *srv;
    int channels, publishers;
    int pad; /* bytes of padding per message ("p"), to fill buffers sooner */
    /* fat_channels channels carry fat_pad bytes of padding instead, and
     * fat_burst publishes per turn: a few heavy channels that only the
     * soak's slow readers subscribe to (drop mode), so that a stalled
     * reader fills the kernel's buffers and then its queue within a
     * stall, without every client having to read megabytes. They are
     * ch0, chP, ch2P, ... (P publishers): all published by thread 0, so
     * the big frames are made in one thread's malloc arena (glibc keeps
     * up to M_TRIM_THRESHOLD, 128 KiB, of each thread arena's top after
     * a peak; malloc_trim does not release it; docs/conformance.md). */
    int fat_channels, fat_pad;
    int fat_burst; /* publishes per turn on a fat channel (1: like the rest) */
    double rate;
    atomic_int running;
    int publishers_started; /* main thread */
    pthread_mutex_t park_lock;
    pthread_cond_t park_cond; /* park_lock: parked, exiting, running's changes */
    int parked, exiting;      /* park_lock */
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
static char msgbufs[MAX_PUBLISHERS][48 + MAX_PAD + 8];

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

/* Publishes while S.running; false when a publish failed for good or was
 * not accepted before a stop. */
static int publish_turns(int t, int *kp)
{
    int64_t period = (int64_t)(1e9 / S.rate), next = now_ns();
    int k = *kp;
    /* Static, not malloc'ed: a freed mmap-sized block would move glibc's
     * mmap and trim thresholds and so change the RSS being measured. */
    char *msgbuf = msgbufs[t];
    while (atomic_load(&S.running)) {
        char ch[16];
        char *msg = msgbuf;
        int fat = k % S.publishers == 0 && k / S.publishers < S.fat_channels;
        int pad = fat ? S.fat_pad : S.pad;
        for (int rep = 0; rep < (fat ? S.fat_burst : 1) && atomic_load(&S.running); rep++) {
            long long n = atomic_load(&S.started[k]) + 1;
            atomic_store(&S.started[k], n);
            snprintf(ch, sizeof ch, "ch%d", k);
            int ml = snprintf(msg, 48, "{\"s\":%lld", n);
            if (pad) {
                memcpy(msg + ml, ",\"p\":\"", 6);
                memset(msg + ml + 6, 'p', (size_t)pad);
                ml += 6 + pad;
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
                *kp = k;
                return 0;
            }
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
    *kp = k;
    return 1;
}

/* A publisher thread lives as long as the server: between a "stop" and
 * the next "start" it is parked. (Threads that exit at every stop leave
 * their malloc arenas behind for the next threads in another order, so
 * the big frames of the fat channels would end up in every arena.) */
static void *publisher_main(void *arg)
{
    int t = *(int *)arg;
    int k = t;
    for (;;) {
        pthread_mutex_lock(&S.park_lock);
        S.parked++;
        pthread_cond_broadcast(&S.park_cond);
        while (!atomic_load(&S.running) && !S.exiting)
            pthread_cond_wait(&S.park_cond, &S.park_lock);
        S.parked--;
        int exiting = S.exiting;
        pthread_mutex_unlock(&S.park_lock);
        if (exiting)
            return NULL;
        if (!publish_turns(t, &k)) {
            /* failed or stopped mid-publish: wait for the stop to land */
            while (atomic_load(&S.running) && !S.exiting) {
                struct timespec ts = {0, 10 * 1000000L};
                nanosleep(&ts, NULL);
            }
        }
    }
}

/* Starts the publisher threads (again after a "stop": numbering goes on). */
static void start_publishers(void)
{
    if (atomic_load(&S.running))
        return;
    pthread_mutex_lock(&S.park_lock);
    atomic_store(&S.running, 1);
    pthread_cond_broadcast(&S.park_cond);
    pthread_mutex_unlock(&S.park_lock);
    if (S.publishers_started)
        return;
    S.publishers_started = 1;
    for (int t = 0; t < S.publishers; t++) {
        S.ids[t] = t;
        if (pthread_create(&S.threads[t], NULL, publisher_main, &S.ids[t])) {
            fprintf(stderr, "soak-server: pthread_create failed\n");
            exit(1);
        }
    }
}

/* Returns once every publisher is parked: no publish is in progress. */
static void stop_publishers(void)
{
    if (!atomic_exchange(&S.running, 0) || !S.publishers_started)
        return;
    pthread_mutex_lock(&S.park_lock);
    pthread_cond_broadcast(&S.park_cond);
    while (S.parked < S.publishers)
        pthread_cond_wait(&S.park_cond, &S.park_lock);
    pthread_mutex_unlock(&S.park_lock);
}

static void end_publishers(void)
{
    stop_publishers();
    if (!S.publishers_started)
        return;
    pthread_mutex_lock(&S.park_lock);
    S.exiting = 1;
    pthread_cond_broadcast(&S.park_cond);
    pthread_mutex_unlock(&S.park_lock);
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

/* Connected clients, kept by the I/O thread's connect and disconnect
 * handlers; the main thread writes it to --status-file, so that run_soak.py
 * reads the idle RSS only once the server itself has no client left. */
static atomic_int clients_now;
static void on_connect(void *user, wsn_server *srv, const wsn_event *ev)
{
    (void)user;
    (void)srv;
    (void)ev;
    atomic_fetch_add(&clients_now, 1);
}
static void on_disconnect(void *user, wsn_server *srv, const wsn_event *ev)
{
    (void)user;
    (void)srv;
    (void)ev;
    atomic_fetch_sub(&clients_now, 1);
}

static int write_file(const char *path, const char *text)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int bad = fputs(text, f) < 0;
    bad |= fclose(f) != 0;
    return bad || rename(tmp, path) ? -1 : 0;
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
        /* Publisher threads are started and stopped on the main thread
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
    const char *port_file = NULL, *status_file = NULL;
    int autostart = 0;
    wsn_options *o = wsn_options_new();
    S.channels = 64;
    S.publishers = 4;
    S.rate = 100;
    S.fat_burst = 1;
    wsn_options_set_string(o, WSN_OPT_HOST, "127.0.0.1");
    wsn_options_set_int(o, WSN_OPT_PORT, 0);
    wsn_options_set_int(o, WSN_OPT_WRITE_WAIT, 2000);
    wsn_options_set_int(o, WSN_OPT_EVENTS_ON_IO_THREAD, 1);
    pthread_mutex_init(&S.stop_lock, NULL);
    pthread_mutex_init(&S.park_lock, NULL);
    pthread_cond_init(&S.park_cond, NULL);
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
        else if (!strcmp(a, "--status-file"))
            status_file = v;
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
        else if (!strcmp(a, "--fat-channels"))
            S.fat_channels = atoi(v);
        else if (!strcmp(a, "--fat-pad"))
            S.fat_pad = atoi(v);
        else if (!strcmp(a, "--fat-burst"))
            S.fat_burst = atoi(v);
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
        S.pad < 0 || S.pad > MAX_PAD || S.fat_pad < 0 || S.fat_pad > MAX_PAD ||
        S.fat_channels < 0 || S.fat_channels * S.publishers > S.channels || S.fat_burst < 1 ||
        S.fat_burst > 1000) {
        fprintf(stderr, "soak-server: bad --channels/--publishers/--rate/--pad/--fat-*\n");
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
    wsn_server_set_handler(S.srv, WSN_EVENT_CONNECT, on_connect, NULL);
    wsn_server_set_handler(S.srv, WSN_EVENT_DISCONNECT, on_disconnect, NULL);
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
        char text[32];
        snprintf(text, sizeof text, "%d\n", port);
        if (write_file(port_file, text))
            return 1;
    }
    int clients_written = -1;
    if (autostart)
        start_publishers();
    while (!atomic_load(&stop_signal)) {
        if (atomic_load(&stats_signal))
            heap_stats();
        answer_start();
        answer_stop();
        int n = atomic_load(&clients_now);
        if (status_file && n != clients_written) {
            char text[32];
            snprintf(text, sizeof text, "clients %d\n", n);
            if (!write_file(status_file, text))
                clients_written = n;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    end_publishers();
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
