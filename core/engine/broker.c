#include "engine/broker.h"

static int local_publish(wsn_server *srv, const char *channel, outgoing *const *outs, size_t count,
                         int may_wait)
{
    return count == 1 ? wsni_deliver_to_channel(srv, channel, outs[0], may_wait)
                      : wsni_deliver_run_to_channel(srv, channel, outs, count, may_wait);
}

const wsni_broker wsni_local_broker = {
    .publish = local_publish,
    .publish_to_client = wsni_deliver_to_client,
};

/* The registry reports channels that gain their first member or lose
 * their last; the broker hears of it only if it asked. */
static void channel_changed(void *user, const char *channel, int first)
{
    wsn_server *srv = user;
    void (*fn)(wsn_server *, const char *) =
        first ? srv->broker->channel_first : srv->broker->channel_last;
    if (fn)
        fn(srv, channel);
}

void wsni_broker_use(wsn_server *srv, const wsni_broker *b)
{
    srv->broker = b;
    /* Another server may have clients of any format: encode them all. */
    srv->encode_all_formats = b != &wsni_local_broker;
    srv->reg.watch = b->channel_first || b->channel_last ? channel_changed : NULL;
    srv->reg.watch_user = srv;
}
