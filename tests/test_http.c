/* Plain HTTP next to the WebSocket: static files, 404, /healthz, and
 * upgrades on other paths. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define INDEX "<!doctype html><title>wsnotify</title><p>hello</p>\n"

typedef struct site {
    char *dir, *index, *other;
    wsn_server *srv;
    int port;
} site;

static site site_up(void)
{
    site s;
    wsn_options *o = tu_opts();
    s.dir = tu_tempdir();
    s.index = tu_strdupf("%s/index.html", s.dir);
    s.other = tu_strdupf("%s/app.js", s.dir);
    tu_write_file(s.index, INDEX);
    tu_write_file(s.other, "console.log(1);\n");
    tu_set_str(o, WSN_OPT_STATIC_DIR, s.dir);
    s.srv = tu_server(o);
    s.port = wsn_server_port(s.srv);
    wsn_options_free(o);
    return s;
}

static void site_down(site *s)
{
    CHECK_OK(wsn_server_shutdown(s->srv, 5000));
    wsn_server_free(s->srv);
    unlink(s->index);
    unlink(s->other);
    rmdir(s->dir);
    free(s->index);
    free(s->other);
    free(s->dir);
}

static void get(int port, const char *path, int want_status, const char *want_body)
{
    int status = 0, rc;
    char *body = NULL;
    size_t len = 0;
    rc = wsc_http_get(NULL, port, path, NULL, 5000, &status, &body, &len);
    CHECK_MSG(rc == WSC_OK, "GET %s: %s", path, wsc_strerror(rc));
    CHECK_MSG(status == want_status, "GET %s: status %d, want %d", path, status,
              want_status);
    if (want_body) {
        CHECK_STR(body, want_body);
        CHECK_EQ(len, strlen(want_body));
    }
    free(body);
}

static void test_static_index(void)
{
    site s = site_up();
    get(s.port, "/", 200, INDEX);
    get(s.port, "/index.html", 200, INDEX);
    /* the WebSocket still works next to the files */
    {
        wsc *w = tu_connect(s.port);
        wsc_free(w);
    }
    site_down(&s);
}

static void test_static_file(void)
{
    site s = site_up();
    get(s.port, "/app.js", 200, "console.log(1);\n");
    /* no escape from the directory */
    {
        int status = 0;
        char *body = NULL;
        int rc = wsc_http_get(NULL, s.port, "/../../../../etc/passwd", NULL, 5000,
                              &status, &body, NULL);
        CHECK_MSG(rc == WSC_OK, "%s", wsc_strerror(rc));
        CHECK_MSG(!body || !strstr(body, "root:"), "path traversal served /etc/passwd");
        free(body);
    }
    site_down(&s);
}

static void test_not_found(void)
{
    site s = site_up();
    get(s.port, "/nope", 404, NULL);
    get(s.port, "/nope/deeper.html", 404, NULL);
    /* twice on one server: no state left behind */
    get(s.port, "/nope", 404, NULL);
    site_down(&s);
}

static void test_healthz(void)
{
    site s = site_up();
    get(s.port, "/healthz", 200, "ok");
    site_down(&s);
    {
        wsn_server *srv = tu_server(NULL); /* no static dir */
        get(wsn_server_port(srv), "/healthz", 200, "ok");
        CHECK_OK(wsn_server_shutdown(srv, 5000));
        wsn_server_free(srv);
    }
}

static void test_wrong_ws_path(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    wsc_opts co;
    int status;
    wsc *w;
    tu_set_str(o, WSN_OPT_PATH, "/socket");
    srv = tu_server(o);
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(srv);
    co.path = "/ws";
    status = tu_connect_refused(&co);
    CHECK_MSG(status == 404, "upgrade on /ws with path /socket: status %d", status);
    co.path = "/";
    status = tu_connect_refused(&co);
    CHECK_MSG(status == 404, "upgrade on /: status %d", status);
    co.path = "/socket/x";
    status = tu_connect_refused(&co);
    CHECK_MSG(status == 404, "upgrade on /socket/x: status %d", status);
    co.path = "/socket";
    w = tu_connect_opts(&co);
    wsc_free(w);
    /* a query string on the right path is fine */
    co.path = "/socket?token=abc";
    w = tu_connect_opts(&co);
    wsc_free(w);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    wsn_options_free(o);
}

static void test_no_static_dir(void)
{
    wsn_server *srv = tu_server(NULL);
    get(wsn_server_port(srv), "/", 404, NULL);
    get(wsn_server_port(srv), "/index.html", 404, NULL);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static const tu_test tests[] = {
    {"static_index", test_static_index},
    {"static_file", test_static_file},
    {"not_found", test_not_found},
    {"healthz", test_healthz},
    {"wrong_ws_path", test_wrong_ws_path},
    {"no_static_dir", test_no_static_dir},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
