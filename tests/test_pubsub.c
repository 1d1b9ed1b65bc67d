/* Pub/sub: envelopes byte for byte, subscribe/unsubscribe semantics,
 * publish_to_client, errors. */
#define _GNU_SOURCE
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

typedef struct fixture {
    wsn_server *srv;
    wsc *ws;
    wsn_client *cl;
} fixture;

static fixture setup(const wsn_options *o)
{
    fixture f;
    f.srv = tu_server(o);
    f.cl = tu_accept(f.srv, &f.ws);
    return f;
}

/* Expects envelopes of channel "c" whose messages are {"i":first} onwards. */
static void expect_numbered(wsc *ws, int first, int count)
{
    for (int i = first; i < first + count; i++) {
        char *want = tu_strdupf("{\"channel\":\"c\",\"type\":\"json\",\"time\":"
                                "\"T\",\"message\":{\"i\":%d}}",
                                i);
        tu_expect_envelope(ws, want);
        free(want);
    }
}

static void teardown(fixture *f)
{
    wsc_free(f->ws);
    wsn_client_release(f->cl);
    CHECK_OK(wsn_server_shutdown(f->srv, 5000));
    wsn_server_free(f->srv);
}

static void test_envelope_json(void)
{
    fixture f = setup(NULL);
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "c"));
    CHECK_OK(wsn_server_publish(f.srv, "c", "{\"a\":1}"));
    tu_expect_envelope(
        f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
              "\"message\":{\"a\":1}}");
    CHECK_OK(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_JSON,
                                          "{\"a\":1}", 7, NULL, NULL));
    tu_expect_envelope(
        f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
              "\"message\":{\"a\":1}}");
    /* "" ids are omitted too. */
    CHECK_OK(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_JSON,
                                          "{\"a\":1}", 7, "", ""));
    tu_expect_envelope(
        f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
              "\"message\":{\"a\":1}}");
    teardown(&f);
}

static void test_envelope_ids(void)
{
    fixture f = setup(NULL);
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "c"));
    CHECK_OK(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_JSON,
                                          "{\"a\":1}", 7, "m1", "r1"));
    tu_expect_envelope(
        f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
              "\"message\":{\"a\":1},\"message_id\":\"m1\",\"reply_to_id\":"
              "\"r1\"}");
    CHECK_OK(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_JSON, "2", 1,
                                          "m2", NULL));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":"
                             "\"T\",\"message\":2,\"message_id\":\"m2\"}");
    CHECK_OK(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_JSON, "3", 1,
                                          NULL, "r3"));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":"
                             "\"T\",\"message\":3,\"reply_to_id\":\"r3\"}");
    /* ids that need escaping */
    CHECK_OK(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_JSON, "4", 1,
                                          "a\"b", "c\\d"));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":"
                             "\"T\",\"message\":4,\"message_id\":\"a\\\"b\","
                             "\"reply_to_id\":\"c\\\\d\"}");
    teardown(&f);
}

static void test_envelope_text(void)
{
    fixture f = setup(NULL);
    const char *txt = "h\xc3\xa9llo \"w\"\n\t\\";
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "c"));
    CHECK_OK(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_TEXT, txt,
                                          strlen(txt), "m1", "r1"));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"text\",\"time\":"
                             "\"T\",\"message\":\"h\xc3\xa9llo \\\"w\\\"\\n"
                             "\\t\\\\\",\"message_id\":\"m1\",\"reply_to_id\":"
                             "\"r1\"}");
    /* Text that looks like JSON stays a string. */
    CHECK_OK(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_TEXT, "{}", 2,
                                          NULL, NULL));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"text\",\"time\":"
                             "\"T\",\"message\":\"{}\"}");
    /* Empty text. */
    CHECK_OK(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_TEXT, "", 0,
                                          NULL, NULL));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"text\",\"time\":"
                             "\"T\",\"message\":\"\"}");
    /* Invalid UTF-8 text is refused. */
    CHECK_RC(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_TEXT,
                                          "a\xff", 2, NULL, NULL),
             WSN_EINVAL);
    teardown(&f);
}

