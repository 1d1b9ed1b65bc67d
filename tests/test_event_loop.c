/* A host that is one single-threaded poll() loop, as a Node, OpenResty or
 * asyncio host is: it waits only in poll() on the event fd and the room
 * fd, and calls wsnotify only in ways that return at once (NONBLOCK
 * publishes, next_event, subscribe). write_wait is a day: a wsnotify call
 * that waited for room would hang the test into its timeout.
 *
 * 1,000 clients in block mode; one of them stops reading. The host
 * publishes to it big messages on "slow" and small broadcasts on "all"
 * (everyone), in one order it keeps in its own FIFO. Once the stalled
 * client refuses room, the other 999 each send a request and the host
 * answers every one (a message to one client needs room in that client
 * only), while its FIFO waits. Then the stalled client reads again, room
 * returns, and every client gets every broadcast exactly once, in order.
 *
 * The clients are driven by a second thread of this program: they stand
 * for the remote peers, not for the host. */
#define _GNU_SOURCE
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define DAY_MS (24LL * 3600 * 1000)

/* A round is one big message on "slow" and one broadcast on "all". Until
 * the stalled client may read again, the host makes a new round whenever
 * its FIFO is empty: the I/O thread finds that client full only once it
 * applies what was accepted, and lws and the kernel take a few more
 * frames as they can, so room may come and go before the client's
 * buffers are all full and it stays refused. After, EXTRA more rounds,
 * then "end". */
enum {
    CLIENTS = 1000,
    MAX_ROUNDS = 400, /* never reached: the stalled one holds far less */
    EXTRA = 5,
    BIG = 64 * 1024,
    SMALL = 512,
};

/* What the two threads tell each other; the host only ever reads it. */
typedef struct shared {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stalled;        /* host: a publish was refused: requests may start */
    int replies_done;   /* peer: every normal client has its reply */
    int release;        /* host: checked the stall; the slow one may read */
    atomic_int peer_failed;
} shared;

