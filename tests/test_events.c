/* Events: connect/message/disconnect/stopped, queued and I/O-thread modes,
 * incoming envelopes, the error reply, ordering guarantees. */
#define _GNU_SOURCE
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* Waits for queued events and dispatches until the recorder holds n. */
static void dispatch_until(wsn_server *srv, tu_recorder *r, int n)
{
    int64_t deadline = tu_now_ms() + TU_TIMEOUT;
    while (tu_recorder_total(r) < n) {
        int left = (int)(deadline - tu_now_ms()), rc;
        CHECK_MSG(left > 0, "only %d of %d events dispatched",
                  tu_recorder_total(r), n);
        rc = wsn_server_wait(srv, left);
        CHECK_MSG(rc == 0 || rc == 1, "wait: %s", wsn_err_name(rc));
        if (rc == 1) {
            rc = wsn_server_dispatch(srv, 0);
            CHECK_MSG(rc >= 1, "dispatch after wait()==1 returned %d", rc);
        }
    }
}

static void test_dispatch_on_caller_thread(void)
{
    wsn_server *srv;
    tu_recorder r;
    wsc *w;
    tu_rec_event e;
    wsn_server *s2 = NULL;
    wsn_options *o = tu_opts();
    CHECK_OK(wsn_server_new(o, &s2, NULL, 0));
    srv = s2;
    tu_recorder_init(&r);
    tu_recorder_attach(&r, srv);
    CHECK_OK(wsn_server_start(srv));
    w = tu_connect(wsn_server_port(srv));
    dispatch_until(srv, &r, 1);
    e = tu_recorder_get(&r, 0);
    CHECK_EQ(e.kind, WSN_EVENT_CONNECT);
    CHECK(pthread_equal(e.thread, pthread_self()));
    CHECK(strncmp(e.client_id, "c_", 2) == 0);
    CHECK_WSC(wsc_send_text(w, "{\"type\":\"json\",\"channel\":\"c\",\"message\":1}"));
    dispatch_until(srv, &r, 2);
    e = tu_recorder_get(&r, 1);
    CHECK_EQ(e.kind, WSN_EVENT_MESSAGE);
    CHECK(pthread_equal(e.thread, pthread_self()));
    CHECK_STR(e.payload, "1");
    wsc_free(w);
    dispatch_until(srv, &r, 3);
    e = tu_recorder_get(&r, 2);
    CHECK_EQ(e.kind, WSN_EVENT_DISCONNECT);
    CHECK_STR(e.client_id, tu_recorder_get(&r, 0).client_id);
    /* dispatch with nothing queued takes nothing */
    CHECK_EQ(wsn_server_dispatch(srv, 0), 0);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    dispatch_until(srv, &r, 4);
    CHECK_EQ(tu_recorder_get(&r, 3).kind, WSN_EVENT_STOPPED);
    CHECK_RC(wsn_server_dispatch(srv, 0), WSN_ECLOSED);
    CHECK_EQ(tu_recorder_total(&r), 4);
    wsn_server_free(srv);
    tu_recorder_free(&r);
    wsn_options_free(o);
}

static void test_next_event_fields(void)
{
    wsn_server *srv = tu_server(NULL);
    wsn_event *ev = NULL;
    wsc *w;
    wsn_client *c;
    char id[64];
    CHECK_RC(wsn_server_next_event(srv, &ev), WSN_EAGAIN);
    CHECK(ev == NULL);
    CHECK_EQ(wsn_server_wait(srv, 0), 0);
    w = tu_connect(wsn_server_port(srv));
    ev = tu_expect_event(srv, WSN_EVENT_CONNECT, TU_TIMEOUT);
    c = wsn_event_client(ev);
    CHECK(c != NULL);
    CHECK(strncmp(wsn_event_client_id(ev), "c_", 2) == 0);
    CHECK_STR(wsn_client_id(c), wsn_event_client_id(ev));
    CHECK_EQ(wsn_client_is_connected(c), 1);
    snprintf(id, sizeof id, "%s", wsn_event_client_id(ev));
    wsn_event_free(ev);

    CHECK_WSC(wsc_send_text(w, "{\"type\":\"json\",\"channel\":\"ch\",\"message\":"
                               "{\"a\":1},\"message_id\":\"m1\",\"reply_to_id\":\"r1\"}"));
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    CHECK_STR(wsn_event_client_id(ev), id);
    CHECK_STR(wsn_client_id(wsn_event_client(ev)), id);
    CHECK_EQ(wsn_event_message_type(ev), WSN_TYPE_JSON);
    CHECK_STR(wsn_event_channel(ev), "ch");
    CHECK_STR(wsn_event_message_id(ev), "m1");
    CHECK_STR(wsn_event_reply_to_id(ev), "r1");
    {
        size_t len = 0;
        const char *p = wsn_event_payload(ev, &len);
        CHECK_STR(p, "{\"a\":1}");
        CHECK_EQ(len, 7);
        CHECK_EQ(p[len], '\0');
    }
    wsn_event_free(ev);
    wsc_free(w);
    ev = tu_expect_event(srv, WSN_EVENT_DISCONNECT, TU_TIMEOUT);
    CHECK_STR(wsn_event_client_id(ev), id);
    CHECK_EQ(wsn_client_is_connected(wsn_event_client(ev)), 0);
    wsn_event_free(ev);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    ev = tu_expect_event(srv, WSN_EVENT_STOPPED, TU_TIMEOUT);
    CHECK(wsn_event_client(ev) == NULL);
    CHECK_STR(wsn_event_client_id(ev), "");
    wsn_event_free(ev);
    CHECK_RC(wsn_server_next_event(srv, &ev), WSN_ECLOSED);
    CHECK_RC(wsn_server_wait(srv, 0), WSN_ECLOSED);
    wsn_server_free(srv);
}

/* A server without the inbound rate limit, for tests whose client sends
 * hundreds of messages at once (client_rate is test_rate.c's). */
static wsn_server *unlimited_server(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    tu_set_int(o, WSN_OPT_CLIENT_RATE, 0);
    srv = tu_server(o);
    wsn_options_free(o);
    return srv;
}

