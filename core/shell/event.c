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

/* Copies n bytes to the arena and says where they went. The caller has
 * checked that they fit. */
static void arena_put(const void *s, size_t n, unsigned char *arena, size_t *used,
                      int64_t *offset, int64_t *len)
{
    *offset = (int64_t)*used;
    *len = (int64_t)n;
    if (n)
        memcpy(arena + *used, s, n);
    *used += n;
}

/* Describes ev in rec; a MESSAGE's text goes to the arena if all of it
 * fits. Returns 0 when the batch may go on after this event. */
static int describe_event(const wsn_event *ev, wsn_event_record *rec, unsigned char *arena,
                          size_t cap, size_t *used)
{
    memset(rec, 0, sizeof(*rec));
    rec->kind = ev->kind;
    rec->type = ev->kind == WSN_EVENT_MESSAGE ? ev->msg.type : WSN_TYPE_JSON;
    rec->client = ev->client;
    if (ev->kind == WSN_EVENT_STOPPED)
        return -1;
    if (ev->kind != WSN_EVENT_MESSAGE)
        return 0;
    const char *channel = wsn_event_channel(ev);
    const char *message_id = wsn_event_message_id(ev);
    const char *reply_to_id = wsn_event_reply_to_id(ev);
    size_t payload_len;
    const void *payload = wsn_event_payload(ev, &payload_len);
    size_t channel_len = strlen(channel), message_id_len = strlen(message_id);
    size_t reply_to_id_len = strlen(reply_to_id);
    size_t need = channel_len + payload_len + message_id_len + reply_to_id_len;
    if (need > cap - *used) {
        rec->payload_offset = -1;
        return -1;
    }
    arena_put(channel, channel_len, arena, used, &rec->channel_offset, &rec->channel_len);
    arena_put(payload, payload_len, arena, used, &rec->payload_offset, &rec->payload_len);
    arena_put(message_id, message_id_len, arena, used, &rec->message_id_offset,
              &rec->message_id_len);
    arena_put(reply_to_id, reply_to_id_len, arena, used, &rec->reply_to_id_offset,
              &rec->reply_to_id_len);
    return 0;
}

WSN_API int wsn_server_take_events(wsn_server *srv, wsn_event **events,
                                   wsn_event_record *records, size_t record_size, int max,
                                   void *arena, size_t arena_cap, size_t *arena_used)
{
    if (!srv || !events || !records || !arena_used || max < 1 ||
        record_size < sizeof(wsn_event_record) || record_size % sizeof(int64_t) != 0 ||
        (!arena && arena_cap))
        return WSN_EINVAL;
    *arena_used = 0;
    unsigned char *stride = (unsigned char *)records;
    int n = 0;
    while (n < max) {
        wsn_event *ev = NULL;
        int rc = wsn_server_next_event(srv, &ev);
        if (rc != WSN_OK) {
            if (n == 0)
                return rc == WSN_EAGAIN ? 0 : rc;
            break;
        }
        /* Fields of a newer, bigger record than ours are left alone. */
        wsn_event_record *rec = (wsn_event_record *)(stride + (size_t)n * record_size);
        events[n++] = ev;
        if (describe_event(ev, rec, arena, arena_cap, arena_used) != 0)
            break;
    }
    return n;
}

WSN_API void wsn_events_free(wsn_event **events, int count)
{
    if (!events)
        return;
    for (int i = 0; i < count; i++) {
        wsn_event_free(events[i]);
        events[i] = NULL;
    }
}
