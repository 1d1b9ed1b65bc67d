/* TLS (wss://): certificates made at test time by tests/tls/make_certs.sh
 * (Debian's openssl), a real TLS client (tests/wsclient.c over OpenSSL).
 * Links the static library to read the server's counters (failed
 * handshakes) until the metrics call exists. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/objects.h"
#include "testutil.h"

static char *certs; /* this test's directory of certificates */

static void make_certs(void)
{
    char *cmd;
    certs = tu_tempdir();
    cmd = tu_strdupf("bash '%s' '%s'", WSN_MAKE_CERTS, certs);
    CHECK_MSG(system(cmd) == 0, "%s failed", cmd);
    free(cmd);
}

static void remove_certs(void)
{
    char *cmd = tu_strdupf("rm -rf '%s'", certs);
    CHECK(system(cmd) == 0);
    free(cmd);
    free(certs);
}

/* A path in the certificate directory (malloc'ed). */
static char *cert(const char *name) { return tu_strdupf("%s/%s", certs, name); }

static void set_file(wsn_options *o, wsn_option id, const char *name)
{
    char *p = cert(name);
    tu_set_str(o, id, p);
    free(p);
}

static wsn_options *tls_opts(void)
{
    wsn_options *o = tu_opts();
    set_file(o, WSN_OPT_TLS_CERT, "server.pem");
    set_file(o, WSN_OPT_TLS_KEY, "server.key");
    return o;
}

static wsn_server *tls_server(int client_cert)
{
    wsn_options *o = tls_opts();
    wsn_server *srv;
    if (client_cert) {
        set_file(o, WSN_OPT_TLS_CA, "ca.pem");
        tu_set_int(o, WSN_OPT_TLS_CLIENT_CERT, client_cert);
    }
    srv = tu_server(o);
    wsn_options_free(o);
    return srv;
}

/* Client options: TLS, the server checked with `ca`, a client certificate
 * `client` (NULL: none). The strings live until the next call. */
static wsc_opts client(wsn_server *srv, const char *ca, const char *client_name)
{
    static char *ca_path, *crt, *key;
    wsc_opts o;
    free(ca_path);
    free(crt);
    free(key);
    ca_path = cert(ca);
    crt = client_name ? tu_strdupf("%s/%s.pem", certs, client_name) : NULL;
    key = client_name ? tu_strdupf("%s/%s.key", certs, client_name) : NULL;
    memset(&o, 0, sizeof o);
    o.port = wsn_server_port(srv);
    o.tls_ca = ca_path;
    o.tls_cert = crt;
    o.tls_key = key;
    return o;
}

static uint64_t tls_refused(wsn_server *srv)
{
    return wsni_counter_read(&srv->counters.refused[WSNI_REFUSED_TLS]);
}

/* A subscriber over wss gets a publish exactly; the server answers what
 * it sends. */
static void check_pubsub(wsn_server *srv, const wsc_opts *o)
{
    wsc *w;
    wsn_client *c = tu_accept_opts(srv, o, &w);
    wsn_event *ev;
    size_t len;
    CHECK_OK(wsn_server_subscribe(srv, c, "news"));
    CHECK_OK(wsn_server_publish(srv, "news", "{\"title\":\"hello over wss\"}"));
    tu_expect_envelope(w, "{\"channel\":\"news\",\"type\":\"json\",\"time\":\"T\","
                          "\"message\":{\"title\":\"hello over wss\"}}");
    CHECK_WSC(wsc_send_text(w, "{\"type\":\"json\",\"channel\":\"news\",\"message\":[1,2]}"));
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    CHECK_STR(wsn_event_channel(ev), "news");
    CHECK_STR((const char *)wsn_event_payload(ev, &len), "[1,2]");
    wsn_event_free(ev);
    wsc_free(w);
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    wsn_client_release(c);
}

static void finish(wsn_server *srv)
{
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    remove_certs();
}

/* A refused TLS client: no upgrade, no HTTP answer, no client. */
static void expect_tls_refused(const wsc_opts *o)
{
    wsc *w = NULL;
    int status = -1;
    int rc = wsc_connect(o, &w, &status);
    CHECK_MSG(rc != WSC_OK, "the TLS client was let in");
    CHECK_MSG(rc == WSC_ETLS || rc == WSC_EOF, "refused TLS client: %s", wsc_strerror(rc));
    CHECK_EQ(status, 0);
}

