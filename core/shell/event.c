/* One event handed to the host: made on the I/O thread, holding a
 * reference to its client, read through the public wsn_event_* calls. */
#include "shell/events.h"

#include "shell/server.h"

#include <stdlib.h>
#include <string.h>

struct wsn_event *wsni_event_new(wsn_event_type kind, wsn_client *client)
{
    struct wsn_event *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return NULL;
    ev->kind = kind;
    ev->client = client ? wsn_client_retain(client) : NULL;
    return ev;
}

WSN_API void wsn_event_free(wsn_event *ev)
{
    if (!ev)
        return;
    wsni_incoming_clear(&ev->msg);
    free(ev->query);
    wsn_client_release(ev->client);
    free(ev);
}

WSN_API wsn_event_type wsn_event_kind(const wsn_event *ev) { return ev->kind; }

WSN_API wsn_client *wsn_event_client(const wsn_event *ev) { return ev ? ev->client : NULL; }

WSN_API const char *wsn_event_client_id(const wsn_event *ev)
{
    return ev && ev->client ? ev->client->id : "";
}

WSN_API wsn_message_type wsn_event_message_type(const wsn_event *ev) { return ev->msg.type; }

WSN_API const char *wsn_event_channel(const wsn_event *ev)
{
    return ev->msg.channel ? ev->msg.channel : "";
}

WSN_API const void *wsn_event_payload(const wsn_event *ev, size_t *len)
{
    if (len)
        *len = ev->msg.payload ? ev->msg.payload_len : 0;
    return ev->msg.payload ? (const void *)ev->msg.payload : (const void *)"";
}

WSN_API const char *wsn_event_message_id(const wsn_event *ev)
{
    return ev->msg.message_id ? ev->msg.message_id : "";
}

WSN_API const char *wsn_event_reply_to_id(const wsn_event *ev)
{
    return ev->msg.reply_to_id ? ev->msg.reply_to_id : "";
}

WSN_API int wsn_event_get_info(const wsn_event *ev, wsn_event_info *info)
{
    /* The 0.2 fields end with reply_to_id; a caller built against a later
     * header passes a bigger size and gets what this library knows. */
    if (!ev || !info || info->size < sizeof(wsn_event_info))
        return WSN_EINVAL;
    size_t payload_len;
    const void *payload = wsn_event_payload(ev, &payload_len);
    wsn_event_info all = {
        .size = info->size,
        .kind = ev->kind,
        .client = ev->client,
        .client_id = wsn_event_client_id(ev),
        .type = ev->kind == WSN_EVENT_MESSAGE ? ev->msg.type : WSN_TYPE_JSON,
        .channel = wsn_event_channel(ev),
        .payload = payload,
        .payload_len = payload_len,
        .message_id = wsn_event_message_id(ev),
        .reply_to_id = wsn_event_reply_to_id(ev),
    };
    memcpy(info, &all, sizeof(all));
    return WSN_OK;
}

