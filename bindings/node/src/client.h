/*
 * NativeClient (client.c): one retained client handle for JS.
 */
#ifndef WSN_NODE_CLIENT_H
#define WSN_NODE_CLIENT_H

#include "util.h"

napi_value nw_client_class(napi_env env);
/* Wraps a borrowed client handle in a new NativeClient (retained). */
napi_value nw_client_wrap(napi_env env, wsn_client *borrowed);
/* The retained handle of a NativeClient argument (TypeError otherwise). */
wsn_client *nw_client_unwrap(napi_env env, napi_value v);

#endif
