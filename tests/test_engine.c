/*
 * The engine without sockets: a server that is never started gets a fake
 * transport that records write requests, cuts and timers, and has a clock
 * the test moves. Clients are engine objects marked connected; nothing
 * listens, nothing sleeps, and a timer fires only when the test says so.
 *
 * Covers subscribe / publish fan-out, publish runs, drop and block
 * backpressure (with their deadlines), the coalescing flush timer, the
 * polite close that keeps the queue (what shutdown does to every client),
 * and the broker seam: every publish kind through the in-process broker,
 * and a recording broker that sees encoded frames and first/last-member
 * notices.
 */
#include "testutil.h"

#include "engine/batch.h"
#include "engine/broker.h"
#include "engine/outgoing.h"
#include "engine/registry.h"
#include "shell/commands.h"
#include "shell/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RECORDS 64

static struct {
    wsn_client *writes[MAX_RECORDS];
    size_t n_writes;
    wsn_client *cuts[MAX_RECORDS];
    size_t n_cuts;
    wsni_timer *armed[MAX_RECORDS];
    wsni_timer_fn fns[MAX_RECORDS];
    int64_t due[MAX_RECORDS];
    size_t n_armed;
    int64_t now;
} fake;

static void fake_want_write(wsn_client *c)
{
    CHECK(fake.n_writes < MAX_RECORDS);
    fake.writes[fake.n_writes++] = c;
}

static void fake_cut(wsn_client *c)
{
    CHECK(fake.n_cuts < MAX_RECORDS);
    fake.cuts[fake.n_cuts++] = c;
}

static int armed_index(const wsni_timer *t)
{
    for (size_t i = 0; i < fake.n_armed; i++)
        if (fake.armed[i] == t)
            return (int)i;
    return -1;
}

static void fake_timer_cancel(wsni_timer *t)
{
    int i = armed_index(t);
    if (i < 0)
        return;
    fake.n_armed--;
    fake.armed[i] = fake.armed[fake.n_armed];
    fake.fns[i] = fake.fns[fake.n_armed];
    fake.due[i] = fake.due[fake.n_armed];
}

static void fake_timer_arm(wsn_server *srv, wsni_timer *t, wsni_timer_fn fn, int64_t delay_us)
{
    (void)srv;
    fake_timer_cancel(t);
    CHECK(fake.n_armed < MAX_RECORDS);
    fake.armed[fake.n_armed] = t;
    fake.fns[fake.n_armed] = fn;
    fake.due[fake.n_armed] = fake.now + delay_us;
    fake.n_armed++;
}

static int64_t fake_now(wsn_server *srv)
{
    (void)srv;
    return fake.now;
}

static void fake_wake(wsn_server *srv) { (void)srv; }

static const wsni_transport fake_transport = {
    .wake = fake_wake,
    .want_write = fake_want_write,
    .cut = fake_cut,
    .timer_arm = fake_timer_arm,
    .timer_cancel = fake_timer_cancel,
    .now_us = fake_now,
};

/* Moves the clock to the timer's deadline and runs it, as a loop would. */
static void fire(wsni_timer *t)
{
    int i = armed_index(t);
    CHECK_MSG(i >= 0, "timer %p is not armed", (void *)t);
    wsni_timer_fn fn = fake.fns[i];
    fake.now = fake.due[i];
    fake_timer_cancel(t);
    fn(t);
}

static size_t count_writes(const wsn_client *c)
{
    size_t n = 0;
    for (size_t i = 0; i < fake.n_writes; i++)
        n += fake.writes[i] == c;
    return n;
}

static wsn_server *engine_new_bytes(int send_buffer, int64_t send_buffer_bytes, int drop,
                                    int coalesce_ms)
{
    memset(&fake, 0, sizeof(fake));
    fake.now = 1000000;
    wsn_options *o = wsn_options_new();
    CHECK(o);
    CHECK_OK(wsn_options_set_int(o, WSN_OPT_SEND_BUFFER, send_buffer));
    CHECK_OK(wsn_options_set_int(o, WSN_OPT_SEND_BUFFER_BYTES, send_buffer_bytes));
    CHECK_OK(wsn_options_set_int(o, WSN_OPT_DROP_ON_BACKPRESSURE, drop));
    CHECK_OK(wsn_options_set_int(o, WSN_OPT_WRITE_WAIT, 500));
    CHECK_OK(wsn_options_set_int(o, WSN_OPT_CLOSE_GRACE, 200));
    wsn_server *srv = NULL;
    CHECK_OK(wsn_server_new(o, &srv, NULL, 0));
    wsn_options_free(o);
    srv->transport = &fake_transport;
    srv->flush_delay_us = (int64_t)coalesce_ms * 1000;
    return srv;
}

