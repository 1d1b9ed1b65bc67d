/* Version, error codes, options, lifecycle edge cases. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static void test_version(void)
{
    char buf[32];
    CHECK_EQ(wsn_version(), WSN_VERSION_NUMBER);
    CHECK_EQ(WSN_VERSION_NUMBER, WSN_VERSION_MAJOR * 10000 +
                                     WSN_VERSION_MINOR * 100 +
                                     WSN_VERSION_PATCH);
    snprintf(buf, sizeof buf, "%d.%d.%d", WSN_VERSION_MAJOR,
             WSN_VERSION_MINOR, WSN_VERSION_PATCH);
    CHECK_STR(wsn_version_string(), buf);
}

static void test_errors(void)
{
    static const struct {
        int code;
        const char *name;
    } codes[] = {
        {WSN_OK, "WSN_OK"},           {WSN_EINVAL, "WSN_EINVAL"},
        {WSN_ENOMEM, "WSN_ENOMEM"},   {WSN_ESTATE, "WSN_ESTATE"},
        {WSN_ECLOSED, "WSN_ECLOSED"}, {WSN_EGONE, "WSN_EGONE"},
        {WSN_EBACKPRESSURE, "WSN_EBACKPRESSURE"},
        {WSN_ETIMEDOUT, "WSN_ETIMEDOUT"},
        {WSN_ENOTFOUND, "WSN_ENOTFOUND"},
        {WSN_ETYPE, "WSN_ETYPE"},     {WSN_ERANGE, "WSN_ERANGE"},
        {WSN_EJSON, "WSN_EJSON"},     {WSN_ELIMIT, "WSN_ELIMIT"},
        {WSN_EIO, "WSN_EIO"},         {WSN_ENOSPC, "WSN_ENOSPC"},
        {WSN_EAGAIN, "WSN_EAGAIN"},   {WSN_EUNSUPPORTED, "WSN_EUNSUPPORTED"},
    };
    size_t i, j;
    /* Codes never renumbered. */
    CHECK_EQ(WSN_EINVAL, -1);
    CHECK_EQ(WSN_EAGAIN, -15);
    CHECK_EQ(WSN_EUNSUPPORTED, -16);
    CHECK_EQ(WSN_ENOSPC, -14);
    for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = wsn_strerror(codes[i].code);
        CHECK(s != NULL);
        CHECK_MSG(s[0] != '\0', "empty strerror for %d", codes[i].code);
        CHECK_STR(wsn_err_name(codes[i].code), codes[i].name);
        /* distinct texts */
        for (j = 0; j < i; j++)
            CHECK_MSG(strcmp(s, wsn_strerror(codes[j].code)) != 0,
                      "strerror(%d) == strerror(%d)", codes[i].code,
                      codes[j].code);
    }
    /* Unknown codes: never NULL. */
    CHECK(wsn_strerror(-999) != NULL);
    CHECK(wsn_strerror(12345) != NULL);
    CHECK(wsn_err_name(-999) != NULL);
}

static void test_option_defaults(void)
{
    wsn_options *o = wsn_options_new();
    int64_t v;
    const char *s;
    static const struct {
        wsn_option id;
        int64_t def;
    } ints[] = {
        {WSN_OPT_PORT, 8080},
        {WSN_OPT_WRITE_WAIT, 10000},
        {WSN_OPT_PONG_WAIT, 60000},
        {WSN_OPT_PING_PERIOD, 54000},
        {WSN_OPT_READ_LIMIT, 1048576},
        {WSN_OPT_READ_BUFFER, 65536},
        {WSN_OPT_COALESCE_WINDOW, 0},
        {WSN_OPT_RAW_INCOMING, 0},
        {WSN_OPT_COMPRESSION, 0},
        {WSN_OPT_SEND_BUFFER, 256},
        {WSN_OPT_DROP_ON_BACKPRESSURE, 0},
        {WSN_OPT_CLOSE_GRACE, 200},
        {WSN_OPT_EVENTS_ON_IO_THREAD, 0},
        {WSN_OPT_EVENT_QUEUE_LIMIT, 4096},
        {WSN_OPT_MAX_CHANNEL_NAME, 256},
        {WSN_OPT_MAX_METADATA_BYTES, 65536},
        {WSN_OPT_MAX_CLIENTS, 0},
        {WSN_OPT_MAX_PENDING_BATCHES, 10000},
        {WSN_OPT_MAX_BATCH_MESSAGES, 10000},
        {WSN_OPT_MAX_BATCH_BYTES, 1048576},
        {WSN_OPT_LOG_LEVEL, 2},
        {WSN_OPT_RAW_INCOMING, 0},
        {WSN_OPT_LOG_QUEUE, 0},
        {WSN_OPT_RX_BUFFER_POOL, 1},
        {WSN_OPT_MALLOC_TRIM, 1},
        {WSN_OPT_SEND_BUFFER_BYTES, 1048576},
        {WSN_OPT_MAX_SUBSCRIPTIONS, 1024},
        {WSN_OPT_EVENT_QUEUE_BYTES, 16777216},
        {WSN_OPT_MAX_PARTIAL_BYTES, 67108864},
        {WSN_OPT_CLIENT_EVENT_QUEUE, 64},
        {WSN_OPT_CLIENT_EVENT_QUEUE_BYTES, 1048576},
        {WSN_OPT_BROKER_SHARDED, 0},
        {WSN_OPT_AUTH_TIMEOUT, 10000},
        {WSN_OPT_AUTH_QUEUE, 1024},
        {WSN_OPT_MAX_CLIENTS_PER_ADDRESS, 0},
        {WSN_OPT_AUTHENTICATE, 0},
        {WSN_OPT_METRICS, 0},
        {WSN_OPT_TLS_CLIENT_CERT, 0},
        {WSN_OPT_CLIENT_RATE, 100},
        {WSN_OPT_CLIENT_BURST, 200},
    };
    static const struct {
        wsn_option id;
        const char *def;
    } strs[] = {
        {WSN_OPT_HOST, "127.0.0.1"},
        {WSN_OPT_PATH, "/ws"},
        {WSN_OPT_STATIC_DIR, ""},
        {WSN_OPT_BROKER, ""},
        {WSN_OPT_METRICS_TOKEN, ""},
        {WSN_OPT_BACKPRESSURE_REASON, "going away: backpressure"},
        {WSN_OPT_ALLOWED_ORIGINS, ""},
        {WSN_OPT_TLS_CERT, ""},
        {WSN_OPT_TLS_KEY, ""},
        {WSN_OPT_TLS_CA, ""},
    };
    size_t i;
    CHECK(o != NULL);
    for (i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        v = -12345;
        CHECK_OK(wsn_options_get_int(o, ints[i].id, &v));
        CHECK_MSG(v == ints[i].def, "default of %s: %lld, want %lld",
                  wsn_option_name(ints[i].id), (long long)v,
                  (long long)ints[i].def);
    }
    for (i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        s = NULL;
        CHECK_OK(wsn_options_get_string(o, strs[i].id, &s));
        CHECK_STR(s, strs[i].def);
    }
    wsn_options_free(o);
    wsn_options_free(NULL);
}