/* A refused TLS client, and the server's count of refused handshakes
 * reaching count. */
static void expect_refused_counted(wsn_server *srv, const wsc_opts *o, uint64_t count)
{
    expect_tls_refused(o);
    TU_WAIT_FOR(tls_refused(srv) == count, TU_TIMEOUT);
}

static void test_wss_pubsub(void)
{
    wsn_server *srv;
    wsc_opts o;
    make_certs();
    srv = tls_server(0);
    o = client(srv, "ca.pem", NULL);
    check_pubsub(srv, &o);
    CHECK_EQ(tls_refused(srv), 0);
    finish(srv);
}

static void test_wrong_ca_refused_by_client(void)
{
    wsn_server *srv;
    wsc_opts o;
    make_certs();
    srv = tls_server(0);
    /* The client trusts another CA: it refuses the server. */
    o = client(srv, "other.pem", NULL);
    expect_refused_counted(srv, &o, 1);
    CHECK_EQ(wsn_server_connected_clients(srv), 0);
    o = client(srv, "ca.pem", NULL);
    check_pubsub(srv, &o);
    finish(srv);
}

static void test_plain_client_on_tls_port(void)
{
    wsn_server *srv;
    wsc_opts o;
    make_certs();
    srv = tls_server(0);
    memset(&o, 0, sizeof o);
    o.port = wsn_server_port(srv);
    CHECK_EQ(tu_connect_refused(&o), 0);
    TU_WAIT_FOR(tls_refused(srv) == 1, TU_TIMEOUT);
    o = client(srv, "ca.pem", NULL);
    check_pubsub(srv, &o);
    finish(srv);
}

static void test_client_cert_required(void)
{
    wsn_server *srv;
    wsc_opts o;
    make_certs();
    srv = tls_server(2);
    o = client(srv, "ca.pem", NULL);
    expect_refused_counted(srv, &o, 1);
    /* A certificate the CA did not issue. */
    o = client(srv, "ca.pem", "other");
    expect_refused_counted(srv, &o, 2);
    CHECK_EQ(wsn_server_connected_clients(srv), 0);
    o = client(srv, "ca.pem", "client");
    check_pubsub(srv, &o);
    CHECK_EQ(tls_refused(srv), 2);
    finish(srv);
}

static void test_client_cert_requested(void)
{
    wsn_server *srv;
    wsc_opts o;
    make_certs();
    srv = tls_server(1);
    o = client(srv, "ca.pem", NULL);
    check_pubsub(srv, &o);
    o = client(srv, "ca.pem", "client");
    check_pubsub(srv, &o);
    o = client(srv, "ca.pem", "other");
    expect_refused_counted(srv, &o, 1);
    finish(srv);
}

/* Waits (bounded) for the server to close a raw TCP connection. */
static void expect_closed_by_server(int fd, int timeout_ms)
{
    int64_t deadline = tu_now_ms() + timeout_ms;
    char buf[256];
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)(deadline - tu_now_ms());
        ssize_t n;
        CHECK_MSG(left > 0, "the server kept a stalled handshake open for %d ms", timeout_ms);
        if (poll(&p, 1, left) <= 0)
            continue;
        n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return;
        CHECK_MSG(n > 0 || errno == EINTR, "recv: %s", strerror(errno));
    }
}

static int tcp_to(wsn_server *srv)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)wsn_server_port(srv));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

/* lws drops a connection that holds its header table idle for the vhost's
 * timeout_secs_ah_idle (10 s in 4.1), TLS handshake included: the bound
 * waited for here is 30 s, so a slow sanitizer build has room. */
static void test_stalled_handshake_closed(void)
{
    static const unsigned char half_hello[] = {0x16, 0x03, 0x01, 0x00, 0xff, 0x01};
    wsn_server *srv;
    wsc_opts o;
    int silent, half;
    make_certs();
    srv = tls_server(0);
    silent = tcp_to(srv);
    half = tcp_to(srv);
    CHECK(send(half, half_hello, sizeof half_hello, 0) == (ssize_t)sizeof half_hello);
    /* Meanwhile the server serves others. */
    o = client(srv, "ca.pem", NULL);
    check_pubsub(srv, &o);
    expect_closed_by_server(silent, 30000);
    expect_closed_by_server(half, 30000);
    close(silent);
    close(half);
    TU_WAIT_FOR(tls_refused(srv) == 2, TU_TIMEOUT);
    finish(srv);
}

