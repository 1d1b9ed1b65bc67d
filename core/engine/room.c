/* Room for publishers: whether a publish may be queued now, and the room
 * fd that tells a non-blocking host when that changes. The engine's
 * backpressure reaches the publisher here: a stalled client (block mode)
 * or a full command queue closes the room. */
#include "engine/objects.h"

#include <errno.h>
#include <unistd.h>

int wsni_room_open(const wsn_server *srv)
{
    return srv->state != SRV_RUNNING ||
           (!srv->stalled_clients && srv->cmd_publishes < WSNI_COMMAND_QUEUE_LIMIT);
}

void wsni_room_update(wsn_server *srv)
{
    int open = wsni_room_open(srv);
    if (open == srv->room_open)
        return;
    srv->room_open = open;
    uint64_t value = 1;
    ssize_t n;
    /* write adds one to a zero counter; read takes it back to zero. Both
     * only on a flip, so the counter is 0 or 1 and never blocks. */
    do
        n = open ? write(srv->room_fd, &value, sizeof(value))
                 : read(srv->room_fd, &value, sizeof(value));
    while (n < 0 && errno == EINTR);
}
