/* Memory a connection holds while it is quiet (core/rx_buffers.c,
 * core/rx_quiet.c). lws hands data frames to us straight from its read
 * buffer, but writes control frame payloads (a keepalive pong, a ping) into
 * the connection's own receive buffer; those pages are given back once the
 * client has been quiet for a few seconds, and never while a frame is still
 * arriving. Measured as this process's anonymous RSS, since the server runs
 * in it; each check looks for a drop several times larger than anything
 * else in the test allocates or frees meanwhile. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* A pong of 125 bytes (the most a control frame holds) writes the first
 * page of a client's receive buffer: CLIENTS pages in all. */
#define CLIENTS 256
#define PAGE_KIB 4
/* The tick that releases comes 2-4 s after a client's last frame. */
#define RELEASE_WAIT_MS 15000

static long rss_anon_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f != NULL);
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "RssAnon: %ld kB", &kib) == 1)
            break;
    fclose(f);
    CHECK(kib >= 0);
    return kib;
}

/* Waits until anonymous RSS falls at least drop_kib below the highest it
 * has been since from_kib was read. The release is one sudden drop; under
 * the sanitizers RSS otherwise creeps up (their allocators reuse little),
 * so a drop from the first reading alone could be hidden. */
static void expect_rss_drop(long from_kib, long drop_kib)
{
    int64_t deadline = tu_now_ms() + RELEASE_WAIT_MS;
    long now, highest = from_kib;
    while ((now = rss_anon_kib()) > highest - drop_kib) {
        if (now > highest)
            highest = now;
        CHECK_MSG(tu_now_ms() < deadline,
                  "RssAnon %ld KiB, at most %ld KiB, after %d ms: expected a drop of %ld KiB",
                  now, highest, RELEASE_WAIT_MS, drop_kib);
        tu_sleep_ms(20);
    }
}

static void expect_message(wsn_server *srv, const char *payload)
{
    wsn_event *ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    size_t len;
    CHECK_STR(wsn_event_payload(ev, &len), payload);
    wsn_event_free(ev);
}

/* Every client sends a pong, then a message: once the message is in, so is
 * the pong before it on the same connection. */
static void pong_then_message(wsn_server *srv, wsc **w, int n, int round)
{
    unsigned char pong[125];
    memset(pong, 'k', sizeof pong);
    char text[64], payload[16];
    snprintf(text, sizeof text, "{\"channel\":\"c\",\"message\":%d}", round);
    snprintf(payload, sizeof payload, "%d", round);
    for (int i = 0; i < n; i++) {
        CHECK_WSC(wsc_send_pong(w[i], pong, sizeof pong));
        CHECK_WSC(wsc_send_text(w[i], text));
    }
    for (int i = 0; i < n; i++)
        expect_message(srv, payload);
}

/* Quiet clients' buffers are given back, twice over, and the clients go
 * on working (released pages come back as zeros when lws writes again). */