static void test_envelope_binary(void)
{
    fixture f = setup(NULL);
    static const unsigned char bin[] = {0x00, 0xfb, 0xff, 0xbf, 0x10};
    static const unsigned char bin2[] = {0xfb, 0xef};
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "c"));
    CHECK_OK(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_BINARY, bin,
                                          sizeof bin, "m1", NULL));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"binary\",\"time\":"
                             "\"T\",\"message\":\"APv/vxA=\",\"message_id\":"
                             "\"m1\"}");
    CHECK_OK(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_BINARY, bin2,
                                          sizeof bin2, NULL, NULL));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"binary\",\"time\":"
                             "\"T\",\"message\":\"++8=\"}");
    CHECK_OK(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_BINARY, "", 0,
                                          NULL, NULL));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"binary\",\"time\":"
                             "\"T\",\"message\":\"\"}");
    /* A larger payload: compare with lws's base64. */
    {
        unsigned char big[3001];
        char *b64, *want;
        size_t i;
        for (i = 0; i < sizeof big; i++)
            big[i] = (unsigned char)(i * 7 + 3);
        b64 = tu_b64(big, sizeof big);
        want = tu_strdupf("{\"channel\":\"c\",\"type\":\"binary\",\"time\":"
                          "\"T\",\"message\":\"%s\"}",
                          b64);
        CHECK_OK(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_BINARY, big,
                                              sizeof big, NULL, NULL));
        tu_expect_envelope(f.ws, want);
        free(b64);
        free(want);
    }
    teardown(&f);
}

static void test_envelope_json_values(void)
{
    static const char *vals[] = {"1", "-2.5", "\"s\"", "[1,2]", "null",
                                 "true", "false", "{}", "[]",
                                 "{\"a\":{\"b\":[1,{\"c\":null}]}}"};
    fixture f = setup(NULL);
    size_t i;
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "c"));
    for (i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char *want = tu_strdupf("{\"channel\":\"c\",\"type\":\"json\",\"time\":"
                                "\"T\",\"message\":%s}",
                                vals[i]);
        CHECK_OK(wsn_server_publish(f.srv, "c", vals[i]));
        tu_expect_envelope(f.ws, want);
        free(want);
    }
    teardown(&f);
}

static void test_subscribe_idempotent(void)
{
    fixture f = setup(NULL);
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "c"));
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "c"));
    CHECK_OK(wsn_server_publish(f.srv, "c", "1"));
    CHECK_OK(wsn_server_publish(f.srv, "c", "2"));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":"
                             "\"T\",\"message\":1}");
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":"
                             "\"T\",\"message\":2}");
    /* One unsubscribe undoes the (single) membership. */
    CHECK_OK(wsn_server_unsubscribe(f.srv, f.cl, "c"));
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "end"));
    CHECK_OK(wsn_server_publish(f.srv, "c", "3"));
    CHECK_OK(wsn_server_publish(f.srv, "end", "4"));
    tu_expect_envelope(f.ws, "{\"channel\":\"end\",\"type\":\"json\",\"time\":"
                             "\"T\",\"message\":4}");
    teardown(&f);
}

static void test_unsubscribe_non_member(void)
{
    fixture f = setup(NULL);
    CHECK_OK(wsn_server_unsubscribe(f.srv, f.cl, "never"));
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "c"));
    CHECK_OK(wsn_server_unsubscribe(f.srv, f.cl, "other"));
    CHECK_OK(wsn_server_publish(f.srv, "c", "1"));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":"
                             "\"T\",\"message\":1}");
    CHECK_RC(wsn_server_unsubscribe(f.srv, f.cl, ""), WSN_EINVAL);
    teardown(&f);
}

static void test_unsubscribe_stops(void)
{
    fixture f = setup(NULL);
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "a"));
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "b"));
    CHECK_OK(wsn_server_publish(f.srv, "a", "1"));
    tu_expect_envelope(f.ws, "{\"channel\":\"a\",\"type\":\"json\",\"time\":"
                             "\"T\",\"message\":1}");
    CHECK_OK(wsn_server_unsubscribe(f.srv, f.cl, "a"));
    CHECK_OK(wsn_server_publish(f.srv, "a", "2"));
    CHECK_OK(wsn_server_publish(f.srv, "b", "3"));
    tu_expect_envelope(f.ws, "{\"channel\":\"b\",\"type\":\"json\",\"time\":"
                             "\"T\",\"message\":3}");
    teardown(&f);
}

