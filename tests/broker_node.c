/* One server of a test cluster (test_broker.c runs three in separate
 * processes): broker_node <broker url> [sharded]. Prints "port <n> id
 * <server id>" on stdout once listening, serves until its stdin closes.
 *
 * Clients drive it with JSON messages (any channel); it answers each on
 * channel "ctl" to that client only:
 *   {"op":"sub","chan":C}                 subscribe the sender
 *   {"op":"pub","chan":C,"tag":T,"from":i,"n":N}
 *        publish {"t":T,"i":k} for k in [i, i+N); answers "rcs": one
 *        character per publish, '.' 0, 'B' WSN_EBROKER, 'x' anything else
 *   {"op":"to","id":ID,"tag":T,"i":k}     publish_to_client_id on "dm"
 *   {"op":"batch","chan":C,"tag":T,"n":N} publish_wait N messages (one batch)
 *   {"op":"info"}                         wsn_server_broker_state (+ "lost")
 *   {"op":"me"}                           the sender's client id */
#include "wsnotify.h"

#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void logger(void *user, wsn_log_level level, const char *msg)
{
    (void)user;
    fprintf(stderr, "node[%d] %d %s\n", (int)getpid(), (int)level, msg);
}

static void reply(wsn_server *srv, wsn_client *c, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    if (text)
        wsn_server_publish_to_client(srv, c, "ctl", WSN_TYPE_JSON, text, strlen(text), NULL, NULL);
    free(text);
    json_decref(obj);
}

static char *item(const char *tag, json_int_t i)
{
    json_t *o = json_pack("{s:s,s:I}", "t", tag, "i", i);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static void on_message(void *user, wsn_server *srv, const wsn_event *ev)
{
    (void)user;
    wsn_client *c = wsn_event_client(ev);
    size_t len;
    const char *payload = wsn_event_payload(ev, &len);
    json_t *m = json_loadb(payload, len, 0, NULL);
    const char *op = json_string_value(json_object_get(m, "op"));
    const char *chan = json_string_value(json_object_get(m, "chan"));
    const char *tag = json_string_value(json_object_get(m, "tag"));
    if (!op) {
        json_decref(m);
        return;
    }
    if (!strcmp(op, "sub") && chan) {
        reply(srv, c, json_pack("{s:s,s:i}", "op", "sub", "rc", wsn_server_subscribe(srv, c, chan)));
    } else if (!strcmp(op, "pub") && chan && tag) {
        json_int_t from = json_integer_value(json_object_get(m, "from"));
        json_int_t n = json_integer_value(json_object_get(m, "n"));
        char *rcs = calloc((size_t)n + 1, 1);
        for (json_int_t k = 0; rcs && k < n; k++) {
            char *text = item(tag, from + k);
            int rc = wsn_server_publish(srv, chan, text);
            rcs[k] = rc == WSN_OK ? '.' : rc == WSN_EBROKER ? 'B' : 'x';
            free(text);
        }
        reply(srv, c, json_pack("{s:s,s:s}", "op", "pub", "rcs", rcs ? rcs : ""));
        free(rcs);
    } else if (!strcmp(op, "to") && tag) {
        const char *id = json_string_value(json_object_get(m, "id"));
        char *text = item(tag, json_integer_value(json_object_get(m, "i")));
        int rc = wsn_server_publish_to_client_id(srv, id ? id : "", "dm", WSN_TYPE_JSON, text,
                                                 strlen(text), NULL, NULL);
        free(text);
        reply(srv, c, json_pack("{s:s,s:i}", "op", "to", "rc", rc));
    } else if (!strcmp(op, "batch") && chan && tag) {
        json_int_t n = json_integer_value(json_object_get(m, "n"));
        int rc = 0;
        for (json_int_t k = 0; k < n && !rc; k++) {
            char *text = item(tag, k);
            rc = wsn_server_publish_wait(srv, chan, text, 7, "batch", 50);
            free(text);
        }
        reply(srv, c, json_pack("{s:s,s:i}", "op", "batch", "rc", rc));
    } else if (!strcmp(op, "info")) {
        wsn_broker_info info = {.size = sizeof(info)};
        int state = wsn_server_broker_state(srv, &info);
        wsn_metrics met = {.size = sizeof(met)};
        wsn_server_metrics(srv, &met);
        reply(srv, c,
              json_pack("{s:s,s:i,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "op", "info", "state",
                        state, "reason", info.reason, "id", info.server_id, "sent",
                        (json_int_t)info.sent, "refused", (json_int_t)info.refused,
                        "unconfirmed", (json_int_t)info.unconfirmed, "received",
                        (json_int_t)info.received, "ignored", (json_int_t)info.ignored,
                        "dropped", (json_int_t)info.dropped, "reconnects",
                        (json_int_t)info.reconnects, "lost", (json_int_t)met.broker_lost));
    } else if (!strcmp(op, "me")) {
        reply(srv, c, json_pack("{s:s,s:s}", "op", "me", "id", wsn_client_id(c)));
    }
    json_decref(m);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: broker_node <broker url> [sharded]\n");
        return 2;
    }
    wsn_options *o = wsn_options_new();
    wsn_options_set_string(o, WSN_OPT_HOST, "127.0.0.1");
    wsn_options_set_int(o, WSN_OPT_PORT, 0);
    wsn_options_set_string(o, WSN_OPT_BROKER, argv[1]);
    wsn_options_set_int(o, WSN_OPT_BROKER_SHARDED, argc > 2 && !strcmp(argv[2], "sharded"));
    wsn_options_set_int(o, WSN_OPT_LOG_LEVEL, getenv("WSN_TEST_DEBUG") ? WSN_LOG_DEBUG : WSN_LOG_INFO);
    /* The test's clients are its control channel: probes until a
     * subscription is live come as fast as the round trips go, so no
     * inbound rate limit (0 = none). */
    wsn_options_set_int(o, WSN_OPT_CLIENT_RATE, 0);
    /* Publishes come in thousands from one handler: they wait for room. */
    wsn_options_set_int(o, WSN_OPT_SEND_BUFFER, 65536);
    wsn_options_set_int(o, WSN_OPT_SEND_BUFFER_BYTES, 0);
    wsn_options_set_logger(o, logger, NULL);
    wsn_server *srv = NULL;
    char err[256];
    int rc = wsn_server_new(o, &srv, err, sizeof(err));
    wsn_options_free(o);
    if (rc) {
        fprintf(stderr, "broker_node: %s: %s\n", wsn_err_name(rc), err);
        return 1;
    }
    wsn_server_set_handler(srv, WSN_EVENT_MESSAGE, on_message, NULL);
    if ((rc = wsn_server_start(srv))) {
        fprintf(stderr, "broker_node: start: %s\n", wsn_err_name(rc));
        return 1;
    }
    wsn_broker_info info = {.size = sizeof(info)};
    wsn_server_broker_state(srv, &info);
    printf("port %d id %s\n", wsn_server_port(srv), info.server_id);
    fflush(stdout);
    struct pollfd pfd[2] = {{.fd = wsn_server_event_fd(srv), .events = POLLIN},
                            {.fd = STDIN_FILENO, .events = POLLIN}};
    for (;;) {
        if (poll(pfd, 2, -1) < 0)
            continue;
        if (pfd[0].revents)
            wsn_server_dispatch(srv, 0);
        if (pfd[1].revents) {
            char buf[64];
            if (read(STDIN_FILENO, buf, sizeof(buf)) <= 0)
                break;
        }
    }
    wsn_server_free(srv);
    return 0;
}