static wsn_server *engine_new(int send_buffer, int drop, int coalesce_ms)
{
    return engine_new_bytes(send_buffer, 1 << 20, drop, coalesce_ms);
}

static wsn_client *client_new(wsn_server *srv)
{
    wsn_client *c = wsni_client_new(srv);
    CHECK(c);
    c->format = FORMAT_JSON;
    wsni_client_attach(c);
    return c;
}

/* What a disconnect does to the engine's side of a client. */
static void client_gone(wsn_client *c)
{
    wsni_client_detach(c);
    free(c->close_reason);
    c->close_reason = NULL;
    wsn_client_release(c);
}

static void engine_free(wsn_server *srv)
{
    wsni_registry_clear(&srv->reg);
    wsn_server_free(srv);
}

static outgoing *text_out(const char *channel, const char *text)
{
    outgoing *o = wsni_message_out_new(channel, WSN_TYPE_TEXT, text, strlen(text), 0, NULL, NULL);
    CHECK(o);
    return o;
}

/* The queued frame's JSON text carries the message as its "message". */
static void check_queued(wsn_client *c, unsigned index, const char *text)
{
    wsn_frame *f = wsni_client_queue_peek(c, index);
    CHECK_MSG(f, "client %s: nothing queued at %u", c->id, index);
    char want[128];
    snprintf(want, sizeof(want), "\"message\":\"%s\"", text);
    CHECK_MSG(strstr((const char *)f->payload, want), "queued %s, want %s", f->payload, want);
}

static void test_publish_fans_out(void)
{
    wsn_server *srv = engine_new(8, 1, 0);
    wsn_client *a = client_new(srv), *b = client_new(srv), *other = client_new(srv);
    CHECK_OK(wsni_registry_subscribe(&srv->reg, a, "news"));
    CHECK_OK(wsni_registry_subscribe(&srv->reg, b, "news"));
    CHECK_OK(wsni_registry_subscribe(&srv->reg, other, "sport"));

    outgoing *o = text_out("news", "hello");
    CHECK_OK(wsni_deliver_to_channel(srv, "news", o, 1));
    wsni_outgoing_free(o);

    CHECK_EQ(a->ring_len, 1);
    CHECK_EQ(b->ring_len, 1);
    CHECK_EQ(other->ring_len, 0);
    check_queued(a, 0, "hello");
    /* One frame shared by both queues: encoded once. */
    CHECK(wsni_client_queue_peek(a, 0) == wsni_client_queue_peek(b, 0));
    CHECK_EQ(count_writes(a), 1);
    CHECK_EQ(count_writes(b), 1);
    CHECK_EQ(count_writes(other), 0);

    /* Unsubscribed: the next publish passes it by. */
    wsni_registry_unsubscribe(&srv->reg, b, "news");
    o = text_out("news", "again");
    CHECK_OK(wsni_deliver_to_channel(srv, "news", o, 1));
    wsni_outgoing_free(o);
    CHECK_EQ(a->ring_len, 2);
    CHECK_EQ(b->ring_len, 1);
    check_queued(a, 1, "again");
    /* A write is asked for once until the transport reports it done. */
    CHECK_EQ(count_writes(a), 1);

    wsni_client_queue_pop(a, 2);
    CHECK_EQ(a->ring_len, 0);
    CHECK_EQ(fake.n_cuts, 0);
    /* Only the two queues' write_wait deadlines, no close_grace. */
    CHECK_EQ(fake.n_armed, 2);
    CHECK_EQ(a->deadline, DEADLINE_AGE);
    CHECK_EQ(b->deadline, DEADLINE_AGE);
    client_gone(a);
    client_gone(b);
    client_gone(other);
    engine_free(srv);
}

static void test_publish_run_keeps_order(void)
{
    wsn_server *srv = engine_new(8, 1, 0);
    wsn_client *a = client_new(srv), *b = client_new(srv);
    CHECK_OK(wsni_registry_subscribe(&srv->reg, a, "news"));
    CHECK_OK(wsni_registry_subscribe(&srv->reg, b, "news"));
    outgoing *outs[3] = {text_out("news", "m1"), text_out("news", "m2"), text_out("news", "m3")};
    CHECK_OK(wsni_deliver_run_to_channel(srv, "news", outs, 3, 1));
    for (int i = 0; i < 3; i++)
        wsni_outgoing_free(outs[i]);
    const char *want[] = {"m1", "m2", "m3"};
    for (unsigned i = 0; i < 3; i++) {
        check_queued(a, i, want[i]);
        check_queued(b, i, want[i]);
    }
    CHECK_EQ(count_writes(a), 1);
    CHECK_EQ(count_writes(b), 1);
    client_gone(a);
    client_gone(b);
    engine_free(srv);
}

