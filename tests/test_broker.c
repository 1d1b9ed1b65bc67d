/* The Redis broker (WSN_OPT_BROKER): three servers in separate processes
 * (broker_node) with real WebSocket clients on each, and a redis-server of
 * the test's own (a unix socket in a fresh directory, or a free TCP port)
 * that the failover tests kill and restart. Nothing here waits by sleeping:
 * every wait is for a message, a count or an HTTP answer, with a deadline. */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define NODES 3
#define MAXI 8192

/* --- redis-server ------------------------------------------------------ */

typedef struct redis_proc {
    pid_t pid;
    char dir[64];
    char sock[96];
    int port; /* 0: unix socket only */
    int cluster; /* a Redis Cluster node (nodes.conf in dir) */
    int bus_port; /* its cluster bus (port + 10000 may be past 65535) */
    const char *password;
    char url[256];
} redis_proc;

static int redis_connect(const redis_proc *r)
{
    int fd;
    if (r->port) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port)};
        a.sin_addr.s_addr = htonl(0x7f000001);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
            return fd;
    } else {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", r->sock);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
            return fd;
    }
    if (fd >= 0)
        close(fd);
    return -1;
}

static int free_tcp_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(0x7f000001);
    socklen_t len = sizeof(a);
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* tcp: a free loopback port (with password: requirepass); else a unix
 * socket in a directory of its own. */
static void redis_init(redis_proc *r, int tcp, const char *password)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "/tmp/wsn-redis-XXXXXX");
    CHECK(mkdtemp(r->dir) != NULL);
    snprintf(r->sock, sizeof(r->sock), "%s/redis.sock", r->dir);
    r->password = password;
    if (tcp) {
        r->port = free_tcp_port();
        snprintf(r->url, sizeof(r->url), "redis://%s%s%s127.0.0.1:%d", password ? ":" : "",
                 password ? password : "", password ? "@" : "", r->port);
    } else
        snprintf(r->url, sizeof(r->url), "unix:%s", r->sock);
}

/* fork + exec of argv (PATH searched). The child is killed with this
 * process, whatever ends it (a failed CHECK, ctest's timeout): no
 * redis-server outlives its test. */
static pid_t spawn_dying(const char *const *argv)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
            _exit(127);
        execvp(argv[0], (char *const *)argv);
        /* Only what is safe after fork in a threaded process. */
        static const char msg[] = "cannot run redis-server (apt-get install redis-server)\n";
        if (write(2, msg, sizeof(msg) - 1) < 0)
            _exit(126);
        _exit(127);
    }
    return pid;
}

/* spawn_dying with stdout on /dev/null (redis-cli tells its progress). */
static pid_t spawn_quiet(const char *const *argv)
{
    int saved = dup(1), null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    CHECK(saved >= 0 && null >= 0);
    fflush(stdout);
    CHECK(dup2(null, 1) == 1);
    pid_t pid = spawn_dying(argv);
    CHECK(dup2(saved, 1) == 1);
    close(saved);
    close(null);
    return pid;
}

static void redis_start(redis_proc *r)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", r->port);
    const char *server = getenv("WSN_REDIS_SERVER") ? getenv("WSN_REDIS_SERVER") : "redis-server";
    const char *argv[32];
    int n = 0;
    argv[n++] = server;
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--unixsocket";
    argv[n++] = r->sock;
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = r->dir;
    argv[n++] = "--loglevel";
    argv[n++] = "warning";
    argv[n++] = "--logfile";
    argv[n++] = "redis.log";
    if (r->password) {
        argv[n++] = "--requirepass";
        argv[n++] = r->password;
    }
    char bus[16];
    snprintf(bus, sizeof(bus), "%d", r->bus_port);
    if (r->cluster) {
        argv[n++] = "--cluster-port";
        argv[n++] = bus;
        argv[n++] = "--cluster-enabled";
        argv[n++] = "yes";
        argv[n++] = "--cluster-config-file";
        argv[n++] = "nodes.conf";
        argv[n++] = "--cluster-node-timeout";
        argv[n++] = "1000";
    }
    argv[n] = NULL;
    r->pid = spawn_dying(argv);
    int fd = -1;
    TU_WAIT_FOR((fd = redis_connect(r)) >= 0, TU_TIMEOUT);
    close(fd);
}

static void redis_kill(redis_proc *r)
{
    CHECK(r->pid > 0);
    kill(r->pid, SIGKILL);
    CHECK(waitpid(r->pid, NULL, 0) == r->pid);
    r->pid = 0;
    unlink(r->sock);
}

static void rm_in(const char *dir, const char *name)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
}

static void redis_end(redis_proc *r)
{
    if (r->pid > 0)
        redis_kill(r);
    rm_in(r->dir, "redis.log");
    rm_in(r->dir, "nodes.conf");
    rmdir(r->dir);
}

/* Writes one command to Redis as anyone could (RESP), and reads its
 * reply's first line. */
static void redis_command(const redis_proc *r, int argc, const char **argv, const size_t *lens)
{
    int fd = redis_connect(r);
    CHECK(fd >= 0);
    char head[64];
    if (r->password) {
        char *auth = tu_strdupf("*2\r\n$4\r\nAUTH\r\n$%zu\r\n%s\r\n", strlen(r->password),
                                r->password);
        CHECK(write(fd, auth, strlen(auth)) == (ssize_t)strlen(auth));
        free(auth);
    }
    int len = snprintf(head, sizeof(head), "*%d\r\n", argc);
    CHECK(write(fd, head, (size_t)len) == len);
    for (int i = 0; i < argc; i++) {
        len = snprintf(head, sizeof(head), "$%zu\r\n", lens[i]);
        CHECK(write(fd, head, (size_t)len) == len);
        CHECK(write(fd, argv[i], lens[i]) == (ssize_t)lens[i]);
        CHECK(write(fd, "\r\n", 2) == 2);
    }
    char reply[256];
    ssize_t got = 0;
    int want_lines = r->password ? 2 : 1;
    int64_t deadline = tu_now_ms() + TU_TIMEOUT;
    while (tu_now_ms() < deadline) {
        ssize_t k = read(fd, reply + got, sizeof(reply) - 1 - (size_t)got);
        CHECK(k > 0);
        got += k;
        reply[got] = 0;
        int lines = 0;
        for (char *p = reply; (p = strstr(p, "\r\n")); p += 2)
            lines++;
        if (lines >= want_lines)
            break;
    }
    CHECK_MSG(!strchr(reply, '-'), "redis answered %s", reply);
    close(fd);
}

static void redis_publish_raw(const redis_proc *r, const char *chan, const void *data, size_t len)
{
    const char *argv[] = {"PUBLISH", chan, data};
    size_t lens[] = {7, strlen(chan), len};
    redis_command(r, 3, argv, lens);
}

/* --- servers ------------------------------------------------------------ */

typedef struct node {
    pid_t pid;
    int port;
    char id[32];
    int in_fd; /* its stdin: closing it ends the node */
} node;