/* A start with a TLS file that is not right fails, naming it. */
static void expect_start_fails(wsn_options *o, const char *want_in_error)
{
    wsn_server *srv;
    char err[256];
    CHECK_OK(wsn_server_new(o, &srv, err, sizeof err));
    CHECK_RC(wsn_server_start(srv), WSN_EIO);
    wsn_server_last_error(srv, err, sizeof err);
    CHECK_MSG(strstr(err, want_in_error) != NULL, "start error '%s' should say '%s'", err,
              want_in_error);
    tu_note("start: %s", err);
    wsn_server_free(srv);
}

static void expect_new_fails(wsn_options *o, const char *want_in_error)
{
    wsn_server *srv = (wsn_server *)1;
    char err[256] = "";
    CHECK_RC(wsn_server_new(o, &srv, err, sizeof err), WSN_EINVAL);
    CHECK(srv == NULL);
    CHECK_MSG(strstr(err, want_in_error) != NULL, "new error '%s' should say '%s'", err,
              want_in_error);
    tu_note("new: %s", err);
}

static void test_options_checked(void)
{
    wsn_options *o;
    char *missing;
    make_certs();
    o = tu_opts();
    set_file(o, WSN_OPT_TLS_CERT, "server.pem");
    expect_new_fails(o, "tls_cert is set but tls_key is not");
    tu_set_str(o, WSN_OPT_TLS_CERT, "");
    set_file(o, WSN_OPT_TLS_KEY, "server.key");
    expect_new_fails(o, "tls_key is set but tls_cert is not");
    wsn_options_free(o);

    o = tls_opts();
    set_file(o, WSN_OPT_TLS_CA, "ca.pem");
    expect_new_fails(o, "tls_ca is set but tls_client_cert is 0");
    tu_set_str(o, WSN_OPT_TLS_CA, "");
    tu_set_int(o, WSN_OPT_TLS_CLIENT_CERT, 2);
    expect_new_fails(o, "tls_client_cert 2 needs tls_ca");
    wsn_options_free(o);

    o = tu_opts();
    tu_set_int(o, WSN_OPT_TLS_CLIENT_CERT, 1);
    expect_new_fails(o, "tls_client_cert needs tls_cert and tls_key");
    wsn_options_free(o);

    o = tls_opts();
    missing = cert("missing.pem");
    tu_set_str(o, WSN_OPT_TLS_CERT, missing);
    expect_start_fails(o, "No such file or directory");
    expect_start_fails(o, missing);
    set_file(o, WSN_OPT_TLS_CERT, "server.key");
    expect_start_fails(o, "tls_cert");
    set_file(o, WSN_OPT_TLS_CERT, "server.pem");
    set_file(o, WSN_OPT_TLS_KEY, "server2.key");
    expect_start_fails(o, "is not the key of tls_cert");
    /* A key under a passphrase is refused, not asked for on a terminal. */
    set_file(o, WSN_OPT_TLS_KEY, "encrypted.key");
    expect_start_fails(o, "not a PEM private key without a passphrase");
    set_file(o, WSN_OPT_TLS_KEY, "server.key");
    tu_set_str(o, WSN_OPT_TLS_CA, missing);
    tu_set_int(o, WSN_OPT_TLS_CLIENT_CERT, 2);
    expect_start_fails(o, "tls_ca");
    free(missing);
    wsn_options_free(o);
    remove_certs();
}

/* SHA-256 of a PEM certificate file's DER. */
static void file_fingerprint(const char *name, unsigned char out[32])
{
    char *path = cert(name);
    FILE *f = fopen(path, "r");
    X509 *x;
    unsigned int n = 32;
    CHECK(f != NULL);
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    CHECK(x != NULL);
    CHECK(X509_digest(x, EVP_sha256(), out, &n) == 1 && n == 32);
    X509_free(x);
    free(path);
}