static const struct {
    const char *name;
    wsn_option id;
    wsn_option_type type;
} option_table[] = {
    {"host", WSN_OPT_HOST, WSN_OPTTYPE_STRING},
    {"port", WSN_OPT_PORT, WSN_OPTTYPE_INT},
    {"path", WSN_OPT_PATH, WSN_OPTTYPE_STRING},
    {"static_dir", WSN_OPT_STATIC_DIR, WSN_OPTTYPE_STRING},
    {"write_wait", WSN_OPT_WRITE_WAIT, WSN_OPTTYPE_DURATION_MS},
    {"pong_wait", WSN_OPT_PONG_WAIT, WSN_OPTTYPE_DURATION_MS},
    {"ping_period", WSN_OPT_PING_PERIOD, WSN_OPTTYPE_DURATION_MS},
    {"read_limit", WSN_OPT_READ_LIMIT, WSN_OPTTYPE_INT},
    {"compression", WSN_OPT_COMPRESSION, WSN_OPTTYPE_BOOL},
    {"send_buffer", WSN_OPT_SEND_BUFFER, WSN_OPTTYPE_INT},
    {"drop_on_backpressure", WSN_OPT_DROP_ON_BACKPRESSURE, WSN_OPTTYPE_BOOL},
    {"backpressure_reason", WSN_OPT_BACKPRESSURE_REASON, WSN_OPTTYPE_STRING},
    {"close_grace", WSN_OPT_CLOSE_GRACE, WSN_OPTTYPE_DURATION_MS},
    {"allowed_origins", WSN_OPT_ALLOWED_ORIGINS, WSN_OPTTYPE_STRING},
    {"events_on_io_thread", WSN_OPT_EVENTS_ON_IO_THREAD, WSN_OPTTYPE_BOOL},
    {"event_queue_limit", WSN_OPT_EVENT_QUEUE_LIMIT, WSN_OPTTYPE_INT},
    {"max_channel_name", WSN_OPT_MAX_CHANNEL_NAME, WSN_OPTTYPE_INT},
    {"max_metadata_bytes", WSN_OPT_MAX_METADATA_BYTES, WSN_OPTTYPE_INT},
    {"max_clients", WSN_OPT_MAX_CLIENTS, WSN_OPTTYPE_INT},
    {"max_pending_batches", WSN_OPT_MAX_PENDING_BATCHES, WSN_OPTTYPE_INT},
    {"max_batch_messages", WSN_OPT_MAX_BATCH_MESSAGES, WSN_OPTTYPE_INT},
    {"max_batch_bytes", WSN_OPT_MAX_BATCH_BYTES, WSN_OPTTYPE_INT},
    {"log_level", WSN_OPT_LOG_LEVEL, WSN_OPTTYPE_INT},
    {"raw_incoming", WSN_OPT_RAW_INCOMING, WSN_OPTTYPE_BOOL},
    {"coalesce_window", WSN_OPT_COALESCE_WINDOW, WSN_OPTTYPE_DURATION_MS},
    {"read_buffer", WSN_OPT_READ_BUFFER, WSN_OPTTYPE_INT},
    {"log_queue", WSN_OPT_LOG_QUEUE, WSN_OPTTYPE_INT},
    {"rx_buffer_pool", WSN_OPT_RX_BUFFER_POOL, WSN_OPTTYPE_BOOL},
    {"malloc_trim", WSN_OPT_MALLOC_TRIM, WSN_OPTTYPE_BOOL},
    {"send_buffer_bytes", WSN_OPT_SEND_BUFFER_BYTES, WSN_OPTTYPE_INT},
    {"max_subscriptions", WSN_OPT_MAX_SUBSCRIPTIONS, WSN_OPTTYPE_INT},
    {"event_queue_bytes", WSN_OPT_EVENT_QUEUE_BYTES, WSN_OPTTYPE_INT},
    {"max_partial_bytes", WSN_OPT_MAX_PARTIAL_BYTES, WSN_OPTTYPE_INT},
    {"client_event_queue", WSN_OPT_CLIENT_EVENT_QUEUE, WSN_OPTTYPE_INT},
    {"client_event_queue_bytes", WSN_OPT_CLIENT_EVENT_QUEUE_BYTES, WSN_OPTTYPE_INT},
    {"broker", WSN_OPT_BROKER, WSN_OPTTYPE_STRING},
    {"broker_sharded", WSN_OPT_BROKER_SHARDED, WSN_OPTTYPE_BOOL},
    {"auth_timeout", WSN_OPT_AUTH_TIMEOUT, WSN_OPTTYPE_DURATION_MS},
    {"auth_queue", WSN_OPT_AUTH_QUEUE, WSN_OPTTYPE_INT},
    {"max_clients_per_address", WSN_OPT_MAX_CLIENTS_PER_ADDRESS, WSN_OPTTYPE_INT},
    {"authenticate", WSN_OPT_AUTHENTICATE, WSN_OPTTYPE_BOOL},
    {"metrics", WSN_OPT_METRICS, WSN_OPTTYPE_BOOL},
    {"metrics_token", WSN_OPT_METRICS_TOKEN, WSN_OPTTYPE_STRING},
    {"tls_cert", WSN_OPT_TLS_CERT, WSN_OPTTYPE_STRING},
    {"event_socket", WSN_OPT_EVENT_SOCKET, WSN_OPTTYPE_STRING},
    {"handoff_socket", WSN_OPT_HANDOFF_SOCKET, WSN_OPTTYPE_STRING},
    {"tls_key", WSN_OPT_TLS_KEY, WSN_OPTTYPE_STRING},
    {"tls_ca", WSN_OPT_TLS_CA, WSN_OPTTYPE_STRING},
    {"tls_client_cert", WSN_OPT_TLS_CLIENT_CERT, WSN_OPTTYPE_INT},
    {"client_rate", WSN_OPT_CLIENT_RATE, WSN_OPTTYPE_INT},
    {"client_burst", WSN_OPT_CLIENT_BURST, WSN_OPTTYPE_INT},
};
#define N_OPTIONS (sizeof option_table / sizeof option_table[0])