static void node_start(node *n, const char *url, int sharded)
{
    int in[2], out[2];
    CHECK(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    const char *argv[] = {BROKER_NODE, url, sharded ? "sharded" : "plain", NULL};
    int rc = posix_spawn(&n->pid, BROKER_NODE, &fa, NULL, (char **)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    CHECK_MSG(rc == 0, "spawn %s: %s", BROKER_NODE, strerror(rc));
    close(in[0]);
    close(out[1]);
    n->in_fd = in[1];
    FILE *f = fdopen(out[0], "r");
    CHECK(f != NULL);
    char line[128] = "";
    CHECK_MSG(fgets(line, sizeof(line), f) != NULL, "broker_node did not start");
    CHECK_MSG(sscanf(line, "port %d id %31s", &n->port, n->id) == 2, "node said: %s", line);
    fclose(f);
    CHECK_EQ(strlen(n->id), 10);
}

static void node_stop(node *n)
{
    close(n->in_fd);
    int status = 0;
    CHECK(waitpid(n->pid, &status, 0) == n->pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "node exited with status %d", status);
}

static int healthz(const node *n, char **body)
{
    int status = 0;
    size_t len = 0;
    char *b = NULL;
    CHECK_WSC(wsc_http_get("127.0.0.1", n->port, "/healthz", NULL, TU_TIMEOUT, &status, &b, &len));
    if (body)
        *body = b;
    else
        free(b);
    return status;
}

/* --- clients ------------------------------------------------------------ */

typedef struct peer {
    wsc *c;
    int node;
    int msgpack;
    pthread_t reader;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    int broken;   /* the connection ended or broke the protocol */
    json_t *reply;
    /* accounting, mu */
    unsigned char got[NODES][MAXI];
    int last[NODES];
    int total[NODES];
    int probes[NODES];
    int order_bad, dup, junk, binary;
    int dm[MAXI];
    int dm_total, dm_order_bad, dm_last;
    int batches, batch_items;
    int markers;
} peer;

static int tag_index(const char *t, char prefix)
{
    if (!t)
        return -1;
    if (prefix) {
        if (t[0] != prefix)
            return -1;
        t++;
    }
    return t[0] >= 'A' && t[0] < 'A' + NODES && !t[1] ? t[0] - 'A' : -1;
}

static void account(peer *p, json_t *env)
{
    const char *chan = json_string_value(json_object_get(env, "channel"));
    json_t *msg = json_object_get(env, "message");
    if (chan && !strcmp(chan, "ctl")) {
        json_decref(p->reply);
        p->reply = json_incref(msg);
        pthread_cond_broadcast(&p->cv);
        return;
    }
    json_t *items = json_object_get(msg, "messages");
    if (items) {
        p->batches++;
        p->batch_items += (int)json_array_size(items);
        return;
    }
    const char *t = json_string_value(json_object_get(msg, "t"));
    json_int_t i = json_integer_value(json_object_get(msg, "i"));
    int k;
    if (t && !strcmp(t, "mark"))
        p->markers++;
    else if ((k = tag_index(t, 'p')) >= 0)
        p->probes[k]++;
    else if (chan && !strcmp(chan, "dm") && tag_index(t, 'd') >= 0 && i >= 0 && i < MAXI) {
        if (p->dm_total && i <= p->dm_last)
            p->dm_order_bad++;
        p->dm[i]++;
        p->dm_last = (int)i;
        p->dm_total++;
    } else if ((k = tag_index(t, 0)) >= 0 && i >= 0 && i < MAXI) {
        if (p->got[k][i])
            p->dup++;
        if (p->total[k] && i <= p->last[k])
            p->order_bad++;
        p->got[k][i]++;
        p->last[k] = (int)i;
        p->total[k]++;
    } else
        p->junk++;
}

static void *reader_main(void *arg)
{
    peer *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        wsc_msg m = {0};
        int rc = wsc_recv_msg(p->c, &m, 100);
        if (rc == WSC_TIMEOUT)
            continue;
        pthread_mutex_lock(&p->mu);
        if (rc != WSC_OK || m.opcode == WSC_OP_CLOSE) {
            p->broken = 1;
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
            wsc_msg_clear(&m);
            break;
        }
        if (m.opcode == WSC_OP_BINARY)
            p->binary++;
        else {
            json_t *env = json_loadb((const char *)m.data, m.len, 0, NULL);
            if (env)
                account(p, env);
            else
                p->junk++;
            json_decref(env);
        }
        pthread_mutex_unlock(&p->mu);
        wsc_msg_clear(&m);
    }
    return NULL;
}

static peer *peer_open(const node *nodes, int k, int msgpack)
{
    peer *p = calloc(1, sizeof(*p));
    CHECK(p != NULL);
    wsc_opts o = {.port = nodes[k].port, .no_auto_pong = 1,
                  .protocol = msgpack ? "wsnotify.msgpack" : NULL};
    p->c = tu_connect_opts(&o);
    p->node = k;
    p->msgpack = msgpack;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    CHECK(pthread_create(&p->reader, NULL, reader_main, p) == 0);
    return p;
}

static void peer_close(peer *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->reader, NULL);
    wsc_free(p->c);
    json_decref(p->reply);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Sends a command (JSON built by fmt) to p's node; with want, waits for
 * its answer and returns it (a new reference). */
static void peer_send(peer *p, json_t *cmd)
{
    char *text = json_dumps(cmd, JSON_COMPACT);
    json_decref(cmd);
    char *env = tu_strdupf("{\"type\":\"json\",\"channel\":\"x\",\"message\":%s}", text);
    pthread_mutex_lock(&p->mu);
    json_decref(p->reply);
    p->reply = NULL;
    pthread_mutex_unlock(&p->mu);
    CHECK_WSC(wsc_send_text(p->c, env));
    free(text);
    free(env);
}

static json_t *peer_reply(peer *p, const char *op)
{
    int64_t deadline = tu_now_ms() + 60000;
    pthread_mutex_lock(&p->mu);
    while (!(p->reply && !strcmp(json_string_value(json_object_get(p->reply, "op")), op))) {
        CHECK_MSG(!p->broken, "client on node %d lost its connection", p->node);
        CHECK_MSG(tu_now_ms() < deadline, "no '%s' answer from node %d", op, p->node);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    json_t *r = p->reply;
    p->reply = NULL;
    pthread_mutex_unlock(&p->mu);
    return r;
}

static json_t *ask(peer *p, json_t *cmd, const char *op)
{
    peer_send(p, cmd);
    return peer_reply(p, op);
}

static void subscribe(peer *p, const char *chan)
{
    json_t *r = ask(p, json_pack("{s:s,s:s}", "op", "sub", "chan", chan), "sub");
    CHECK_EQ(json_integer_value(json_object_get(r, "rc")), 0);
    json_decref(r);
}

/* Reads a field of p under its lock. */
#define PEEK(p, expr)                                                         \
    ({                                                                        \
        pthread_mutex_lock(&(p)->mu);                                         \
        __typeof__(expr) v_ = (expr);                                         \
        pthread_mutex_unlock(&(p)->mu);                                       \
        v_;                                                                   \
    })

static json_t *info(peer *p)
{
    return ask(p, json_pack("{s:s}", "op", "info"), "info");
}

static json_int_t info_int(peer *p, const char *field)
{
    json_t *r = info(p);
    json_int_t v = json_integer_value(json_object_get(r, field));
    json_decref(r);
    return v;
}

/* Publishes from node k (through its client p) and returns the answer's
 * rcs string (malloc'd). */
static char *publish(peer *p, const char *chan, int tag, int from, int n)
{
    char t[2] = {(char)('A' + tag), 0};
    json_t *r = ask(p,
                    json_pack("{s:s,s:s,s:s,s:i,s:i}", "op", "pub", "chan", chan, "tag", t,
                              "from", from, "n", n),
                    "pub");
    char *rcs = strdup(json_string_value(json_object_get(r, "rcs")));
    json_decref(r);
    CHECK_EQ((int)strlen(rcs), n);
    return rcs;
}

static void expect_all(const char *rcs, char want)
{
    for (const char *c = rcs; *c; c++)
        CHECK_MSG(*c == want, "publish %d answered '%c', not '%c'", (int)(c - rcs), *c, want);
}

/* Probes from every node until each peer has one from every node: every
 * server's subscription to chan is then live in Redis. */
static void await_mesh(node *nodes, peer **ctl, peer **peers, int npeers, const char *chan)
{
    int64_t deadline = tu_now_ms() + TU_TIMEOUT;
    for (int round = 0;; round++) {
        for (int k = 0; k < NODES; k++) {
            char t[3] = {'p', (char)('A' + k), 0};
            json_decref(ask(ctl[k],
                            json_pack("{s:s,s:s,s:s,s:i,s:i}", "op", "pub", "chan", chan, "tag",
                                      t, "from", round, "n", 1),
                            "pub"));
        }
        int ready = 1;
        for (int i = 0; i < npeers; i++)
            for (int k = 0; k < NODES; k++)
                if (!PEEK(peers[i], peers[i]->probes[k]))
                    ready = 0;
        if (ready)
            return;
        CHECK_MSG(tu_now_ms() < deadline, "subscriptions did not reach every server");
        /* The next round waits for this one's probes to have had a chance:
         * a marker from node 0 to itself orders after them. */
        (void)nodes;
        json_decref(info(ctl[0]));
    }
}

static void wait_total(peer *p, int tag, int want)
{
    TU_WAIT_FOR(PEEK(p, p->total[tag]) >= want, 60000);
    CHECK_EQ(PEEK(p, p->total[tag]), want);
}

static void wait_health(node *n, int want_status)
{
    int64_t deadline = tu_now_ms() + 30000;
    for (;;) {
        int st = healthz(n, NULL);
        if (st == want_status)
            return;
        CHECK_MSG(tu_now_ms() < deadline, "/healthz of node port %d stays %d, not %d", n->port, st,
                  want_status);
        /* An HTTP round trip per check: not a sleep, a poll. */
    }
}

static void cluster_start(redis_proc *r, node *nodes, int sharded)
{
    for (int k = 0; k < NODES; k++)
        node_start(&nodes[k], r->url, sharded);
    for (int k = 0; k < NODES; k++)
        wait_health(&nodes[k], 200);
}

static void cluster_stop(node *nodes)
{
    for (int k = 0; k < NODES; k++)
        node_stop(&nodes[k]);
}

/* Redis, three servers and one client on each subscribed to chan (each
 * also its server's control client), with every subscription live. */
typedef struct cluster {
    redis_proc r;
    node nodes[NODES];
    peer *peers[NODES];
} cluster;

static void cluster_up(cluster *cl, const char *chan)
{
    redis_init(&cl->r, 0, NULL);
    redis_start(&cl->r);
    cluster_start(&cl->r, cl->nodes, 0);
    for (int k = 0; k < NODES; k++) {
        cl->peers[k] = peer_open(cl->nodes, k, 0);
        subscribe(cl->peers[k], chan);
    }
    await_mesh(cl->nodes, cl->peers, cl->peers, NODES, chan);
}

static void cluster_down(cluster *cl)
{
    for (int k = 0; k < NODES; k++)
        peer_close(cl->peers[k]);
    cluster_stop(cl->nodes);
    redis_end(&cl->r);
}

/* --- tests -------------------------------------------------------------- */

/* Publishers on every server, subscribers on every server: each of them
 * gets every publish exactly once, in each publisher's order; a
 * MessagePack client on another server gets the frames too. */
static void run_exact_once(int tcp, const char *password, int sharded)
{
    redis_proc r;
    redis_init(&r, tcp, password);
    redis_start(&r);
    node nodes[NODES];
    cluster_start(&r, nodes, sharded);
    enum { PER = 2 };
    peer *peers[NODES * PER + 1], *ctl[NODES];
    int np = 0;
    for (int k = 0; k < NODES; k++)
        for (int j = 0; j < PER; j++) {
            peers[np] = peer_open(nodes, k, 0);
            subscribe(peers[np], "feed");
            np++;
        }
    for (int k = 0; k < NODES; k++)
        ctl[k] = peers[k * PER];
    peer *mp = peer_open(nodes, 2, 1);
    json_t *sub = json_pack("{s:s,s:s}", "op", "sub", "chan", "feed");
    /* The MessagePack client's answers are binary: it sends and counts. */
    peer_send(mp, sub);
    TU_WAIT_FOR(PEEK(mp, mp->binary) >= 1, TU_TIMEOUT);
    await_mesh(nodes, ctl, peers, np, "feed");

    const int n = tcp ? 300 : 3000, chunk = 500;
    for (int from = 0; from < n; from += chunk) {
        int c = n - from < chunk ? n - from : chunk;
        for (int k = 0; k < NODES; k++)
            peer_send(ctl[k], json_pack("{s:s,s:s,s:s,s:i,s:i}", "op", "pub", "chan", "feed", "tag",
                                        (char[]){(char)('A' + k), 0}, "from", from, "n", c));
        for (int k = 0; k < NODES; k++) {
            json_t *rep = peer_reply(ctl[k], "pub");
            expect_all(json_string_value(json_object_get(rep, "rcs")), '.');
            json_decref(rep);
        }
    }
    for (int i = 0; i < np; i++)
        for (int k = 0; k < NODES; k++)
            wait_total(peers[i], k, n);
    for (int i = 0; i < np; i++) {
        peer *p = peers[i];
        pthread_mutex_lock(&p->mu);
        for (int k = 0; k < NODES; k++)
            for (int j = 0; j < n; j++)
                CHECK_MSG(p->got[k][j] == 1, "client %d got publish %c%d %d times", i, 'A' + k, j,
                          p->got[k][j]);
        CHECK_EQ(p->order_bad, 0);
        CHECK_EQ(p->dup, 0);
        CHECK_EQ(p->junk, 0);
        pthread_mutex_unlock(&p->mu);
    }
    /* Binary frames: the mesh probes and 3n publishes (the probes count
     * is not known exactly, so at least). */
    TU_WAIT_FOR(PEEK(mp, mp->binary) >= NODES * n, 60000);
    /* Redis's acknowledgements are read after the other servers may have
     * delivered a publish: the count catches up, it is not there at once. */
    for (int k = 0; k < NODES; k++)
        TU_WAIT_FOR(info_int(ctl[k], "sent") >= n, 60000);
    for (int k = 0; k < NODES; k++) {
        json_t *inf = info(ctl[k]);
        CHECK_EQ(json_integer_value(json_object_get(inf, "state")), WSN_BROKER_UP);
        CHECK_EQ(json_integer_value(json_object_get(inf, "ignored")), 0);
        CHECK_EQ(json_integer_value(json_object_get(inf, "refused")), 0);
        CHECK_EQ(json_integer_value(json_object_get(inf, "dropped")), 0);
        CHECK(json_integer_value(json_object_get(inf, "sent")) >= n);
        CHECK(json_integer_value(json_object_get(inf, "received")) >= (NODES - 1) * n);
        CHECK_STR(json_string_value(json_object_get(inf, "id")), nodes[k].id);
        json_decref(inf);
    }
    for (int i = 0; i < np; i++)
        peer_close(peers[i]);
    peer_close(mp);
    cluster_stop(nodes);
    redis_end(&r);
}

static void exact_once_three_servers(void) { run_exact_once(0, NULL, 0); }

static void tcp_with_password(void) { run_exact_once(1, "s3cret-pw", 0); }

static void sharded_pubsub(void) { run_exact_once(0, NULL, 1); }

/* A wrong password: the server stays unhealthy and says why. */
static void wrong_password(void)
{
    redis_proc r;
    redis_init(&r, 1, "right-pw");
    redis_start(&r);
    char url[256];
    snprintf(url, sizeof(url), "redis://:wrong-pw@127.0.0.1:%d", r.port);
    node n;
    node_start(&n, url, 0);
    char *body = NULL;
    int64_t deadline = tu_now_ms() + TU_TIMEOUT;
    for (;;) {
        free(body);
        body = NULL;
        CHECK_EQ(healthz(&n, &body), 503);
        if (strstr(body, "AUTH"))
            break;
        CHECK_MSG(tu_now_ms() < deadline, "healthz body: %s", body);
    }
    CHECK_MSG(strstr(body, "broker connecting") == body, "healthz body: %s", body);
    free(body);
    node_stop(&n);
    redis_end(&r);
}

static void to_client_across_servers(void)
{
    redis_proc r;
    redis_init(&r, 0, NULL);
    redis_start(&r);
    node nodes[NODES];
    cluster_start(&r, nodes, 0);
    peer *a = peer_open(nodes, 0, 0), *c = peer_open(nodes, 2, 0);
    json_t *me = ask(c, json_pack("{s:s}", "op", "me"), "me");
    char id[64];
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(me, "id")));
    json_decref(me);
    /* The id names its server. */
    char prefix[48];
    snprintf(prefix, sizeof(prefix), "c_%s_", nodes[2].id);
    CHECK_MSG(strncmp(id, prefix, strlen(prefix)) == 0, "id %s", id);
    const int n = 200;
    for (int i = 0; i < n; i++) {
        json_t *rep = ask(a, json_pack("{s:s,s:s,s:s,s:i}", "op", "to", "id", id, "tag", "dA", "i", i),
                          "to");
        CHECK_EQ(json_integer_value(json_object_get(rep, "rc")), 0);
        json_decref(rep);
    }
    TU_WAIT_FOR(PEEK(c, c->dm_total) >= n, TU_TIMEOUT);
    pthread_mutex_lock(&c->mu);
    CHECK_EQ(c->dm_total, n);
    CHECK_EQ(c->dm_order_bad, 0);
    for (int i = 0; i < n; i++)
        CHECK_EQ(c->dm[i], 1);
    pthread_mutex_unlock(&c->mu);
    /* A client of this server that does not exist: WSN_EGONE at once. */
    char gone[64];
    snprintf(gone, sizeof(gone), "c_%s_999999999", nodes[0].id);
    json_t *rep =
        ask(a, json_pack("{s:s,s:s,s:s,s:i}", "op", "to", "id", gone, "tag", "dA", "i", 0), "to");
    CHECK_EQ(json_integer_value(json_object_get(rep, "rc")), WSN_EGONE);
    json_decref(rep);
    peer_close(a);
    peer_close(c);
    cluster_stop(nodes);
    redis_end(&r);
}

