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
/* lws's callback, for the reasons TLS owns; *handled says whether reason
 * was one of them (then the return value is the callback's answer). */
int wsni_tls_callback(wsn_server *srv, struct lws *wsi, enum lws_callback_reasons reason,
                      void *user, void *in, size_t len, int *handled);
/* Reads the certificate and key files again: WSN_OK, or WSN_EIO (srv's
 * error says why; nothing changed), WSN_EINVAL (no TLS). */
int wsni_tls_reload(wsn_server *srv);

#endif