static void test_option_names(void)
{
    size_t i;
    int id, count = 0;
    for (i = 0; i < N_OPTIONS; i++) {
        wsn_option oid = (wsn_option)0;
        wsn_option_type t = (wsn_option_type)0;
        CHECK_OK(wsn_option_by_name(option_table[i].name, &oid, &t));
        CHECK_EQ(oid, option_table[i].id);
        CHECK_EQ(t, option_table[i].type);
        CHECK_STR(wsn_option_name(option_table[i].id), option_table[i].name);
        /* NULL out pointers are fine */
        CHECK_OK(wsn_option_by_name(option_table[i].name, NULL, NULL));
    }
    CHECK_RC(wsn_option_by_name("nope", NULL, NULL), WSN_ENOTFOUND);
    CHECK_RC(wsn_option_by_name("", NULL, NULL), WSN_ENOTFOUND);
    CHECK_RC(wsn_option_by_name("Port", NULL, NULL), WSN_ENOTFOUND);
    /* Iterating ids from 1, past gaps, until 32 unknown in a row lists
     * every option (wsnotify.h). */
    int unknown = 0, last = 0;
    for (id = 1; unknown < 32; id++) {
        wsn_option_type t;
        if (wsn_option_type_of((wsn_option)id, &t) == WSN_ENOTFOUND) {
            CHECK(wsn_option_name((wsn_option)id) == NULL);
            unknown++;
            continue;
        }
        unknown = 0;
        CHECK(wsn_option_name((wsn_option)id) != NULL);
        count++;
        last = id;
    }
    CHECK_EQ(count, N_OPTIONS);
    CHECK(wsn_option_name((wsn_option)0) == NULL);
    CHECK(wsn_option_name((wsn_option)(last + 1)) == NULL);
    CHECK(wsn_option_name((wsn_option)-1) == NULL);
}

static void test_option_types(void)
{
    wsn_options *o = wsn_options_new();
    size_t i;
    for (i = 0; i < N_OPTIONS; i++) {
        wsn_option_type t;
        int64_t mn, mx;
        CHECK_OK(wsn_option_type_of(option_table[i].id, &t));
        CHECK_EQ(t, option_table[i].type);
        if (t == WSN_OPTTYPE_STRING) {
            CHECK_RC(wsn_options_set_int(o, option_table[i].id, 1), WSN_ETYPE);
            {
                int64_t v;
                CHECK_RC(wsn_options_get_int(o, option_table[i].id, &v),
                         WSN_ETYPE);
            }
        } else {
            const char *s;
            CHECK_RC(wsn_options_set_string(o, option_table[i].id, "1"),
                     WSN_ETYPE);
            CHECK_RC(wsn_options_get_string(o, option_table[i].id, &s),
                     WSN_ETYPE);
            CHECK_OK(wsn_option_bounds(option_table[i].id, &mn, &mx));
            CHECK_MSG(mn <= mx, "bounds of %s", option_table[i].name);
            if (t == WSN_OPTTYPE_BOOL) {
                CHECK_EQ(mn, 0);
                CHECK_EQ(mx, 1);
            }
        }
    }
    wsn_options_free(o);
}