/* A publish_wait batch flushed on one server reaches the others' clients
 * once, as one batch frame. */
static void batch_across_servers(void)
{
    cluster cl;
    cluster_up(&cl, "bfeed");
    peer **ctl = cl.peers, **peers = cl.peers;
    json_t *rep = ask(ctl[0], json_pack("{s:s,s:s,s:s,s:i}", "op", "batch", "chan", "bfeed", "tag",
                                        "A", "n", 5),
                      "batch");
    CHECK_EQ(json_integer_value(json_object_get(rep, "rc")), 0);
    json_decref(rep);
    for (int k = 0; k < NODES; k++)
        TU_WAIT_FOR(PEEK(peers[k], peers[k]->batches) >= 1, TU_TIMEOUT);
    /* Anything sent twice would come before a later publish of the same
     * server (per-publisher order): one after it, then count. */
    json_decref(ask(ctl[0], json_pack("{s:s,s:s,s:s,s:i,s:i}", "op", "pub", "chan", "bfeed", "tag",
                                      "A", "from", 0, "n", 1),
                    "pub"));
    for (int k = 0; k < NODES; k++) {
        wait_total(peers[k], 0, 1);
        CHECK_EQ(PEEK(peers[k], peers[k]->batches), 1);
        CHECK_EQ(PEEK(peers[k], peers[k]->batch_items), 5);
    }
    cluster_down(&cl);
}