static void test_quiet_buffers_released(void)
{
    tu_raise_nofile(4 * CLIENTS);
    wsn_server *srv = tu_server(NULL);
    wsc *w[CLIENTS];
    wsn_client *c[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        c[i] = tu_accept(srv, &w[i]);
    for (int round = 1; round <= 2; round++) {
        pong_then_message(srv, w, CLIENTS, round);
        expect_rss_drop(rss_anon_kib(), CLIENTS * PAGE_KIB * 3 / 4);
    }
    for (int i = 0; i < CLIENTS; i++)
        CHECK_OK(wsn_server_subscribe(srv, c[i], "after"));
    CHECK_OK(wsn_server_publish(srv, "after", "\"still here\""));
    for (int i = 0; i < CLIENTS; i++) {
        wsc_msg m = {0};
        tu_recv(w[i], &m, TU_TIMEOUT);
        CHECK(strstr((const char *)m.data, "\"message\":\"still here\"") != NULL);
        wsc_msg_clear(&m);
    }
    for (int i = 0; i < CLIENTS; i++) {
        wsc_free(w[i]);
        wsn_client_release(c[i]);
    }
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

/* A masked frame: header (16-bit length when over 125) and payload. */
static size_t masked_frame(unsigned char *out, unsigned char byte0, const void *payload,
                           size_t len)
{
    static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = 0;
    out[h++] = byte0;
    if (len <= 125) {
        out[h++] = (unsigned char)(0x80 | len);
    } else {
        out[h++] = 0x80 | 126;
        out[h++] = (unsigned char)(len >> 8);
        out[h++] = (unsigned char)(len & 0xff);
    }
    memcpy(out + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        out[h + i] = ((const unsigned char *)payload)[i] ^ mask[i & 3];
    return h + len;
}

/* Frames cut in two, with a pause of several release ticks between the
 * parts (the other clients' buffers going back shows those ticks have
 * passed): what lws kept of the first part must still be there. */
static void test_partial_frames_survive(void)
{
    tu_raise_nofile(4 * CLIENTS);
    wsn_server *srv = tu_server(NULL);
    wsc *w[CLIENTS], *pinger, *writer;
    wsn_client *c[CLIENTS];
    wsn_client *pinger_client = tu_accept(srv, &pinger);
    wsn_client *writer_client = tu_accept(srv, &writer);
    for (int i = 0; i < CLIENTS; i++)
        c[i] = tu_accept(srv, &w[i]);

    /* A ping's payload waits in the receive buffer for its last bytes; the
     * pong before it puts the client among those considered. */
    char ping_payload[126];
    for (int i = 0; i < 125; i++)
        ping_payload[i] = (char)('A' + i % 26);
    ping_payload[125] = 0;
    unsigned char ping[4 + 4 + 125];
    size_t ping_len = masked_frame(ping, 0x89, ping_payload, 125);
    pong_then_message(srv, &pinger, 1, 0);
    CHECK_WSC(wsc_send_bytes(pinger, ping, 70));

    /* A data message of 40,000 bytes, three quarters of it now. */
    enum { BIG = 40000 };
    static const char head[] = "{\"channel\":\"c\",\"message\":\"";
    char *text = malloc(BIG + 1);
    CHECK(text != NULL);
    memcpy(text, head, sizeof head - 1);
    for (size_t i = sizeof head - 1; i < BIG - 2; i++)
        text[i] = (char)('a' + i % 26);
    memcpy(text + BIG - 2, "\"}", 3);
    unsigned char *frame = malloc(8 + BIG);
    CHECK(frame != NULL);
    size_t frame_len = masked_frame(frame, 0x81, text, BIG);
    size_t cut = frame_len * 3 / 4;
    CHECK_WSC(wsc_send_bytes(writer, frame, cut));

    pong_then_message(srv, w, CLIENTS, 1);
    expect_rss_drop(rss_anon_kib(), CLIENTS * PAGE_KIB * 3 / 4);

    CHECK_WSC(wsc_send_bytes(pinger, ping + 70, ping_len - 70));
    wsc_msg m = {0};
    int64_t deadline = tu_now_ms() + TU_TIMEOUT;
    do { /* the pong answering it (keepalive pings may come first) */
        wsc_msg_clear(&m);
        CHECK_WSC(wsc_recv_frame(pinger, &m, (int)(deadline - tu_now_ms())));
    } while (m.opcode != WSC_OP_PONG);
    CHECK_MEM(m.data, m.len, ping_payload, (size_t)125);
    wsc_msg_clear(&m);

    CHECK_WSC(wsc_send_bytes(writer, frame + cut, frame_len - cut));
    wsn_event *ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    size_t len;
    const char *p = wsn_event_payload(ev, &len);
    CHECK_MEM(p, len, text + sizeof head - 2, (size_t)BIG - (sizeof head - 2) - 1);
    wsn_event_free(ev);

    free(frame);
    free(text);
    for (int i = 0; i < CLIENTS; i++) {
        wsc_free(w[i]);
        wsn_client_release(c[i]);
    }
    wsc_free(pinger);
    wsc_free(writer);
    wsn_client_release(pinger_client);
    wsn_client_release(writer_client);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

/* The sanitizers' allocators keep freed memory (quarantine), so the level
 * RSS returns to after clients leave means nothing there (the soak skips
 * its RSS check in those builds for the same reason). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RSS_LEVEL_MEANINGFUL 0
#else
#define RSS_LEVEL_MEANINGFUL 1
#endif

/* RssAnon once it has not changed for half a second (the server gives
 * memory back 100 ms after a crowd has left). */
static long settled_rss_kib(void)
{
    int64_t deadline = tu_now_ms() + RELEASE_WAIT_MS;
    long last = rss_anon_kib();
    for (int same = 0; same < 25 && tu_now_ms() < deadline; tu_sleep_ms(20)) {
        long now = rss_anon_kib();
        same = now == last ? same + 1 : 0;
        last = now;
    }
    return last;
}

/* CLIENTS clients connect, send a message (and a pong before it if
 * asked), and leave before any release tick. */
static void crowd_comes_and_goes(wsn_server *srv, int pong)
{
    wsc *w[CLIENTS];
    wsn_client *c[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        c[i] = tu_accept(srv, &w[i]);
    if (pong) {
        pong_then_message(srv, w, CLIENTS, 1);
    } else {
        for (int i = 0; i < CLIENTS; i++)
            CHECK_WSC(wsc_send_text(w[i], "{\"channel\":\"c\",\"message\":0}"));
        for (int i = 0; i < CLIENTS; i++)
            expect_message(srv, "0");
    }
    for (int i = 0; i < CLIENTS; i++)
        wsc_free(w[i]);
    for (int gone = 0; gone < CLIENTS;) { /* in whatever order they close */
        wsn_event *ev = tu_event(srv, TU_TIMEOUT);
        gone += wsn_event_kind(ev) == WSN_EVENT_DISCONNECT;
        wsn_event_free(ev);
    }
    for (int i = 0; i < CLIENTS; i++)
        wsn_client_release(c[i]);
}

/* Clients that leave before the release tick leave their slots' pages
 * behind; once the crowd is gone the server gives them back with the rest
 * of its memory. A first crowd that writes no slot (no pongs) grows the
 * heap to its working size, so the second, which writes one page of each
 * slot, can only leave those pages above it. */
static void test_left_buffers_trimmed(void)
{
    tu_raise_nofile(4 * CLIENTS);
    wsn_server *srv = tu_server(NULL);
    crowd_comes_and_goes(srv, 0);
    long baseline = settled_rss_kib();
    crowd_comes_and_goes(srv, 1);
    if (RSS_LEVEL_MEANINGFUL) {
        /* Their pages alone are CLIENTS * PAGE_KIB; allow a quarter. */
        int64_t deadline = tu_now_ms() + RELEASE_WAIT_MS;
        long now;
        while ((now = rss_anon_kib()) > baseline + CLIENTS * PAGE_KIB / 4) {
            CHECK_MSG(tu_now_ms() < deadline,
                      "RssAnon %ld KiB after a crowd without pongs left, %ld KiB after one "
                      "with: expected at most %d KiB more", baseline, now,
                      CLIENTS * PAGE_KIB / 4);
            tu_sleep_ms(20);
        }
    }
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static const tu_test tests[] = {
    {"quiet_buffers_released", test_quiet_buffers_released},
    {"partial_frames_survive", test_partial_frames_survive},
    {"left_buffers_trimmed", test_left_buffers_trimmed},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return tu_main(tests, argc, argv);
}
