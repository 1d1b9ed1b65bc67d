/* Log lines of every layer: filtered by level and formatted here, then
 * handed to the server's sink (set by the shell). */
#include "engine/objects.h"

#include <stdarg.h>
#include <stdio.h>

void wsni_log(wsn_server *srv, wsn_log_level level, const char *fmt, ...)
{
    if (level == WSN_LOG_NONE || (int)level > srv->log_level)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    srv->log_sink(srv, level, msg);
}
