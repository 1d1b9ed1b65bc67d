#include "transport/tls.h"

#include "shell/options.h"
#include "shell/server.h"
#include "transport/lws_state.h"
#include "util/hash.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exported by lws 4.1 (lib/tls/tls-server.c) but declared only in its
 * private headers. It re-reads the files of every vhost configured with
 * these paths into that vhost's SSL_CTX; SSL objects made before keep
 * the certificate they were made with. Weak: a libwebsockets without it
 * makes wsn_server_reload_tls() answer WSN_EUNSUPPORTED. */
extern int lws_tls_cert_updated(struct lws_context *context, const char *certpath,
                                const char *keypath, const char *mem_cert,
                                size_t len_mem_cert, const char *mem_privkey,
                                size_t len_mem_privkey) __attribute__((weak));

int wsni_tls_on(const wsn_server *srv) { return *opt_str(srv->opts, WSN_OPT_TLS_CERT) != 0; }

/* An encrypted key would make OpenSSL ask for its passphrase on the
 * terminal, from the I/O thread: refused instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *user)
{
    (void)buf, (void)size, (void)rwflag, (void)user;
    return 0;
}

/* The first reason OpenSSL queued ("no start line": the later ones say
 * less, "PEM lib"), the queue emptied. */
static const char *openssl_reason(void)
{
    unsigned long first = ERR_get_error();
    ERR_clear_error();
    const char *r = first ? ERR_reason_error_string(first) : NULL;
    return r ? r : "unknown error";
}

static int file_readable(const char *option, const char *path, char *why, size_t why_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, why_len, "%s %s: %s", option, path, strerror(errno));
        return 0;
    }
    fclose(f);
    return 1;
}

/* Loads the configured files into a context of our own, as lws loads
 * them into the vhost's: the checks lws 4.1 makes without saying why.
 * Returns the context (the caller frees it), or NULL with why set. */
static SSL_CTX *load_checked(const wsn_options *o, char *why, size_t why_len)
{
    const char *cert = opt_str(o, WSN_OPT_TLS_CERT), *key = opt_str(o, WSN_OPT_TLS_KEY);
    const char *ca = opt_str(o, WSN_OPT_TLS_CA);
    if (!file_readable("tls_cert", cert, why, why_len) ||
        !file_readable("tls_key", key, why, why_len) ||
        (*ca && !file_readable("tls_ca", ca, why, why_len)))
        return NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(why, why_len, "TLS: OpenSSL could not make a context: %s", openssl_reason());
        return NULL;
    }
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    /* The key first: a certificate that does not match it then leaves
     * the context without a key (OpenSSL drops it), which the last check
     * reports as a mismatch, instead of the key load failing. */
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        snprintf(why, why_len, "tls_key %s: not a PEM private key without a passphrase (%s)",
                 key, openssl_reason());
    } else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(why, why_len, "tls_cert %s: not a PEM certificate (%s)", cert, openssl_reason());
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(why, why_len, "tls_key %s is not the key of tls_cert %s", key, cert);
        ERR_clear_error();
    } else if (*ca && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        snprintf(why, why_len, "tls_ca %s: no PEM CA certificate in it (%s)", ca,
                 openssl_reason());
    } else {
        return ctx;
    }
    SSL_CTX_free(ctx);
    return NULL;
}

int wsni_tls_check(wsn_server *srv)
{
    if (!wsni_tls_on(srv))
        return 0;
    char why[256];
    SSL_CTX *ctx = load_checked(srv->opts, why, sizeof(why));
    if (!ctx) {
        wsni_set_error(srv, "%s", why);
        wsni_log(srv, WSN_LOG_ERROR, "%s", why);
        return -1;
    }
    SSL_CTX_free(ctx);
    return 0;
}

