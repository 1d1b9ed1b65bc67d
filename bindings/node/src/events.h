/*
 * Events, log lines and room from the core to JS (events.c).
 */
#ifndef WSN_NODE_EVENTS_H
#define WSN_NODE_EVENTS_H

#include "nserver.h"

bool nw_events_start(napi_env env, struct nserver *ns, napi_value on_events);
/* Asks for one room call once the room fd is readable; false when no
 * waiter runs (not started, or stopped). */
bool nw_events_watch_room(struct nserver *ns);
/* Ends the waiter (the environment is going). */
void nw_events_stop(struct nserver *ns);
void nw_events_join(struct nserver *ns);
/* [level, line, ...] of the queued log lines, undefined when there is
 * none (JS thread). */
napi_value nw_take_logs(napi_env env, struct nserver *ns);

#endif