/* What others write to a subscribed Redis channel is ignored, counted and
 * logged; it never reaches a client nor stops the broker. */
static void hostile_broker_input(void)
{
    cluster cl;
    cluster_up(&cl, "feed");
    peer **ctl = cl.peers, **peers = cl.peers;
    redis_proc *r = &cl.r;
    /* Plain text; the magic with nothing after it; a header claiming more
     * than there is; a frame length past the end; an inbox message on a
     * channel; invalid UTF-8 in a text frame. */
    /* Envelopes of version 2: magic, version, kind, formats, count,
     * origin (8), sequence (8), epoch (4), target length, frames. */
    static const unsigned char bad_utf8[] = {'W', 'S', 'N', 'B', 2, 1, 2, 1, 1, 2, 3, 4, 5, 0, 0, 0,
                                             1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0,
                                             0xc3, 0x28};
    static const unsigned char long_len[] = {'W', 'S', 'N', 'B', 2, 1, 2, 1, 9, 9, 9, 9, 9, 0,
                                             0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0,
                                             0xff, 0xff, 0, 0, 'x'};
    struct {
        const void *data;
        size_t len;
    } bad[] = {
        {"{\"t\":\"A\",\"i\":1}", 15},
        {"WSNB", 4},
        {"WSNB\x02\x01\x02\x05", 8},
        {long_len, sizeof(long_len)},
        {bad_utf8, sizeof(bad_utf8)},
    };
    size_t nbad = sizeof(bad) / sizeof(bad[0]);
    for (size_t i = 0; i < nbad; i++)
        redis_publish_raw(r, "wsn:0:c:feed", bad[i].data, bad[i].len);
    /* Then a real publish from every server: it arrives, after nothing. */
    for (int k = 0; k < NODES; k++) {
        char *rcs = publish(ctl[k], "feed", k, 0, 1);
        expect_all(rcs, '.');
        free(rcs);
    }
    for (int k = 0; k < NODES; k++) {
        for (int t = 0; t < NODES; t++)
            wait_total(peers[k], t, 1);
        CHECK_EQ(PEEK(peers[k], peers[k]->junk), 0);
        CHECK_EQ(PEEK(peers[k], peers[k]->binary), 0);
        CHECK_EQ(info_int(ctl[k], "ignored"), (json_int_t)nbad);
        CHECK_EQ(info_int(ctl[k], "state"), WSN_BROKER_UP);
    }
    cluster_down(&cl);
}

/* Streams chunk c (indices [c*size, (c+1)*size)) from every node; returns
 * the answers' rcs strings in rcs[k] (malloc'd). */
static void stream_chunk_on(peer **ctl, const char *chan, int c, int size, char **rcs)
{
    for (int k = 0; k < NODES; k++)
        peer_send(ctl[k], json_pack("{s:s,s:s,s:s,s:i,s:i}", "op", "pub", "chan", chan, "tag",
                                    (char[]){(char)('A' + k), 0}, "from", c * size, "n", size));
    for (int k = 0; k < NODES; k++) {
        json_t *rep = peer_reply(ctl[k], "pub");
        rcs[k] = strdup(json_string_value(json_object_get(rep, "rcs")));
        json_decref(rep);
    }
}

static void stream_chunk(peer **ctl, int c, int size, char **rcs)
{
    stream_chunk_on(ctl, "feed", c, size, rcs);
}

/* publish_to_client_id from node t's server to the client on node
 * (t + 1) % NODES, tagged as t's; returns the call's result. */
static int dm_next(peer **ctl, char ids[][64], int t, int i)
{
    char tag[3] = {'d', (char)('A' + t), 0};
    json_t *rep = ask(ctl[t], json_pack("{s:s,s:s,s:s,s:i}", "op", "to", "id",
                                        ids[(t + 1) % NODES], "tag", tag, "i", i),
                      "to");
    int rc = (int)json_integer_value(json_object_get(rep, "rc"));
    json_decref(rep);
    return rc;
}

/* Redis killed mid-stream and restarted: publishes made while a server
 * knows the broker is down answer WSN_EBROKER and reach that server's
 * clients only; /healthz says 503 with the reason, then 200; the channels
 * are subscribed again without any client reconnecting; nothing arrives
 * twice or out of order; what was lost is what the publishers counted, and
 * exactly what each receiving server counted as lost (sequence gaps). */
