/* The caller's side of pub/sub: validate, encode once in the caller's
 * thread, and hand a command to the I/O thread. */
#include "engine/codec_json.h"
#include "shell/cluster.h"
#include "shell/commands.h"
#include "shell/metrics.h"
#include "engine/json_scan.h"
#include "util/text.h"

#include <stdlib.h>
#include <string.h>

/* Ids travel in every envelope; keep them to a sane size. */
#define MAX_ID_LENGTH 1024

int wsni_check_channel(wsn_server *srv, const char *channel, int allow_empty)
{
    if (!channel)
        return WSN_EINVAL;
    if (!*channel) {
        if (allow_empty)
            return WSN_OK;
        wsni_set_error(srv, "channel name is empty");
        return WSN_EINVAL;
    }
    size_t len = strlen(channel);
    if (len > srv->max_channel_name) {
        wsni_set_error(srv, "channel name is %zu bytes, max_channel_name is %zu", len,
                  srv->max_channel_name);
        return WSN_ELIMIT;
    }
    if (!wsni_utf8_valid((const unsigned char *)channel, len)) {
        wsni_set_error(srv, "channel name is not valid UTF-8");
        return WSN_EINVAL;
    }
    return WSN_OK;
}

static int check_id(wsn_server *srv, const char *id)
{
    if (!id)
        return WSN_OK;
    size_t len = strlen(id);
    if (len > MAX_ID_LENGTH) {
        wsni_set_error(srv, "message id is %zu bytes, the limit is %d", len, MAX_ID_LENGTH);
        return WSN_ELIMIT;
    }
    if (!wsni_utf8_valid((const unsigned char *)id, len)) {
        wsni_set_error(srv, "message id is not valid UTF-8");
        return WSN_EINVAL;
    }
    return WSN_OK;
}

/* Validates the payload and makes the message; encoding happens after.
 * Trusted JSON (WSN_PUBLISH_TRUSTED_JSON) is neither checked nor minified:
 * the caller vouches for it. */
static int make_message(wsn_server *srv, const char *channel, wsn_message_type type,
                        const void *data, size_t len, const char *message_id,
                        const char *reply_to_id, int flags, outgoing **out)
{
    int rc;
    *out = NULL;
    if ((rc = check_id(srv, message_id)) || (rc = check_id(srv, reply_to_id)))
        return rc;
    if (!data && len)
        return WSN_EINVAL;
    int trusted = (flags & WSN_PUBLISH_TRUSTED_JSON) && type == WSN_TYPE_JSON;
    switch (type) {
    case WSN_TYPE_JSON:
        if (!data || (!trusted && !wsni_json_scan_valid(data, len))) {
            wsni_set_error(srv, "message is not valid JSON");
            return WSN_EJSON;
        }
        break;
    case WSN_TYPE_TEXT:
        if (!wsni_utf8_valid(data, len)) {
            wsni_set_error(srv, "text message is not valid UTF-8");
            return WSN_EINVAL;
        }
        break;
    case WSN_TYPE_BINARY:
        break;
    default:
        wsni_set_error(srv, "unknown message type %d", (int)type);
        return WSN_EINVAL;
    }
    *out = wsni_message_out_new(channel, type, data ? data : "", len,
                                type == WSN_TYPE_JSON && !trusted, message_id, reply_to_id);
    return *out ? WSN_OK : WSN_ENOMEM;
}

/* Makes the frames the server's clients need now. Trusted text that is not
 * JSON cannot become MessagePack: that is the caller's error, not memory. */
static int prepare_frames(wsn_server *srv, outgoing *o, int flags)
{
    if (!wsni_outgoing_prepare(srv, o))
        return WSN_OK;
    if (flags & WSN_PUBLISH_TRUSTED_JSON) {
        wsni_set_error(srv, "trusted message is not valid JSON");
        return WSN_EJSON;
    }
    return WSN_ENOMEM;
}

/* A stopped server answers WSN_ECLOSED before a gone client WSN_EGONE:
 * after shutdown every client is gone, and the server is the cause. */
static int check_client(wsn_server *srv, wsn_client *c)
{
    if (!c || c->srv != srv)
        return WSN_EINVAL;
    pthread_mutex_lock(&srv->lock);
    int running = srv->state == SRV_RUNNING;
    pthread_mutex_unlock(&srv->lock);
    if (!running)
        return WSN_ECLOSED;
    if (!atomic_load(&c->connected))
        return WSN_EGONE;
    return WSN_OK;
}

static int channel_command(wsn_server *srv, enum command_kind kind, wsn_client *c,
                           const char *channel)
{
    if (!srv)
        return WSN_EINVAL;
    int rc;
    if ((rc = check_client(srv, c)) || (rc = wsni_check_channel(srv, channel, 0)))
        return rc;
    command *cmd = wsni_command_new(kind);
    if (!cmd || !(cmd->channel = strdup(channel))) {
        wsni_command_free(cmd);
        return WSN_ENOMEM;
    }
    cmd->client = wsn_client_retain(c);
    return wsni_command_submit(srv, cmd, 0);
}

