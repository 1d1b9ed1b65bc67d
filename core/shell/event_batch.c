/* Events taken in batches (wsn_server_take_events): one call from a host
 * takes up to max events and describes each in a record of 64-bit fields,
 * the strings of every MESSAGE copied into the caller's arena. Apart from
 * event.c because it takes events (server.c) as well as reading them. */
#include "shell/events.h"

#include "shell/server.h"

#include <string.h>

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