static void test_drop_closes_full_client(void)
{
    wsn_server *srv = engine_new(2, 1, 0);
    wsn_client *slow = client_new(srv), *fast = client_new(srv);
    CHECK_OK(wsni_registry_subscribe(&srv->reg, slow, "news"));
    CHECK_OK(wsni_registry_subscribe(&srv->reg, fast, "news"));
    const char *texts[] = {"1", "2", "3"};
    for (int i = 0; i < 3; i++) {
        outgoing *o = text_out("news", texts[i]);
        CHECK_OK(wsni_deliver_to_channel(srv, "news", o, 1));
        wsni_outgoing_free(o);
        /* The fast one writes everything as soon as asked. */
        wsni_client_queue_pop(fast, fast->ring_len);
        fast->write_requested = 0;
    }
    /* The third found the slow queue full: dropped, queue discarded, a
     * 1001 close with the backpressure reason due. */
    CHECK(slow->closing);
    CHECK_EQ(slow->close_code, 1001);
    CHECK_STR(slow->close_reason, "going away: backpressure");
    CHECK_EQ(slow->ring_len, 0);
    CHECK(!fast->closing);
    CHECK_EQ(count_writes(fast), 3);
    /* Nothing more is queued for a closing client. */
    outgoing *o = text_out("news", "4");
    CHECK_OK(wsni_deliver_to_channel(srv, "news", o, 1));
    wsni_outgoing_free(o);
    CHECK_EQ(slow->ring_len, 0);
    CHECK_EQ(fast->ring_len, 1);
    /* The close frame gets close_grace to leave; then the socket is cut. */
    CHECK_EQ(fake.n_cuts, 0);
    CHECK(armed_index(&slow->deadline_timer) >= 0);
    int64_t armed_at = fake.now;
    fire(&slow->deadline_timer);
    CHECK_EQ(fake.now - armed_at, 200 * 1000);
    CHECK_EQ(fake.n_cuts, 1);
    CHECK(fake.cuts[0] == slow);
    client_gone(slow);
    client_gone(fast);
    engine_free(srv);
}

static void test_block_overflows_then_drains(void)
{
    wsn_server *srv = engine_new(2, 0, 0);
    wsn_client *c = client_new(srv);
    CHECK_OK(wsni_registry_subscribe(&srv->reg, c, "news"));
    const char *texts[] = {"1", "2", "3", "4"};
    for (int i = 0; i < 4; i++) {
        outgoing *o = text_out("news", texts[i]);
        CHECK_OK(wsni_deliver_to_channel(srv, "news", o, 1));
        wsni_outgoing_free(o);
    }
    /* Two in the queue, two waiting in order; the client is stalled and
     * publishers see no room. */
    CHECK_EQ(c->ring_len, 2);
    CHECK(c->overflow.head && c->overflow.head->next && !c->overflow.head->next->next);
    CHECK(c->stalled);
    CHECK_EQ(srv->stalled_clients, 1);
    CHECK(!c->closing);
    CHECK(armed_index(&c->deadline_timer) >= 0);
    /* A caller that may not wait (the I/O thread itself) is told at once. */
    outgoing *o = text_out("news", "5");
    CHECK_RC(wsni_deliver_to_channel(srv, "news", o, 0), WSN_EBACKPRESSURE);
    wsni_outgoing_free(o);

    /* The transport wrote both: the waiting ones move up, in order, and
     * the stall ends (the queue's write_wait deadline stays, for them). */
    wsni_client_queue_pop(c, 2);
    wsni_client_refill_from_overflow(c);
    CHECK_EQ(c->ring_len, 2);
    check_queued(c, 0, "3");
    check_queued(c, 1, "4");
    CHECK(!c->stalled);
    CHECK_EQ(srv->stalled_clients, 0);
    CHECK(armed_index(&c->deadline_timer) >= 0);
    CHECK_EQ(c->deadline, DEADLINE_AGE);
    CHECK(!c->closing);
    client_gone(c);
    engine_free(srv);
}

static void test_block_stall_deadline_drops(void)
{
    wsn_server *srv = engine_new(1, 0, 0);
    wsn_client *c = client_new(srv);
    CHECK_OK(wsni_registry_subscribe(&srv->reg, c, "news"));
    for (int i = 0; i < 2; i++) {
        outgoing *o = text_out("news", "x");
        CHECK_OK(wsni_deliver_to_channel(srv, "news", o, 1));
        wsni_outgoing_free(o);
    }
    CHECK(c->stalled);
    int64_t stalled_at = fake.now;
    /* Still stalled after write_wait: dropped like in drop mode. */
    fire(&c->deadline_timer);
    CHECK_EQ(fake.now - stalled_at, 500 * 1000);
    CHECK(c->closing);
    CHECK_EQ(c->close_code, 1001);
    CHECK_EQ(c->ring_len, 0);
    CHECK(!c->overflow.head);
    CHECK(!c->stalled);
    CHECK_EQ(srv->stalled_clients, 0);
    /* The same timer now holds close_grace. */
    CHECK(armed_index(&c->deadline_timer) >= 0);
    client_gone(c);
    engine_free(srv);
}