static void copy_file(const char *from, const char *to)
{
    char *cmd = tu_strdupf("cp '%s/%s' '%s/%s'", certs, from, certs, to);
    CHECK(system(cmd) == 0);
    free(cmd);
}

/* The fingerprint a new connection is shown; the connection is closed. */
static void new_connection_sees(wsn_server *srv, const char *pem)
{
    unsigned char got[32], want[32];
    wsc_opts o = client(srv, "ca.pem", NULL);
    wsc *w;
    wsn_client *c = tu_accept_opts(srv, &o, &w);
    file_fingerprint(pem, want);
    CHECK(wsc_tls_fingerprint(w, got) == 0);
    CHECK_MSG(memcmp(got, want, 32) == 0, "a new connection was not shown %s", pem);
    wsc_free(w);
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    wsn_client_release(c);
}

static void test_reload_keeps_connections(void)
{
    wsn_options *o;
    wsn_server *srv;
    wsc_opts co;
    wsc *w;
    wsn_client *c;
    unsigned char before[32], first[32];
    char err[256];
    make_certs();
    copy_file("server.pem", "live.pem");
    copy_file("server.key", "live.key");
    o = tu_opts();
    set_file(o, WSN_OPT_TLS_CERT, "live.pem");
    set_file(o, WSN_OPT_TLS_KEY, "live.key");
    srv = tu_server(o);
    wsn_options_free(o);

    co = client(srv, "ca.pem", NULL);
    c = tu_accept_opts(srv, &co, &w);
    CHECK_OK(wsn_server_subscribe(srv, c, "news"));
    CHECK(wsc_tls_fingerprint(w, before) == 0);
    file_fingerprint("server.pem", first);
    CHECK(memcmp(before, first, 32) == 0);

    copy_file("server2.pem", "live.pem");
    copy_file("server2.key", "live.key");
    CHECK_OK(wsn_server_reload_tls(srv));
    new_connection_sees(srv, "server2.pem");
    /* The connection made before the reload stays open and works. */
    CHECK_OK(wsn_server_publish(srv, "news", "\"after the reload\""));
    tu_expect_envelope(w, "{\"channel\":\"news\",\"type\":\"json\",\"time\":\"T\","
                          "\"message\":\"after the reload\"}");
    CHECK_EQ(wsn_client_is_connected(c), 1);

    /* A key that does not match: refused, the certificate in use stays. */
    copy_file("server.key", "live.key");
    CHECK_RC(wsn_server_reload_tls(srv), WSN_EIO);
    wsn_server_last_error(srv, err, sizeof err);
    CHECK_MSG(strstr(err, "is not the key of tls_cert") != NULL, "reload error: %s", err);
    new_connection_sees(srv, "server2.pem");
    /* Back to the first pair. */
    copy_file("server.pem", "live.pem");
    copy_file("server.key", "live.key");
    CHECK_OK(wsn_server_reload_tls(srv));
    new_connection_sees(srv, "server.pem");
    CHECK_OK(wsn_server_publish(srv, "news", "2"));
    tu_expect_envelope(w, "{\"channel\":\"news\",\"type\":\"json\",\"time\":\"T\","
                          "\"message\":2}");
    CHECK_EQ(tls_refused(srv), 0);
    wsc_free(w);
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    wsn_client_release(c);
    finish(srv);
}

/* A reload keeps client certificates required. */
static void test_reload_keeps_client_certs(void)
{
    wsn_server *srv;
    wsc_opts o;
    make_certs();
    srv = tls_server(2);
    CHECK_OK(wsn_server_reload_tls(srv));
    o = client(srv, "ca.pem", NULL);
    expect_tls_refused(&o);
    o = client(srv, "ca.pem", "client");
    check_pubsub(srv, &o);
    finish(srv);
}

