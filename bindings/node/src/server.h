/*
 * NativeServer (server.c): one wsn_server for JS.
 */
#ifndef WSN_NODE_SERVER_H
#define WSN_NODE_SERVER_H

#include "util.h"

napi_value nw_server_class(napi_env env);

#endif