static void test_coalesce_waits_for_flush(void)
{
    wsn_server *srv = engine_new(8, 1, 5);
    wsn_client *a = client_new(srv), *b = client_new(srv);
    CHECK_OK(wsni_registry_subscribe(&srv->reg, a, "news"));
    CHECK_OK(wsni_registry_subscribe(&srv->reg, b, "news"));
    /* Quiet server: the first write is asked for at once. */
    srv->last_write = fake.now - 10 * 1000;
    outgoing *o = text_out("news", "first");
    CHECK_OK(wsni_deliver_to_channel(srv, "news", o, 1));
    wsni_outgoing_free(o);
    CHECK_EQ(count_writes(a), 1);
    CHECK(armed_index(&srv->flush_timer) < 0);
    /* Busy server (wrote just now): requests wait for one flush. */
    wsni_client_queue_pop(a, 1);
    wsni_client_queue_pop(b, 1);
    a->write_requested = b->write_requested = 0;
    srv->last_write = fake.now;
    const char *texts[] = {"p1", "p2"};
    for (int i = 0; i < 2; i++) {
        o = text_out("news", texts[i]);
        CHECK_OK(wsni_deliver_to_channel(srv, "news", o, 1));
        wsni_outgoing_free(o);
    }
    CHECK_EQ(count_writes(a), 1);
    CHECK_EQ(count_writes(b), 1);
    CHECK_EQ(a->ring_len, 2);
    CHECK(armed_index(&srv->flush_timer) >= 0);
    int64_t before = fake.now;
    fire(&srv->flush_timer);
    CHECK_EQ(fake.now - before, 5 * 1000);
    /* One request each for both frames. */
    CHECK_EQ(count_writes(a), 2);
    CHECK_EQ(count_writes(b), 2);
    client_gone(a);
    client_gone(b);
    engine_free(srv);
}

static void test_polite_close_keeps_queue(void)
{
    wsn_server *srv = engine_new(8, 1, 0);
    wsn_client *c = client_new(srv);
    CHECK_OK(wsni_registry_subscribe(&srv->reg, c, "news"));
    outgoing *o = text_out("news", "last words");
    CHECK_OK(wsni_deliver_to_channel(srv, "news", o, 1));
    wsni_outgoing_free(o);
    c->write_requested = 0;
    /* What shutdown does to each client: the queue leaves first, then the
     * close frame; no close_grace, no cut (the queue keeps its write_wait). */
    wsni_client_begin_close(c, 1001, "server shutdown", 0);
    CHECK(c->closing);
    CHECK_EQ(c->close_code, 1001);
    CHECK_STR(c->close_reason, "server shutdown");
    CHECK_EQ(c->ring_len, 1);
    check_queued(c, 0, "last words");
    CHECK_EQ(count_writes(c), 2);
    CHECK_EQ(fake.n_armed, 1);
    CHECK_EQ(c->deadline, DEADLINE_AGE);
    CHECK_EQ(fake.n_cuts, 0);
    /* A second close changes nothing. */
    wsni_client_begin_close(c, 1008, "other", 1);
    CHECK_EQ(c->close_code, 1001);
    CHECK_EQ(c->ring_len, 1);
    client_gone(c);
    engine_free(srv);
}

/* Every publish kind, as the shell's commands apply it, goes through the
 * in-process broker and reaches each member exactly once. */