static void flag_set(shared *s, int *flag)
{
    pthread_mutex_lock(&s->mu);
    *flag = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static int flag_get(shared *s, const int *flag)
{
    pthread_mutex_lock(&s->mu);
    int v = *flag;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* Peer side only: the host never waits on the other thread. */
static void flag_wait(shared *s, const int *flag)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += TU_TIMEOUT / 1000 * 3;
    pthread_mutex_lock(&s->mu);
    while (!*flag)
        CHECK_MSG(pthread_cond_timedwait(&s->cond, &s->mu, &dl) == 0, "peer: host never signalled");
    pthread_mutex_unlock(&s->mu);
}

/* ---- the peers ------------------------------------------------------- */

typedef struct peer {
    wsc *w;
    int next_small, next_big, replies, ended;
} peer;

typedef struct peers {
    pthread_t th;
    shared *sh;
    int port;
    peer p[CLIENTS]; /* p[0] is the one that stops reading */
} peers;

/* {"r":N,"pad":"..."}: N is the round. */
static char *round_json(int r, size_t pad)
{
    char *s = malloc(pad + 32);
    int n;
    CHECK(s != NULL);
    n = snprintf(s, 32, "{\"r\":%d,\"pad\":\"", r);
    memset(s + n, 'x', pad);
    strcpy(s + n + pad, "\"}");
    return s;
}

static void check_message(peer *p, int index, const wsc_msg *m)
{
    const char *d = (const char *)m->data;
    const char *r = strstr(d, "\"message\":{\"r\":");
    CHECK_MSG(m->opcode == WSC_OP_TEXT, "client %d: opcode %d", index, m->opcode);
    if (strstr(d, "\"message\":\"re\"")) {
        CHECK_MSG(index != 0 && p->replies == 0, "client %d: reply %d", index, p->replies + 1);
        p->replies++;
    } else if (strstr(d, "\"message\":\"end\"")) {
        p->ended = 1;
    } else if (r && strstr(d, "\"channel\":\"all\"")) {
        CHECK_MSG(atoi(r + 15) == p->next_small, "client %d: broadcast %d, want %d", index,
                  atoi(r + 15), p->next_small);
        p->next_small++;
    } else {
        CHECK_MSG(r && index == 0 && strstr(d, "\"channel\":\"slow\""), "client %d: %.80s",
                  index, d);
        CHECK_EQ(atoi(r + 15), p->next_big);
        p->next_big++;
    }
}

/* Reads whatever the clients in [from, to) have now; returns how many
 * messages it took. */
static int read_ready(peers *ps, int from, int to)
{
    static struct pollfd fds[CLIENTS];
    int i, n = to - from, got = 0;
    for (i = 0; i < n; i++) {
        fds[i].fd = wsc_fd(ps->p[from + i].w);
        fds[i].events = POLLIN;
        fds[i].revents = 0;
    }
    CHECK(poll(fds, (nfds_t)n, 50) >= 0);
    for (i = 0; i < n; i++) {
        peer *p = &ps->p[from + i];
        wsc_msg m;
        if (!fds[i].revents)
            continue;
        /* Drain what is buffered: poll cannot see wsclient's own buffer. */
        for (;;) {
            int rc = wsc_recv_msg(p->w, &m, 0);
            if (rc == WSC_TIMEOUT)
                break;
            CHECK_WSC(rc);
            check_message(p, from + i, &m);
            wsc_msg_clear(&m);
            got++;
        }
    }
    return got;
}

static int count_where(peers *ps, int from, int what)
{
    int i, n = 0;
    for (i = from; i < CLIENTS; i++)
        n += what ? ps->p[i].ended : ps->p[i].replies;
    return n;
}

static void *peers_main(void *arg)
{
    peers *ps = arg;
    wsc_opts co;
    int i;
    int64_t deadline;
    memset(&co, 0, sizeof co);
    co.port = ps->port;
    co.rcvbuf = 4096;
    /* The stalled one first: the host sees its CONNECT first. */
    CHECK_WSC(wsc_connect(&co, &ps->p[0].w, NULL));
    co.rcvbuf = 0;
    for (i = 1; i < CLIENTS; i++)
        ps->p[i].w = tu_connect(ps->port);
    flag_wait(ps->sh, &ps->sh->stalled);
    for (i = 1; i < CLIENTS; i++)
        CHECK_WSC(wsc_send_text(ps->p[i].w, "q"));
    deadline = tu_now_ms() + 6 * TU_TIMEOUT;
    while (count_where(ps, 1, 0) < CLIENTS - 1) {
        CHECK_MSG(tu_now_ms() < deadline, "%d of %d replies", count_where(ps, 1, 0),
                  CLIENTS - 1);
        read_ready(ps, 1, CLIENTS);
    }
    flag_set(ps->sh, &ps->sh->replies_done);
    flag_wait(ps->sh, &ps->sh->release);
    while (count_where(ps, 0, 1) < CLIENTS) {
        CHECK_MSG(tu_now_ms() < deadline, "%d of %d clients got everything",
                  count_where(ps, 0, 1), CLIENTS);
        read_ready(ps, 0, CLIENTS);
    }
    return NULL;
}

/* ---- the host: one thread, one poll loop ------------------------------ */

typedef struct pending {
    char *channel; /* the host's FIFO of channel publishes */
    char *json;
} pending;

typedef struct host {
    wsn_server *srv;
    shared *sh;
    wsn_client *clients[CLIENTS];
    int connected;
    pending fifo[2 * MAX_ROUNDS + 1];
    int rounds, last_round;
    int fifo_head, fifo_len;
    wsn_client *replies[CLIENTS]; /* answers refused for now, to retry */
    int replies_len;
    int answered, refusals, checked_stall, first_refused_round, rounds_at_release;
} host;

static void take_events(host *h)
{
    wsn_event *ev;
    int rc;
    while ((rc = wsn_server_next_event(h->srv, &ev)) == WSN_OK) {
        wsn_event_info info;
        info.size = sizeof info;
        CHECK_OK(wsn_event_get_info(ev, &info));
        if (info.kind == WSN_EVENT_CONNECT) {
            CHECK(h->connected < CLIENTS);
            h->clients[h->connected] = wsn_client_retain(info.client);
            /* Subscribing never waits for room. */
            CHECK_OK(wsn_server_subscribe(h->srv, info.client, "all"));
            if (h->connected == 0)
                CHECK_OK(wsn_server_subscribe(h->srv, info.client, "slow"));
            h->connected++;
        } else if (info.kind == WSN_EVENT_MESSAGE) {
            CHECK_MEM(info.payload, info.payload_len, "q", 1);
            h->replies[h->replies_len++] = wsn_client_retain(info.client);
        }
        wsn_event_free(ev);
    }
    CHECK_RC(rc, WSN_EAGAIN);
}

static void answer(host *h)
{
    int i, kept = 0;
    for (i = 0; i < h->replies_len; i++) {
        int rc = wsn_server_publish_ex(h->srv, h->replies[i], "", WSN_TYPE_JSON, "\"re\"", 4,
                                       NULL, NULL, WSN_PUBLISH_NONBLOCK);
        if (rc == WSN_EAGAIN) {
            h->replies[kept++] = h->replies[i]; /* that client is full itself */
            continue;
        }
        CHECK_OK(rc);
        wsn_client_release(h->replies[i]);
        h->answered++;
    }
    h->replies_len = kept;
}

static void refill(host *h)
{
    if (h->fifo_head < h->fifo_len || h->last_round)
        return;
    if (h->sh->release && h->rounds >= h->rounds_at_release + EXTRA) {
        h->fifo[h->fifo_len++] = (pending){"all", strdup("\"end\"")};
        h->last_round = 1;
        return;
    }
    CHECK_MSG(h->rounds < MAX_ROUNDS, "no publish refused in %d rounds", h->rounds);
    h->fifo[h->fifo_len++] = (pending){"slow", round_json(h->rounds, BIG)};
    h->fifo[h->fifo_len++] = (pending){"all", round_json(h->rounds, SMALL)};
    h->rounds++;
}

static void publish_fifo(host *h)
{
    while (h->fifo_head < h->fifo_len) {
        pending *p = &h->fifo[h->fifo_head];
        int rc = wsn_server_publish_ex(h->srv, NULL, p->channel, WSN_TYPE_JSON, p->json,
                                       strlen(p->json), NULL, NULL, WSN_PUBLISH_NONBLOCK);
        if (rc == WSN_EAGAIN) {
            /* Kept, in order; retried when the room fd says so. */
            if (!h->refusals)
                h->first_refused_round = h->rounds;
            h->refusals++;
            if (!h->sh->stalled)
                flag_set(h->sh, &h->sh->stalled);
            return;
        }
        CHECK_OK(rc);
        free(p->json);
        h->fifo_head++;
        refill(h);
    }
}

static int readable_now(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK(poll(&p, 1, 0) >= 0);
    return p.revents != 0;
}

static void test_poll_loop_1000_clients(void)
{
    wsn_options *o = tu_opts();
    shared sh;
    static peers ps;
    static host h;
    int i;
    int64_t deadline = tu_now_ms() + 12 * TU_TIMEOUT;
    tu_raise_nofile(2 * CLIENTS + 200);
    tu_set_int(o, WSN_OPT_SEND_BUFFER, 8);
    tu_set_int(o, WSN_OPT_WRITE_WAIT, DAY_MS);
    tu_set_int(o, WSN_OPT_RAW_INCOMING, 1);
    memset(&sh, 0, sizeof sh);
    pthread_mutex_init(&sh.mu, NULL);
    pthread_cond_init(&sh.cond, NULL);
    memset(&h, 0, sizeof h);
    h.sh = &sh;
    h.srv = tu_server(o);
    wsn_options_free(o);
    refill(&h);
    memset(&ps, 0, sizeof ps);
    ps.sh = &sh;
    ps.port = wsn_server_port(h.srv);
    CHECK(pthread_create(&ps.th, NULL, peers_main, &ps) == 0);

    while (h.fifo_head < h.fifo_len || h.replies_len || !sh.release) {
        struct pollfd fds[2] = {
            {.fd = wsn_server_event_fd(h.srv), .events = POLLIN},
            {.fd = wsn_server_room_fd(h.srv), .events = POLLIN},
        };
        /* Wait for room only with something to publish (level-triggered:
         * polling it otherwise would spin). Refused answers are retried on
         * a short tick: their client's own room has no fd. */
        nfds_t n = h.connected == CLIENTS && h.fifo_head < h.fifo_len ? 2 : 1;
        CHECK_MSG(tu_now_ms() < deadline, "host: %d connected, %d of %d published, %d answered",
                  h.connected, h.fifo_head, h.fifo_len, h.answered);
        CHECK(poll(fds, n, h.replies_len ? 5 : 100) >= 0);
        take_events(&h);
        answer(&h);
        if (h.connected == CLIENTS && !sh.release)
            publish_fifo(&h);
        if (!sh.release && flag_get(&sh, &sh.replies_done) &&
            !readable_now(wsn_server_room_fd(h.srv))) {
            /* Every other client was answered while the stalled one still
             * refused room: the FIFO still waits and the fd says so. */
            CHECK_EQ(h.answered, CLIENTS - 1);
            CHECK(h.fifo_head < h.fifo_len);
            CHECK_RC(wsn_server_publish_ex(h.srv, NULL, h.fifo[h.fifo_head].channel,
                                           WSN_TYPE_JSON, "1", 1, NULL, NULL,
                                           WSN_PUBLISH_NONBLOCK),
                     WSN_EAGAIN);
            h.checked_stall = 1;
            h.rounds_at_release = h.rounds;
            flag_set(&sh, &sh.release);
        }
        if (sh.release)
            publish_fifo(&h);
    }
    CHECK(pthread_join(ps.th, NULL) == 0);
    tu_note("%d refusals; %d answers given while the FIFO waited", h.refusals, h.answered);
    CHECK(h.checked_stall);
    CHECK(h.refusals > 0);
    tu_note("%d rounds, the first refused at round %d, %d made before release", h.rounds,
            h.first_refused_round, h.rounds_at_release);
    for (i = 0; i < CLIENTS; i++) {
        CHECK_EQ(ps.p[i].next_small, h.rounds);
        CHECK_EQ(ps.p[i].replies, i ? 1 : 0);
        wsn_client_release(h.clients[i]);
        wsc_free(ps.p[i].w);
    }
    CHECK_EQ(ps.p[0].next_big, h.rounds);
    CHECK_OK(wsn_server_shutdown(h.srv, 10000));
    wsn_server_free(h.srv);
    pthread_cond_destroy(&sh.cond);
    pthread_mutex_destroy(&sh.mu);
}

static const tu_test tests[] = {
    {"poll_loop_1000_clients", test_poll_loop_1000_clients},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