static void failover_kill_restart(void)
{
    cluster cl;
    cluster_up(&cl, "feed");
    peer **ctl = cl.peers, **peers = cl.peers;
    node *nodes = cl.nodes;
    redis_proc *r = &cl.r;
    enum { SIZE = 100, CHUNKS = 12 };
    char *rcs[CHUNKS][NODES];
    json_int_t lost0[NODES], gaps0[NODES];
    for (int k = 0; k < NODES; k++) {
        lost0[k] = info_int(ctl[k], "refused") + info_int(ctl[k], "unconfirmed");
        gaps0[k] = info_int(ctl[k], "lost");
    }

    /* A message to a client of another server, once before the kill, once
     * while down (refused: WSN_EBROKER) and once after: the refused one is
     * counted as lost at its target, as a channel publish is. */
    char ids[NODES][64];
    for (int k = 0; k < NODES; k++) {
        json_t *me = ask(peers[k], json_pack("{s:s}", "op", "me"), "me");
        snprintf(ids[k], sizeof(ids[k]), "%s", json_string_value(json_object_get(me, "id")));
        json_decref(me);
    }
    for (int t = 0; t < NODES; t++)
        CHECK_RC(dm_next(ctl, ids, t, 0), WSN_OK);
    for (int k = 0; k < NODES; k++)
        TU_WAIT_FOR(PEEK(peers[k], peers[k]->dm_total) >= 1, TU_TIMEOUT);

    /* Chunks 0-2 with Redis up: delivered everywhere before the kill. */
    for (int c = 0; c < 3; c++)
        stream_chunk(ctl, c, SIZE, rcs[c]);
    for (int k = 0; k < NODES; k++)
        for (int t = 0; t < NODES; t++)
            wait_total(peers[k], t, 3 * SIZE);
    /* Chunk 3 right after the kill: the servers may not know yet. */
    redis_kill(r);
    stream_chunk(ctl, 3, SIZE, rcs[3]);
    for (int k = 0; k < NODES; k++) {
        char *body = NULL;
        int64_t deadline = tu_now_ms() + 30000;
        while (healthz(&nodes[k], &body) != 503) {
            free(body);
            body = NULL;
            CHECK_MSG(tu_now_ms() < deadline, "node %d stays healthy without Redis", k);
        }
        CHECK_MSG(strstr(body, "broker down: ") == body, "healthz body: %s", body);
        free(body);
        CHECK_EQ(info_int(ctl[k], "state"), WSN_BROKER_DOWN);
    }
    /* Chunks 4-6 while every server knows: WSN_EBROKER, this server only. */
    for (int c = 4; c < 7; c++) {
        stream_chunk(ctl, c, SIZE, rcs[c]);
        for (int k = 0; k < NODES; k++)
            expect_all(rcs[c][k], 'B');
    }
    for (int t = 0; t < NODES; t++)
        CHECK_RC(dm_next(ctl, ids, t, 1), WSN_EBROKER);
    redis_start(r);
    for (int k = 0; k < NODES; k++)
        wait_health(&nodes[k], 200);
    for (int k = 0; k < NODES; k++) {
        CHECK_EQ(info_int(ctl[k], "state"), WSN_BROKER_UP);
        CHECK_EQ(info_int(ctl[k], "reconnects"), 1);
    }
    /* Chunks 7-11 after: delivered everywhere (subscriptions restored). */
    for (int c = 7; c < CHUNKS; c++) {
        stream_chunk(ctl, c, SIZE, rcs[c]);
        for (int k = 0; k < NODES; k++)
            expect_all(rcs[c][k], '.');
    }
    for (int t = 0; t < NODES; t++)
        CHECK_RC(dm_next(ctl, ids, t, 2), WSN_OK);
    for (int k = 0; k < NODES; k++) {
        TU_WAIT_FOR(PEEK(peers[k], peers[k]->dm_total) >= 2, TU_TIMEOUT);
        pthread_mutex_lock(&peers[k]->mu);
        CHECK(peers[k]->dm[0] == 1 && peers[k]->dm[1] == 0 && peers[k]->dm[2] == 1);
        pthread_mutex_unlock(&peers[k]->mu);
    }
    int last = CHUNKS * SIZE - 1;
    for (int k = 0; k < NODES; k++)
        for (int t = 0; t < NODES; t++)
            TU_WAIT_FOR(PEEK(peers[k], peers[k]->total[t] > 0 && peers[k]->last[t] == last),
                        30000);

    int missing_at[NODES] = {0};
    for (int t = 0; t < NODES; t++) {
        json_int_t lost = info_int(ctl[t], "refused") + info_int(ctl[t], "unconfirmed") - lost0[t];
        for (int k = 0; k < NODES; k++) {
            peer *p = peers[k];
            pthread_mutex_lock(&p->mu);
            CHECK_EQ(p->dup, 0);
            CHECK_EQ(p->order_bad, 0);
            CHECK_EQ(p->junk, 0);
            CHECK_MSG(!p->broken, "client %d reconnected", k);
            int missing = 0;
            for (int c = 0; c < CHUNKS; c++)
                for (int j = 0; j < SIZE; j++) {
                    int i = c * SIZE + j;
                    char rc = rcs[c][t][j];
                    if (t == k || c < 3 || c >= 7)
                        /* Its own server's clients get everything; with
                         * Redis up everyone does. */
                        CHECK_MSG(p->got[t][i] == 1, "client on %d: publish %c%d lost", k,
                                  'A' + t, i);
                    else if (rc == 'B')
                        CHECK_MSG(p->got[t][i] == 0, "client on %d got %c%d (WSN_EBROKER)", k,
                                  'A' + t, i);
                    missing += !p->got[t][i];
                }
            /* Lost at a remote client: only what its publisher counted as
             * not sent or unconfirmed. */
            CHECK_MSG(missing <= lost, "client on %d missed %d of %c, publisher counted %lld", k,
                      missing, 'A' + t, (long long)lost);
            missing_at[k] += missing;
            pthread_mutex_unlock(&p->mu);
        }
    }
    /* Delivered + counted lost == published, at every receiving server:
     * the last chunks closed every gap; one more is the refused message to
     * its client. */
    for (int k = 0; k < NODES; k++)
        CHECK_MSG(info_int(ctl[k], "lost") - gaps0[k] == missing_at[k] + 1,
                  "server %d counted %lld lost, its client missed %d + 1", k,
                  (long long)(info_int(ctl[k], "lost") - gaps0[k]), missing_at[k]);
    /* Every publish kept on its own server was counted as refused. */
    for (int t = 0; t < NODES; t++) {
        int refused_calls = 0;
        for (int c = 0; c < CHUNKS; c++)
            for (int j = 0; j < SIZE; j++)
                refused_calls += rcs[c][t][j] == 'B';
        CHECK(refused_calls >= 3 * SIZE);
        CHECK(info_int(ctl[t], "refused") - lost0[t] >= refused_calls);
    }
    for (int c = 0; c < CHUNKS; c++)
        for (int k = 0; k < NODES; k++)
            free(rcs[c][k]);
    cluster_down(&cl);
}

/* Servers started before Redis: unhealthy and WSN_EBROKER (local delivery
 * works), then, once Redis runs, subscribed to the channels their clients
 * joined meanwhile and delivering across servers. */
static void redis_after_servers(void)
{
    redis_proc r;
    redis_init(&r, 0, NULL);
    node nodes[NODES];
    for (int k = 0; k < NODES; k++)
        node_start(&nodes[k], r.url, 0);
    peer *ctl[NODES], *peers[NODES];
    for (int k = 0; k < NODES; k++) {
        char *body = NULL;
        CHECK_EQ(healthz(&nodes[k], &body), 503);
        CHECK_MSG(strstr(body, "broker connecting: ") == body, "healthz body: %s", body);
        free(body);
        peers[k] = ctl[k] = peer_open(nodes, k, 0);
        subscribe(peers[k], "feed");
    }
    for (int k = 0; k < NODES; k++) {
        char *rcs = publish(ctl[k], "feed", k, 0, 10);
        expect_all(rcs, 'B');
        free(rcs);
        wait_total(peers[k], k, 10);
    }
    redis_start(&r);
    for (int k = 0; k < NODES; k++)
        wait_health(&nodes[k], 200);
    for (int k = 0; k < NODES; k++) {
        char *rcs = publish(ctl[k], "feed", k, 10, 10);
        expect_all(rcs, '.');
        free(rcs);
    }
    for (int k = 0; k < NODES; k++)
        for (int t = 0; t < NODES; t++)
            wait_total(peers[k], t, t == k ? 20 : 10);
    for (int k = 0; k < NODES; k++) {
        CHECK_EQ(PEEK(peers[k], peers[k]->dup + peers[k]->order_bad + peers[k]->junk), 0);
        CHECK_EQ(info_int(ctl[k], "refused"), 10);
        CHECK_EQ(info_int(ctl[k], "reconnects"), 0);
        peer_close(peers[k]);
    }
    cluster_stop(nodes);
    redis_end(&r);
}

/* --- Redis Cluster (broker_sharded) ----------------------------------- */

enum { MASTERS = 3 };

/* One command (strings) to r; its reply as "+OK", "-ERR ...", ":12" or
 * "$<bulk>" (malloc'd). Arrays are not needed here. */