static void test_local_broker_delivers_once(void)
{
    wsn_server *srv = engine_new(16, 1, 0);
    CHECK(srv->broker == &wsni_local_broker);
    wsn_client *a = client_new(srv), *b = client_new(srv), *other = client_new(srv);
    CHECK_OK(wsni_registry_subscribe(&srv->reg, a, "news"));
    CHECK_OK(wsni_registry_subscribe(&srv->reg, a, "news")); /* twice: still one member */
    CHECK_OK(wsni_registry_subscribe(&srv->reg, b, "news"));

    command *cmd = wsni_command_new(CMD_PUBLISH);
    CHECK(cmd && (cmd->channel = strdup("news")));
    cmd->out = text_out("news", "p1");
    CHECK_OK(wsni_command_apply(srv, cmd, 1));
    wsni_command_free(cmd);

    cmd = wsni_command_new(CMD_SEND);
    CHECK(cmd);
    cmd->client = wsn_client_retain(b);
    cmd->out = text_out("", "to-b");
    CHECK_OK(wsni_command_apply(srv, cmd, 1));
    wsni_command_free(cmd);

    struct batch *bt = calloc(1, sizeof(*bt));
    batch_entry *e = calloc(1, sizeof(*e));
    CHECK(bt && e);
    CHECK((bt->channel = strdup("news")) && (bt->name = strdup("tick")));
    CHECK((e->canonical = strdup("\"b1\"")) && (e->v.value = strdup("\"b1\"")));
    e->v.value_len = strlen(e->v.value);
    bt->type = WSN_TYPE_JSON;
    wsni_list_append(&bt->values, &e->v.node);
    bt->count = 1;
    bt->bytes = e->v.value_len;
    cmd = wsni_command_new(CMD_BATCH_FLUSH);
    CHECK(cmd);
    cmd->batch = bt;
    CHECK_OK(wsni_command_apply(srv, cmd, 1));
    wsni_command_free(cmd);

    CHECK_EQ(a->ring_len, 2);
    CHECK_EQ(b->ring_len, 3);
    CHECK_EQ(other->ring_len, 0);
    check_queued(a, 0, "p1");
    check_queued(b, 0, "p1");
    check_queued(b, 1, "to-b");
    CHECK(strstr((const char *)wsni_client_queue_peek(a, 1)->payload, "b1"));
    CHECK(wsni_client_queue_peek(a, 1) == wsni_client_queue_peek(b, 2));
    client_gone(a);
    client_gone(b);
    client_gone(other);
    engine_free(srv);
}

/* A broker that records what it is given, as a Redis one would see it. */
static struct {
    char channel[32];
    char payloads[8][128];
    wsn_frame *frames[8];
    size_t n_frames;
    size_t n_to_client;
    char first[4][32], last[4][32];
    size_t n_first, n_last;
} rec;

static int rec_publish(wsn_server *srv, const char *channel, outgoing *const *outs, size_t count,
                       int may_wait)
{
    (void)srv;
    (void)may_wait;
    snprintf(rec.channel, sizeof(rec.channel), "%s", channel);
    for (size_t i = 0; i < count; i++) {
        CHECK(rec.n_frames < 8);
        /* Encoded already (or on first ask): the broker sends these bytes. */
        wsn_frame *f = wsni_outgoing_frame(outs[i], FORMAT_JSON);
        CHECK(f);
        snprintf(rec.payloads[rec.n_frames], sizeof(rec.payloads[0]), "%s", f->payload);
        /* Kept past the call, as an asynchronous broker would. */
        rec.frames[rec.n_frames++] = frame_ref(f);
    }
    return WSN_OK;
}

static int rec_publish_to_client(wsn_server *srv, wsn_client *c, outgoing *o, int may_wait)
{
    rec.n_to_client++;
    return wsni_deliver_to_client(srv, c, o, may_wait);
}

static void rec_first(wsn_server *srv, const char *channel)
{
    (void)srv;
    CHECK(rec.n_first < 4);
    snprintf(rec.first[rec.n_first++], sizeof(rec.first[0]), "%s", channel);
}

static void rec_last(wsn_server *srv, const char *channel)
{
    (void)srv;
    CHECK(rec.n_last < 4);
    snprintf(rec.last[rec.n_last++], sizeof(rec.last[0]), "%s", channel);
}

static const wsni_broker recording_broker = {
    .publish = rec_publish,
    .publish_to_client = rec_publish_to_client,
    .channel_first = rec_first,
    .channel_last = rec_last,
};