static void test_reload_errors(void)
{
    wsn_server *srv = tu_server(NULL);
    wsn_options *o;
    char err[256];
    CHECK_RC(wsn_server_reload_tls(NULL), WSN_EINVAL);
    CHECK_RC(wsn_server_reload_tls(srv), WSN_EINVAL);
    wsn_server_last_error(srv, err, sizeof err);
    CHECK_MSG(strstr(err, "tls_cert") != NULL, "%s", err);
    wsn_server_free(srv);
    make_certs();
    o = tls_opts();
    CHECK_OK(wsn_server_new(o, &srv, err, sizeof err));
    CHECK_RC(wsn_server_reload_tls(srv), WSN_ECLOSED); /* not started */
    CHECK_OK(wsn_server_start(srv));
    CHECK_OK(wsn_server_reload_tls(srv));
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    CHECK_RC(wsn_server_reload_tls(srv), WSN_ECLOSED);
    wsn_server_free(srv);
    wsn_options_free(o);
    remove_certs();
}

/* Two TLS servers in one process: each counts its own refusals (lws 4.1
 * keeps its OpenSSL indexes in globals that the second context replaces). */
static void test_two_servers(void)
{
    wsn_server *a, *b;
    wsc_opts o;
    make_certs();
    a = tls_server(2);
    b = tls_server(2);
    o = client(a, "ca.pem", "other");
    expect_refused_counted(a, &o, 1);
    o = client(b, "ca.pem", NULL);
    expect_refused_counted(b, &o, 1);
    o = client(a, "ca.pem", "client");
    check_pubsub(a, &o);
    o = client(b, "ca.pem", "client");
    check_pubsub(b, &o);
    CHECK_EQ(tls_refused(a), 1);
    CHECK_OK(wsn_server_shutdown(b, 5000));
    wsn_server_free(b);
    finish(a);
}

/* Authentication over TLS (the gate's held connections, transport/gate.c):
 * the handshake completes, then the host's answer; a rejection is a close
 * with 4000 + status. */
static void test_auth_over_tls(void)
{
    wsn_options *o;
    wsn_server *srv;
    wsc_opts co;
    wsc *w;
    wsn_event *ev;
    wsn_client *c;
    make_certs();
    o = tls_opts();
    tu_set_int(o, WSN_OPT_AUTHENTICATE, 1);
    srv = tu_server(o);
    wsn_options_free(o);
    co = client(srv, "ca.pem", NULL);
    co.path = "/ws?token=no";
    w = tu_connect_opts(&co);
    ev = tu_expect_event(srv, WSN_EVENT_UPGRADE, TU_TIMEOUT);
    CHECK_STR(wsn_event_upgrade_query(ev), "token=no");
    CHECK_OK(wsn_server_reject_upgrade(srv, wsn_event_upgrade_id(ev), 401, "bad token"));
    wsn_event_free(ev);
    tu_expect_close(w, 4401, "bad token");
    wsc_free(w);

    co.path = "/ws?token=yes";
    w = tu_connect_opts(&co);
    ev = tu_expect_event(srv, WSN_EVENT_UPGRADE, TU_TIMEOUT);
    CHECK_OK(wsn_server_accept_upgrade(srv, wsn_event_upgrade_id(ev), NULL, NULL, 0, 0));
    wsn_event_free(ev);
    ev = tu_expect_event(srv, WSN_EVENT_CONNECT, TU_TIMEOUT);
    c = wsn_client_retain(wsn_event_client(ev));
    wsn_event_free(ev);
    CHECK_OK(wsn_server_subscribe(srv, c, "news"));
    CHECK_OK(wsn_server_publish(srv, "news", "1"));
    tu_expect_envelope(w, "{\"channel\":\"news\",\"type\":\"json\",\"time\":\"T\","
                          "\"message\":1}");
    wsc_free(w);
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    wsn_client_release(c);
    CHECK_EQ(tls_refused(srv), 0);
    finish(srv);
}

static const tu_test tests[] = {
    {"wss_pubsub", test_wss_pubsub},
    {"wrong_ca_refused_by_client", test_wrong_ca_refused_by_client},
    {"plain_client_on_tls_port", test_plain_client_on_tls_port},
    {"client_cert_required", test_client_cert_required},
    {"client_cert_requested", test_client_cert_requested},
    {"stalled_handshake_closed", test_stalled_handshake_closed},
    {"options_checked", test_options_checked},
    {"reload_keeps_connections", test_reload_keeps_connections},
    {"reload_keeps_client_certs", test_reload_keeps_client_certs},
    {"reload_errors", test_reload_errors},
    {"two_servers", test_two_servers},
    {"auth_over_tls", test_auth_over_tls},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