static void test_event_fd_readable(void)
{
    wsn_server *srv = unlimited_server();
    int fd = wsn_server_event_fd(srv);
    struct pollfd p;
    wsc *w;
    wsn_event *ev;
    CHECK(fd >= 0);
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    CHECK_EQ(poll(&p, 1, 0), 0);
    w = tu_connect(wsn_server_port(srv));
    CHECK_EQ(poll(&p, 1, TU_TIMEOUT), 1);
    CHECK(p.revents & POLLIN);
    CHECK_OK(wsn_server_next_event(srv, &ev));
    CHECK_EQ(wsn_event_kind(ev), WSN_EVENT_CONNECT);
    wsn_event_free(ev);
    /* queue empty again: not readable */
    p.revents = 0;
    CHECK_EQ(poll(&p, 1, 0), 0);
    /* two events queued, one taken: still readable */
    CHECK_WSC(wsc_send_text(w, "{\"type\":\"json\",\"message\":1}"));
    CHECK_WSC(wsc_send_text(w, "{\"type\":\"json\",\"message\":2}"));
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    wsn_event_free(ev);
    CHECK_EQ(poll(&p, 1, TU_TIMEOUT), 1);
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    wsn_event_free(ev);
    p.revents = 0;
    CHECK_EQ(poll(&p, 1, 0), 0);
    /* A burst read in one loop pass wakes the host once; the fd stays
     * readable until the last of them is taken, and not after. */
    char burst[200 * 40];
    size_t off = 0;
    for (int i = 0; i < 200; i++)
        off += (size_t)snprintf(burst + off, sizeof burst - off, "{\"message\":%d}\n", i);
    char *line = burst;
    for (int i = 0; i < 200; i++) {
        char *nl = strchr(line, '\n');
        *nl = 0;
        CHECK_WSC(wsc_send_text(w, line));
        line = nl + 1;
    }
    for (int i = 0; i < 200; i++) {
        CHECK_EQ(poll(&p, 1, TU_TIMEOUT), 1);
        ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
        char want[16];
        snprintf(want, sizeof want, "%d", i);
        CHECK_STR((const char *)wsn_event_payload(ev, NULL), want);
        wsn_event_free(ev);
    }
    p.revents = 0;
    CHECK_EQ(poll(&p, 1, 0), 0);
    wsc_free(w);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_io_thread_handlers(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv = NULL;
    tu_recorder r;
    wsc *w;
    int i;
    tu_set_int(o, WSN_OPT_EVENTS_ON_IO_THREAD, 1);
    CHECK_OK(wsn_server_new(o, &srv, NULL, 0));
    tu_recorder_init(&r);
    tu_recorder_attach(&r, srv);
    CHECK_OK(wsn_server_start(srv));
    w = tu_connect(wsn_server_port(srv));
    CHECK_WSC(wsc_send_text(w, "{\"type\":\"json\",\"message\":\"x\"}"));
    TU_WAIT_FOR(tu_recorder_count(&r, WSN_EVENT_MESSAGE) == 1, TU_TIMEOUT);
    wsc_free(w);
    TU_WAIT_FOR(tu_recorder_count(&r, WSN_EVENT_DISCONNECT) == 1, TU_TIMEOUT);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    TU_WAIT_FOR(tu_recorder_count(&r, WSN_EVENT_STOPPED) == 1, TU_TIMEOUT);
    CHECK_EQ(tu_recorder_total(&r), 4);
    CHECK_EQ(tu_recorder_get(&r, 0).kind, WSN_EVENT_CONNECT);
    CHECK_EQ(tu_recorder_get(&r, 1).kind, WSN_EVENT_MESSAGE);
    CHECK_STR(tu_recorder_get(&r, 1).payload, "\"x\"");
    CHECK_EQ(tu_recorder_get(&r, 2).kind, WSN_EVENT_DISCONNECT);
    CHECK_EQ(tu_recorder_get(&r, 3).kind, WSN_EVENT_STOPPED);
    for (i = 0; i < 3; i++) {
        CHECK_MSG(!pthread_equal(tu_recorder_get(&r, i).thread, pthread_self()),
                  "event %d ran on the test thread", i);
        CHECK(pthread_equal(tu_recorder_get(&r, i).thread,
                            tu_recorder_get(&r, 0).thread));
    }
    /* Nothing is queued in this mode. */
    {
        wsn_event *ev = NULL;
        int rc = wsn_server_next_event(srv, &ev);
        /* STOPPED may also be queued so that wait() can report the end. */
        if (rc == WSN_OK) {
            CHECK_MSG(wsn_event_kind(ev) == WSN_EVENT_STOPPED,
                      "event %d queued in I/O-thread mode", wsn_event_kind(ev));
            wsn_event_free(ev);
        } else {
            CHECK_MSG(rc == WSN_EAGAIN || rc == WSN_ECLOSED,
                      "next_event in I/O-thread mode: %s", wsn_err_name(rc));
        }
    }
    wsn_server_free(srv);
    tu_recorder_free(&r);
    wsn_options_free(o);
}

static void test_incoming_envelope(void)
{
    static const struct {
        const char *in;
        const char *channel, *payload, *mid, *rid;
    } cases[] = {
        {"{\"type\":\"json\",\"channel\":\"c\",\"message\":{\"a\":1},\"message_id\":\"m1\"}",
         "c", "{\"a\":1}", "m1", ""},
        {"{\"type\":\"json\",\"message\":[1,2]}", "", "[1,2]", "", ""},
        {"{\"type\":\"json\",\"channel\":\"x\",\"message\":\"s\",\"reply_to_id\":\"r9\"}",
         "x", "\"s\"", "", "r9"},
        {"{\"message_id\":\"m2\",\"message\":null,\"channel\":\"k\",\"type\":\"json\"}",
         "k", "null", "m2", ""},
        {"{\"type\":\"json\",\"channel\":\"\\u00e9\",\"message\":true}",
         "\xc3\xa9", "true", "", ""},
        /* The message keeps the client's text, minified: numbers as written
         * (beyond int64, trailing zeros, exponents, -0.0) and escapes. */
        {" { \"channel\" : \"n\" , \"message\" : { \"big\" : 18446744073709551616 ,"
         " \"r\" : 0.10 , \"e\" : 1E2 , \"z\" : -0.0 , \"s\" : \"\\u00e9\\/ x\" ,"
         " \"l\" : [ 1 , { } , [ ] ] } } ",
         "n", "{\"big\":18446744073709551616,\"r\":0.10,\"e\":1E2,\"z\":-0.0,"
         "\"s\":\"\\u00e9\\/ x\",\"l\":[1,{},[]]}", "", ""},
        /* Repeated keys: the last counts (as jansson reads them). */
        {"{\"channel\":\"a\",\"message\":1,\"channel\":\"b\",\"message\":2}",
         "b", "2", "", ""},
        /* Keys are compared decoded; nested keys are not the envelope's. */
        {"{\"meta\":{\"channel\":\"no\",\"message\":0},\"chan\\u006eel\":\"k2\","
         "\"m\\u0065ssage\":[1,2],\"message_id\":\"m\\\"1\\n\",\"type\":null}",
         "k2", "[1,2]", "m\"1\n", ""},
        {"{\"channel\":\"\\ud83d\\ude00\",\"reply_to_id\":null,\"message\":\"\"}",
         "\xf0\x9f\x98\x80", "\"\"", "", ""},
    };
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_WSC(wsc_send_text(w, cases[i].in));
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wsn_event *ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
        size_t len;
        const char *p = wsn_event_payload(ev, &len);
        CHECK_EQ(wsn_event_message_type(ev), WSN_TYPE_JSON);
        CHECK_STR(wsn_event_channel(ev), cases[i].channel);
        CHECK_STR(p, cases[i].payload);
        CHECK_EQ(len, strlen(cases[i].payload));
        CHECK_STR(wsn_event_message_id(ev), cases[i].mid);
        CHECK_STR(wsn_event_reply_to_id(ev), cases[i].rid);
        CHECK_STR(wsn_event_client_id(ev), wsn_client_id(c));
        wsn_event_free(ev);
    }
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

/* With the smallest read buffer, a message many times its size and the
 * messages sent right behind it all arrive whole and in order. */
static void test_read_buffer_small(void)
{
    wsn_options *o = tu_opts();
    CHECK_OK(wsn_options_set_int(o, WSN_OPT_READ_BUFFER, 128));
    wsn_server *srv = tu_server(o);
    wsn_options_free(o);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    static char big[5000 + 64];
    int n = snprintf(big, sizeof big, "{\"channel\":\"c\",\"message\":\"");
    memset(big + n, 'x', 5000);
    snprintf(big + n + 5000, sizeof big - (size_t)n - 5000, "\"}");
    CHECK_WSC(wsc_send_text(w, big));
    CHECK_WSC(wsc_send_text(w, "{\"channel\":\"c\",\"message\":1}"));
    CHECK_WSC(wsc_send_text(w, "{\"channel\":\"c\",\"message\":2}"));
    wsn_event *ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    size_t len;
    const char *p = wsn_event_payload(ev, &len);
    CHECK_EQ(len, (size_t)5002);
    CHECK(p[0] == '"' && p[1] == 'x' && p[5000] == 'x' && p[5001] == '"');
    wsn_event_free(ev);
    for (int k = 1; k <= 2; k++) {
        ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
        char want[2] = {(char)('0' + k), 0};
        CHECK_STR(wsn_event_payload(ev, &len), want);
        wsn_event_free(ev);
    }
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_incoming_text_type(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    wsn_event *ev;
    size_t len;
    CHECK_WSC(wsc_send_text(w, "{\"type\":\"text\",\"channel\":\"c\",\"message\":\"h\\u00e9 \\\"q\\\"\"}"));
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    CHECK_EQ(wsn_event_message_type(ev), WSN_TYPE_TEXT);
    CHECK_STR((const char *)wsn_event_payload(ev, &len), "h\xc3\xa9 \"q\"");
    CHECK_EQ(len, 7);
    CHECK_STR(wsn_event_channel(ev), "c");
    wsn_event_free(ev);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_incoming_binary(void)
{
    static const unsigned char bin[] = {0, 1, 2, 0xff, 0, 0x80, '{'};
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    wsn_event *ev;
    size_t len = 0;
    const unsigned char *p;
    unsigned char big[70000];
    size_t i;
    CHECK_WSC(wsc_send_binary(w, bin, sizeof bin));
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    CHECK_EQ(wsn_event_message_type(ev), WSN_TYPE_BINARY);
    p = wsn_event_payload(ev, &len);
    CHECK_MEM(p, len, bin, sizeof bin);
    CHECK_EQ(p[len], 0);
    CHECK_STR(wsn_event_channel(ev), "");
    CHECK_STR(wsn_event_message_id(ev), "");
    CHECK_STR(wsn_event_client_id(ev), wsn_client_id(c));
    wsn_event_free(ev);
    /* A fragmented binary message is reassembled. */
    for (i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i ^ (i >> 8));
    CHECK_WSC(wsc_send_fragmented(w, WSC_OP_BINARY, big, sizeof big, 1000));
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    CHECK_EQ(wsn_event_message_type(ev), WSN_TYPE_BINARY);
    p = wsn_event_payload(ev, &len);
    CHECK_MEM(p, len, big, sizeof big);
    wsn_event_free(ev);
    /* An empty binary message. */
    CHECK_WSC(wsc_send_binary(w, "", 0));
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    CHECK_EQ(wsn_event_message_type(ev), WSN_TYPE_BINARY);
    wsn_event_payload(ev, &len);
    CHECK_EQ(len, 0);
    wsn_event_free(ev);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_invalid_json_error(void)
{
    static const char *bad[] = {"not json", "{\"type\":", "", "{\"a\":1}}"};
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    char *want = tu_strdupf("{\"client_id\":\"%s\",\"error\":\"invalid JSON "
                            "format\",\"reply_to\":\"\",\"time\":\"T\","
                            "\"type\":\"error\"}",
                            wsn_client_id(c));
    size_t i;
    wsn_event *ev;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_WSC(wsc_send_text(w, bad[i]));
        tu_expect_envelope(w, want);
    }
    /* Still connected; the bad frames produced no MESSAGE event. */
    CHECK_EQ(wsn_client_is_connected(c), 1);
    CHECK_WSC(wsc_send_text(w, "{\"type\":\"json\",\"message\":\"after\"}"));
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    CHECK_STR((const char *)wsn_event_payload(ev, NULL), "\"after\"");
    wsn_event_free(ev);
    CHECK_OK(wsn_server_subscribe(srv, c, "c"));
    CHECK_OK(wsn_server_publish(srv, "c", "1"));
    tu_expect_envelope(w, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                          "\"message\":1}");
    free(want);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

/* JSON that is not a valid envelope: each gets the error it names. */
static void test_invalid_envelope_errors(void)
{
    static const struct {
        const char *in, *error;
    } cases[] = {
        {"[1,2]", "invalid JSON format"},
        {"\"s\"", "invalid JSON format"},
        {"{\"message\":1,}", "invalid JSON format"},
        {"{\"type\":5,\"message\":1}", "unknown message type"},
        {"{\"type\":\"JSON\",\"message\":1}", "unknown message type"},
        {"{\"type\":\"jsonx\"}", "unknown message type"},
        {"{\"channel\":5,\"message\":1}", "invalid message format"},
        {"{\"message_id\":[],\"message\":1}", "invalid message format"},
        {"{\"reply_to_id\":{},\"message\":1}", "invalid message format"},
        {"{\"type\":\"text\",\"message\":5}", "invalid message format"},
        {"{\"type\":\"binary\",\"message\":\"***\"}", "invalid message format"},
        {"{\"type\":\"binary\",\"message\":\"QQ\"}", "invalid message format"},
        {"{\"type\":\"binary\",\"message\":\"Q===\"}", "invalid message format"},
        {"{\"type\":\"binary\",\"message\":\"QQ==QQ==\"}", "invalid message format"},
    };
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *want = tu_strdupf("{\"client_id\":\"%s\",\"error\":\"%s\",\"reply_to\":\"\","
                                "\"time\":\"T\",\"type\":\"error\"}",
                                wsn_client_id(c), cases[i].error);
        CHECK_WSC(wsc_send_text(w, cases[i].in));
        tu_expect_envelope(w, want);
        free(want);
    }
    /* None of them became an event; the next good one does. */
    CHECK_WSC(wsc_send_text(w, "{\"message\":\"ok\"}"));
    wsn_event *ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    CHECK_STR((const char *)wsn_event_payload(ev, NULL), "\"ok\"");
    wsn_event_free(ev);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void run_disconnect_after_last(int io_thread)
{
    wsn_options *o = tu_opts();
    wsn_server *srv = NULL;
    tu_recorder r;
    wsc *w;
    int i, n, total;
    char id[64];
    tu_set_int(o, WSN_OPT_EVENTS_ON_IO_THREAD, io_thread);
    CHECK_OK(wsn_server_new(o, &srv, NULL, 0));
    tu_recorder_init(&r);
    tu_recorder_attach(&r, srv);
    CHECK_OK(wsn_server_start(srv));
    w = tu_connect(wsn_server_port(srv));
    for (i = 0; i < 50; i++) {
        char msg[80];
        snprintf(msg, sizeof msg, "{\"type\":\"json\",\"message\":{\"i\":%d}}", i);
        CHECK_WSC(wsc_send_text(w, msg));
    }
    CHECK_WSC(wsc_send_close(w, 1000, "bye"));
    /* The server answers the close. */
    tu_expect_close(w, 1000, NULL);
    wsc_free(w);
    if (io_thread)
        TU_WAIT_FOR(tu_recorder_count(&r, WSN_EVENT_DISCONNECT) == 1, TU_TIMEOUT);
    else
        dispatch_until(srv, &r, 52);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    if (io_thread)
        TU_WAIT_FOR(tu_recorder_count(&r, WSN_EVENT_STOPPED) == 1, TU_TIMEOUT);
    else
        dispatch_until(srv, &r, 53);
    total = tu_recorder_total(&r);
    CHECK_EQ(total, 53);
    CHECK_EQ(tu_recorder_get(&r, 0).kind, WSN_EVENT_CONNECT);
    snprintf(id, sizeof id, "%s", tu_recorder_get(&r, 0).client_id);
    for (i = 0, n = 1; i < 50; i++, n++) {
        tu_rec_event e = tu_recorder_get(&r, n);
        char want[32];
        CHECK_EQ(e.kind, WSN_EVENT_MESSAGE);
        CHECK_STR(e.client_id, id);
        snprintf(want, sizeof want, "{\"i\":%d}", i);
        CHECK_STR(e.payload, want);
    }
    CHECK_EQ(tu_recorder_get(&r, 51).kind, WSN_EVENT_DISCONNECT);
    CHECK_STR(tu_recorder_get(&r, 51).client_id, id);
    CHECK_EQ(tu_recorder_get(&r, 52).kind, WSN_EVENT_STOPPED);
    CHECK_EQ(tu_recorder_count(&r, WSN_EVENT_DISCONNECT), 1);
    wsn_server_free(srv);
    CHECK_EQ(tu_recorder_total(&r), 53); /* nothing after free */
    tu_recorder_free(&r);
    wsn_options_free(o);
}

static void test_disconnect_after_last_message(void)
{
    run_disconnect_after_last(0);
    run_disconnect_after_last(1);
}

static void test_stopped_is_last(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc *w1, *w2;
    wsn_client *c1 = tu_accept(srv, &w1);
    wsn_client *c2 = tu_accept(srv, &w2);
    int disc = 0, i;
    wsn_event *ev;
    CHECK_WSC(wsc_send_text(w1, "{\"type\":\"json\",\"message\":1}"));
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    wsn_event_free(ev);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    for (i = 0; i < 10; i++) {
        ev = tu_event(srv, TU_TIMEOUT);
        if (wsn_event_kind(ev) == WSN_EVENT_STOPPED) {
            wsn_event_free(ev);
            break;
        }
        CHECK_EQ(wsn_event_kind(ev), WSN_EVENT_DISCONNECT);
        disc++;
        wsn_event_free(ev);
    }
    CHECK_EQ(disc, 2);
    CHECK_RC(wsn_server_next_event(srv, &ev), WSN_ECLOSED);
    CHECK_RC(wsn_server_wait(srv, 100), WSN_ECLOSED);
    CHECK_RC(wsn_server_wait(srv, -1), WSN_ECLOSED);
    CHECK_RC(wsn_server_dispatch(srv, 0), WSN_ECLOSED);
    CHECK_EQ(wsn_client_is_connected(c1), 0);
    CHECK_EQ(wsn_client_is_connected(c2), 0);
    wsc_free(w1);
    wsc_free(w2);
    wsn_client_release(c1);
    wsn_client_release(c2);
    wsn_server_free(srv);
}

static void test_client_ids_unique(void)
{
    wsn_server *s1 = tu_server(NULL), *s2 = tu_server(NULL);
    char ids[40][64];
    int n = 0, i, j, k;
    for (k = 0; k < 20; k++) {
        wsn_server *srv = k % 2 ? s2 : s1;
        wsc *w;
        wsn_client *c = tu_accept(srv, &w);
        const char *id = wsn_client_id(c);
        CHECK_MSG(strncmp(id, "c_", 2) == 0 && strlen(id) > 2,
                  "client id '%s'", id);
        snprintf(ids[n++], sizeof ids[0], "%s", id);
        wsc_free(w);
        tu_expect_disconnect_of(srv, id, TU_TIMEOUT);
        wsn_client_release(c);
    }
    for (i = 0; i < n; i++)
        for (j = 0; j < i; j++)
            CHECK_MSG(strcmp(ids[i], ids[j]) != 0, "duplicate id %s", ids[i]);
    CHECK_OK(wsn_server_shutdown(s1, 5000));
    CHECK_OK(wsn_server_shutdown(s2, 5000));
    wsn_server_free(s1);
    wsn_server_free(s2);
}

static void test_remote_address(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    CHECK_STR(wsn_client_remote_address(c), "127.0.0.1");
    wsc_free(w);
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    CHECK_STR(wsn_client_remote_address(c), "127.0.0.1"); /* still readable */
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

/* A handler on the I/O thread that subscribes the sender and replies. */
typedef struct reply_state {
    pthread_mutex_t mu;
    int sub_rc, pub_rc, calls;
} reply_state;

static void reply_handler(void *user, wsn_server *srv, const wsn_event *ev)
{
    reply_state *st = user;
    wsn_client *c = wsn_event_client(ev);
    int sub = wsn_server_subscribe(srv, c, wsn_event_channel(ev));
    int pub = wsn_server_publish_to_client(srv, c, wsn_event_channel(ev),
                                           WSN_TYPE_JSON, "{\"ok\":true}", 11,
                                           NULL, wsn_event_message_id(ev));
    pthread_mutex_lock(&st->mu);
    st->sub_rc = sub;
    st->pub_rc = pub;
    st->calls++;
    pthread_mutex_unlock(&st->mu);
}

static int reply_calls(reply_state *st)
{
    int n;
    pthread_mutex_lock(&st->mu);
    n = st->calls;
    pthread_mutex_unlock(&st->mu);
    return n;
}

static void test_handler_publish_reply(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv = NULL;
    reply_state st;
    wsc *w;
    memset(&st, 0, sizeof st);
    pthread_mutex_init(&st.mu, NULL);
    tu_set_int(o, WSN_OPT_EVENTS_ON_IO_THREAD, 1);
    CHECK_OK(wsn_server_new(o, &srv, NULL, 0));
    CHECK_OK(wsn_server_set_handler(srv, WSN_EVENT_MESSAGE, reply_handler, &st));
    CHECK_OK(wsn_server_start(srv));
    w = tu_connect(wsn_server_port(srv));
    CHECK_WSC(wsc_send_text(w, "{\"type\":\"json\",\"channel\":\"room\",\"message\":"
                               "{\"x\":1},\"message_id\":\"q1\"}"));
    tu_expect_envelope(w, "{\"channel\":\"room\",\"type\":\"json\",\"time\":\"T\","
                          "\"message\":{\"ok\":true},\"reply_to_id\":\"q1\"}");
    TU_WAIT_FOR(reply_calls(&st) == 1, TU_TIMEOUT);
    pthread_mutex_lock(&st.mu);
    CHECK_RC(st.sub_rc, WSN_OK);
    CHECK_RC(st.pub_rc, WSN_OK);
    pthread_mutex_unlock(&st.mu);
    /* The subscription made on the I/O thread is in effect. */
    CHECK_OK(wsn_server_publish(srv, "room", "7"));
    tu_expect_envelope(w, "{\"channel\":\"room\",\"type\":\"json\",\"time\":\"T\","
                          "\"message\":7}");
    wsc_free(w);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    pthread_mutex_destroy(&st.mu);
    wsn_options_free(o);
}

/* With a tiny event queue, reading from the client pauses while the host
 * does not take events, and resumes: nothing is lost, order is kept. */
static void test_event_queue_limit_pauses(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    wsc *w;
    wsn_client *c;
    int i;
    tu_set_int(o, WSN_OPT_EVENT_QUEUE_LIMIT, 4);
    tu_set_int(o, WSN_OPT_CLIENT_RATE, 0); /* 300 messages at once */
    srv = tu_server(o);
    c = tu_accept(srv, &w);
    for (i = 0; i < 300; i++) {
        char msg[80];
        snprintf(msg, sizeof msg, "{\"type\":\"json\",\"message\":{\"i\":%d}}", i);
        CHECK_WSC(wsc_send_text(w, msg));
    }
    for (i = 0; i < 300; i++) {
        wsn_event *ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
        char want[32];
        snprintf(want, sizeof want, "{\"i\":%d}", i);
        CHECK_STR((const char *)wsn_event_payload(ev, NULL), want);
        wsn_event_free(ev);
    }
    /* The connection still works both ways. */
    CHECK_OK(wsn_server_subscribe(srv, c, "c"));
    CHECK_OK(wsn_server_publish(srv, "c", "1"));
    tu_expect_envelope(w, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                          "\"message\":1}");
    wsc_free(w);
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    wsn_options_free(o);
}

/* One client's share of the event queue (client_event_queue, _bytes): a
 * flooder's reads pause at its share, so another client's message waits
 * behind a few of the flooder's, not behind the whole flood; once the host
 * takes them, the flooder resumes and loses nothing. */
static void wait_pong(wsc *w)
{
    wsc_msg m;
    for (;;) {
        CHECK_WSC(wsc_recv_frame(w, &m, TU_TIMEOUT));
        int pong = m.opcode == WSC_OP_PONG;
        wsc_msg_clear(&m);
        if (pong)
            return;
    }
}

static void client_share_case(wsn_option id, int64_t share, size_t pad_len, int flood,
                              int most_ahead)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    wsc *wa, *wb;
    wsn_client *ca, *cb;
    int i, ahead = -1, next_a = 0;
    char *pad = malloc(pad_len + 1);
    CHECK(pad);
    memset(pad, 'p', pad_len);
    pad[pad_len] = '\0';
    tu_set_int(o, id, share);
    tu_set_int(o, WSN_OPT_CLIENT_RATE, 0); /* the flood is the point */
    srv = tu_server(o);
    ca = tu_accept(srv, &wa);
    cb = tu_accept(srv, &wb);
    for (i = 0; i < flood; i++) {
        char *msg = tu_strdupf("{\"type\":\"json\",\"message\":{\"a\":%d,\"p\":\"%s\"}}", i, pad);
        CHECK_WSC(wsc_send_text(wa, msg));
        free(msg);
    }
    /* The server has started on the flood... */
    wsn_event *ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    CHECK(wsn_event_client(ev) == ca);
    wsn_event_free(ev);
    next_a = 1;
    /* ...and B's message is queued once B's ping is answered. */
    CHECK_WSC(wsc_send_text(wb, "{\"type\":\"json\",\"message\":\"b\"}"));
    CHECK_WSC(wsc_send_ping(wb, "b", 1));
    wait_pong(wb);
    for (i = 0; ahead < 0 || next_a < flood; i++) {
        ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
        const char *payload = (const char *)wsn_event_payload(ev, NULL);
        if (wsn_event_client(ev) == cb) {
            CHECK_STR(payload, "\"b\"");
            ahead = i;
        } else {
            char want[32];
            snprintf(want, sizeof want, "{\"a\":%d,", next_a++);
            CHECK(strncmp(payload, want, strlen(want)) == 0);
        }
        wsn_event_free(ev);
    }
    CHECK_MSG(ahead <= most_ahead, "%d of the flood ahead of B's message (share %lld)", ahead,
              (long long)share);
    /* The flooder reads again: its ping is answered after the flood. */
    CHECK_WSC(wsc_send_ping(wa, "a", 1));
    wait_pong(wa);
    wsc_free(wa);
    wsc_free(wb);
    tu_expect_disconnect_of(srv, wsn_client_id(ca), TU_TIMEOUT);
    tu_expect_disconnect_of(srv, wsn_client_id(cb), TU_TIMEOUT);
    wsn_client_release(ca);
    wsn_client_release(cb);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    wsn_options_free(o);
    free(pad);
}

static void test_client_event_share(void)
{
    client_share_case(WSN_OPT_CLIENT_EVENT_QUEUE, 4, 8, 300, 4);
}

static void test_client_event_share_bytes(void)
{
    /* 1 KiB messages (with the event, just over 1 KiB each) against a
     * 4 KiB share: at most four wait at a time. */
    client_share_case(WSN_OPT_CLIENT_EVENT_QUEUE_BYTES, 4096, 1024, 100, 4);
}

/* event_queue_bytes pauses reading by bytes (4,096 events would never
 * fill here): every message still arrives, in order, and the pause says so
 * in the log. */
static atomic_int pause_lines;

static void count_pause_lines(void *user, wsn_log_level level, const char *msg)
{
    (void)user;
    (void)level;
    if (strstr(msg, "pausing reads"))
        atomic_fetch_add(&pause_lines, 1);
}

static void test_event_queue_bytes_pauses(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    wsc *w;
    wsn_client *c;
    int i, paused = 0;
    char *pad = malloc(8192 + 1);
    CHECK(pad);
    memset(pad, 'p', 8192);
    pad[8192] = '\0';
    tu_set_int(o, WSN_OPT_EVENT_QUEUE_BYTES, 32768);
    CHECK_OK(wsn_options_set_logger(o, count_pause_lines, NULL));
    srv = tu_server(o);
    c = tu_accept(srv, &w);
    for (i = 0; i < 40; i++) {
        char *msg = tu_strdupf("{\"type\":\"json\",\"message\":{\"i\":%d,\"p\":\"%s\"}}", i, pad);
        CHECK_WSC(wsc_send_text(w, msg));
        free(msg);
    }
    for (i = 0; i < 40; i++) {
        wsn_event *ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
        char want[32];
        snprintf(want, sizeof want, "{\"i\":%d,", i);
        CHECK(strncmp((const char *)wsn_event_payload(ev, NULL), want, strlen(want)) == 0);
        wsn_event_free(ev);
    }
    paused = atomic_load(&pause_lines);
    CHECK(paused >= 1);
    wsc_free(w);
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    wsn_options_free(o);
    free(pad);
}

/* max_partial_bytes: two clients each start a 40 KB message in fragments
 * (64 KiB of reassembly each) under a 64 KiB bound: whichever the server
 * reads second is closed with 1013 (the host sees it leave), the other's
 * message arrives whole once it sends the rest. */
static void test_partial_bytes_bound(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    wsc *w[2];
    wsn_client *c[2];
    size_t half = 20000;
    char *body = malloc(2 * half + 1);
    CHECK(body);
    memset(body, 'b', 2 * half);
    body[2 * half] = '\0';
    tu_set_int(o, WSN_OPT_MAX_PARTIAL_BYTES, 65536);
    tu_set_int(o, WSN_OPT_RAW_INCOMING, 1);
    srv = tu_server(o);
    c[0] = tu_accept(srv, &w[0]);
    c[1] = tu_accept(srv, &w[1]);
    for (int i = 0; i < 2; i++) /* text, not final */
        CHECK_WSC(wsc_send_frame_raw(w[i], 0x01, 1, body, 2 * half - 100));
    wsn_event *ev = tu_expect_event(srv, WSN_EVENT_DISCONNECT, TU_TIMEOUT);
    int kept = wsn_event_client(ev) == c[0];
    CHECK(wsn_event_client(ev) == c[!kept]);
    wsn_event_free(ev);
    tu_expect_close(w[!kept], 1013, "server busy: try again later");
    CHECK_WSC(wsc_send_frame_raw(w[kept], 0x80, 1, body, 100)); /* continuation, final */
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    size_t n = 0;
    CHECK(wsn_event_payload(ev, &n));
    CHECK_EQ(n, 2 * half);
    CHECK(wsn_event_client(ev) == c[kept]);
    wsn_event_free(ev);
    /* The bound is free again: the same message from the other one passes. */
    CHECK_WSC(wsc_send_frame_raw(w[kept], 0x01, 1, body, 2 * half - 100));
    CHECK_WSC(wsc_send_frame_raw(w[kept], 0x80, 1, body, 100));
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    CHECK(wsn_event_payload(ev, &n));
    CHECK_EQ(n, 2 * half);
    wsn_event_free(ev);
    for (int i = 0; i < 2; i++) {
        wsc_free(w[i]);
        wsn_client_release(c[i]);
    }
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    wsn_options_free(o);
    free(body);
}

/* raw_incoming: text frames reach the host as they are, no error replies. */
static void test_raw_incoming(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    wsc *w;
    wsn_client *c;
    wsn_event *ev;
    size_t len;
    static const unsigned char bin[] = {1, 0, 2};
    tu_set_int(o, WSN_OPT_RAW_INCOMING, 1);
    srv = tu_server(o);
    c = tu_accept(srv, &w);
    CHECK_WSC(wsc_send_text(w, "not json at all"));
    CHECK_WSC(wsc_send_text(w, "{\"type\":\"json\",\"channel\":\"c\",\"message\":1}"));
    CHECK_WSC(wsc_send_binary(w, bin, sizeof bin));
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    CHECK_EQ(wsn_event_message_type(ev), WSN_TYPE_TEXT);
    CHECK_STR((const char *)wsn_event_payload(ev, &len), "not json at all");
    CHECK_EQ(len, 15);
    CHECK_STR(wsn_event_channel(ev), "");
    wsn_event_free(ev);
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    CHECK_EQ(wsn_event_message_type(ev), WSN_TYPE_TEXT);
    CHECK_STR((const char *)wsn_event_payload(ev, &len),
              "{\"type\":\"json\",\"channel\":\"c\",\"message\":1}");
    CHECK_STR(wsn_event_channel(ev), "");
    wsn_event_free(ev);
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    CHECK_EQ(wsn_event_message_type(ev), WSN_TYPE_BINARY);
    {
        const void *p = wsn_event_payload(ev, &len);
        CHECK_MEM(p, len, bin, sizeof bin);
    }
    wsn_event_free(ev);
    /* No error reply was sent: the next thing the client gets is this. */
    CHECK_OK(wsn_server_send_raw(srv, c, WSN_TYPE_TEXT, "next", 4));
    tu_expect_text(w, "next");
    wsc_free(w);
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    wsn_options_free(o);
}

/* send_raw: one frame as it is, no envelope. */
static void test_send_raw(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    static const unsigned char bin[] = {0xff, 0, 0x7f};
    wsc_msg m;
    CHECK_OK(wsn_server_send_raw(srv, c, WSN_TYPE_TEXT, "h\xc3\xa9 raw", 7));
    CHECK_OK(wsn_server_send_raw(srv, c, WSN_TYPE_BINARY, bin, sizeof bin));
    CHECK_OK(wsn_server_send_raw(srv, c, WSN_TYPE_TEXT, "", 0));
    tu_expect_text(w, "h\xc3\xa9 raw");
    tu_recv(w, &m, TU_TIMEOUT);
    CHECK_EQ(m.opcode, WSC_OP_BINARY);
    CHECK_MEM(m.data, m.len, bin, sizeof bin);
    wsc_msg_clear(&m);
    tu_expect_text(w, "");
    CHECK_RC(wsn_server_send_raw(srv, c, WSN_TYPE_TEXT, "\xff", 1), WSN_EINVAL);
    CHECK_RC(wsn_server_send_raw(srv, c, WSN_TYPE_JSON, "1", 1), WSN_EINVAL);
    CHECK_RC(wsn_server_send_raw(srv, NULL, WSN_TYPE_TEXT, "x", 1), WSN_EINVAL);
    CHECK_RC(wsn_server_send_raw(srv, c, WSN_TYPE_BINARY, NULL, 1), WSN_EINVAL);
    wsc_free(w);
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    CHECK_RC(wsn_server_send_raw(srv, c, WSN_TYPE_TEXT, "x", 1), WSN_EGONE);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

/* ---- event info ------------------------------------------------------- */

/* get_info must agree with the one-field accessors, field by field. */
static void check_info(const wsn_event *ev, wsn_event_type kind)
{
    wsn_event_info info;
    size_t len;
    const void *payload = wsn_event_payload(ev, &len);
    memset(&info, 0xa5, sizeof info);
    info.size = sizeof info;
    CHECK_OK(wsn_event_get_info(ev, &info));
    CHECK_EQ(info.size, sizeof info);
    CHECK_EQ(info.kind, kind);
    CHECK(info.client == wsn_event_client(ev));
    CHECK_STR(info.client_id, wsn_event_client_id(ev));
    CHECK_STR(info.channel, wsn_event_channel(ev));
    CHECK_EQ(info.payload_len, len);
    CHECK_MEM(info.payload, info.payload_len, payload, len);
    CHECK_EQ(((const char *)info.payload)[info.payload_len], '\0');
    CHECK_STR(info.message_id, wsn_event_message_id(ev));
    CHECK_STR(info.reply_to_id, wsn_event_reply_to_id(ev));
    if (kind == WSN_EVENT_MESSAGE)
        CHECK_EQ(info.type, wsn_event_message_type(ev));
    else
        CHECK_EQ(info.type, WSN_TYPE_JSON);
    if (kind == WSN_EVENT_STOPPED) {
        CHECK(info.client == NULL);
        CHECK_STR(info.client_id, "");
    } else {
        CHECK(info.client != NULL);
        CHECK(strncmp(info.client_id, "c_", 2) == 0);
    }
}

static void test_event_info_every_kind(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c;
    wsn_event *ev;
    wsn_event_info info;
    unsigned char bin[3] = {0, 1, 255};
    /* A caller built against a later header passes a bigger struct: the
     * fields this library knows are filled, the rest left alone. */
    struct {
        wsn_event_info info;
        unsigned char later[16];
    } bigger;
    size_t i;
    w = tu_connect(wsn_server_port(srv));
    ev = tu_expect_event(srv, WSN_EVENT_CONNECT, TU_TIMEOUT);
    check_info(ev, WSN_EVENT_CONNECT);
    c = wsn_client_retain(wsn_event_client(ev));
    memset(&bigger, 0x5a, sizeof bigger);
    bigger.info.size = sizeof bigger;
    CHECK_OK(wsn_event_get_info(ev, &bigger.info));
    CHECK_EQ(bigger.info.size, sizeof bigger);
    CHECK(bigger.info.client == c);
    for (i = 0; i < sizeof bigger.later; i++)
        CHECK_EQ(bigger.later[i], 0x5a);
    /* Too small for the 0.2 fields, or NULL: refused, untouched. */
    memset(&info, 0, sizeof info);
    info.size = sizeof info - 1;
    CHECK_RC(wsn_event_get_info(ev, &info), WSN_EINVAL);
    CHECK(info.client == NULL);
    CHECK_RC(wsn_event_get_info(ev, NULL), WSN_EINVAL);
    info.size = sizeof info;
    CHECK_RC(wsn_event_get_info(NULL, &info), WSN_EINVAL);
    wsn_event_free(ev);

    CHECK_WSC(wsc_send_text(w, "{\"type\":\"json\",\"channel\":\"c\",\"message\":{\"a\":1},"
                               "\"message_id\":\"m1\",\"reply_to_id\":\"r1\"}"));
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    check_info(ev, WSN_EVENT_MESSAGE);
    info.size = sizeof info;
    CHECK_OK(wsn_event_get_info(ev, &info));
    CHECK_EQ(info.type, WSN_TYPE_JSON);
    CHECK_STR(info.channel, "c");
    CHECK_MEM(info.payload, info.payload_len, "{\"a\":1}", 7);
    CHECK_STR(info.message_id, "m1");
    CHECK_STR(info.reply_to_id, "r1");
    wsn_event_free(ev);

    CHECK_WSC(wsc_send_binary(w, bin, sizeof bin));
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    check_info(ev, WSN_EVENT_MESSAGE);
    CHECK_OK(wsn_event_get_info(ev, &info));
    CHECK_EQ(info.type, WSN_TYPE_BINARY);
    CHECK_MEM(info.payload, info.payload_len, bin, sizeof bin);
    CHECK_STR(info.channel, "");
    wsn_event_free(ev);

    wsc_free(w);
    ev = tu_expect_event(srv, WSN_EVENT_DISCONNECT, TU_TIMEOUT);
    check_info(ev, WSN_EVENT_DISCONNECT);
    CHECK_OK(wsn_event_get_info(ev, &info));
    CHECK(info.client == c);
    wsn_event_free(ev);

    CHECK_OK(wsn_server_shutdown(srv, 5000));
    ev = tu_expect_event(srv, WSN_EVENT_STOPPED, TU_TIMEOUT);
    check_info(ev, WSN_EVENT_STOPPED);
    wsn_event_free(ev);
    wsn_client_release(c);
    wsn_server_free(srv);
}

/* ---- events taken in batches ------------------------------------------ */

#define BATCH_MAX 8

typedef struct batch {
    wsn_event *evs[BATCH_MAX];
    wsn_event_record recs[BATCH_MAX];
    char arena[256];
    size_t used;
} batch;

/* Waits for events and takes one batch (at most max) with an arena of cap
 * bytes; returns what wsn_server_take_events returned. */
static int take_batch(wsn_server *srv, batch *b, int max, size_t cap)
{
    int rc;
    for (int tries = 0; tries < 100; tries++) {
        rc = wsn_server_take_events(srv, b->evs, b->recs, sizeof(wsn_event_record), max,
                                    b->arena, cap, &b->used);
        if (rc != 0)
            return rc;
        if (wsn_server_wait(srv, TU_TIMEOUT / 10) < 0)
            break;
    }
    return 0;
}

static void check_span(const batch *b, int64_t off, int64_t len, const char *want)
{
    CHECK(off >= 0 && len >= 0 && (size_t)(off + len) <= b->used);
    CHECK_MEM(b->arena + off, (size_t)len, want, strlen(want));
}

static void test_take_events_batch(void)
{
    wsn_server *srv = tu_server(NULL);
    batch b;
    wsc *w = tu_connect(wsn_server_port(srv));
    unsigned char bin[3] = {0, 1, 255};
    int rc, got = 0;

    /* Refusals, before anything is taken. */
    CHECK_RC(wsn_server_take_events(srv, b.evs, b.recs, sizeof(wsn_event_record) - 8, 1,
                                    b.arena, sizeof b.arena, &b.used),
             WSN_EINVAL);
    CHECK_RC(wsn_server_take_events(srv, b.evs, b.recs, sizeof(wsn_event_record) + 4, 1,
                                    b.arena, sizeof b.arena, &b.used),
             WSN_EINVAL);
    CHECK_RC(wsn_server_take_events(srv, b.evs, b.recs, sizeof(wsn_event_record), 0,
                                    b.arena, sizeof b.arena, &b.used),
             WSN_EINVAL);
    CHECK_RC(wsn_server_take_events(srv, b.evs, b.recs, sizeof(wsn_event_record), 1, NULL,
                                    sizeof b.arena, &b.used),
             WSN_EINVAL);

    CHECK_EQ(take_batch(srv, &b, BATCH_MAX, sizeof b.arena), 1);
    CHECK_EQ(b.recs[0].kind, WSN_EVENT_CONNECT);
    CHECK(b.recs[0].client == wsn_event_client(b.evs[0]));
    CHECK_EQ(b.recs[0].payload_len, 0);
    CHECK_EQ(b.used, 0);
    wsn_client *c = wsn_client_retain(b.recs[0].client);
    wsn_events_free(b.evs, 1);
    CHECK(b.evs[0] == NULL);

    CHECK_WSC(wsc_send_text(w, "{\"type\":\"json\",\"channel\":\"ch\",\"message\":{\"a\":1},"
                               "\"message_id\":\"m1\",\"reply_to_id\":\"r1\"}"));
    CHECK_WSC(wsc_send_text(w, "{\"type\":\"text\",\"channel\":\"t\",\"message\":\"hi\"}"));
    CHECK_WSC(wsc_send_binary(w, bin, sizeof bin));
    /* One message per call (max 1), then the rest as they come: the
     * records say exactly what each event says. */
    rc = take_batch(srv, &b, 1, sizeof b.arena);
    CHECK_EQ(rc, 1);
    CHECK_EQ(b.recs[0].kind, WSN_EVENT_MESSAGE);
    CHECK_EQ(b.recs[0].type, WSN_TYPE_JSON);
    CHECK(b.recs[0].client == c);
    check_span(&b, b.recs[0].channel_offset, b.recs[0].channel_len, "ch");
    check_span(&b, b.recs[0].payload_offset, b.recs[0].payload_len, "{\"a\":1}");
    check_span(&b, b.recs[0].message_id_offset, b.recs[0].message_id_len, "m1");
    check_span(&b, b.recs[0].reply_to_id_offset, b.recs[0].reply_to_id_len, "r1");
    CHECK_EQ(b.used, 2 + 7 + 2 + 2);
    wsn_events_free(b.evs, rc);
    while (got < 2) {
        rc = take_batch(srv, &b, BATCH_MAX, sizeof b.arena);
        CHECK(rc >= 1 && rc <= 2 - got);
        for (int i = 0; i < rc; i++, got++) {
            const wsn_event_record *r = &b.recs[i];
            CHECK_EQ(r->kind, WSN_EVENT_MESSAGE);
            if (got == 0) {
                CHECK_EQ(r->type, WSN_TYPE_TEXT);
                check_span(&b, r->channel_offset, r->channel_len, "t");
                check_span(&b, r->payload_offset, r->payload_len, "hi");
                CHECK_EQ(r->message_id_len, 0);
            } else {
                CHECK_EQ(r->type, WSN_TYPE_BINARY);
                CHECK_EQ(r->channel_len, 0);
                CHECK(r->payload_offset >= 0 && r->payload_len == 3);
                CHECK_MEM(b.arena + r->payload_offset, 3, bin, 3);
            }
        }
        wsn_events_free(b.evs, rc);
    }

    /* A message that does not fit in the arena ends the batch, marked -1,
     * and is read from its event. */
    CHECK_WSC(wsc_send_text(w, "{\"type\":\"json\",\"channel\":\"ch\",\"message\":[1,2,3,4]}"));
    CHECK_EQ(take_batch(srv, &b, BATCH_MAX, 8), 1);
    CHECK_EQ(b.recs[0].payload_offset, -1);
    CHECK_EQ(b.used, 0);
    {
        wsn_event_info info;
        info.size = sizeof info;
        CHECK_OK(wsn_event_get_info(b.evs[0], &info));
        CHECK_MEM(info.payload, info.payload_len, "[1,2,3,4]", 9);
    }
    wsn_events_free(b.evs, 1);

    /* A caller with a bigger record (a later header): written at its
     * stride, its later fields left alone. */
    {
        struct later {
            wsn_event_record r;
            int64_t more[2];
        } big[2];
        wsn_event *evs[2] = {NULL, NULL};
        memset(big, 0x5a, sizeof big);
        CHECK_WSC(wsc_send_text(w, "{\"type\":\"text\",\"channel\":\"x\",\"message\":\"a\"}"));
        CHECK_WSC(wsc_send_text(w, "{\"type\":\"text\",\"channel\":\"y\",\"message\":\"b\"}"));
        int n = 0;
        while (n < 2) {
            rc = wsn_server_take_events(srv, evs + n, &big[n].r, sizeof big[0], 2 - n,
                                        b.arena, sizeof b.arena, &b.used);
            CHECK(rc >= 0);
            if (rc == 0)
                CHECK(wsn_server_wait(srv, TU_TIMEOUT) == 1);
            else
                CHECK_MEM(b.arena + big[n].r.payload_offset, 1, n == 0 ? "a" : "b", 1);
            n += rc;
        }
        CHECK_EQ(big[1].r.kind, WSN_EVENT_MESSAGE);
        for (int i = 0; i < 2; i++)
            CHECK(big[i].more[0] == 0x5a5a5a5a5a5a5a5a && big[i].more[1] == big[i].more[0]);
        wsn_events_free(evs, 2);
    }

    /* The batch ends after STOPPED; then the stream is closed. */
    wsc_free(w);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    rc = take_batch(srv, &b, BATCH_MAX, sizeof b.arena);
    if (rc == 1 && b.recs[0].kind == WSN_EVENT_DISCONNECT) {
        wsn_events_free(b.evs, 1);
        rc = take_batch(srv, &b, BATCH_MAX, sizeof b.arena);
    } else if (rc == 2) {
        CHECK_EQ(b.recs[0].kind, WSN_EVENT_DISCONNECT);
    }
    CHECK(rc >= 1);
    CHECK_EQ(b.recs[rc - 1].kind, WSN_EVENT_STOPPED);
    CHECK(b.recs[rc - 1].client == NULL);
    wsn_events_free(b.evs, rc);
    CHECK_RC(wsn_server_take_events(srv, b.evs, b.recs, sizeof(wsn_event_record), BATCH_MAX,
                                    b.arena, sizeof b.arena, &b.used),
             WSN_ECLOSED);
    wsn_events_free(NULL, 3);
    wsn_client_release(c);
    wsn_server_free(srv);
}

/* Two threads take from one server at once (any thread may call it): each
 * message reaches exactly one of them, and within each batch in the order
 * sent. */
#define TAKE_THREADS_MESSAGES 400

typedef struct taker {
    wsn_server *srv;
    atomic_int *taken; /* messages taken by both */
    int got[TAKE_THREADS_MESSAGES];
    int ngot;
    int out_of_order; /* batches whose messages were not ascending */
    int failed;       /* an unexpected return code */
} taker;

static void *take_thread(void *arg)
{
    taker *t = arg;
    wsn_event *evs[8];
    wsn_event_record recs[8];
    char arena[512];
    size_t used;
    int idle = 0; /* a lost message ends the wait after ~10 s, not never */
    while (atomic_load(t->taken) < TAKE_THREADS_MESSAGES && idle < 200) {
        int n = wsn_server_take_events(t->srv, evs, recs, sizeof recs[0], 8, arena,
                                       sizeof arena, &used);
        if (n < 0) {
            t->failed = n;
            break;
        }
        if (n == 0) {
            idle++;
            wsn_server_wait(t->srv, 50);
            continue;
        }
        idle = 0;
        int last = -1;
        for (int i = 0; i < n; i++) {
            if (recs[i].kind != WSN_EVENT_MESSAGE || recs[i].payload_offset < 0)
                continue;
            /* Arena strings are not NUL-terminated: bytes past this one
             * may be the rest of an earlier batch. */
            char text[24] = {0};
            int64_t len = recs[i].payload_len;
            memcpy(text, arena + recs[i].payload_offset,
                   (size_t)(len < (int64_t)sizeof text ? len : (int64_t)sizeof text - 1));
            int v = atoi(text);
            if (v <= last)
                t->out_of_order++;
            last = v;
            if (t->ngot < TAKE_THREADS_MESSAGES)
                t->got[t->ngot++] = v;
            atomic_fetch_add(t->taken, 1);
        }
        wsn_events_free(evs, n);
    }
    return NULL;
}

static void test_take_events_two_threads(void)
{
    wsn_server *srv = unlimited_server();
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    atomic_int taken = 0;
    static taker t[2];
    pthread_t tid[2];
    static char seen[TAKE_THREADS_MESSAGES];
    memset(t, 0, sizeof t);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 2; i++) {
        t[i].srv = srv;
        t[i].taken = &taken;
        CHECK(pthread_create(&tid[i], NULL, take_thread, &t[i]) == 0);
    }
    for (int i = 0; i < TAKE_THREADS_MESSAGES; i++) {
        char text[80];
        snprintf(text, sizeof text, "{\"type\":\"json\",\"channel\":\"c\",\"message\":%d}", i);
        CHECK_WSC(wsc_send_text(w, text));
    }
    for (int i = 0; i < 2; i++)
        CHECK(pthread_join(tid[i], NULL) == 0);
    CHECK_EQ(t[0].failed, 0);
    CHECK_EQ(t[1].failed, 0);
    CHECK_EQ(t[0].out_of_order + t[1].out_of_order, 0);
    CHECK_EQ(t[0].ngot + t[1].ngot, TAKE_THREADS_MESSAGES);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < t[i].ngot; j++) {
            int v = t[i].got[j];
            CHECK(v >= 0 && v < TAKE_THREADS_MESSAGES && !seen[v]);
            seen[v] = 1;
        }
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

/* ---- log lines taken like events -------------------------------------- */

static int event_fd_readable(wsn_server *srv, int timeout_ms)
{
    struct pollfd p = {.fd = wsn_server_event_fd(srv), .events = POLLIN};
    int n = poll(&p, 1, timeout_ms);
    CHECK(n >= 0);
    return n == 1;
}

static wsn_server *log_queue_server(int lines)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    CHECK_OK(wsn_options_set_logger(o, NULL, NULL));
    tu_set_int(o, WSN_OPT_LOG_LEVEL, WSN_LOG_DEBUG);
    tu_set_int(o, WSN_OPT_LOG_QUEUE, lines);
    srv = tu_server(o);
    wsn_options_free(o);
    return srv;
}

/* Takes everything the event fd announces until an event of `kind` came
 * and a line containing `text` was logged; returns the lines taken. */
static int drain_until(wsn_server *srv, wsn_event_type kind, const char *text, int *saw_event)
{
    int lines = 0, saw_line = 0;
    int64_t deadline = tu_now_ms() + TU_TIMEOUT;
    *saw_event = 0;
    while (!*saw_event || !saw_line) {
        char buf[512];
        size_t len;
        wsn_log_level level;
        wsn_event *ev;
        int rc;
        CHECK_MSG(tu_now_ms() < deadline, "event %d / line '%s' not seen", kind, text);
        if (!event_fd_readable(srv, 100))
            continue;
        while ((rc = wsn_server_next_log(srv, &level, buf, sizeof buf, &len)) == WSN_OK) {
            CHECK_EQ(strlen(buf), len);
            CHECK(level >= WSN_LOG_ERROR && level <= WSN_LOG_DEBUG);
            if (strstr(buf, text))
                saw_line = 1;
            lines++;
        }
        CHECK_RC(rc, WSN_EAGAIN);
        while ((rc = wsn_server_next_event(srv, &ev)) == WSN_OK) {
            if (wsn_event_kind(ev) == kind)
                *saw_event = 1;
            wsn_event_free(ev);
        }
        CHECK_RC(rc, WSN_EAGAIN);
    }
    return lines;
}

static void test_log_queue_drained(void)
{
    wsn_server *srv = log_queue_server(100);
    char want[64], buf[512], small[8];
    size_t len = 0;
    wsn_log_level level = WSN_LOG_NONE;
    wsc *w;
    int saw;
    /* No event yet, but a line: the event fd says so. */
    CHECK(event_fd_readable(srv, TU_TIMEOUT));
    snprintf(want, sizeof want, "listening on 127.0.0.1:%d", wsn_server_port(srv));
    /* Too small: the length needed, and the line stays queued. */
    CHECK_RC(wsn_server_next_log(srv, &level, small, sizeof small, &len), WSN_ENOSPC);
    CHECK_EQ(len, strlen(want));
    CHECK_RC(wsn_server_next_log(srv, &level, NULL, 0, &len), WSN_ENOSPC);
    CHECK_RC(wsn_server_next_log(srv, NULL, buf, sizeof buf, &len), WSN_EINVAL);
    CHECK_OK(wsn_server_next_log(srv, &level, buf, sizeof buf, &len));
    CHECK_STR(buf, want);
    CHECK_EQ(len, strlen(want));
    CHECK_EQ(level, WSN_LOG_INFO);
    /* The I/O thread logs the next line after start() returned. */
    CHECK(event_fd_readable(srv, TU_TIMEOUT));
    CHECK_OK(wsn_server_next_log(srv, &level, buf, sizeof buf, &len));
    CHECK_STR(buf, "receive buffers in page slots (rx_buffer_pool)");
    CHECK_EQ(level, WSN_LOG_DEBUG);
    CHECK_RC(wsn_server_next_log(srv, &level, buf, sizeof buf, &len), WSN_EAGAIN);
    CHECK(!event_fd_readable(srv, 0));
    w = tu_connect(wsn_server_port(srv));
    CHECK(drain_until(srv, WSN_EVENT_CONNECT, " connected from 127.0.0.1", &saw) >= 1);
    wsc_free(w);
    CHECK(drain_until(srv, WSN_EVENT_DISCONNECT, " disconnected", &saw) >= 1);
    CHECK(!event_fd_readable(srv, 0));
    CHECK_EQ(wsn_server_logs_dropped(srv), 0);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

/* Takes events (leaving log lines queued) until n of `kind` came. */
static void take_events_of(wsn_server *srv, wsn_event_type kind, int n)
{
    int seen = 0;
    int64_t deadline = tu_now_ms() + TU_TIMEOUT;
    while (seen < n) {
        wsn_event *ev;
        /* Queued lines keep the fd readable: bound the loop in time. */
        CHECK_MSG(tu_now_ms() < deadline, "%d of %d events of kind %d", seen, n, kind);
        CHECK(event_fd_readable(srv, TU_TIMEOUT));
        while (wsn_server_next_event(srv, &ev) == WSN_OK) {
            seen += wsn_event_kind(ev) == kind;
            wsn_event_free(ev);
        }
    }
}

static void test_log_queue_overflow(void)
{
    /* Known lines at DEBUG: listening, receive buffers, 3 x connected,
     * 3 x disconnected, shutting down. The queue keeps the first 2. */
    wsn_server *srv = log_queue_server(2);
    wsc *w[3];
    char buf[512];
    size_t len;
    wsn_log_level level;
    int i;
    for (i = 0; i < 3; i++)
        w[i] = tu_connect(wsn_server_port(srv));
    take_events_of(srv, WSN_EVENT_CONNECT, 3);
    for (i = 0; i < 3; i++)
        wsc_free(w[i]);
    take_events_of(srv, WSN_EVENT_DISCONNECT, 3);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    CHECK_OK(wsn_server_next_log(srv, &level, buf, sizeof buf, &len));
    CHECK(strncmp(buf, "listening on ", 13) == 0);
    CHECK_OK(wsn_server_next_log(srv, &level, buf, sizeof buf, &len));
    CHECK_STR(buf, "receive buffers in page slots (rx_buffer_pool)");
    CHECK_RC(wsn_server_next_log(srv, &level, buf, sizeof buf, &len), WSN_EAGAIN);
    CHECK_EQ(wsn_server_logs_dropped(srv), 7);
    wsn_server_free(srv);
}

static const tu_test tests[] = {
    {"dispatch_on_caller_thread", test_dispatch_on_caller_thread},
    {"next_event_fields", test_next_event_fields},
    {"event_fd_readable", test_event_fd_readable},
    {"io_thread_handlers", test_io_thread_handlers},
    {"incoming_envelope", test_incoming_envelope},
    {"incoming_text_type", test_incoming_text_type},
    {"incoming_binary", test_incoming_binary},
    {"invalid_json_error", test_invalid_json_error},
    {"invalid_envelope_errors", test_invalid_envelope_errors},
    {"disconnect_after_last_message", test_disconnect_after_last_message},
    {"stopped_is_last", test_stopped_is_last},
    {"client_ids_unique", test_client_ids_unique},
    {"remote_address", test_remote_address},
    {"handler_publish_reply", test_handler_publish_reply},
    {"event_queue_limit_pauses", test_event_queue_limit_pauses},
    {"event_queue_bytes_pauses", test_event_queue_bytes_pauses},
    {"client_event_share", test_client_event_share},
    {"client_event_share_bytes", test_client_event_share_bytes},
    {"partial_bytes_bound", test_partial_bytes_bound},
    {"raw_incoming", test_raw_incoming},
    {"read_buffer_small", test_read_buffer_small},
    {"send_raw", test_send_raw},
    {"event_info_every_kind", test_event_info_every_kind},
    {"take_events_batch", test_take_events_batch},
    {"take_events_two_threads", test_take_events_two_threads},
    {"log_queue_drained", test_log_queue_drained},
    {"log_queue_overflow", test_log_queue_overflow},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