void wsni_tls_fill(wsn_server *srv, struct lws_context_creation_info *info)
{
    if (!wsni_tls_on(srv))
        return;
    srv->lws->tls = 1;
    info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info->ssl_cert_filepath = opt_str(srv->opts, WSN_OPT_TLS_CERT);
    info->ssl_private_key_filepath = opt_str(srv->opts, WSN_OPT_TLS_KEY);
    /* lws 4.1 also makes a client SSL_CTX per TLS vhost, with the system's
     * CAs loaded (some 350 kB), and frees it through an OpenSSL index that
     * the next TLS context in the process replaces: with two servers alive
     * at once, each but the last leaked it (about 700 kB, ASan). We make no
     * outgoing connections: an empty one of ours, freed by wsni_tls_free. */
    srv->lws->tls_client_ctx = SSL_CTX_new(TLS_client_method());
    info->provided_client_ssl_ctx = srv->lws->tls_client_ctx;
    /* With lws's default ("h2,http/1.1") a browser negotiates HTTP/2 and
     * its WebSocket rides an h2 stream, where our raw coalesced writes
     * would skip the h2 framing (LWS-NOTES §11). */
    info->alpn = "http/1.1";
    /* Client certificates are set up on the vhost's SSL_CTX by us
     * (vhost_ctx_made), not with LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_
     * CLIENT_CERT: lws 4.1's verify callback lets any certificate in unless
     * the protocol callback objects, and finds its connection through an
     * OpenSSL index that the next TLS context made in the process replaces. */
}

void wsni_tls_free(wsn_server *srv)
{
    SSL_CTX_free(srv->lws->tls_client_ctx);
    srv->lws->tls_client_ctx = NULL;
}

/* --- the vhost's SSL_CTX, its callbacks ---------------------------------- */

/* The server of a connection's SSL (SSL_CTX app data, set below: lws uses
 * indexes of its own, never the app data slot). */
static wsn_server *server_of(const SSL *ssl)
{
    return SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
}

/* OpenSSL's verdict on a client certificate stands; why it failed is kept
 * for the log line of failed handshakes. */
static int verify_client(int preverify_ok, X509_STORE_CTX *store)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    wsn_server *srv = ssl ? server_of(ssl) : NULL;
    if (!preverify_ok && srv)
        snprintf(srv->lws->tls_last_why, sizeof(srv->lws->tls_last_why),
                 "client certificate refused: %s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(store)));
    return preverify_ok;
}

/* The connections whose handshake is under way (lws's opaque user data
 * is the gate's: a set of our own instead). */
typedef struct wsni_tls_pending {
    struct lws *wsi;
    UT_hash_handle hh;
} pending;

static pending *pending_find(wsn_server *srv, struct lws *wsi)
{
    pending *p;
    HASH_FIND_PTR(srv->lws->tls_pending, &wsi, p);
    return p;
}

static void pending_remove(wsn_server *srv, pending *p)
{
    HASH_DEL(srv->lws->tls_pending, p);
    free(p);
}

/* The end of a handshake takes its connection out of the set (the SSL's
 * app data: set when lws announced the connection, NULL before). */
static void handshake_info(const SSL *ssl, int where, int ret)
{
    wsn_server *srv = server_of(ssl);
    struct lws *wsi = SSL_get_app_data(ssl);
    pending *p;
    if (!srv)
        return;
    if ((where & SSL_CB_HANDSHAKE_DONE) && wsi && (p = pending_find(srv, wsi)))
        pending_remove(srv, p);
    if ((where & SSL_CB_ALERT) && !SSL_is_init_finished(ssl))
        /* OpenSSL 3.0 has no text for TLS 1.3's certificate_required (116) */
        snprintf(srv->lws->tls_last_why, sizeof(srv->lws->tls_last_why), "alert %s: %s",
                 (where & SSL_CB_READ) ? "received" : "sent",
                 (ret & 0xff) == 116 ? "certificate required" : SSL_alert_desc_string_long(ret));
}

/* lws made the vhost's SSL_CTX and loaded the certificate: ours to keep
 * (for the reload), to watch handshakes on, and to verify clients with. */
static int vhost_ctx_made(wsn_server *srv, SSL_CTX *ctx)
{
    srv->lws->tls_ctx = ctx;
    SSL_CTX_set_app_data(ctx, srv);
    SSL_CTX_set_info_callback(ctx, handshake_info);
    int64_t mode = opt_int(srv->opts, WSN_OPT_TLS_CLIENT_CERT);
    if (!mode)
        return 0;
    const char *ca = opt_str(srv->opts, WSN_OPT_TLS_CA);
    ERR_clear_error();
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        wsni_set_error(srv, "tls_ca %s: no PEM CA certificate in it (%s)", ca, openssl_reason());
        return 1;
    }
    /* The CA names a client is shown, so that a browser offers a
     * certificate one of them issued. */
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
    if (names)
        SSL_CTX_set_client_CA_list(ctx, names);
    /* Needed once peers are verified: a resumed session is refused
     * without it. */
    static const unsigned char sid_ctx[] = "wsnotify";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (mode == 2 ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                       verify_client);
    ERR_clear_error();
    return 0;
}