static void test_publish_to_client(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc *w1, *w2;
    wsn_client *c1 = tu_accept(srv, &w1);
    wsn_client *c2 = tu_accept(srv, &w2);
    CHECK_OK(wsn_server_subscribe(srv, c1, "c"));
    CHECK_OK(wsn_server_subscribe(srv, c2, "c"));
    CHECK_OK(wsn_server_publish_to_client(srv, c1, "c", WSN_TYPE_JSON,
                                          "{\"only\":1}", 10, "m1", "r1"));
    CHECK_OK(wsn_server_publish_to_client(srv, c2, "", WSN_TYPE_TEXT, "hi",
                                          2, NULL, NULL));
    /* A client need not be subscribed to anything. */
    CHECK_OK(wsn_server_unsubscribe(srv, c1, "c"));
    CHECK_OK(wsn_server_publish_to_client(srv, c1, "x", WSN_TYPE_JSON, "5", 1,
                                          NULL, NULL));
    CHECK_OK(wsn_server_publish(srv, "c", "\"end\""));
    tu_expect_envelope(w1, "{\"channel\":\"c\",\"type\":\"json\",\"time\":"
                           "\"T\",\"message\":{\"only\":1},\"message_id\":"
                           "\"m1\",\"reply_to_id\":\"r1\"}");
    tu_expect_envelope(w1, "{\"channel\":\"x\",\"type\":\"json\",\"time\":"
                           "\"T\",\"message\":5}");
    tu_expect_envelope(w2, "{\"channel\":\"\",\"type\":\"text\",\"time\":"
                           "\"T\",\"message\":\"hi\"}");
    tu_expect_envelope(w2, "{\"channel\":\"c\",\"type\":\"json\",\"time\":"
                           "\"T\",\"message\":\"end\"}");
    CHECK_RC(wsn_server_publish_to_client(srv, c1, "c", WSN_TYPE_JSON, "{", 1,
                                          NULL, NULL),
             WSN_EJSON);
    wsc_free(w1);
    wsc_free(w2);
    wsn_client_release(c1);
    wsn_client_release(c2);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_publish_errors(void)
{
    fixture f = setup(NULL);
    CHECK_RC(wsn_server_publish(f.srv, "", "1"), WSN_EINVAL);
    CHECK_RC(wsn_server_subscribe(f.srv, f.cl, ""), WSN_EINVAL);
    CHECK_RC(wsn_server_publish(f.srv, "c", "{"), WSN_EJSON);
    CHECK_RC(wsn_server_publish(f.srv, "c", ""), WSN_EJSON);
    CHECK_RC(wsn_server_publish(f.srv, "c", "{\"a\":1} x"), WSN_EJSON);
    CHECK_RC(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_JSON, "[1,",
                                          3, NULL, NULL),
             WSN_EJSON);
    /* len is honoured: "[1]" out of "[1]xyz". */
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "c"));
    CHECK_OK(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_JSON, "[1]xyz",
                                          3, NULL, NULL));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":"
                             "\"T\",\"message\":[1]}");
    CHECK_RC(wsn_server_publish_to_client(f.srv, f.cl, "c", WSN_TYPE_TEXT,
                                          "\xc3", 1, NULL, NULL),
             WSN_EINVAL);
    /* ids must be UTF-8 */
    CHECK_RC(wsn_server_publish_with_type(f.srv, "c", WSN_TYPE_JSON, "1", 1,
                                          "\xff", NULL),
             WSN_EINVAL);
    /* Nothing from the refused calls reached the client. */
    CHECK_OK(wsn_server_publish(f.srv, "c", "\"end\""));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":"
                             "\"T\",\"message\":\"end\"}");
    teardown(&f);
}

