/* Keepalive: the server pings every ping_period and drops a client that
 * does not answer within pong_wait; a client that answers stays. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define PING_MS 200
#define PONG_MS 400

static wsn_server *keepalive_server(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    tu_set_int(o, WSN_OPT_PING_PERIOD, PING_MS);
    tu_set_int(o, WSN_OPT_PONG_WAIT, PONG_MS);
    srv = tu_server(o);
    wsn_options_free(o);
    return srv;
}

/* Reads until the connection ends; returns 1 for a close frame, 0 for EOF.
 * Data messages are a failure. */
static int read_until_dropped(wsc *w, int *close_code)
{
    int i;
    for (i = 0; i < 1000; i++) {
        wsc_msg m;
        int rc = wsc_recv_msg(w, &m, TU_TIMEOUT);
        if (rc == WSC_EOF)
            return 0;
        CHECK_MSG(rc == WSC_OK, "waiting to be dropped: %s", wsc_strerror(rc));
        if (m.opcode == WSC_OP_CLOSE) {
            *close_code = m.close_code;
            wsc_msg_clear(&m);
            rc = wsc_wait_eof(w, TU_TIMEOUT, NULL);
            CHECK_MSG(rc == WSC_EOF, "after close frame: %s", wsc_strerror(rc));
            return 1;
        }
        tu_fail(__FILE__, __LINE__, "unexpected message opcode %d", m.opcode);
    }
    tu_fail(__FILE__, __LINE__, "never dropped");
}

static void test_no_pong_dropped(void)
{
    wsn_server *srv = keepalive_server();
    wsc_opts co;
    wsc *w;
    wsn_client *c;
    int code = 0;
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(srv);
    co.no_auto_pong = 1;
    c = tu_accept_opts(srv, &co, &w);
    if (read_until_dropped(w, &code))
        tu_note("dropped with close frame %d", code);
    else
        tu_note("dropped without close frame");
    CHECK_MSG(wsc_pings_received(w) >= 1, "dropped without being pinged (%d pings)",
              wsc_pings_received(w));
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    CHECK_EQ(wsn_client_is_connected(c), 0);
    CHECK_EQ(wsn_server_connected_clients(srv), 0);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_pong_keeps_alive(void)
{
    wsn_server *srv = keepalive_server();
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    int i;
    /* Six pings at 200 ms intervals span more than two pong_waits. */
    for (i = 0; i < 100 && wsc_pings_received(w) < 6; i++) {
        wsc_msg m;
        int rc = wsc_recv_frame(w, &m, TU_TIMEOUT);
        CHECK_MSG(rc == WSC_OK, "while answering pings (%d so far): %s",
                  wsc_pings_received(w), wsc_strerror(rc));
        CHECK_MSG(m.opcode == WSC_OP_PING, "unexpected opcode %d (close %d)",
                  m.opcode, m.close_code);
        wsc_msg_clear(&m);
    }
    CHECK(wsc_pings_received(w) >= 6);
    CHECK_EQ(wsn_client_is_connected(c), 1);
    CHECK_EQ(wsn_server_connected_clients(srv), 1);
    CHECK_OK(wsn_server_subscribe(srv, c, "c"));
    CHECK_OK(wsn_server_publish(srv, "c", "1"));
    tu_expect_envelope(w, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                          "\"message\":1}");
    wsc_free(w);
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

/* Data frames are not an answer to a ping: a client that keeps sending
 * messages but never pongs is dropped all the same. */
static void test_data_not_keepalive(void)
{
    wsn_server *srv = keepalive_server();
    wsc_opts co;
    wsc *w;
    wsn_client *c;
    int i, dropped = 0;
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(srv);
    co.no_auto_pong = 1;
    c = tu_accept_opts(srv, &co, &w);
    for (i = 0; i < 1000 && !dropped; i++) {
        wsc_msg m;
        int rc = wsc_recv_frame(w, &m, TU_TIMEOUT);
        if (rc == WSC_EOF) {
            dropped = 1;
            break;
        }
        CHECK_MSG(rc == WSC_OK, "%s", wsc_strerror(rc));
        if (m.opcode == WSC_OP_CLOSE)
            dropped = 1;
        else if (m.opcode == WSC_OP_PING)
            /* answer with data instead of a pong */
            rc = wsc_send_text(w, "{\"type\":\"json\",\"message\":0}");
        wsc_msg_clear(&m);
    }
    CHECK(dropped);
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static const tu_test tests[] = {
    {"no_pong_dropped", test_no_pong_dropped},
    {"pong_keeps_alive", test_pong_keeps_alive},
    {"data_not_keepalive", test_data_not_keepalive},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
