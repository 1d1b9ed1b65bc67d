/* permessage-deflate (RFC 7692) is refused: libwebsockets' extension lets
 * one client crash the server or read another's data (docs/api.md,
 * "Compression"; the hostile suite replays each attack). A client that
 * offers it is served without it. The client inflates with zlib, so it
 * would notice a compressed frame. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

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

static void test_compression_refused(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv = (wsn_server *)&srv;
    char err[512] = "";
    int64_t v = -1;
    CHECK_OK(wsn_options_set_int(o, WSN_OPT_COMPRESSION, 1));
    CHECK_OK(wsn_options_get_int(o, WSN_OPT_COMPRESSION, &v));
    CHECK_EQ(v, 1);
    CHECK_EQ(wsn_server_new(o, &srv, err, sizeof err), WSN_EUNSUPPORTED);
    CHECK(srv == NULL);
    tu_note("refused with: %s", err);
    CHECK_MSG(strstr(err, "permessage-deflate") && strstr(err, "crash") &&
                  strstr(err, "another client's data") && strstr(err, "proxy"),
              "the error does not name the defect and the way out: '%s'", err);
    CHECK_STR(wsn_err_name(WSN_EUNSUPPORTED), "WSN_EUNSUPPORTED");
    CHECK_STR(wsn_strerror(WSN_EUNSUPPORTED), "not supported by this build or its libwebsockets");
    /* Off again, the same options make a server. */
    CHECK_OK(wsn_options_set_int(o, WSN_OPT_COMPRESSION, 0));
    CHECK_OK(wsn_server_new(o, &srv, err, sizeof err));
    wsn_server_free(srv);
    wsn_options_free(o);
}

static void test_deflate_offer_declined(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv = tu_server(o);
    wsc_opts co;
    wsc *w;
    wsn_client *c;
    char *pad = repetitive(20000), *json;
    wsc_msg m;
    wsn_event *ev;
    size_t len;
    wsn_options_free(o);
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(srv);
    co.deflate = 1;
    c = tu_accept_opts(srv, &co, &w);
    CHECK_STR(wsc_extensions(w), "");
    CHECK(!wsc_deflate_active(w));
    CHECK_OK(wsn_server_subscribe(srv, c, "z"));
    json = tu_strdupf("\"%s\"", pad);
    CHECK_OK(wsn_server_publish(srv, "z", json));
    tu_recv(w, &m, TU_TIMEOUT); /* RSV1 would be a protocol error here */
    CHECK_EQ(m.compressed, 0);
    CHECK_EQ(m.rsv, 0);
    CHECK(strstr((const char *)m.data, pad) != NULL);
    wsc_msg_clear(&m);
    /* And the other way: an uncompressed 20 KB message arrives whole. */
    free(json);
    json = tu_strdupf("{\"type\":\"json\",\"channel\":\"z\",\"message\":\"%s\"}", pad);
    CHECK_WSC(wsc_send_text(w, json));
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    const char *p = wsn_event_payload(ev, &len);
    CHECK_EQ(len, strlen(pad) + 2);
    CHECK(memcmp(p + 1, pad, strlen(pad)) == 0);
    wsn_event_free(ev);
    free(pad);
    free(json);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static const tu_test tests[] = {
    {"compression_refused", test_compression_refused},
    {"deflate_offer_declined", test_deflate_offer_declined},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
