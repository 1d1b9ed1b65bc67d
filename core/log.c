/* Logging through the host's callback, and the per-server last error. */
#include "server.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void wsn_log(wsn_server *srv, wsn_log_level level, const char *fmt, ...)
{
    if (!srv->opts->log_fn || level == WSN_LOG_NONE || level > opt_int(srv->opts, WSN_OPT_LOG_LEVEL))
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* The header promises one call at a time per server. */
    pthread_mutex_lock(&srv->log_lock);
    srv->opts->log_fn(srv->opts->log_user, level, msg);
    pthread_mutex_unlock(&srv->log_lock);
}

void set_error(wsn_server *srv, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&srv->err_lock);
    va_start(ap, fmt);
    vsnprintf(srv->last_error, sizeof(srv->last_error), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&srv->err_lock);
}

WSN_API size_t wsn_server_last_error(wsn_server *srv, char *buf, size_t cap)
{
    if (!srv)
        return 0;
    pthread_mutex_lock(&srv->err_lock);
    size_t len = strlen(srv->last_error);
    if (buf && cap) {
        size_t n = len < cap - 1 ? len : cap - 1;
        memcpy(buf, srv->last_error, n);
        buf[n] = '\0';
    }
    pthread_mutex_unlock(&srv->err_lock);
    return len;
}