static void test_broker_sees_frames_and_members(void)
{
    memset(&rec, 0, sizeof(rec));
    wsn_server *srv = engine_new(16, 1, 0);
    wsni_broker_use(srv, &recording_broker);
    wsn_client *a = client_new(srv), *b = client_new(srv);

    CHECK_OK(wsni_registry_subscribe(&srv->reg, a, "news"));
    CHECK_EQ(rec.n_first, 1);
    CHECK_STR(rec.first[0], "news");
    CHECK_OK(wsni_registry_subscribe(&srv->reg, b, "news"));
    CHECK_OK(wsni_registry_subscribe(&srv->reg, a, "news"));
    CHECK_EQ(rec.n_first, 1); /* not the first any more */
    wsni_registry_unsubscribe(&srv->reg, a, "news");
    CHECK_EQ(rec.n_last, 0); /* b is still there */

    outgoing *outs[2] = {text_out("news", "r1"), text_out("news", "r2")};
    CHECK_OK(wsni_broker_publish(srv, "news", outs, 2, 1));
    wsni_outgoing_free(outs[0]);
    wsni_outgoing_free(outs[1]);
    CHECK_STR(rec.channel, "news");
    CHECK_EQ(rec.n_frames, 2);
    CHECK(strstr(rec.payloads[0], "\"message\":\"r1\""));
    CHECK(strstr(rec.payloads[1], "\"message\":\"r2\""));
    /* The broker decides about delivery: nothing was queued locally. */
    CHECK_EQ(b->ring_len, 0);
    CHECK_EQ(count_writes(b), 0);

    /* What comes back from the broker is delivered once per member. */
    for (size_t i = 0; i < rec.n_frames; i++) {
        outgoing *back = wsni_raw_out_new(rec.frames[i]);
        CHECK(back);
        CHECK_OK(wsni_deliver_to_channel(srv, "news", back, 1));
        wsni_outgoing_free(back);
    }
    CHECK_EQ(b->ring_len, 2);
    CHECK_EQ(a->ring_len, 0);
    check_queued(b, 0, "r1");
    check_queued(b, 1, "r2");

    outgoing *o = text_out("", "direct");
    CHECK_OK(wsni_broker_publish_to_client(srv, a, o, 1));
    wsni_outgoing_free(o);
    CHECK_EQ(rec.n_to_client, 1);
    check_queued(a, 0, "direct");

    CHECK_OK(wsni_registry_subscribe(&srv->reg, a, "sport"));
    CHECK_EQ(rec.n_first, 2);
    CHECK_STR(rec.first[1], "sport");
    client_gone(b); /* the last member of news leaves by disconnecting */
    CHECK_EQ(rec.n_last, 1);
    CHECK_STR(rec.last[0], "news");
    client_gone(a);
    CHECK_EQ(rec.n_last, 2);
    CHECK_STR(rec.last[1], "sport");
    engine_free(srv);
}

/* A text of n 'x' (n < 4096), for frames of a known size. */
static const char *xs(size_t n)
{
    static char buf[4096];
    CHECK(n < sizeof(buf));
    memset(buf, 'x', n);
    buf[n] = '\0';
    return buf;
}

static void publish_text(wsn_server *srv, const char *channel, const char *text)
{
    outgoing *o = text_out(channel, text);
    CHECK_OK(wsni_deliver_to_channel(srv, channel, o, 1));
    wsni_outgoing_free(o);
}

/* Drop mode: the queue is full at send_buffer_bytes, whatever its count. */
static void test_bytes_bound_drops(void)
{
    /* 400-byte messages are 400-500 bytes on the wire: two fit in 1,000
     * bytes, a third does not; 256 slots never fill. */
    wsn_server *srv = engine_new_bytes(256, 1000, 1, 0);
    wsn_client *c = client_new(srv);
    CHECK_OK(wsni_registry_subscribe(&srv->reg, c, "news"));
    publish_text(srv, "news", xs(400));
    publish_text(srv, "news", xs(400));
    CHECK_EQ(c->ring_len, 2);
    size_t two = c->ring_bytes;
    CHECK(two > 800 && two <= 1000);
    CHECK(!c->closing);
    publish_text(srv, "news", xs(400));
    CHECK(c->closing);
    CHECK_EQ(c->close_code, 1001);
    CHECK_STR(c->close_reason, "going away: backpressure");
    CHECK_EQ(c->ring_len, 0);
    CHECK_EQ(c->ring_bytes, 0);
    CHECK_EQ(c->deadline, DEADLINE_GRACE);
    client_gone(c);
    engine_free(srv);
}

/* One frame bigger than the bound still goes to a client that has read
 * everything; nothing goes behind it until it has left. */
static void test_bytes_bound_big_frame_alone(void)
{
    wsn_server *srv = engine_new_bytes(256, 1000, 1, 0);
    wsn_client *c = client_new(srv);
    CHECK_OK(wsni_registry_subscribe(&srv->reg, c, "news"));
    publish_text(srv, "news", xs(3000));
    CHECK_EQ(c->ring_len, 1);
    CHECK(c->ring_bytes > 3000);
    CHECK(!c->closing);
    wsni_client_queue_pop(c, 1);
    CHECK_EQ(c->ring_bytes, 0);
    publish_text(srv, "news", xs(3000));
    CHECK_EQ(c->ring_len, 1);
    CHECK(!c->closing);
    publish_text(srv, "news", "small");
    CHECK(c->closing);
    client_gone(c);
    engine_free(srv);
}

/* Block mode: a byte-full queue stalls like a count-full one, and refills
 * by bytes as frames leave. */
static void test_bytes_bound_blocks(void)
{
    wsn_server *srv = engine_new_bytes(256, 1000, 0, 0);
    wsn_client *c = client_new(srv);
    CHECK_OK(wsni_registry_subscribe(&srv->reg, c, "news"));
    for (int i = 0; i < 3; i++)
        publish_text(srv, "news", xs(400));
    CHECK_EQ(c->ring_len, 2);
    CHECK(c->overflow.head && !c->overflow.head->next);
    CHECK(c->stalled);
    CHECK_EQ(srv->stalled_clients, 1);
    wsni_client_queue_pop(c, 1);
    wsni_client_refill_from_overflow(c);
    CHECK_EQ(c->ring_len, 2);
    CHECK(!c->overflow.head);
    CHECK(!c->stalled);
    CHECK_EQ(srv->stalled_clients, 0);
    client_gone(c);
    engine_free(srv);
}