static void test_nobody_subscribed(void)
{
    wsn_server *srv = tu_server(NULL);
    CHECK_OK(wsn_server_publish(srv, "nobody", "{\"a\":1}"));
    CHECK_OK(wsn_server_publish_with_type(srv, "nobody", WSN_TYPE_TEXT, "x",
                                          1, NULL, NULL));
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_channel_limits(void)
{
    wsn_options *o = tu_opts();
    fixture f;
    char name[300];
    tu_set_int(o, WSN_OPT_MAX_CHANNEL_NAME, 16);
    f = setup(o);
    memset(name, 'n', 16);
    name[16] = '\0';
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, name));
    CHECK_OK(wsn_server_publish(f.srv, name, "1"));
    name[16] = 'n';
    name[17] = '\0';
    CHECK_RC(wsn_server_subscribe(f.srv, f.cl, name), WSN_ELIMIT);
    CHECK_RC(wsn_server_publish(f.srv, name, "1"), WSN_ELIMIT);
    CHECK_RC(wsn_server_subscribe(f.srv, f.cl, "bad\xff"), WSN_EINVAL);
    CHECK_RC(wsn_server_publish(f.srv, "bad\xc3", "1"), WSN_EINVAL);
    /* Channel names are escaped in the envelope. */
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "q\"\xc3\xa9"));
    CHECK_OK(wsn_server_publish(f.srv, "q\"\xc3\xa9", "2"));
    name[16] = '\0';
    {
        char *want = tu_strdupf("{\"channel\":\"%s\",\"type\":\"json\","
                                "\"time\":\"T\",\"message\":1}",
                                name);
        tu_expect_envelope(f.ws, want);
        free(want);
    }
    tu_expect_envelope(f.ws, "{\"channel\":\"q\\\"\xc3\xa9\",\"type\":\"json\","
                             "\"time\":\"T\",\"message\":2}");
    teardown(&f);
    wsn_options_free(o);
}

static void test_multiple_channels(void)
{
    fixture f = setup(NULL);
    int i;
    for (i = 0; i < 5; i++) {
        char ch[8];
        snprintf(ch, sizeof ch, "ch%d", i);
        CHECK_OK(wsn_server_subscribe(f.srv, f.cl, ch));
    }
    for (i = 4; i >= 0; i--) {
        char ch[8], v[8];
        snprintf(ch, sizeof ch, "ch%d", i);
        snprintf(v, sizeof v, "%d", i);
        CHECK_OK(wsn_server_publish(f.srv, ch, v));
    }
    for (i = 4; i >= 0; i--) {
        char *want = tu_strdupf("{\"channel\":\"ch%d\",\"type\":\"json\","
                                "\"time\":\"T\",\"message\":%d}",
                                i, i);
        tu_expect_envelope(f.ws, want);
        free(want);
    }
    teardown(&f);
}

static void test_order_preserved(void)
{
    fixture f = setup(NULL);
    int i;
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "c"));
    for (i = 0; i < 1000; i++) {
        char v[32];
        snprintf(v, sizeof v, "{\"i\":%d}", i);
        if (i % 3 == 0)
            CHECK_OK(wsn_server_publish(f.srv, "c", v));
        else
            CHECK_OK(wsn_server_publish_to_client(
                f.srv, f.cl, "c", WSN_TYPE_JSON, v, strlen(v), NULL, NULL));
    }
    expect_numbered(f.ws, 0, 1000);
    teardown(&f);
}

/* With coalesce_window on, a lone publish and a burst both arrive, whole and
 * in order: the delayed flush always happens. */
static void test_coalesce_window_delivers(void)
{
    wsn_options *o = tu_opts();
    CHECK_OK(wsn_options_set_int(o, WSN_OPT_COALESCE_WINDOW, 50));
    fixture f = setup(o);
    wsn_options_free(o);
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "c"));
    CHECK_OK(wsn_server_publish(f.srv, "c", "\"lone\""));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                             "\"message\":\"lone\"}");
    for (int i = 0; i < 500; i++) {
        char v[32];
        snprintf(v, sizeof v, "{\"i\":%d}", i);
        CHECK_OK(wsn_server_publish(f.srv, "c", v));
    }
    expect_numbered(f.ws, 0, 500);
    teardown(&f);
}