/* Refused handshakes are counted, and logged at most once a second: they
 * are what scanners and plain-HTTP clients cause all day. */
static void handshake_failed(wsn_server *srv)
{
    wsni_count_io(&srv->counters.refused[WSNI_REFUSED_TLS], 1);
    unsigned n = wsni_ratelog_due(&srv->lws->tls_log);
    if (n)
        wsni_log(srv, WSN_LOG_INFO, "%u TLS handshake(s) failed or stalled (last: %s)", n,
                 *srv->lws->tls_last_why ? srv->lws->tls_last_why : "no alert sent");
    srv->lws->tls_last_why[0] = 0;
}

/* A connection whose SSL has not finished its handshake: watched, and
 * counted as refused if it goes before the handshake ends. */
static void watch_handshake(wsn_server *srv, struct lws *wsi)
{
    SSL *ssl = lws_get_ssl(wsi);
    pending *p;
    if (!ssl || SSL_is_init_finished(ssl) || pending_find(srv, wsi))
        return;
    if (!(p = calloc(1, sizeof(*p))))
        return; /* not counted: the handshake itself goes on */
    p->wsi = wsi;
    HASH_ADD_PTR(srv->lws->tls_pending, wsi, p);
    SSL_set_app_data(ssl, wsi);
}

int wsni_tls_callback(wsn_server *srv, struct lws *wsi, enum lws_callback_reasons reason,
                      void *user, void *in, size_t len, int *handled)
{
    (void)in, (void)len;
    *handled = 0;
    switch (reason) {
    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
        *handled = 1;
        return vhost_ctx_made(srv, user);
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
    /* A handshake that failed in lws's first read (plain HTTP on the port)
     * never announced its connection: CLOSED_HTTP is its only callback
     * before WSI_DESTROY. */
    case LWS_CALLBACK_CLOSED_HTTP:
        if (srv->lws->tls_ctx)
            watch_handshake(srv, wsi);
        break;
    case LWS_CALLBACK_WSI_DESTROY: {
        pending *p = srv->lws->tls_pending ? pending_find(srv, wsi) : NULL;
        if (p) {
            pending_remove(srv, p);
            handshake_failed(srv);
        }
        break;
    }
    default:
        break;
    }
    return 0;
}

/* --- reload ------------------------------------------------------------------ */

int wsni_tls_reload(wsn_server *srv)
{
    if (!wsni_tls_on(srv))
        return WSN_EINVAL;
    SSL_CTX *live = srv->lws->tls_ctx;
    if (!lws_tls_cert_updated || !live) {
        wsni_set_error(srv, "this libwebsockets cannot reload certificates (no "
                            "lws_tls_cert_updated): restart the server instead");
        return WSN_EUNSUPPORTED;
    }
    char why[256];
    SSL_CTX *checked = load_checked(srv->opts, why, sizeof(why));
    if (!checked) {
        wsni_set_error(srv, "%s", why);
        wsni_log(srv, WSN_LOG_ERROR, "TLS reload refused, the previous certificate stays: %s",
                 why);
        return WSN_EIO;
    }
    lws_tls_cert_updated(srv->lws->ctx, opt_str(srv->opts, WSN_OPT_TLS_CERT),
                         opt_str(srv->opts, WSN_OPT_TLS_KEY), NULL, 0, NULL, 0);
    /* lws reads the files again and says nothing of how it went: what it
     * loaded must be what was just checked. If the files changed between
     * the two reads, the checked pair goes in instead. */
    X509 *want = SSL_CTX_get0_certificate(checked), *have = SSL_CTX_get0_certificate(live);
    int rc = WSN_OK;
    if (!have || X509_cmp(want, have) || SSL_CTX_check_private_key(live) != 1) {
        STACK_OF(X509) *chain = NULL;
        SSL_CTX_get0_chain_certs(checked, &chain);
        if (SSL_CTX_use_cert_and_key(live, want, SSL_CTX_get0_privatekey(checked), chain, 1) !=
            1) {
            wsni_set_error(srv, "TLS reload: the certificate files changed while being read, "
                                "and the checked pair could not be put back: reload again");
            rc = WSN_EIO;
        }
    }
    ERR_clear_error();
    SSL_CTX_free(checked);
    if (!rc)
        wsni_log(srv, WSN_LOG_INFO, "TLS certificate reloaded from %s",
                 opt_str(srv->opts, WSN_OPT_TLS_CERT));
    else
        wsni_log(srv, WSN_LOG_ERROR, "TLS reload failed: new handshakes may fail");
    return rc;
}