/* write_wait counts from when the oldest frame still queued was queued, in
 * drop mode too: a client that reads slowly but keeps up stays; one whose
 * oldest frame has waited write_wait (500 ms here) is closed, 1001. */
static void test_write_wait_from_oldest_frame(void)
{
    wsn_server *srv = engine_new(256, 1, 0);
    wsn_client *c = client_new(srv);
    CHECK_OK(wsni_registry_subscribe(&srv->reg, c, "news"));
    int64_t t0 = fake.now;
    publish_text(srv, "news", "1");
    CHECK_EQ(c->deadline, DEADLINE_AGE);
    int i = armed_index(&c->deadline_timer);
    CHECK(i >= 0);
    CHECK_EQ(fake.due[i] - t0, 500 * 1000);
    /* A second frame at +300 ms arms nothing more. */
    fake.now = t0 + 300 * 1000;
    publish_text(srv, "news", "2");
    CHECK_EQ(fake.n_armed, 1);
    /* The first leaves at +400 ms; at +500 ms the oldest is 200 ms old:
     * the deadline moves to the second's, +800 ms. */
    fake.now = t0 + 400 * 1000;
    wsni_client_queue_pop(c, 1);
    fire(&c->deadline_timer);
    CHECK(!c->closing);
    i = armed_index(&c->deadline_timer);
    CHECK(i >= 0);
    CHECK_EQ(fake.due[i] - t0, 800 * 1000);
    /* The second leaves and a third comes at +700 ms: at +800 ms the
     * oldest is the third, 100 ms old. */
    wsni_client_queue_pop(c, 1);
    fake.now = t0 + 700 * 1000;
    publish_text(srv, "news", "3");
    fire(&c->deadline_timer);
    CHECK(!c->closing);
    i = armed_index(&c->deadline_timer);
    CHECK_EQ(fake.due[i] - t0, 1200 * 1000);
    /* Nothing leaves: at +1200 ms the third has waited write_wait. */
    fire(&c->deadline_timer);
    CHECK_EQ(fake.now - t0, 1200 * 1000);
    CHECK(c->closing);
    CHECK_EQ(c->close_code, 1001);
    CHECK_STR(c->close_reason, "going away: backpressure");
    CHECK_EQ(c->ring_len, 0);
    /* Then close_grace (200 ms) for the close frame, and the cut. */
    CHECK_EQ(c->deadline, DEADLINE_GRACE);
    fire(&c->deadline_timer);
    CHECK_EQ(fake.now - t0, 1400 * 1000);
    CHECK_EQ(fake.n_cuts, 1);
    CHECK(fake.cuts[0] == c);
    client_gone(c);
    engine_free(srv);
}

/* A deadline that finds the queue empty is not armed again until a frame
 * is queued; that frame gets its full write_wait. */
static void test_write_wait_idle_queue(void)
{
    wsn_server *srv = engine_new(256, 1, 0);
    wsn_client *c = client_new(srv);
    CHECK_OK(wsni_registry_subscribe(&srv->reg, c, "news"));
    int64_t t0 = fake.now;
    publish_text(srv, "news", "1");
    wsni_client_queue_pop(c, 1);
    fire(&c->deadline_timer);
    CHECK(armed_index(&c->deadline_timer) < 0);
    CHECK_EQ(c->deadline, DEADLINE_NONE);
    fake.now = t0 + 2000 * 1000;
    publish_text(srv, "news", "2");
    int i = armed_index(&c->deadline_timer);
    CHECK(i >= 0);
    CHECK_EQ(fake.due[i] - fake.now, 500 * 1000);
    CHECK(!c->closing);
    client_gone(c);
    CHECK(armed_index(&c->deadline_timer) < 0);
    engine_free(srv);
}

/* Block mode's stall ends in a drop when the oldest queued frame, not the
 * stall, has waited write_wait. */
static void test_block_deadline_from_oldest_frame(void)
{
    wsn_server *srv = engine_new(1, 0, 0);
    wsn_client *c = client_new(srv);
    CHECK_OK(wsni_registry_subscribe(&srv->reg, c, "news"));
    int64_t t0 = fake.now;
    publish_text(srv, "news", "1");
    fake.now = t0 + 300 * 1000;
    publish_text(srv, "news", "2");
    CHECK(c->stalled);
    fire(&c->deadline_timer);
    CHECK_EQ(fake.now - t0, 500 * 1000);
    CHECK(c->closing);
    CHECK(!c->stalled);
    CHECK_EQ(srv->stalled_clients, 0);
    client_gone(c);
    engine_free(srv);
}