/* The I/O thread delivers publishes in a row to one channel together: a
 * client in two channels must still get every message in publish order,
 * across runs longer than one delivery walk (64), and a client in one
 * channel exactly that channel's messages. */
static void test_publish_runs_keep_order(void)
{
    fixture f = setup(NULL);
    wsc *only_a;
    wsn_client *ca = tu_accept(f.srv, &only_a);
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "a"));
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "b"));
    CHECK_OK(wsn_server_subscribe(f.srv, ca, "a"));
    /* runs of 1, 2, 3, ... then one of 150 */
    char order[600];
    int n = 0;
    for (int run = 1; n + run < 400; run++)
        for (int i = 0; i < run; i++)
            order[n++] = run % 2 ? 'a' : 'b';
    for (int i = 0; i < 150; i++)
        order[n++] = 'a';
    order[n++] = 'b';
    for (int i = 0; i < n; i++) {
        char channel[2] = {order[i], 0}, v[16];
        snprintf(v, sizeof v, "%d", i);
        CHECK_OK(wsn_server_publish(f.srv, channel, v));
    }
    for (int i = 0; i < n; i++) {
        char *want = tu_strdupf("{\"channel\":\"%c\",\"type\":\"json\",\"time\":\"T\","
                                "\"message\":%d}",
                                order[i], i);
        tu_expect_envelope(f.ws, want);
        if (order[i] == 'a')
            tu_expect_envelope(only_a, want);
        free(want);
    }
    wsc_free(only_a);
    wsn_client_release(ca);
    teardown(&f);
}

/* Whitespace and key order in published JSON: the value must survive (we
 * do not pin whether it is re-serialised). */
static void test_json_whitespace(void)
{
    const char *in = "{ \"b\" : 1 ,\n \"a\" : [ 1 , 2 ], \"u\": \"\\u00e9\" }";
    fixture f = setup(NULL);
    wsc_msg m;
    json_t *env, *want, *msg;
    json_error_t err;
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "c"));
    CHECK_OK(wsn_server_publish(f.srv, "c", in));
    tu_recv(f.ws, &m, TU_TIMEOUT);
    CHECK_EQ(m.opcode, WSC_OP_TEXT);
    env = json_loadb((const char *)m.data, m.len, 0, &err);
    CHECK_MSG(env != NULL, "envelope not JSON: %s", (const char *)m.data);
    want = json_loads(in, 0, &err);
    CHECK(want != NULL);
    msg = json_object_get(env, "message");
    CHECK_MSG(msg && json_equal(msg, want), "message changed: %s",
              (const char *)m.data);
    tu_note("published with whitespace, received: %s", (const char *)m.data);
    json_decref(env);
    json_decref(want);
    wsc_msg_clear(&m);
    teardown(&f);
}

static void test_client_list_and_count(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc *w[3];
    wsn_client *c[3];
    wsn_strlist *l = NULL;
    int i;
    size_t j;
    CHECK_EQ(wsn_server_connected_clients(srv), 0);
    CHECK_OK(wsn_server_client_list(srv, &l));
    CHECK_EQ(wsn_strlist_count(l), 0);
    wsn_strlist_free(l);
    for (i = 0; i < 3; i++)
        c[i] = tu_accept(srv, &w[i]);
    CHECK_EQ(wsn_server_connected_clients(srv), 3);
    CHECK_OK(wsn_server_client_list(srv, &l));
    CHECK_EQ(wsn_strlist_count(l), 3);
    for (i = 0; i < 3; i++) {
        int found = 0;
        for (j = 0; j < wsn_strlist_count(l); j++)
            if (strcmp(wsn_strlist_get(l, j), wsn_client_id(c[i])) == 0)
                found++;
        CHECK_MSG(found == 1, "%s listed %d times", wsn_client_id(c[i]), found);
    }
    CHECK(wsn_strlist_get(l, 3) == NULL);
    wsc_free(w[1]);
    tu_expect_disconnect_of(srv, wsn_client_id(c[1]), TU_TIMEOUT);
    CHECK_EQ(wsn_server_connected_clients(srv), 2);
    /* The old snapshot is unchanged. */
    CHECK_EQ(wsn_strlist_count(l), 3);
    wsn_strlist_free(l);
    CHECK_OK(wsn_server_client_list(srv, &l));
    CHECK_EQ(wsn_strlist_count(l), 2);
    for (j = 0; j < 2; j++)
        CHECK(strcmp(wsn_strlist_get(l, j), wsn_client_id(c[1])) != 0);
    wsn_strlist_free(l);
    wsc_free(w[0]);
    wsc_free(w[2]);
    for (i = 0; i < 3; i++)
        wsn_client_release(c[i]);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    CHECK_EQ(wsn_server_connected_clients(srv), 0);
    wsn_server_free(srv);
}