static void test_option_ranges(void)
{
    wsn_options *o = wsn_options_new();
    int64_t mn, mx, v;
    size_t i;
    CHECK_OK(wsn_option_bounds(WSN_OPT_PORT, &mn, &mx));
    CHECK_EQ(mn, 0);
    CHECK_EQ(mx, 65535);
    CHECK_OK(wsn_option_bounds(WSN_OPT_LOG_LEVEL, &mn, &mx));
    CHECK_EQ(mn, 0);
    CHECK_EQ(mx, 4);
    CHECK_RC(wsn_options_set_int(o, WSN_OPT_PORT, 65536), WSN_ERANGE);
    CHECK_RC(wsn_options_set_int(o, WSN_OPT_PORT, -1), WSN_ERANGE);
    CHECK_RC(wsn_options_set_int(o, WSN_OPT_LOG_LEVEL, 5), WSN_ERANGE);
    CHECK_RC(wsn_options_set_int(o, WSN_OPT_COMPRESSION, 2), WSN_ERANGE);
    CHECK_RC(wsn_options_set_int(o, WSN_OPT_DROP_ON_BACKPRESSURE, -1),
             WSN_ERANGE);
    CHECK_RC(wsn_options_set_int(o, WSN_OPT_WRITE_WAIT, -5), WSN_ERANGE);
    CHECK_RC(wsn_options_set_int(o, WSN_OPT_READ_LIMIT, -1), WSN_ERANGE);
    CHECK_RC(wsn_options_set_int(o, WSN_OPT_READ_BUFFER, 127), WSN_ERANGE);
    CHECK_RC(wsn_options_set_int(o, WSN_OPT_READ_BUFFER, 65537), WSN_ERANGE);
    CHECK_RC(wsn_options_set_int(o, WSN_OPT_COALESCE_WINDOW, 1001), WSN_ERANGE);
    CHECK_RC(wsn_options_set_int(o, WSN_OPT_COALESCE_WINDOW, -1), WSN_ERANGE);
    /* The value is unchanged after a refused set. */
    CHECK_OK(wsn_options_get_int(o, WSN_OPT_PORT, &v));
    CHECK_EQ(v, 8080);
    /* Every bound is itself accepted, one past it is not. */
    for (i = 0; i < N_OPTIONS; i++) {
        if (option_table[i].type == WSN_OPTTYPE_STRING)
            continue;
        CHECK_OK(wsn_option_bounds(option_table[i].id, &mn, &mx));
        CHECK_RC(wsn_options_set_int(o, option_table[i].id, mn), WSN_OK);
        CHECK_RC(wsn_options_set_int(o, option_table[i].id, mx), WSN_OK);
        if (mn > INT64_MIN)
            CHECK_RC(wsn_options_set_int(o, option_table[i].id, mn - 1),
                     WSN_ERANGE);
        if (mx < INT64_MAX)
            CHECK_RC(wsn_options_set_int(o, option_table[i].id, mx + 1),
                     WSN_ERANGE);
    }
    /* Unknown ids */
    CHECK_RC(wsn_options_set_int(o, (wsn_option)999, 1), WSN_ENOTFOUND);
    CHECK_RC(wsn_options_set_string(o, (wsn_option)999, "x"), WSN_ENOTFOUND);
    CHECK_RC(wsn_option_bounds((wsn_option)999, &mn, &mx), WSN_ENOTFOUND);
    CHECK_RC(wsn_option_type_of((wsn_option)999, NULL), WSN_ENOTFOUND);
    /* send_buffer 0 is rejected (a queue of zero can hold nothing). */
    {
        int rc = wsn_options_set_int(o, WSN_OPT_SEND_BUFFER, 0);
        if (rc == 0) {
            wsn_server *srv = (wsn_server *)1;
            char err[256] = "";
            rc = wsn_server_new(o, &srv, err, sizeof err);
            CHECK_RC(rc, WSN_EINVAL);
            CHECK(srv == NULL);
        } else {
            CHECK_RC(rc, WSN_ERANGE);
        }
    }
    wsn_options_free(o);
}

static void test_option_set_get(void)
{
    wsn_options *o = wsn_options_new();
    int64_t v;
    const char *s;
    char buf[64];
    CHECK_OK(wsn_options_set_int(o, WSN_OPT_WRITE_WAIT, 1234));
    CHECK_OK(wsn_options_get_int(o, WSN_OPT_WRITE_WAIT, &v));
    CHECK_EQ(v, 1234);
    CHECK_OK(wsn_options_set_int(o, WSN_OPT_COMPRESSION, 1));
    CHECK_OK(wsn_options_get_int(o, WSN_OPT_COMPRESSION, &v));
    CHECK_EQ(v, 1);
    /* Strings are copied. */
    snprintf(buf, sizeof buf, "bye now");
    CHECK_OK(wsn_options_set_string(o, WSN_OPT_BACKPRESSURE_REASON, buf));
    memset(buf, 'x', 7);
    CHECK_OK(wsn_options_get_string(o, WSN_OPT_BACKPRESSURE_REASON, &s));
    CHECK_STR(s, "bye now");
    CHECK_RC(wsn_options_set_string(o, WSN_OPT_PATH, NULL), WSN_EINVAL);
    CHECK_OK(wsn_options_get_string(o, WSN_OPT_PATH, &s));
    CHECK_STR(s, "/ws");
    CHECK_RC(wsn_options_set_int(NULL, WSN_OPT_PORT, 1), WSN_EINVAL);
    CHECK_RC(wsn_options_set_string(NULL, WSN_OPT_PATH, "/x"), WSN_EINVAL);
    CHECK_RC(wsn_options_get_int(o, WSN_OPT_PORT, NULL), WSN_EINVAL);
    CHECK_RC(wsn_options_get_string(o, WSN_OPT_PATH, NULL), WSN_EINVAL);
    /* Options are copied by wsn_server_new: changing them later has no
     * effect on the server. */
    wsn_options_free(o);
}

