/* Origin checks on the upgrade: same-origin by default (exact host:port,
 * not the Go original's substring test), "*", exact lists, a callback. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void allowed(int port, const char *origin, const char *host)
{
    wsc_opts co;
    wsc *w;
    memset(&co, 0, sizeof co);
    co.port = port;
    co.origin = origin;
    co.host_header = host;
    w = tu_connect_opts(&co);
    wsc_free(w);
}

static void refused(int port, const char *origin, const char *host)
{
    wsc_opts co;
    int status;
    memset(&co, 0, sizeof co);
    co.port = port;
    co.origin = origin;
    co.host_header = host;
    status = tu_connect_refused(&co);
    CHECK_MSG(status == 403, "origin '%s' host '%s': status %d, want 403",
              origin ? origin : "(none)", host ? host : "(default)", status);
}

static wsn_server *server_with(const char *allowed_origins)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    if (allowed_origins)
        tu_set_str(o, WSN_OPT_ALLOWED_ORIGINS, allowed_origins);
    srv = tu_server(o);
    wsn_options_free(o);
    return srv;
}

static void done(wsn_server *srv)
{
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_no_origin(void)
{
    wsn_server *srv = server_with(NULL);
    allowed(wsn_server_port(srv), NULL, NULL);
    done(srv);
}

static void test_same_origin(void)
{
    wsn_server *srv = server_with(NULL);
    int port = wsn_server_port(srv);
    char o1[64], o2[64], host[64];
    snprintf(o1, sizeof o1, "http://127.0.0.1:%d", port);
    snprintf(o2, sizeof o2, "https://127.0.0.1:%d", port);
    allowed(port, o1, NULL);
    allowed(port, o2, NULL);
    /* Host "localhost:PORT" with a matching Origin */
    snprintf(host, sizeof host, "localhost:%d", port);
    snprintf(o1, sizeof o1, "http://localhost:%d", port);
    allowed(port, o1, host);
    done(srv);
}

static void test_other_origin(void)
{
    wsn_server *srv = server_with(NULL);
    int port = wsn_server_port(srv);
    char o[96];
    refused(port, "http://evil.example", NULL);
    refused(port, "null", NULL);
    snprintf(o, sizeof o, "http://127.0.0.1:%d", port + 1);
    refused(port, o, NULL);
    snprintf(o, sizeof o, "http://127.0.0.1");
    refused(port, o, NULL);
    /* The server stays usable after refusals. */
    allowed(port, NULL, NULL);
    done(srv);
}

static void test_substring_hole(void)
{
    wsn_server *srv = server_with(NULL);
    int port = wsn_server_port(srv);
    char o[128];
    snprintf(o, sizeof o, "http://evil.example/?127.0.0.1:%d", port);
    refused(port, o, NULL);
    snprintf(o, sizeof o, "http://127.0.0.1:%d.evil.example", port);
    refused(port, o, NULL);
    snprintf(o, sizeof o, "http://evil.example/127.0.0.1:%d", port);
    refused(port, o, NULL);
    snprintf(o, sizeof o, "http://127.0.0.1:%d@evil.example", port);
    refused(port, o, NULL);
    snprintf(o, sizeof o, "http://x127.0.0.1:%d", port);
    refused(port, o, NULL);
    done(srv);
}

static void test_host_mismatch(void)
{
    wsn_server *srv = server_with(NULL);
    int port = wsn_server_port(srv);
    char o[64], host[64];
    /* The Origin is compared with the Host header, not the socket. */
    snprintf(o, sizeof o, "http://127.0.0.1:%d", port);
    snprintf(host, sizeof host, "example.com:%d", port);
    refused(port, o, host);
    snprintf(o, sizeof o, "http://example.com:%d", port);
    allowed(port, o, host);
    /* Case of the host name does not matter. */
    snprintf(o, sizeof o, "http://EXAMPLE.com:%d", port);
    {
        wsc_opts co;
        wsc *w = NULL;
        int status = 0, rc;
        memset(&co, 0, sizeof co);
        co.port = port;
        co.origin = o;
        co.host_header = host;
        rc = wsc_connect(&co, &w, &status);
        tu_note("mixed-case Origin host: %s (status %d)",
                rc == WSC_OK ? "allowed" : "refused", status);
        wsc_free(w);
    }
    done(srv);
}

