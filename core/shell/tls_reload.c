/* wsn_server_reload_tls: the host's call, run on the I/O thread through
 * the command queue (transport/tls.c does the work). */
#include "shell/commands.h"

WSN_API int wsn_server_reload_tls(wsn_server *srv)
{
    if (!srv)
        return WSN_EINVAL;
    if (!*opt_str(srv->opts, WSN_OPT_TLS_CERT)) {
        wsni_set_error(srv, "no TLS to reload: tls_cert and tls_key are not set");
        return WSN_EINVAL;
    }
    command *cmd = wsni_command_new(CMD_TLS_RELOAD);
    if (!cmd)
        return WSN_ENOMEM;
    return wsni_command_call(srv, cmd);
}
