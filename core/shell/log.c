/* Where log lines go (the host's callback or the pulled queue), the
 * pulled-log calls, and the per-server last error. */
#include "shell/server.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void wsni_log_sink(wsn_server *srv, wsn_log_level level, const char *msg)
{
    if (!srv->opts->log_fn) {
        wsni_event_queue_push_log(srv->events, level, msg, strlen(msg));
        return;
    }
    /* The header promises one call at a time per server. */
    pthread_mutex_lock(&srv->log_lock);
    srv->opts->log_fn(srv->opts->log_user, level, msg);
    pthread_mutex_unlock(&srv->log_lock);
}

WSN_API int wsn_server_next_log(wsn_server *srv, wsn_log_level *level, char *buf, size_t cap,
                                size_t *len)
{
    if (!srv || !level || !len)
        return WSN_EINVAL;
    return wsni_event_queue_pop_log(srv->events, level, buf, cap, len);
}

WSN_API uint64_t wsn_server_logs_dropped(wsn_server *srv)
{
    if (!srv)
        return 0;
    pthread_mutex_lock(&srv->events->lock);
    uint64_t dropped = srv->events->logs_dropped;
    pthread_mutex_unlock(&srv->events->lock);
    return dropped;
}

void wsni_set_error(wsn_server *srv, const char *fmt, ...)
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