static int have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0), ok;
    struct sockaddr_in6 a;
    if (fd < 0)
        return 0;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void test_ipv6(void)
{
    wsn_options *o;
    wsn_server *srv;
    wsc *w;
    wsn_client *c;
    wsc_opts co;
    if (!have_ipv6()) {
        tu_note("no IPv6 loopback here: skipped");
        return;
    }
    o = tu_opts();
    tu_set_str(o, WSN_OPT_HOST, "::1");
    srv = tu_server(o);
    memset(&co, 0, sizeof co);
    co.addr = "::1";
    co.port = wsn_server_port(srv);
    c = tu_accept_opts(srv, &co, &w);
    CHECK_STR(wsn_client_remote_address(c), "::1");
    CHECK_OK(wsn_server_subscribe(srv, c, "v6"));
    CHECK_OK(wsn_server_publish(srv, "v6", "6"));
    tu_expect_envelope(w, "{\"channel\":\"v6\",\"type\":\"json\",\"time\":"
                          "\"T\",\"message\":6}");
    /* Same-origin check with a bracketed host. */
    {
        char origin[64];
        wsc *w2;
        snprintf(origin, sizeof origin, "http://[::1]:%d", co.port);
        co.origin = origin;
        w2 = tu_connect_opts(&co);
        wsc_free(w2);
    }
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    wsn_options_free(o);
}

static void test_subprotocol_json(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc_opts co;
    wsc *w;
    wsn_client *c;
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(srv);
    co.protocol = "wsnotify.json";
    c = tu_accept_opts(srv, &co, &w);
    CHECK_STR(wsc_subprotocol(w), "wsnotify.json");
    CHECK_STR(wsn_client_subprotocol(c), "wsnotify.json");
    CHECK_OK(wsn_server_subscribe(srv, c, "c"));
    CHECK_OK(wsn_server_publish(srv, "c", "1"));
    tu_expect_envelope(w, "{\"channel\":\"c\",\"type\":\"json\",\"time\":"
                          "\"T\",\"message\":1}");
    wsc_free(w);
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    wsn_client_release(c);
    /* No protocol offered: none in the answer. */
    co.protocol = NULL;
    c = tu_accept_opts(srv, &co, &w);
    CHECK_STR(wsc_subprotocol(w), "");
    CHECK_STR(wsn_client_subprotocol(c), "");
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static const tu_test tests[] = {
    {"envelope_json", test_envelope_json},
    {"envelope_ids", test_envelope_ids},
    {"envelope_text", test_envelope_text},
    {"envelope_binary", test_envelope_binary},
    {"envelope_json_values", test_envelope_json_values},
    {"subscribe_idempotent", test_subscribe_idempotent},
    {"unsubscribe_non_member", test_unsubscribe_non_member},
    {"unsubscribe_stops", test_unsubscribe_stops},
    {"publish_to_client", test_publish_to_client},
    {"publish_errors", test_publish_errors},
    {"nobody_subscribed", test_nobody_subscribed},
    {"channel_limits", test_channel_limits},
    {"multiple_channels", test_multiple_channels},
    {"order_preserved", test_order_preserved},
    {"coalesce_window_delivers", test_coalesce_window_delivers},
    {"json_whitespace", test_json_whitespace},
    {"publish_runs_keep_order", test_publish_runs_keep_order},
    {"client_list_and_count", test_client_list_and_count},
    {"ipv6", test_ipv6},
    {"subprotocol_json", test_subprotocol_json},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