static char *redis_query(const redis_proc *r, int argc, const char **argv)
{
    int fd = redis_connect(r);
    CHECK_MSG(fd >= 0, "cannot connect to redis on port %d", r->port);
    char *req = tu_strdupf("*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        char *more = tu_strdupf("%s$%zu\r\n%s\r\n", req, strlen(argv[i]), argv[i]);
        free(req);
        req = more;
    }
    CHECK(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
    free(req);
    size_t cap = 65536, got = 0;
    char *buf = malloc(cap);
    CHECK(buf != NULL);
    int64_t deadline = tu_now_ms() + TU_TIMEOUT;
    for (;;) {
        CHECK_MSG(tu_now_ms() < deadline, "no reply from redis");
        ssize_t k = read(fd, buf + got, cap - 1 - got);
        CHECK(k > 0);
        got += (size_t)k;
        buf[got] = 0;
        char *eol = strstr(buf, "\r\n");
        if (!eol)
            continue;
        if (buf[0] != '$')
            break;
        long n = atol(buf + 1);
        size_t head = (size_t)(eol + 2 - buf);
        if (n < 0 || got >= head + (size_t)n + 2) {
            memmove(buf + 1, eol + 2, n < 0 ? 0 : (size_t)n);
            buf[1 + (n < 0 ? 0 : n)] = 0;
            close(fd);
            return buf;
        }
        CHECK(head + (size_t)n + 3 <= cap);
    }
    close(fd);
    *strstr(buf, "\r\n") = 0;
    return buf;
}

static void redis_ok(const redis_proc *r, int argc, const char **argv)
{
    char *rep = redis_query(r, argc, argv);
    CHECK_MSG(!strcmp(rep, "+OK"), "redis port %d answered %s to %s", r->port, rep, argv[0]);
    free(rep);
}

typedef struct rcluster {
    redis_proc m[MASTERS];
    char ids[MASTERS][48];
} rcluster;

/* Polls CLUSTER INFO on every master (a round trip each, not a sleep)
 * until each says cluster_state:ok. */
static void rcluster_wait_ok(rcluster *c)
{
    for (int i = 0; i < MASTERS; i++) {
        int64_t deadline = tu_now_ms() + 30000;
        for (;;) {
            char *info = redis_query(&c->m[i], 2, (const char *[]){"CLUSTER", "INFO"});
            int ok = strstr(info, "cluster_state:ok") != NULL;
            free(info);
            if (ok)
                break;
            CHECK_MSG(tu_now_ms() < deadline, "cluster node %d never reached cluster_state:ok",
                      c->m[i].port);
        }
    }
}

/* Three masters on free loopback ports, no replicas, every slot given. */
static void rcluster_start(rcluster *c)
{
    char addrs[MASTERS][32];
    const char *argv[16];
    int n = 0;
    argv[n++] = getenv("WSN_REDIS_CLI") ? getenv("WSN_REDIS_CLI") : "redis-cli";
    argv[n++] = "--cluster";
    argv[n++] = "create";
    for (int i = 0; i < MASTERS; i++) {
        redis_init(&c->m[i], 1, NULL);
        c->m[i].cluster = 1;
        c->m[i].bus_port = free_tcp_port();
        redis_start(&c->m[i]);
        snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%d", c->m[i].port);
        argv[n++] = addrs[i];
    }
    argv[n++] = "--cluster-replicas";
    argv[n++] = "0";
    argv[n++] = "--cluster-yes";
    argv[n] = NULL;
    pid_t pid = spawn_quiet(argv);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "redis-cli --cluster create: %d",
              status);
    rcluster_wait_ok(c);
    for (int i = 0; i < MASTERS; i++) {
        char *id = redis_query(&c->m[i], 2, (const char *[]){"CLUSTER", "MYID"});
        CHECK_MSG(id[0] == '$', "CLUSTER MYID: %s", id);
        snprintf(c->ids[i], sizeof(c->ids[i]), "%s", id + 1);
        free(id);
    }
}

static void rcluster_end(rcluster *c)
{
    for (int i = 0; i < MASTERS; i++)
        redis_end(&c->m[i]);
}

/* The master owning the slot of Redis channel chan: the one SPUBLISH
 * accepts (a channel of the same slot through its hash tag, that nobody
 * subscribes to). */
static int rcluster_owner(rcluster *c, const char *chan)
{
    char probe[160];
    snprintf(probe, sizeof(probe), "{%s}probe", chan);
    for (int i = 0; i < MASTERS; i++) {
        char *rep = redis_query(&c->m[i], 3, (const char *[]){"SPUBLISH", probe, "x"});
        int mine = rep[0] == ':';
        free(rep);
        if (mine)
            return i;
    }
    CHECK_MSG(0, "no master owns the slot of %s", chan);
    return -1;
}

/* Three wsnotify servers, each seeded with a different master. */
static void rcluster_nodes(rcluster *c, node *nodes)
{
    for (int k = 0; k < NODES; k++)
        node_start(&nodes[k], c->m[k % MASTERS].url, 1);
    for (int k = 0; k < NODES; k++)
        wait_health(&nodes[k], 200);
}

/* Per receiving server k: what its client on chan missed of the other
 * servers' publishes equals what k counted as lost since lost0[k]; none
 * arrived twice or out of order; its own server's were all delivered. */
static void check_accounting(peer **peers, peer **ctl, const json_int_t *lost0, int published)
{
    for (int k = 0; k < NODES; k++) {
        peer *p = peers[k];
        int missing = 0;
        pthread_mutex_lock(&p->mu);
        CHECK_EQ(p->dup, 0);
        CHECK_EQ(p->order_bad, 0);
        CHECK_EQ(p->junk, 0);
        CHECK_MSG(!p->broken, "client %d reconnected", k);
        for (int t = 0; t < NODES; t++)
            for (int i = 0; i < published; i++) {
                if (t == k)
                    CHECK_MSG(p->got[t][i] == 1, "client on %d: own publish %d lost", k, i);
                else
                    missing += !p->got[t][i];
            }
        pthread_mutex_unlock(&p->mu);
        json_int_t lost = info_int(ctl[k], "lost") - lost0[k];
        CHECK_MSG(lost == missing, "server %d counted %lld lost, its client missed %d", k,
                  (long long)lost, missing);
    }
}

/* Many channels spread over the three masters' slots, publishers and
 * subscribers on every server: each subscriber gets every publish once,
 * in each publisher's order; publish_to_client_id reaches a client of
 * another server through its inbox's master. */