/* The host's subscribe calls as a running server takes them: queued, then
 * applied when the test runs the queue (as the I/O thread would). */
static void as_running(wsn_server *srv, int running)
{
    srv->state = running ? SRV_RUNNING : SRV_NEW;
    srv->ctx_alive = running;
}

/* max_subscriptions counts memberships plus subscribes not yet applied:
 * the host hears WSN_ELIMIT at once, a duplicate gives its slot back when
 * applied, and so does an unsubscribe. */
static void test_subscription_bound(void)
{
    wsn_server *srv = engine_new(16, 1, 0);
    srv->max_subscriptions = 3;
    wsn_client *c = client_new(srv);
    as_running(srv, 1);
    CHECK_OK(wsn_server_subscribe(srv, c, "a"));
    CHECK_OK(wsn_server_subscribe(srv, c, "a"));
    CHECK_EQ(atomic_load(&c->sub_slots), 2);
    wsni_commands_run(srv);
    CHECK_EQ(atomic_load(&c->sub_slots), 1);
    CHECK_OK(wsn_server_subscribe(srv, c, "b"));
    CHECK_OK(wsn_server_subscribe(srv, c, "c"));
    /* Before the queue runs: the pending ones count. */
    CHECK_RC(wsn_server_subscribe(srv, c, "d"), WSN_ELIMIT);
    char err[256];
    wsn_server_last_error(srv, err, sizeof(err));
    CHECK(strstr(err, "max_subscriptions (3)"));
    wsni_commands_run(srv);
    CHECK_EQ(atomic_load(&c->sub_slots), 3);
    CHECK(wsni_registry_find(&srv->reg, "c"));
    CHECK(!wsni_registry_find(&srv->reg, "d"));
    /* At the bound, a channel it is in is refused too (documented). */
    CHECK_RC(wsn_server_subscribe(srv, c, "a"), WSN_ELIMIT);
    CHECK_OK(wsn_server_unsubscribe(srv, c, "c"));
    CHECK_OK(wsn_server_unsubscribe(srv, c, "never"));
    wsni_commands_run(srv);
    CHECK_EQ(atomic_load(&c->sub_slots), 2);
    CHECK_OK(wsn_server_subscribe(srv, c, "d"));
    wsni_commands_run(srv);
    CHECK(wsni_registry_find(&srv->reg, "d"));
    CHECK_EQ(atomic_load(&c->sub_slots), 3);
    as_running(srv, 0);
    client_gone(c);
    engine_free(srv);
}

/* The tables' hash is keyed (util/hash.h): not uthash's own, and stable
 * within the process. */
static void test_hash_is_keyed(void)
{
    unsigned jen = 0;
    HASH_JEN("general", 7U, jen);
    uint32_t h = wsni_hash("general", 7);
    CHECK(h != jen);
    CHECK_EQ(wsni_hash("general", 7), h);
    CHECK(wsni_hash("generam", 7) != h);
    /* uthash uses it: a table finds what was added. */
    wsn_server *srv = engine_new(16, 1, 0);
    wsn_client *c = client_new(srv);
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "ch%d", i);
        CHECK_OK(wsni_registry_subscribe(&srv->reg, c, name));
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "ch%d", i);
        CHECK(wsni_registry_find(&srv->reg, name));
    }
    CHECK_EQ(HASH_COUNT(srv->reg.channels), 1000);
    client_gone(c);
    engine_free(srv);
}

static const tu_test tests[] = {
    {"publish_fans_out", test_publish_fans_out},
    {"publish_run_keeps_order", test_publish_run_keeps_order},
    {"drop_closes_full_client", test_drop_closes_full_client},
    {"block_overflows_then_drains", test_block_overflows_then_drains},
    {"block_stall_deadline_drops", test_block_stall_deadline_drops},
    {"coalesce_waits_for_flush", test_coalesce_waits_for_flush},
    {"polite_close_keeps_queue", test_polite_close_keeps_queue},
    {"bytes_bound_drops", test_bytes_bound_drops},
    {"bytes_bound_big_frame_alone", test_bytes_bound_big_frame_alone},
    {"bytes_bound_blocks", test_bytes_bound_blocks},
    {"write_wait_from_oldest_frame", test_write_wait_from_oldest_frame},
    {"write_wait_idle_queue", test_write_wait_idle_queue},
    {"block_deadline_from_oldest_frame", test_block_deadline_from_oldest_frame},
    {"subscription_bound", test_subscription_bound},
    {"hash_is_keyed", test_hash_is_keyed},
    {"local_broker_delivers_once", test_local_broker_delivers_once},
    {"broker_sees_frames_and_members", test_broker_sees_frames_and_members},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