static void test_option_relations(void)
{
    wsn_options *o = wsn_options_new();
    wsn_server *srv = (wsn_server *)1;
    char err[256] = "";
    int rc;
    tu_set_int(o, WSN_OPT_PORT, 0);
    tu_set_int(o, WSN_OPT_PING_PERIOD, 60000);
    tu_set_int(o, WSN_OPT_PONG_WAIT, 60000);
    rc = wsn_server_new(o, &srv, err, sizeof err);
    CHECK_RC(rc, WSN_EINVAL);
    CHECK(srv == NULL);
    CHECK_MSG(strstr(err, "ping_period") != NULL,
              "errbuf should name ping_period: '%s'", err);
    tu_note("errbuf: %s", err);

    tu_set_int(o, WSN_OPT_PING_PERIOD, 70000);
    srv = (wsn_server *)1;
    err[0] = '\0';
    CHECK_RC(wsn_server_new(o, &srv, err, sizeof err), WSN_EINVAL);
    CHECK(srv == NULL);
    CHECK(err[0] != '\0');
    /* NULL errbuf is fine; a tiny errbuf is NUL-terminated. */
    CHECK_RC(wsn_server_new(o, &srv, NULL, 0), WSN_EINVAL);
    {
        char tiny[5];
        memset(tiny, 'z', sizeof tiny);
        CHECK_RC(wsn_server_new(o, &srv, tiny, sizeof tiny), WSN_EINVAL);
        CHECK(memchr(tiny, '\0', sizeof tiny) != NULL);
    }
    tu_set_int(o, WSN_OPT_PING_PERIOD, 59999);
    CHECK_OK(wsn_server_new(o, &srv, err, sizeof err));
    CHECK(srv != NULL);
    CHECK_EQ(wsn_server_port(srv), -1);
    wsn_server_free(srv);
    /* NULL options = defaults. */
    CHECK_OK(wsn_server_new(NULL, &srv, err, sizeof err));
    wsn_server_free(srv);
    CHECK_RC(wsn_server_new(NULL, NULL, err, sizeof err), WSN_EINVAL);
    wsn_options_free(o);
}