static void cluster_exact_once(void)
{
    rcluster rc;
    rcluster_start(&rc);
    node nodes[NODES];
    rcluster_nodes(&rc, nodes);
    enum { CH = 12, N = 200, CHUNK = 100 };
    peer *peers[CH][NODES], *ctl[NODES];
    char names[CH][16];
    int on_master[MASTERS] = {0};
    for (int c = 0; c < CH; c++) {
        snprintf(names[c], sizeof(names[c]), "ch%d", c);
        char rchan[32];
        snprintf(rchan, sizeof(rchan), "wsn:0:c:%s", names[c]);
        on_master[rcluster_owner(&rc, rchan)]++;
        for (int k = 0; k < NODES; k++) {
            peers[c][k] = peer_open(nodes, k, 0);
            subscribe(peers[c][k], names[c]);
        }
    }
    for (int i = 0; i < MASTERS; i++)
        CHECK_MSG(on_master[i] > 0, "no channel on master %d: pick other names", i);
    for (int k = 0; k < NODES; k++)
        ctl[k] = peers[0][k];
    for (int c = 0; c < CH; c++)
        await_mesh(nodes, ctl, peers[c], NODES, names[c]);
    json_int_t lost0[NODES];
    for (int k = 0; k < NODES; k++)
        lost0[k] = info_int(ctl[k], "lost");

    for (int from = 0; from < N; from += CHUNK)
        for (int c = 0; c < CH; c++) {
            char *rcs[NODES];
            for (int k = 0; k < NODES; k++)
                peer_send(ctl[k], json_pack("{s:s,s:s,s:s,s:i,s:i}", "op", "pub", "chan",
                                            names[c], "tag", (char[]){(char)('A' + k), 0},
                                            "from", from, "n", CHUNK));
            for (int k = 0; k < NODES; k++) {
                json_t *rep = peer_reply(ctl[k], "pub");
                rcs[k] = strdup(json_string_value(json_object_get(rep, "rcs")));
                json_decref(rep);
                expect_all(rcs[k], '.');
                free(rcs[k]);
            }
        }
    for (int c = 0; c < CH; c++) {
        for (int k = 0; k < NODES; k++)
            for (int t = 0; t < NODES; t++)
                wait_total(peers[c][k], t, N);
        check_accounting(peers[c], ctl, lost0, N);
    }

    /* publish_to_client_id from every server to a client of server 2. */
    peer *target = peer_open(nodes, 2, 0);
    json_t *me = ask(target, json_pack("{s:s}", "op", "me"), "me");
    char id[64];
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(me, "id")));
    json_decref(me);
    enum { DM = 100 };
    for (int i = 0; i < DM; i++) {
        json_t *rep = ask(ctl[i % 2], json_pack("{s:s,s:s,s:s,s:i}", "op", "to", "id", id,
                                                "tag", "dA", "i", i),
                          "to");
        CHECK_EQ(json_integer_value(json_object_get(rep, "rc")), 0);
        json_decref(rep);
    }
    TU_WAIT_FOR(PEEK(target, target->dm_total) >= DM, TU_TIMEOUT);
    pthread_mutex_lock(&target->mu);
    CHECK_EQ(target->dm_total, DM);
    for (int i = 0; i < DM; i++)
        CHECK_EQ(target->dm[i], 1);
    pthread_mutex_unlock(&target->mu);

    for (int k = 0; k < NODES; k++) {
        json_t *inf = info(ctl[k]);
        CHECK_EQ(json_integer_value(json_object_get(inf, "state")), WSN_BROKER_UP);
        CHECK_EQ(json_integer_value(json_object_get(inf, "refused")), 0);
        CHECK_EQ(json_integer_value(json_object_get(inf, "ignored")), 0);
        CHECK_EQ(json_integer_value(json_object_get(inf, "dropped")), 0);
        CHECK_EQ(json_integer_value(json_object_get(inf, "lost")), lost0[k]);
        CHECK_EQ(json_integer_value(json_object_get(inf, "reconnects")), 0);
        json_decref(inf);
    }
    peer_close(target);
    for (int c = 0; c < CH; c++)
        for (int k = 0; k < NODES; k++)
            peer_close(peers[c][k]);
    cluster_stop(nodes);
    rcluster_end(&rc);
}

/* A channel's slot moved to another master while every server publishes
 * to it: publishes redirected (-MOVED) are sent again, in order; the
 * subscriptions Redis ends (sunsubscribe) are made where the slot lives
 * now; nobody reconnects; what did not arrive is exactly what each server
 * counted as lost. */
static void cluster_slot_migration(void)
{
    rcluster rc;
    rcluster_start(&rc);
    node nodes[NODES];
    rcluster_nodes(&rc, nodes);
    peer *peers[NODES];
    for (int k = 0; k < NODES; k++) {
        peers[k] = peer_open(nodes, k, 0);
        subscribe(peers[k], "mig");
    }
    await_mesh(nodes, peers, peers, NODES, "mig");
    json_int_t lost0[NODES];
    for (int k = 0; k < NODES; k++)
        lost0[k] = info_int(peers[k], "lost");
    int src = rcluster_owner(&rc, "wsn:0:c:mig"), dst = (src + 1) % MASTERS;
    char *slot_rep = redis_query(&rc.m[src], 3, (const char *[]){"CLUSTER", "KEYSLOT", "wsn:0:c:mig"});
    CHECK(slot_rep[0] == ':');
    const char *slot = slot_rep + 1;

    enum { SIZE = 100, CHUNKS = 10, MOVE_AT = 3 };
    char *rcs[CHUNKS][NODES];
    for (int c = 0; c < CHUNKS; c++) {
        if (c != MOVE_AT) {
            stream_chunk_on(peers, "mig", c, SIZE, rcs[c]);
            continue;
        }
        /* Mid-chunk: the publishes are on their way while the slot moves
         * (no keys: the channel is not a key). */
        for (int k = 0; k < NODES; k++)
            peer_send(peers[k], json_pack("{s:s,s:s,s:s,s:i,s:i}", "op", "pub", "chan", "mig",
                                          "tag", (char[]){(char)('A' + k), 0}, "from", c * SIZE,
                                          "n", SIZE));
        redis_ok(&rc.m[dst], 5, (const char *[]){"CLUSTER", "SETSLOT", slot, "IMPORTING", rc.ids[src]});
        redis_ok(&rc.m[src], 5, (const char *[]){"CLUSTER", "SETSLOT", slot, "MIGRATING", rc.ids[dst]});
        for (int i = 0; i < MASTERS; i++) {
            int m = (dst + i) % MASTERS; /* the new owner first */
            redis_ok(&rc.m[m], 5, (const char *[]){"CLUSTER", "SETSLOT", slot, "NODE", rc.ids[dst]});
        }
        for (int k = 0; k < NODES; k++) {
            json_t *rep = peer_reply(peers[k], "pub");
            rcs[c][k] = strdup(json_string_value(json_object_get(rep, "rcs")));
            json_decref(rep);
        }
    }
    CHECK_EQ(rcluster_owner(&rc, "wsn:0:c:mig"), dst);
    /* The last chunk arrives everywhere (it closes every gap); until the
     * subscriptions have moved, later chunks may be lost: stream more
     * until a last one is seen everywhere. */
    int last = CHUNKS * SIZE - 1;
    for (int k = 0; k < NODES; k++)
        for (int t = 0; t < NODES; t++)
            TU_WAIT_FOR(PEEK(peers[k], peers[k]->total[t] > 0 && peers[k]->last[t] == last),
                        30000);
    for (int c = 0; c < CHUNKS; c++)
        for (int k = 0; k < NODES; k++) {
            for (const char *p = rcs[c][k]; *p; p++)
                CHECK_MSG(*p == '.', "publish %d of node %d: '%c'", c * SIZE + (int)(p - rcs[c][k]), k, *p);
            free(rcs[c][k]);
        }
    check_accounting(peers, peers, lost0, CHUNKS * SIZE);
    for (int k = 0; k < NODES; k++) {
        CHECK_EQ(info_int(peers[k], "state"), WSN_BROKER_UP);
        CHECK_EQ(info_int(peers[k], "reconnects"), 0);
        CHECK_EQ(info_int(peers[k], "refused"), 0);
    }
    free(slot_rep);

    /* A publisher that has no subscription on the slot hears nothing of a
     * move: its SPUBLISH is answered -MOVED and sent again to the new
     * master, in order, nothing refused, no reconnect. */
    peer *solo = peer_open(nodes, 0, 0);
    subscribe(solo, "solo");
    int from = rcluster_owner(&rc, "wsn:0:c:solo"), to = (from + 1) % MASTERS;
    char *solo_slot =
        redis_query(&rc.m[from], 3, (const char *[]){"CLUSTER", "KEYSLOT", "wsn:0:c:solo"});
    CHECK(solo_slot[0] == ':');
    for (int i = 0; i < MASTERS; i++)
        redis_ok(&rc.m[(to + i) % MASTERS], 5,
                 (const char *[]){"CLUSTER", "SETSLOT", solo_slot + 1, "NODE", rc.ids[to]});
    free(solo_slot);
    /* Server 0 subscribes again where the slot lives (Redis ended its
     * subscription): probes from server 2 until one arrives. */
    int64_t deadline = tu_now_ms() + TU_TIMEOUT;
    for (int round = 0; !PEEK(solo, solo->probes[2]); round++) {
        CHECK_MSG(tu_now_ms() < deadline, "server 0 never subscribed to solo again");
        json_decref(ask(peers[2],
                        json_pack("{s:s,s:s,s:s,s:i,s:i}", "op", "pub", "chan", "solo", "tag",
                                  "pC", "from", round, "n", 1),
                        "pub"));
    }
    enum { SOLO = 200 };
    char *solo_rcs = publish(peers[1], "solo", 1, 0, SOLO);
    expect_all(solo_rcs, '.');
    free(solo_rcs);
    wait_total(solo, 1, SOLO);
    pthread_mutex_lock(&solo->mu);
    for (int i = 0; i < SOLO; i++)
        CHECK_EQ(solo->got[1][i], 1);
    CHECK_EQ(solo->order_bad + solo->dup + solo->junk, 0);
    pthread_mutex_unlock(&solo->mu);
    TU_WAIT_FOR(info_int(peers[1], "sent") >= (json_int_t)(CHUNKS * SIZE + SOLO), TU_TIMEOUT);
    CHECK_EQ(info_int(peers[1], "refused"), 0);
    CHECK_EQ(info_int(peers[1], "reconnects"), 0);
    CHECK_EQ(info_int(peers[1], "state"), WSN_BROKER_UP);
    peer_close(solo);

    for (int k = 0; k < NODES; k++)
        peer_close(peers[k]);
    cluster_stop(nodes);
    rcluster_end(&rc);
}

