/* permessage-deflate (RFC 7692): negotiated only when enabled; messages
 * arrive intact in both directions. The client inflates with zlib. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static wsn_server *deflate_server(int on)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    tu_set_int(o, WSN_OPT_COMPRESSION, on);
    srv = tu_server(o);
    wsn_options_free(o);
    return srv;
}

static wsn_client *accept_deflate(wsn_server *srv, wsc **w)
{
    wsc_opts co;
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(srv);
    co.deflate = 1;
    return tu_accept_opts(srv, &co, w);
}

static char *repetitive(size_t n)
{
    char *s = malloc(n + 1);
    size_t i;
    CHECK(s != NULL);
    for (i = 0; i < n; i++)
        s[i] = "abcdefgh"[(i / 3) % 8];
    s[n] = '\0';
    return s;
}

static void test_deflate_receive(void)
{
    wsn_server *srv = deflate_server(1);
    wsc *w;
    wsn_client *c = accept_deflate(srv, &w);
    char *pad = repetitive(20000), *json, *want;
    wsc_msg m;
    char *s;
    tu_note("negotiated: '%s'", wsc_extensions(w));
    CHECK_MSG(wsc_deflate_active(w), "permessage-deflate not negotiated: '%s'",
              wsc_extensions(w));
    CHECK_OK(wsn_server_subscribe(srv, c, "z"));
    json = tu_strdupf("{\"pad\":\"%s\"}", pad);
    want = tu_strdupf("{\"channel\":\"z\",\"type\":\"json\",\"time\":\"T\","
                      "\"message\":%s}",
                      json);
    CHECK_OK(wsn_server_publish(srv, "z", json));
    tu_recv(w, &m, TU_TIMEOUT);
    CHECK_EQ(m.opcode, WSC_OP_TEXT);
    CHECK_MSG(m.compressed, "a 20 KB repetitive message was sent uncompressed");
    s = tu_strip_time((const char *)m.data);
    CHECK_STR(s, want);
    free(s);
    wsc_msg_clear(&m);
    /* a small one right after (context takeover) */
    CHECK_OK(wsn_server_publish(srv, "z", "1"));
    tu_expect_envelope(w, "{\"channel\":\"z\",\"type\":\"json\",\"time\":\"T\","
                          "\"message\":1}");
    free(pad);
    free(json);
    free(want);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_deflate_send(void)
{
    wsn_server *srv = deflate_server(1);
    wsc *w;
    wsn_client *c = accept_deflate(srv, &w);
    int i;
    char *pad = repetitive(5000);
    CHECK(wsc_deflate_active(w));
    for (i = 0; i < 5; i++) {
        char *msg = tu_strdupf("{\"type\":\"text\",\"channel\":\"z\",\"message\":"
                               "\"%d%s\",\"message_id\":\"m%d\"}",
                               i, i % 2 ? pad : "", i);
        CHECK_WSC(wsc_send_compressed(w, WSC_OP_TEXT, msg, strlen(msg)));
        free(msg);
    }
    /* an uncompressed frame in between is allowed too */
    CHECK_WSC(wsc_send_text(w, "{\"type\":\"json\",\"message\":\"plain\"}"));
    for (i = 0; i < 5; i++) {
        wsn_event *ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
        char *want = tu_strdupf("%d%s", i, i % 2 ? pad : "");
        char mid[8];
        size_t len;
        snprintf(mid, sizeof mid, "m%d", i);
        CHECK_EQ(wsn_event_message_type(ev), WSN_TYPE_TEXT);
        CHECK_STR((const char *)wsn_event_payload(ev, &len), want);
        CHECK_EQ(len, strlen(want));
        CHECK_STR(wsn_event_message_id(ev), mid);
        free(want);
        wsn_event_free(ev);
    }
    {
        wsn_event *ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
        CHECK_STR((const char *)wsn_event_payload(ev, NULL), "\"plain\"");
        wsn_event_free(ev);
    }
    /* the invalid-JSON error reply also goes out right */
    CHECK_WSC(wsc_send_compressed(w, WSC_OP_TEXT, "nope", 4));
    {
        char *want = tu_strdupf("{\"client_id\":\"%s\",\"error\":\"invalid JSON "
                                "format\",\"reply_to\":\"\",\"time\":\"T\","
                                "\"type\":\"error\"}",
                                wsn_client_id(c));
        tu_expect_envelope(w, want);
        free(want);
    }
    free(pad);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_deflate_off_not_negotiated(void)
{
    wsn_server *srv = deflate_server(0);
    wsc *w;
    wsn_client *c = accept_deflate(srv, &w);
    char *pad = repetitive(20000), *json;
    wsc_msg m;
    CHECK_STR(wsc_extensions(w), "");
    CHECK(!wsc_deflate_active(w));
    CHECK_OK(wsn_server_subscribe(srv, c, "z"));
    json = tu_strdupf("\"%s\"", pad);
    CHECK_OK(wsn_server_publish(srv, "z", json));
    tu_recv(w, &m, TU_TIMEOUT); /* RSV1 would be a protocol error here */
    CHECK_EQ(m.compressed, 0);
    CHECK(strstr((const char *)m.data, pad) != NULL);
    wsc_msg_clear(&m);
    free(pad);
    free(json);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_deflate_many_messages(void)
{
    wsn_server *srv = deflate_server(1);
    wsc *w, *plain;
    wsn_client *c = accept_deflate(srv, &w);
    wsn_client *cp = tu_accept(srv, &plain);
    char *pad = repetitive(70000);
    int i;
    static const unsigned char bin[] = {0, 1, 2, 3, 0xff};
    CHECK_OK(wsn_server_subscribe(srv, c, "z"));
    CHECK_OK(wsn_server_subscribe(srv, cp, "z"));
    for (i = 0; i < 200; i++) {
        size_t n = (size_t)((i * 7919) % 70000);
        char *json = tu_strdupf("{\"i\":%d,\"p\":\"%.*s\"}", i, (int)n, pad);
        CHECK_OK(wsn_server_publish(srv, "z", json));
        free(json);
    }
    CHECK_OK(wsn_server_publish_with_type(srv, "z", WSN_TYPE_BINARY, bin, sizeof bin,
                                          NULL, NULL));
    for (i = 0; i < 200; i++) {
        size_t n = (size_t)((i * 7919) % 70000);
        char *want = tu_strdupf("{\"channel\":\"z\",\"type\":\"json\",\"time\":\"T\","
                                "\"message\":{\"i\":%d,\"p\":\"%.*s\"}}",
                                i, (int)n, pad);
        tu_expect_envelope(w, want);     /* with deflate */
        tu_expect_envelope(plain, want); /* and without, from the same publish */
        free(want);
    }
    tu_expect_envelope(w, "{\"channel\":\"z\",\"type\":\"binary\",\"time\":\"T\","
                          "\"message\":\"AAECA/8=\"}");
    tu_expect_envelope(plain, "{\"channel\":\"z\",\"type\":\"binary\",\"time\":\"T\","
                              "\"message\":\"AAECA/8=\"}");
    free(pad);
    wsc_free(w);
    wsc_free(plain);
    wsn_client_release(c);
    wsn_client_release(cp);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static const tu_test tests[] = {
    {"deflate_receive", test_deflate_receive},
    {"deflate_send", test_deflate_send},
    {"deflate_off_not_negotiated", test_deflate_off_not_negotiated},
    {"deflate_many_messages", test_deflate_many_messages},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
