/* Fan-out: 1,000 clients on one channel each receive one publish exactly
 * once, byte-identical (the frame is encoded once). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define NCLIENTS 1000

static void test_thousand_clients(void)
{
    wsn_server *srv;
    wsc **ws = calloc(NCLIENTS, sizeof *ws);
    wsn_client **cs = calloc(NCLIENTS, sizeof *cs);
    wsc_msg first;
    int i;
    CHECK(ws && cs);
    /* 1,000 client sockets + 1,000 server sockets + the rest. */
    tu_raise_nofile(2 * NCLIENTS + 256);
    srv = tu_server(NULL);
    for (i = 0; i < NCLIENTS; i++) {
        cs[i] = tu_accept(srv, &ws[i]);
        CHECK_OK(wsn_server_subscribe(srv, cs[i], "all"));
    }
    CHECK_EQ(wsn_server_connected_clients(srv), NCLIENTS);
    CHECK_OK(wsn_server_publish_with_type(srv, "all", WSN_TYPE_JSON,
                                          "{\"hello\":\"everyone\"}", 20, "m1",
                                          NULL));
    CHECK_OK(wsn_server_publish(srv, "all", "\"end\""));
    memset(&first, 0, sizeof first);
    for (i = 0; i < NCLIENTS; i++) {
        wsc_msg m;
        tu_recv(ws[i], &m, TU_TIMEOUT);
        CHECK_EQ(m.opcode, WSC_OP_TEXT);
        if (i == 0) {
            char *s = tu_strip_time((const char *)m.data);
            CHECK_STR(s, "{\"channel\":\"all\",\"type\":\"json\",\"time\":\"T\","
                         "\"message\":{\"hello\":\"everyone\"},\"message_id\":"
                         "\"m1\"}");
            free(s);
            first = m;
        } else {
            CHECK_MSG(m.len == first.len && memcmp(m.data, first.data, m.len) == 0,
                      "client %d got different bytes:\n  %s\n  %s", i,
                      (const char *)m.data, (const char *)first.data);
            wsc_msg_clear(&m);
        }
    }
    /* Exactly once: the next message of every client is the end marker. */
    for (i = 0; i < NCLIENTS; i++) {
        wsc_msg m;
        tu_recv(ws[i], &m, TU_TIMEOUT);
        CHECK_MSG(strstr((const char *)m.data, "\"message\":\"end\"") != NULL,
                  "client %d: second message is %.100s", i, (const char *)m.data);
        wsc_msg_clear(&m);
    }
    wsc_msg_clear(&first);
    for (i = 0; i < NCLIENTS; i++) {
        wsc_free(ws[i]);
        wsn_client_release(cs[i]);
    }
    TU_WAIT_FOR(wsn_server_connected_clients(srv) == 0, 30000);
    CHECK_OK(wsn_server_shutdown(srv, 10000));
    wsn_server_free(srv);
    free(ws);
    free(cs);
}

static const tu_test tests[] = {
    {"thousand_clients", test_thousand_clients},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