/* A subscribe takes one of the client's max_subscriptions slots before it
 * is queued, so that the host hears WSN_ELIMIT at once; applying it gives
 * the slot back when it added no membership (shell/commands.c). At the
 * bound, subscribing again to a channel the client is in is refused as
 * well: whether it is a member is known only on the I/O thread. */
WSN_API int wsn_server_subscribe(wsn_server *srv, wsn_client *c, const char *channel)
{
    if (!srv || !c)
        return WSN_EINVAL;
    unsigned cap = srv->max_subscriptions;
    if (cap && atomic_fetch_add(&c->sub_slots, 1) >= cap) {
        atomic_fetch_sub(&c->sub_slots, 1);
        int rc = check_client(srv, c);
        if (rc)
            return rc;
        wsni_set_error(srv, "client %s is in max_subscriptions (%u) channels", c->id, cap);
        return WSN_ELIMIT;
    }
    int rc = channel_command(srv, CMD_SUBSCRIBE, c, channel);
    if (rc && cap)
        atomic_fetch_sub(&c->sub_slots, 1);
    return rc;
}

WSN_API int wsn_server_unsubscribe(wsn_server *srv, wsn_client *c, const char *channel)
{
    int rc = channel_command(srv, CMD_UNSUBSCRIBE, c, channel);
    /* Leaving a channel after the client left is not an error worth raising. */
    return rc == WSN_EGONE ? WSN_OK : rc;
}

static int check_flags(int flags, int allowed)
{
    return flags & ~allowed ? WSN_EINVAL : WSN_OK;
}

/* A publish command (CMD_PUBLISH: to the channel named by dest;
 * CMD_SEND_REMOTE: to the client of another server named by dest) with its
 * message made and encoded in the formats the server's clients (or, with
 * a broker, the cluster's) may use. */
static int message_command(wsn_server *srv, enum command_kind kind, const char *dest,
                           const char *channel, wsn_message_type type, const void *data,
                           size_t len, const char *message_id, const char *reply_to_id,
                           int flags, command **out)
{
    int rc;
    command *cmd = *out = wsni_command_new(kind);
    char *copy = cmd ? strdup(dest) : NULL;
    if (!copy) {
        wsni_command_free(cmd);
        return WSN_ENOMEM;
    }
    if (kind == CMD_SEND_REMOTE)
        cmd->target = copy;
    else
        cmd->channel = copy;
    if ((rc = make_message(srv, channel, type, data, len, message_id, reply_to_id, flags,
                           &cmd->out)) ||
        (rc = prepare_frames(srv, cmd->out, flags))) {
        wsni_command_free(cmd);
        *out = NULL;
        return rc;
    }
    return WSN_OK;
}

static int publish_channel(wsn_server *srv, const char *channel, wsn_message_type type,
                           const void *data, size_t len, const char *message_id,
                           const char *reply_to_id, int flags)
{
    int rc = wsni_check_channel(srv, channel, 0);
    if (rc)
        return rc;
    command *cmd;
    if ((rc = message_command(srv, CMD_PUBLISH, channel, channel, type, data, len, message_id,
                              reply_to_id, flags, &cmd)))
        return rc;
    /* Decided now, not when the I/O thread applies it: what the publisher
     * is told is what happens (WSN_EBROKER: this server only). */
    int here_only = wsni_cluster_publish_check(srv) == WSN_EBROKER;
    cmd->arg = here_only;
    if ((rc = wsni_command_submit(srv, cmd, flags)))
        return rc;
    return here_only ? WSN_EBROKER : WSN_OK;
}

static int publish_client(wsn_server *srv, wsn_client *c, const char *channel,
                          wsn_message_type type, const void *data, size_t len,
                          const char *message_id, const char *reply_to_id, int flags)
{
    int rc;
    if ((rc = check_client(srv, c)) || (rc = wsni_check_channel(srv, channel, 1)))
        return rc;
    command *cmd = wsni_command_new(CMD_SEND);
    if (!cmd)
        return WSN_ENOMEM;
    if ((rc = make_message(srv, channel, type, data, len, message_id, reply_to_id, flags,
                           &cmd->out))) {
        wsni_command_free(cmd);
        return rc;
    }
    if (!wsni_outgoing_frame(cmd->out, c->format)) {
        rc = WSN_ENOMEM;
        if (flags & WSN_PUBLISH_TRUSTED_JSON) {
            wsni_set_error(srv, "trusted message is not valid JSON");
            rc = WSN_EJSON;
        }
        wsni_command_free(cmd);
        return rc;
    }
    cmd->client = wsn_client_retain(c);
    return wsni_command_submit(srv, cmd, flags);
}

WSN_API int wsn_server_publish_ex(wsn_server *srv, wsn_client *client, const char *channel,
                                  wsn_message_type type, const void *data, size_t len,
                                  const char *message_id, const char *reply_to_id, int flags)
{
    if (!srv || check_flags(flags, WSN_PUBLISH_NONBLOCK | WSN_PUBLISH_TRUSTED_JSON))
        return WSN_EINVAL;
    if (client)
        return wsni_publish_result(srv, publish_client(srv, client, channel, type, data, len,
                                                       message_id, reply_to_id, flags));
    return wsni_publish_result(
        srv, publish_channel(srv, channel, type, data, len, message_id, reply_to_id, flags));
}

