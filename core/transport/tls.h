/* TLS (wss://, https://) through libwebsockets' OpenSSL: the vhost's
 * settings from the tls_* options, the certificate files checked before
 * lws reads them (lws 4.1 only says "could not create its context"),
 * client-certificate verification (lws accepts any client certificate
 * unless its callback says no), failed handshakes counted, and the
 * certificate reload (lws_tls_cert_updated).
 *
 * Owns: the TLS part of the lws context info and callback, and srv->lws's
 * tls_* fields. Thread: the I/O thread. */
#ifndef WSN_TRANSPORT_TLS_H
#define WSN_TRANSPORT_TLS_H

#include "engine/objects.h"

#include <libwebsockets.h>

/* Whether the server speaks TLS (tls_cert and tls_key are set). */
int wsni_tls_on(const wsn_server *srv);
/* Before the context: the files can be read, hold a certificate and its
 * key (and CAs). 0, or -1 with srv's error set and logged. */
int wsni_tls_check(wsn_server *srv);
/* The TLS part of the context and vhost (nothing without TLS). */
void wsni_tls_fill(wsn_server *srv, struct lws_context_creation_info *info);
/* Frees what wsni_tls_fill made, once lws's context is gone. */
void wsni_tls_free(wsn_server *srv);
/* The callback reasons wsni_tls_callback looks at. lws calls the protocol
 * callback about once per delivery (WRITEABLE), so the others do not pay
 * for a call (27 instructions a delivery, callgrind). */
static inline int wsni_tls_wants(enum lws_callback_reasons reason)
{
    return reason == LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS ||
           reason == LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED ||
           reason == LWS_CALLBACK_CLOSED_HTTP || reason == LWS_CALLBACK_WSI_DESTROY;
}
/* lws's callback, for the reasons TLS owns; *handled says whether reason
 * was one of them (then the return value is the callback's answer). */
int wsni_tls_callback(wsn_server *srv, struct lws *wsi, enum lws_callback_reasons reason,
                      void *user, void *in, size_t len, int *handled);
/* Reads the certificate and key files again: WSN_OK, or WSN_EIO (srv's
 * error says why; nothing changed), WSN_EINVAL (no TLS). */
int wsni_tls_reload(wsn_server *srv);

#endif
