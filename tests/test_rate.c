/* The per-client inbound message rate (client_rate, client_burst): a
 * client over it is closed with 1008 "message rate exceeded"; what it sent
 * within its bucket reaches the handler, in order, and nothing after.
 * Links the static library to read the server's counters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/objects.h"
#include "testutil.h"

static wsn_server *rate_server(int64_t rate, int64_t burst)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    tu_set_int(o, WSN_OPT_CLIENT_RATE, rate);
    tu_set_int(o, WSN_OPT_CLIENT_BURST, burst);
    /* The whole flood may wait for the host (client_event_queue would
     * pause reading at 64): the limit, not the host, decides when. */
    tu_set_int(o, WSN_OPT_CLIENT_EVENT_QUEUE, 100000);
    srv = tu_server(o);
    wsn_options_free(o);
    return srv;
}

static uint64_t closed_for_rate(wsn_server *srv)
{
    return wsni_counter_read(&srv->counters.closed[WSNI_CLOSED_RATE]);
}

/* c's peer leaves; then the server stops. */
static void finish(wsn_server *srv, wsn_client *c, wsc *w)
{
    wsc_free(w);
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void send_numbered(wsc *w, int from, int to)
{
    for (int i = from; i < to; i++) {
        char msg[64];
        snprintf(msg, sizeof msg, "{\"type\":\"json\",\"message\":%d}", i);
        /* the server may have closed already: the rest is not sent */
        if (wsc_send_text(w, msg) != WSC_OK)
            return;
    }
}

/* The MESSAGE events of c up to its DISCONNECT: their payloads must be 0,
 * 1, 2, ... in order; returns how many. */
static int messages_until_disconnect(wsn_server *srv, wsn_client *c)
{
    int n = 0;
    for (;;) {
        wsn_event *ev = tu_event(srv, TU_TIMEOUT);
        int kind = wsn_event_kind(ev);
        CHECK_STR(wsn_event_client_id(ev), wsn_client_id(c));
        if (kind == WSN_EVENT_DISCONNECT) {
            wsn_event_free(ev);
            return n;
        }
        CHECK_EQ(kind, WSN_EVENT_MESSAGE);
        char want[16];
        snprintf(want, sizeof want, "%d", n);
        CHECK_STR((const char *)wsn_event_payload(ev, NULL), want);
        wsn_event_free(ev);
        n++;
    }
}

/* A flood of count messages against (rate, burst): closed with 1008 and
 * the reason, exactly burst messages delivered plus what the bucket
 * refilled while the flood was read (rate x its duration), in order. */
static void flood_case(int64_t rate, int64_t burst, int count)
{
    wsn_server *srv = rate_server(rate, burst);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    int64_t t0 = tu_now_ms();
    send_numbered(w, 0, count);
    /* (the client answers the close: the server ends the connection then) */
    tu_expect_close(w, 1008, "message rate exceeded");
    int64_t elapsed_ms = tu_now_ms() - t0;
    int got = messages_until_disconnect(srv, c);
    int64_t refill = rate * (elapsed_ms + 1) / 1000;
    tu_note("rate %lld burst %lld: %d of %d delivered in %lld ms", (long long)rate,
            (long long)burst, got, count, (long long)elapsed_ms);
    CHECK_MSG(got >= burst && got <= burst + refill,
              "%d messages reached the handler, want %lld (+ at most %lld refilled)", got,
              (long long)burst, (long long)refill);
    CHECK_EQ(closed_for_rate(srv), 1);
    CHECK_EQ(wsn_client_is_connected(c), 0);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_flood_closed_1008(void) { flood_case(1, 5, 40); }

/* The defaults a public server gets: 100/s, a burst of 200. */
static void test_defaults_bound_a_flood(void)
{
    wsn_options *o = wsn_options_new();
    int64_t rate, burst;
    CHECK_OK(wsn_options_get_int(o, WSN_OPT_CLIENT_RATE, &rate));
    CHECK_OK(wsn_options_get_int(o, WSN_OPT_CLIENT_BURST, &burst));
    CHECK_EQ(rate, 100);
    CHECK_EQ(burst, 200);
    wsn_options_free(o);
    flood_case(rate, burst, 2000);
}

/* A client that keeps within its rate is never closed: 50 messages at 25
 * a second against 50/s (a burst of 25 absorbs the scheduling of both
 * ends). The pacing simulates the client; nothing waits on the server. */
static void test_within_rate_never_closed(void)
{
    wsn_server *srv = rate_server(50, 25);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    int64_t start = tu_now_ms();
    for (int i = 0; i < 50; i++) {
        int64_t due = start + i * 40;
        while (tu_now_ms() < due)
            tu_sleep_ms((int)(due - tu_now_ms()));
        send_numbered(w, i, i + 1);
    }
    for (int i = 0; i < 50; i++) {
        wsn_event *ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
        char want[16];
        snprintf(want, sizeof want, "%d", i);
        CHECK_STR((const char *)wsn_event_payload(ev, NULL), want);
        wsn_event_free(ev);
    }
    CHECK_EQ(wsn_client_is_connected(c), 1);
    /* and it is still served */
    CHECK_OK(wsn_server_subscribe(srv, c, "c"));
    CHECK_OK(wsn_server_publish(srv, "c", "1"));
    tu_expect_envelope(w, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\",\"message\":1}");
    CHECK_EQ(closed_for_rate(srv), 0);
    finish(srv, c, w);
}

static void test_rate_zero_disables(void)
{
    wsn_server *srv = rate_server(0, 1);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    send_numbered(w, 0, 3000);
    for (int i = 0; i < 3000; i++) {
        wsn_event *ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
        wsn_event_free(ev);
    }
    CHECK_EQ(wsn_client_is_connected(c), 1);
    CHECK_EQ(closed_for_rate(srv), 0);
    finish(srv, c, w);
}

/* Messages count, not frames: two messages of ten fragments each fit a
 * burst of two; the third message is one too many. */
static void test_fragments_count_once(void)
{
    wsn_server *srv = rate_server(1, 2);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    static const char msg[] = "{\"type\":\"json\",\"message\":\"0123456789abcdefghij\"}";
    for (int i = 0; i < 2; i++) {
        CHECK_WSC(wsc_send_fragmented(w, WSC_OP_TEXT, msg, sizeof msg - 1, 5));
        wsn_event *ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
        CHECK_STR((const char *)wsn_event_payload(ev, NULL), "\"0123456789abcdefghij\"");
        wsn_event_free(ev);
    }
    CHECK_EQ(wsn_client_is_connected(c), 1);
    (void)wsc_send_fragmented(w, WSC_OP_TEXT, msg, sizeof msg - 1, 5);
    tu_expect_close(w, 1008, "message rate exceeded");
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char first_line[256];
static int rate_lines;

static void rate_logger(void *user, wsn_log_level level, const char *msg)
{
    (void)user;
    if (level != WSN_LOG_WARN || !strstr(msg, "over client_rate"))
        return;
    pthread_mutex_lock(&log_mu);
    if (!rate_lines++)
        snprintf(first_line, sizeof first_line, "%s", msg);
    pthread_mutex_unlock(&log_mu);
}

/* Every close is counted; the log says so at once for the first, then at
 * most once a second with a count (a flood of clients is one line a
 * second, not one per client). */
static void test_counted_and_logged(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    tu_set_int(o, WSN_OPT_CLIENT_RATE, 1);
    tu_set_int(o, WSN_OPT_CLIENT_BURST, 1);
    CHECK_OK(wsn_options_set_logger(o, rate_logger, NULL));
    srv = tu_server(o);
    wsn_options_free(o);
    wsc *w[3];
    wsn_client *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = tu_accept(srv, &w[i]);
    for (int i = 0; i < 3; i++) {
        send_numbered(w[i], 0, 5);
        tu_expect_close(w[i], 1008, "message rate exceeded");
    }
    char first_id[32];
    snprintf(first_id, sizeof first_id, "%s", wsn_client_id(c[0]));
    for (int i = 0; i < 3; i++) {
        tu_expect_disconnect_of(srv, wsn_client_id(c[i]), TU_TIMEOUT);
        wsc_free(w[i]);
        wsn_client_release(c[i]);
    }
    CHECK_EQ(closed_for_rate(srv), 3);
    pthread_mutex_lock(&log_mu);
    char *want = tu_strdupf("client %s: over client_rate (1/s, burst 1): closed with 1008 (1 "
                            "such clients since the last line)",
                            first_id);
    CHECK_STR(first_line, want);
    CHECK_MSG(rate_lines >= 1 && rate_lines <= 3, "%d log lines for 3 closes", rate_lines);
    pthread_mutex_unlock(&log_mu);
    free(want);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static const tu_test tests[] = {
    {"flood_closed_1008", test_flood_closed_1008},
    {"defaults_bound_a_flood", test_defaults_bound_a_flood},
    {"within_rate_never_closed", test_within_rate_never_closed},
    {"rate_zero_disables", test_rate_zero_disables},
    {"fragments_count_once", test_fragments_count_once},
    {"counted_and_logged", test_counted_and_logged},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