WSN_API int wsn_server_publish(wsn_server *srv, const char *channel, const char *json)
{
    if (!json)
        return WSN_EINVAL;
    return wsn_server_publish_ex(srv, NULL, channel, WSN_TYPE_JSON, json, strlen(json), NULL,
                                 NULL, 0);
}

WSN_API int wsn_server_publish_with_type(wsn_server *srv, const char *channel,
                                         wsn_message_type type, const void *data, size_t len,
                                         const char *message_id, const char *reply_to_id)
{
    return wsn_server_publish_ex(srv, NULL, channel, type, data, len, message_id, reply_to_id,
                                 0);
}

WSN_API int wsn_server_publish_to_client(wsn_server *srv, wsn_client *c, const char *channel,
                                         wsn_message_type type, const void *data, size_t len,
                                         const char *message_id, const char *reply_to_id)
{
    if (!c)
        return WSN_EINVAL;
    return wsn_server_publish_ex(srv, c, channel, type, data, len, message_id, reply_to_id, 0);
}

/* A client id of this server is found in its table; one of another
 * server (its id names that server) goes to that server's inbox. */
static int publish_to_client_id(wsn_server *srv, const char *client_id, const char *channel,
                                wsn_message_type type, const void *data, size_t len,
                                const char *message_id, const char *reply_to_id)
{
    if (!srv || !client_id || !client_id[0])
        return WSN_EINVAL;
    size_t own = strlen(srv->cluster_id);
    /* Ours: "c_<our id>_<n>" exactly, not an id that merely starts with
     * ours. */
    int remote = srv->cluster_id[0] && !strncmp(client_id, "c_", 2) &&
                 !(!strncmp(client_id + 2, srv->cluster_id, own) && client_id[2 + own] == '_');
    if (!remote) {
        wsn_client *c = wsni_client_find(srv, client_id);
        if (!c)
            return WSN_EGONE;
        int rc =
            publish_client(srv, c, channel, type, data, len, message_id, reply_to_id, 0);
        wsn_client_release(c);
        return rc;
    }
    int rc;
    if ((rc = wsni_check_channel(srv, channel, 1)))
        return rc;
    if (strlen(client_id) >= 64 || !wsni_utf8_valid_str(client_id))
        return WSN_EINVAL;
    /* Decided now, as for a channel publish; a refused one still goes to
     * the I/O thread, which numbers it so the target counts it as lost. */
    int refused = wsni_cluster_publish_check(srv) == WSN_EBROKER;
    command *cmd;
    if ((rc = message_command(srv, CMD_SEND_REMOTE, client_id, channel, type, data, len,
                              message_id, reply_to_id, 0, &cmd)))
        return rc;
    cmd->arg = refused;
    if ((rc = wsni_command_submit(srv, cmd, 0)))
        return rc;
    return refused ? WSN_EBROKER : WSN_OK;
}

WSN_API int wsn_server_publish_to_client_id(wsn_server *srv, const char *client_id,
                                            const char *channel, wsn_message_type type,
                                            const void *data, size_t len,
                                            const char *message_id, const char *reply_to_id)
{
    return wsni_publish_result(srv, publish_to_client_id(srv, client_id, channel, type, data, len,
                                                         message_id, reply_to_id));
}

WSN_API int wsn_server_send_raw_ex(wsn_server *srv, wsn_client *c, wsn_message_type type,
                                   const void *data, size_t len, int flags)
{
    if (!srv || (!data && len) || check_flags(flags, WSN_PUBLISH_NONBLOCK))
        return WSN_EINVAL;
    int rc = check_client(srv, c);
    if (rc)
        return rc;
    if (type != WSN_TYPE_TEXT && type != WSN_TYPE_BINARY) {
        wsni_set_error(srv, "raw frames are text or binary");
        return WSN_EINVAL;
    }
    if (type == WSN_TYPE_TEXT && !wsni_utf8_valid(data, len)) {
        wsni_set_error(srv, "text frame is not valid UTF-8");
        return WSN_EINVAL;
    }
    command *cmd = wsni_command_new(CMD_SEND);
    wsn_frame *f = cmd ? wsni_frame_from(data, len, type == WSN_TYPE_BINARY) : NULL;
    if (!f || !(cmd->out = wsni_raw_out_new(f))) {
        wsni_command_free(cmd);
        return WSN_ENOMEM;
    }
    cmd->client = wsn_client_retain(c);
    return wsni_publish_result(srv, wsni_command_submit(srv, cmd, flags));
}

WSN_API int wsn_server_send_raw(wsn_server *srv, wsn_client *c, wsn_message_type type,
                                const void *data, size_t len)
{
    return wsn_server_send_raw_ex(srv, c, type, data, len, 0);
}
