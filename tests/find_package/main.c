/* Uses the installed header and library: version check, a server on port 0,
 * a clean shutdown. Exit status 0 on success. */
#include <stdio.h>
#include <string.h>

#include <wsnotify.h>

int main(void)
{
    wsn_options *o = wsn_options_new();
    wsn_server *srv = NULL;
    char err[256] = "";
    int rc;
    if (wsn_version() / 10000 != WSN_VERSION_MAJOR) {
        fprintf(stderr, "major version mismatch: %d\n", wsn_version());
        return 1;
    }
    if (!o || wsn_options_set_int(o, WSN_OPT_PORT, 0) != 0)
        return 1;
    rc = wsn_server_new(o, &srv, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "wsn_server_new: %s %s\n", wsn_err_name(rc), err);
        return 1;
    }
    rc = wsn_server_start(srv);
    if (rc != 0 || wsn_server_port(srv) <= 0) {
        fprintf(stderr, "wsn_server_start: %s\n", wsn_err_name(rc));
        return 1;
    }
    if (wsn_server_publish(srv, "c", "{\"a\":1}") != 0)
        return 1;
    if (wsn_server_shutdown(srv, 2000) != 0)
        return 1;
    wsn_server_free(srv);
    wsn_options_free(o);
    printf("consumer ok: wsnotify %s\n", wsn_version_string());
    return 0;
}