/* The master of the channel's slot killed mid-stream and restarted: every
 * server says down (503, naming that master), publishes answer
 * WSN_EBROKER and reach their own server only; after the restart every
 * server is up again without any client reconnecting, and what the other
 * servers' clients missed is exactly what they counted as lost. */
static void cluster_master_restart(void)
{
    rcluster rc;
    rcluster_start(&rc);
    node nodes[NODES];
    rcluster_nodes(&rc, nodes);
    peer *peers[NODES];
    for (int k = 0; k < NODES; k++) {
        peers[k] = peer_open(nodes, k, 0);
        subscribe(peers[k], "feed");
    }
    await_mesh(nodes, peers, peers, NODES, "feed");
    json_int_t lost0[NODES];
    for (int k = 0; k < NODES; k++)
        lost0[k] = info_int(peers[k], "lost");
    int victim = rcluster_owner(&rc, "wsn:0:c:feed");
    char where[32];
    snprintf(where, sizeof(where), "127.0.0.1:%d", rc.m[victim].port);

    enum { SIZE = 100, CHUNKS = 10 };
    char *rcs[CHUNKS][NODES];
    for (int c = 0; c < 2; c++)
        stream_chunk(peers, c, SIZE, rcs[c]);
    kill(rc.m[victim].pid, SIGKILL);
    CHECK(waitpid(rc.m[victim].pid, NULL, 0) == rc.m[victim].pid);
    rc.m[victim].pid = 0;
    stream_chunk(peers, 2, SIZE, rcs[2]);
    for (int k = 0; k < NODES; k++) {
        char *body = NULL;
        int64_t deadline = tu_now_ms() + 30000;
        while (healthz(&nodes[k], &body) != 503) {
            free(body);
            body = NULL;
            CHECK_MSG(tu_now_ms() < deadline, "node %d stays healthy without a master", k);
        }
        CHECK_MSG(strstr(body, "broker down: ") == body, "healthz body: %s", body);
        free(body);
    }
    for (int c = 3; c < 6; c++) {
        stream_chunk(peers, c, SIZE, rcs[c]);
        for (int k = 0; k < NODES; k++)
            expect_all(rcs[c][k], 'B');
    }
    /* The reason names the master that is down. */
    for (int k = 0; k < NODES; k++) {
        json_t *inf = info(peers[k]);
        const char *reason = json_string_value(json_object_get(inf, "reason"));
        CHECK_MSG(reason && strstr(reason, where), "reason: %s (down: %s)", reason, where);
        json_decref(inf);
    }
    redis_start(&rc.m[victim]); /* its nodes.conf: the same id and slots */
    rcluster_wait_ok(&rc);
    for (int k = 0; k < NODES; k++)
        wait_health(&nodes[k], 200);
    for (int c = 6; c < CHUNKS; c++) {
        stream_chunk(peers, c, SIZE, rcs[c]);
        for (int k = 0; k < NODES; k++)
            expect_all(rcs[c][k], '.');
    }
    int last = CHUNKS * SIZE - 1;
    for (int k = 0; k < NODES; k++)
        for (int t = 0; t < NODES; t++)
            TU_WAIT_FOR(PEEK(peers[k], peers[k]->total[t] > 0 && peers[k]->last[t] == last),
                        30000);
    check_accounting(peers, peers, lost0, CHUNKS * SIZE);
    for (int k = 0; k < NODES; k++) {
        CHECK_EQ(info_int(peers[k], "state"), WSN_BROKER_UP);
        CHECK(info_int(peers[k], "reconnects") >= 1);
        /* Every WSN_EBROKER was not sent anywhere. */
        pthread_mutex_lock(&peers[k]->mu);
        for (int t = 0; t < NODES; t++)
            for (int c = 3; c < 6; c++)
                for (int j = 0; j < SIZE; j++)
                    if (t != k)
                        CHECK_EQ(peers[k]->got[t][c * SIZE + j], 0);
        pthread_mutex_unlock(&peers[k]->mu);
    }
    for (int c = 0; c < CHUNKS; c++)
        for (int k = 0; k < NODES; k++)
            free(rcs[c][k]);
    for (int k = 0; k < NODES; k++)
        peer_close(peers[k]);
    cluster_stop(nodes);
    rcluster_end(&rc);
}

static void bad_urls(void)
{
    static const char *bad[] = {"http://127.0.0.1:6379", "redis://", "redis://h:0",
                                "redis://h:70000", "redis://h:1/x", "unix:relative/path",
                                "redis://user:pw@h:1", "redis://[::1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wsn_options *o = tu_opts();
        tu_set_str(o, WSN_OPT_BROKER, bad[i]);
        wsn_server *srv = NULL;
        char err[512] = "";
        CHECK_RC(wsn_server_new(o, &srv, err, sizeof(err)), WSN_EINVAL);
        CHECK(srv == NULL);
        CHECK_MSG(strstr(err, "broker") != NULL, "error text: %s", err);
        wsn_options_free(o);
    }
    /* Without a broker: state NONE, zeros, no cluster id in client ids. */
    wsn_server *srv = tu_server(NULL);
    wsn_broker_info inf = {.size = sizeof(inf)};
    CHECK_EQ(wsn_server_broker_state(srv, &inf), WSN_BROKER_NONE);
    CHECK_EQ(inf.state, WSN_BROKER_NONE);
    CHECK_STR(inf.server_id, "");
    CHECK_EQ(wsn_server_broker_state(srv, NULL), WSN_BROKER_NONE);
    inf.size = 8;
    CHECK_RC(wsn_server_broker_state(srv, &inf), WSN_EINVAL);
    CHECK_STR(wsn_strerror(WSN_EBROKER), "broker is down: delivered on this server only");
    CHECK_STR(wsn_err_name(WSN_EBROKER), "WSN_EBROKER");
    /* rediss://: this build's hiredis has no TLS; the text says what to do. */
    wsn_options *o = tu_opts();
    tu_set_str(o, WSN_OPT_BROKER, "rediss://127.0.0.1:6380");
    wsn_server *tls = NULL;
    char err[512] = "";
    CHECK_RC(wsn_server_new(o, &tls, err, sizeof(err)), WSN_EUNSUPPORTED);
    CHECK(tls == NULL);
    CHECK_MSG(strstr(err, "rediss://") && strstr(err, "TLS") && strstr(err, "stunnel"),
              "error text: %s", err);
    wsn_options_free(o);
    wsn_server_free(srv);
}

static const tu_test tests[] = {
    {"exact_once_three_servers", exact_once_three_servers},
    {"tcp_with_password", tcp_with_password},
    {"sharded_pubsub", sharded_pubsub},
    {"wrong_password", wrong_password},
    {"to_client_across_servers", to_client_across_servers},
    {"batch_across_servers", batch_across_servers},
    {"hostile_broker_input", hostile_broker_input},
    {"failover_kill_restart", failover_kill_restart},
    {"redis_after_servers", redis_after_servers},
    {"bad_urls", bad_urls},
    {"cluster_exact_once", cluster_exact_once},
    {"cluster_slot_migration", cluster_slot_migration},
    {"cluster_master_restart", cluster_master_restart},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
