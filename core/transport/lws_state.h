/* The lws transport's per-server state that only lws code reads: the
 * structures lws_create_context keeps pointers to (so they live as long as
 * the server) and the receive-buffer pool. wsn_server holds a pointer to
 * it, so the engine and the shell never see an lws type.
 *
 * Owns: struct wsni_lws; the lws implementation of the engine's transport
 * interface (wsni_lws_transport). Thread: the I/O thread, after
 * wsni_loop_start made it. */
#ifndef WSN_TRANSPORT_LWS_STATE_H
#define WSN_TRANSPORT_LWS_STATE_H

#include "engine/transport.h"
#include "transport/loop.h"
#include "transport/rx_buffers.h"

#include <libwebsockets.h>

struct wsni_lws {
    struct lws_protocols protocols[3];
    struct lws_protocol_vhost_options pvo_default, pvo_json;
    struct lws_http_mount mount_static, mount_health;
    struct lws_extension extensions[2];
    lws_retry_bo_t retry;
    rx_pool rx_pool; /* io: lws's receive buffers (rx_buffers.c) */
};

#endif
