/* Error codes to text. Codes are stable: never renumber, only append. */
#include "wsnotify.h"

#include <stddef.h>

static const struct {
    int code;
    const char *name;
    const char *text;
} error_table[] = {
    {WSN_OK, "WSN_OK", "success"},
    {WSN_EINVAL, "WSN_EINVAL", "invalid argument"},
    {WSN_ENOMEM, "WSN_ENOMEM", "out of memory"},
    {WSN_ESTATE, "WSN_ESTATE", "operation not allowed in the server's current state"},
    {WSN_ECLOSED, "WSN_ECLOSED", "server is shutting down or stopped"},
    {WSN_EGONE, "WSN_EGONE", "client has disconnected"},
    {WSN_EBACKPRESSURE, "WSN_EBACKPRESSURE", "client send queue is full"},
    {WSN_ETIMEDOUT, "WSN_ETIMEDOUT", "timed out"},
    {WSN_ENOTFOUND, "WSN_ENOTFOUND", "not found"},
    {WSN_ETYPE, "WSN_ETYPE", "value has a different type"},
    {WSN_ERANGE, "WSN_ERANGE", "value out of range"},
    {WSN_EJSON, "WSN_EJSON", "invalid JSON"},
    {WSN_ELIMIT, "WSN_ELIMIT", "configured size limit exceeded"},
    {WSN_EIO, "WSN_EIO", "cannot listen on the configured address"},
    {WSN_ENOSPC, "WSN_ENOSPC", "buffer too small"},
    {WSN_EAGAIN, "WSN_EAGAIN", "nothing available yet"},
    {WSN_EUNSUPPORTED, "WSN_EUNSUPPORTED", "not supported by this build or its libwebsockets"},
    {WSN_EBROKER, "WSN_EBROKER", "broker is down: delivered on this server only"},
};

WSN_API const char *wsn_strerror(int code)
{
    for (size_t i = 0; i < sizeof(error_table) / sizeof(error_table[0]); i++)
        if (error_table[i].code == code)
            return error_table[i].text;
    return "unknown error code";
}

WSN_API const char *wsn_err_name(int code)
{
    for (size_t i = 0; i < sizeof(error_table) / sizeof(error_table[0]); i++)
        if (error_table[i].code == code)
            return error_table[i].name;
    return "WSN_UNKNOWN";
}