static void test_port_zero(void)
{
    wsn_server *srv = tu_server(NULL);
    int port = wsn_server_port(srv);
    wsc *c;
    CHECK(port > 0 && port <= 65535);
    c = tu_connect(port);
    wsc_free(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_port_in_use(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    wsn_options *o = tu_opts();
    wsn_server *srv = NULL;
    char err[512] = "";
    int port, rc;
    size_t n;
    CHECK(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(fd, 4) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
    port = ntohs(a.sin_port);
    tu_set_int(o, WSN_OPT_PORT, port);
    CHECK_OK(wsn_server_new(o, &srv, err, sizeof err));
    rc = wsn_server_start(srv);
    CHECK_RC(rc, WSN_EIO);
    n = wsn_server_last_error(srv, err, sizeof err);
    CHECK(n > 0);
    CHECK_EQ(n, strlen(err));
    tu_note("last_error: %s", err);
    /* A server that failed to start: later calls are refused, free works. */
    CHECK(wsn_server_publish(srv, "c", "1") < 0);
    CHECK_EQ(wsn_server_connected_clients(srv), 0);
    {
        char tiny[4];
        size_t full = wsn_server_last_error(srv, tiny, sizeof tiny);
        CHECK_EQ(full, n);
        CHECK_EQ(strlen(tiny), 3);
    }
    wsn_server_free(srv);
    close(fd);
    wsn_options_free(o);
}

static void test_null_arguments(void)
{
    wsn_server *srv = tu_server(NULL);
    wsn_event *ev = NULL;
    wsn_strlist *l = NULL;
    CHECK_RC(wsn_server_publish(NULL, "c", "1"), WSN_EINVAL);
    CHECK_RC(wsn_server_publish(srv, NULL, "1"), WSN_EINVAL);
    CHECK_RC(wsn_server_publish(srv, "c", NULL), WSN_EINVAL);
    CHECK_RC(wsn_server_subscribe(srv, NULL, "c"), WSN_EINVAL);
    CHECK_RC(wsn_server_subscribe(NULL, NULL, "c"), WSN_EINVAL);
    CHECK_RC(wsn_server_unsubscribe(srv, NULL, "c"), WSN_EINVAL);
    CHECK_RC(wsn_server_publish_to_client(srv, NULL, "c", WSN_TYPE_JSON, "1",
                                          1, NULL, NULL),
             WSN_EINVAL);
    CHECK_RC(wsn_server_publish_with_type(srv, "c", WSN_TYPE_BINARY, NULL, 3,
                                          NULL, NULL),
             WSN_EINVAL);
    CHECK_RC(wsn_server_publish_with_type(srv, "c", (wsn_message_type)7, "1",
                                          1, NULL, NULL),
             WSN_EINVAL);
    CHECK_RC(wsn_server_next_event(srv, NULL), WSN_EINVAL);
    CHECK_RC(wsn_server_next_event(NULL, &ev), WSN_EINVAL);
    CHECK_RC(wsn_server_client_list(srv, NULL), WSN_EINVAL);
    CHECK_RC(wsn_server_client_list(NULL, &l), WSN_EINVAL);
    CHECK_RC(wsn_server_set_handler(srv, (wsn_event_type)99, NULL, NULL),
             WSN_EINVAL);
    CHECK_RC(wsn_server_start(NULL), WSN_EINVAL);
    CHECK_EQ(wsn_server_port(NULL), -1);
    CHECK_EQ(wsn_server_connected_clients(NULL), 0);
    CHECK(wsn_server_last_error(NULL, NULL, 0) == 0);
    wsn_event_free(NULL);
    wsn_strlist_free(NULL);
    wsn_client_release(NULL);
    wsn_server_free(NULL);
    CHECK_EQ(wsn_strlist_count(NULL), 0);
    CHECK(wsn_strlist_get(NULL, 0) == NULL);
    CHECK_RC(wsn_client_set_int(NULL, "k", 1), WSN_EINVAL);
    CHECK_RC(wsn_server_shutdown(NULL, 10), WSN_EINVAL);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_json_validate(void)
{
    static const char *good[] = {"{}", "[]", "1", "-1.5e3", "\"s\"", "true",
                                 "false", "null", "{\"a\":[1,{\"b\":null}]}",
                                 " {\"a\" : 1} ", "\"\\u00e9\"", "-0", "1E+2", "0.1e-7",
                                 /* underflow is fine, beyond 64 bits is a real */
                                 "1e-400", "18446744073709551616", "-9223372036854775809",
                                 "1.7976931348623157e308", "\"\\ud83d\\ude00\"",
                                 "\"\xf0\x9f\x98\x80\"", "\"\x7f\"", "\"\\/\""};
    static const char *bad[] = {"", "{", "{\"a\":}", "[1,]", "tru", "'s'",
                                "{\"a\":1}x", "NaN", "{a:1}", "\"\\x\"", "01", "1.", "-", "1e",
                                /* overflows a double */
                                "1e400", "-1e400", "1.7976931348623159e308",
                                "\"\\u0000\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
                                "\"\xc0\x80\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\t\"",
                                "truex", "true1", "[1 2]", "{\"a\" 1}", "{1:2}", "{\"a\":1,}"};
    size_t i;
    for (i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK_MSG(wsn_json_validate(good[i], strlen(good[i])) == 0,
                  "valid JSON refused: %s", good[i]);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(wsn_json_validate(bad[i], strlen(bad[i])) == WSN_EJSON,
                  "invalid JSON accepted: '%s'", bad[i]);
    /* len is honoured: a valid prefix followed by garbage. */
    CHECK_OK(wsn_json_validate("[1]garbage", 3));
    CHECK_RC(wsn_json_validate("[1,2]", 3), WSN_EJSON);
    /* Embedded NUL inside the given length. */
    CHECK_RC(wsn_json_validate("[1]\0", 4), WSN_EJSON);
    /* Invalid UTF-8 inside a string. */
    CHECK_RC(wsn_json_validate("\"\xff\"", 3), WSN_EJSON);
    CHECK_RC(wsn_json_validate(NULL, 0), WSN_EINVAL);
    /* Nesting: jansson's limit is 2048 values deep, a scalar counting as one. */
    static char deep[2 * 2049 + 2];
    for (int depth = 2047; depth <= 2049; depth++) {
        for (int with_scalar = 0; with_scalar <= 1; with_scalar++) {
            size_t n = 0;
            for (int k = 0; k < depth; k++)
                deep[n++] = '[';
            if (with_scalar)
                deep[n++] = '1';
            for (int k = 0; k < depth; k++)
                deep[n++] = ']';
            int expect = depth + with_scalar <= 2048 ? WSN_OK : WSN_EJSON;
            CHECK_MSG(wsn_json_validate(deep, n) == expect, "depth %d%s: expected %d", depth,
                      with_scalar ? " + scalar" : "", expect);
        }
    }
}

/* The string scan takes 8 plain bytes at a time: every byte that needs a
 * look of its own (quote, backslash, control byte, a UTF-8 sequence, a bad
 * one) is found at every offset of a word and near the end of the text,
 * and the value read back is the string, whole. The buffer is exactly as
 * long as the text, so a read past it is an ASan report. */
static void test_json_string_fast_path(void)
{
    static const struct {
        const char *bytes; /* placed inside a run of 'x' */
        int valid;
        const char *decoded;
    } cases[] = {
        {"\\\"", 1, "\""},      {"\\\\", 1, "\\"},         {"\\n", 1, "\n"},
        {"\\u00e9", 1, "\xc3\xa9"}, {"\xc3\xa9", 1, "\xc3\xa9"}, {"\xf0\x9f\x98\x80", 1, "\xf0\x9f\x98\x80"},
        {"\x1f", 0, NULL},        {"\x7f", 1, "\x7f"},         {"\xff", 0, NULL},
        {"\xc3", 0, NULL},        {"\xed\xa0\x80", 0, NULL},    {"\"", 0, NULL},
    };
    char value[64], text[96], out[96];
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t blen = strlen(cases[k].bytes);
        for (size_t at = 0; at <= 20; at++) {
            for (size_t after = 0; after <= 9; after++) {
                memset(value, 'x', at);
                memcpy(value + at, cases[k].bytes, blen);
                memset(value + at + blen, 'x', after);
                size_t vlen = at + blen + after;
                int n = snprintf(text, sizeof(text), "{\"k\":\"%.*s\"}", (int)vlen, value);
                char *exact = malloc((size_t)n);
                CHECK(exact);
                memcpy(exact, text, (size_t)n);
                int rc = wsn_json_validate(exact, (size_t)n);
                CHECK_MSG(rc == (cases[k].valid ? WSN_OK : WSN_EJSON),
                          "case %zu at %zu + %zu: validate %d", k, at, after, rc);
                if (cases[k].valid) {
                    size_t got = 0;
                    CHECK_OK(wsn_json_get_string(exact, (size_t)n, "k", out, sizeof(out), &got));
                    size_t dlen = strlen(cases[k].decoded);
                    CHECK_EQ(got, at + dlen + after);
                    for (size_t i = 0; i < got; i++) {
                        char want = i < at ? 'x'
                                    : i < at + dlen ? cases[k].decoded[i - at] : 'x';
                        CHECK_MSG(out[i] == want, "case %zu at %zu + %zu: byte %zu", k, at,
                                  after, i);
                    }
                }
                free(exact);
            }
        }
    }
}

static void test_json_get_string(void)
{
    char out[32];
    size_t n = 99;
    const char *doc = " {\"action\" : \"broadcast\", \"n\":1, \"o\":{\"action\":\"inner\"},"
                      " \"e\":\"a\\\"b\\u00e9\\ud83d\\ude00\", \"acti\\u006fn2\":\"x\"} ";
    size_t len = strlen(doc);
    CHECK_OK(wsn_json_get_string(doc, len, "action", out, sizeof out, &n));
    CHECK_STR(out, "broadcast");
    CHECK_EQ(n, 9);
    /* escapes decoded; keys compared decoded */
    CHECK_OK(wsn_json_get_string(doc, len, "e", out, sizeof out, &n));
    CHECK_STR(out, "a\"b\xc3\xa9\xf0\x9f\x98\x80");
    CHECK_EQ(n, 9);
    CHECK_OK(wsn_json_get_string(doc, len, "action2", out, sizeof out, NULL));
    CHECK_STR(out, "x");
    /* only the top level counts */
    CHECK_RC(wsn_json_get_string(doc, len, "inner", out, sizeof out, NULL), WSN_ENOTFOUND);
    CHECK_RC(wsn_json_get_string(doc, len, "n", out, sizeof out, NULL), WSN_ETYPE);
    CHECK_RC(wsn_json_get_string(doc, len, "o", out, sizeof out, NULL), WSN_ETYPE);
    CHECK_RC(wsn_json_get_string(doc, len, "", out, sizeof out, NULL), WSN_ENOTFOUND);
    /* too small: out untouched, the length needed reported */
    strcpy(out, "keep");
    CHECK_RC(wsn_json_get_string(doc, len, "action", out, 9, &n), WSN_ENOSPC);
    CHECK_STR(out, "keep");
    CHECK_EQ(n, 9);
    CHECK_OK(wsn_json_get_string(doc, len, "action", out, 10, &n));
    CHECK_STR(out, "broadcast");
    CHECK_RC(wsn_json_get_string(doc, len, "action", NULL, 0, &n), WSN_ENOSPC);
    CHECK_EQ(n, 9);
    /* the last of a repeated key */
    CHECK_OK(wsn_json_get_string("{\"k\":\"1\",\"k\":\"2\"}", 17, "k", out, sizeof out, NULL));
    CHECK_STR(out, "2");
    CHECK_RC(wsn_json_get_string("{\"k\":\"1\",\"k\":2}", 15, "k", out, sizeof out, NULL),
             WSN_ETYPE);
    /* not an object, not JSON, bad arguments */
    CHECK_RC(wsn_json_get_string("[\"k\"]", 5, "k", out, sizeof out, NULL), WSN_EJSON);
    CHECK_RC(wsn_json_get_string("\"k\"", 3, "k", out, sizeof out, NULL), WSN_EJSON);
    CHECK_RC(wsn_json_get_string("{\"k\":\"1\"", 8, "k", out, sizeof out, NULL), WSN_EJSON);
    CHECK_RC(wsn_json_get_string("{\"k\":\"1\"}\0", 10, "k", out, sizeof out, NULL), WSN_EJSON);
    CHECK_RC(wsn_json_get_string("{}", 2, "k", out, sizeof out, NULL), WSN_ENOTFOUND);
    CHECK_RC(wsn_json_get_string(NULL, 2, "k", out, sizeof out, NULL), WSN_EINVAL);
    CHECK_RC(wsn_json_get_string("{}", 2, NULL, out, sizeof out, NULL), WSN_EINVAL);
    CHECK_RC(wsn_json_get_string("{}", 2, "k", NULL, 4, NULL), WSN_EINVAL);
}

static void test_message_type_names(void)
{
    CHECK_STR(wsn_message_type_name(WSN_TYPE_JSON), "json");
    CHECK_STR(wsn_message_type_name(WSN_TYPE_TEXT), "text");
    CHECK_STR(wsn_message_type_name(WSN_TYPE_BINARY), "binary");
    CHECK(wsn_message_type_name((wsn_message_type)3) == NULL);
    CHECK(wsn_message_type_name((wsn_message_type)-1) == NULL);
}

static void test_start_twice(void)
{
    wsn_server *srv = tu_server(NULL);
    int port = wsn_server_port(srv);
    CHECK_RC(wsn_server_start(srv), WSN_ESTATE);
    CHECK_EQ(wsn_server_port(srv), port);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    {
        int rc = wsn_server_start(srv); /* once stopped: either code */
        CHECK_MSG(rc == WSN_ESTATE || rc == WSN_ECLOSED,
                  "start after shutdown: %s", wsn_err_name(rc));
    }
    CHECK_OK(wsn_server_shutdown(srv, 5000)); /* again is fine */
    wsn_server_free(srv);
}

static void test_free_never_started(void)
{
    wsn_server *srv = NULL;
    wsn_options *o = tu_opts();
    CHECK_OK(wsn_server_new(o, &srv, NULL, 0));
    CHECK_OK(wsn_server_shutdown(srv, 100));
    wsn_server_free(srv);
    CHECK_OK(wsn_server_new(o, &srv, NULL, 0));
    wsn_server_free(srv); /* without shutdown */
    wsn_options_free(o);
}

/* The signal mask of thread tid, from /proc (SigBlk, a hex bit mask). */
static unsigned long long blocked_signals(const char *tid)
{
    char path[320], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%s/status", tid);
    FILE *f = fopen(path, "r");
    unsigned long long mask = 0;
    CHECK_MSG(f != NULL, "cannot read %s", path);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "SigBlk:", 7))
            mask = strtoull(line + 7, NULL, 16);
    if (f)
        fclose(f);
    return mask;
}

static int is_io_thread(const char *tid)
{
    char path[320], name[32] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (!fgets(name, sizeof name, f))
        name[0] = 0;
    fclose(f);
    return !strcmp(name, "wsnotify-io\n");
}

/* The engine's thread (named wsnotify-io) takes no asynchronous signal, so
 * a host's handlers run on its own threads (where wsn_server_wait returns
 * on EINTR); faults stay deliverable. The caller's mask is left as it was.
 * Other threads (a sanitizer's) are not ours to check. */
static void test_io_thread_blocks_signals(void)
{
    char self[32];
    snprintf(self, sizeof self, "%ld", (long)getpid());
    unsigned long long before = blocked_signals(self);
    wsn_server *srv = tu_server(NULL);
    CHECK_EQ(blocked_signals(self), before);
    int others = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    CHECK(d != NULL);
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || !is_io_thread(e->d_name))
            continue;
        unsigned long long m = blocked_signals(e->d_name);
        others++;
        for (int sig = 1; sig < 32; sig++) {
            int fault = sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL ||
                        sig == SIGTRAP || sig == SIGABRT || sig == SIGSYS || sig == SIGKILL ||
                        sig == SIGSTOP;
            int blocked = (int)((m >> (sig - 1)) & 1);
            CHECK_MSG(blocked == !fault, "thread %s: signal %d is %sblocked", e->d_name, sig,
                      blocked ? "" : "not ");
        }
    }
    if (d)
        closedir(d);
    CHECK_EQ(others, 1); /* one server, one I/O thread */
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

/* Without a logger nothing is printed (lws's own stderr logging included). */
static void test_quiet_by_default(void)
{
    char path[] = "/tmp/wsn-stderr-XXXXXX";
    int fd = mkstemp(path), saved;
    wsn_options *o = wsn_options_new();
    wsn_server *srv = NULL;
    wsc *c;
    wsc_msg m;
    struct stat st;
    char buf[2048] = "";
    ssize_t n;
    CHECK(fd >= 0);
    tu_set_int(o, WSN_OPT_PORT, 0);
    tu_set_int(o, WSN_OPT_READ_LIMIT, 64);
    tu_set_int(o, WSN_OPT_LOG_LEVEL, WSN_LOG_DEBUG);
    fflush(stderr);
    saved = dup(2);
    CHECK(dup2(fd, 2) == 2);
    CHECK_OK(wsn_server_new(o, &srv, NULL, 0));
    CHECK_OK(wsn_server_start(srv));
    c = tu_connect(wsn_server_port(srv));
    CHECK_WSC(wsc_send_text(c, "not json"));
    tu_recv(c, &m, TU_TIMEOUT); /* the error reply */
    wsc_msg_clear(&m);
    {
        char big[200];
        memset(big, 'a', sizeof big);
        CHECK_WSC(wsc_send_textn(c, big, sizeof big)); /* over read_limit */
    }
    tu_recv(c, &m, TU_TIMEOUT);
    wsc_msg_clear(&m);
    wsc_free(c);
    {
        int status = 0;
        char *body = NULL;
        wsc_http_get(NULL, wsn_server_port(srv), "/nope", NULL, 5000, &status,
                     &body, NULL);
        free(body);
    }
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    fflush(stderr);
    CHECK(dup2(saved, 2) == 2);
    close(saved);
    CHECK(fstat(fd, &st) == 0);
    lseek(fd, 0, SEEK_SET);
    n = read(fd, buf, sizeof buf - 1);
    if (n > 0)
        buf[n] = '\0';
    close(fd);
    unlink(path);
    wsn_options_free(o);
    CHECK_MSG(st.st_size == 0,
              "%lld bytes printed to stderr without a logger:\n%s",
              (long long)st.st_size, buf);
}

static const tu_test tests[] = {
    {"version", test_version},
    {"errors", test_errors},
    {"option_defaults", test_option_defaults},
    {"option_names", test_option_names},
    {"option_types", test_option_types},
    {"option_ranges", test_option_ranges},
    {"option_set_get", test_option_set_get},
    {"option_relations", test_option_relations},
    {"port_zero", test_port_zero},
    {"port_in_use", test_port_in_use},
    {"null_arguments", test_null_arguments},
    {"json_validate", test_json_validate},
    {"json_get_string", test_json_get_string},
    {"json_string_fast_path", test_json_string_fast_path},
    {"message_type_names", test_message_type_names},
    {"start_twice", test_start_twice},
    {"free_never_started", test_free_never_started},
    {"quiet_by_default", test_quiet_by_default},
    {"io_thread_blocks_signals", test_io_thread_blocks_signals},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