static void test_allow_any(void)
{
    wsn_server *srv = server_with("*");
    int port = wsn_server_port(srv);
    allowed(port, "http://evil.example", NULL);
    allowed(port, "null", NULL);
    allowed(port, NULL, NULL);
    done(srv);
}

static void test_allow_list(void)
{
    wsn_server *srv = server_with("http://a.example,https://b.example:8443");
    int port = wsn_server_port(srv);
    allowed(port, "http://a.example", NULL);
    allowed(port, "https://b.example:8443", NULL);
    allowed(port, NULL, NULL); /* no Origin: not a browser */
    refused(port, "http://c.example", NULL);
    refused(port, "https://a.example", NULL);   /* exact: scheme counts */
    refused(port, "http://b.example:8443", NULL);
    refused(port, "http://a.example.evil", NULL);
    refused(port, "http://a.example/x", NULL);
    done(srv);
}

typedef struct check_state {
    pthread_mutex_t mu;
    int calls, null_origin;
    char last_origin[128], last_host[128];
} check_state;

static int origin_cb(void *user, const char *origin, const char *host)
{
    check_state *st = user;
    pthread_mutex_lock(&st->mu);
    st->calls++;
    if (!origin)
        st->null_origin++;
    snprintf(st->last_origin, sizeof st->last_origin, "%s", origin ? origin : "");
    snprintf(st->last_host, sizeof st->last_host, "%s", host ? host : "");
    pthread_mutex_unlock(&st->mu);
    return origin && strstr(origin, "good") != NULL;
}

static void test_custom_check(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    check_state st;
    int port;
    char host[64];
    memset(&st, 0, sizeof st);
    pthread_mutex_init(&st.mu, NULL);
    /* the callback replaces allowed_origins */
    tu_set_str(o, WSN_OPT_ALLOWED_ORIGINS, "*");
    CHECK_OK(wsn_options_set_origin_check(o, origin_cb, &st));
    srv = tu_server(o);
    port = wsn_server_port(srv);
    snprintf(host, sizeof host, "127.0.0.1:%d", port);
    allowed(port, "http://good.example", NULL);
    pthread_mutex_lock(&st.mu);
    CHECK_EQ(st.calls, 1);
    CHECK_STR(st.last_origin, "http://good.example");
    CHECK_STR(st.last_host, host);
    pthread_mutex_unlock(&st.mu);
    refused(port, "http://bad.example", NULL);
    refused(port, NULL, NULL); /* the callback says no to a missing Origin */
    pthread_mutex_lock(&st.mu);
    CHECK_EQ(st.calls, 3);
    CHECK_EQ(st.null_origin, 1);
    pthread_mutex_unlock(&st.mu);
    done(srv);
    /* Options are copied: a server made after removing the callback uses
     * the default policy again. */
    CHECK_OK(wsn_options_set_origin_check(o, NULL, NULL));
    tu_set_str(o, WSN_OPT_ALLOWED_ORIGINS, "");
    srv = tu_server(o);
    refused(wsn_server_port(srv), "http://good.example", NULL);
    done(srv);
    pthread_mutex_destroy(&st.mu);
    wsn_options_free(o);
}

static const tu_test tests[] = {
    {"no_origin", test_no_origin},
    {"same_origin", test_same_origin},
    {"other_origin", test_other_origin},
    {"substring_hole", test_substring_hole},
    {"host_mismatch", test_host_mismatch},
    {"allow_any", test_allow_any},
    {"allow_list", test_allow_list},
    {"custom_check", test_custom_check},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
