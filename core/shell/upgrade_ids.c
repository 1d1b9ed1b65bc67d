/* Which upgrade ids the host may still answer: the transport says when a
 * wait starts and ends (I/O thread), an answer claims its id (any thread),
 * all under srv->lock. Kept apart from the answering calls so that the
 * server's teardown needs nothing else of the shell's. */
#include "shell/upgrade_ids.h"

#include "shell/server.h"
#include "util/hash.h"

#include <stdlib.h>

struct wsni_waiting_upgrade {
    UT_hash_handle hh;
    uint64_t id;
};

void wsni_upgrade_waiting(wsn_server *srv, uint64_t id, int waiting)
{
    struct wsni_waiting_upgrade *w = NULL;
    pthread_mutex_lock(&srv->lock);
    HASH_FIND(hh, srv->upgrades_waiting, &id, sizeof(id), w);
    if (waiting && !w && (w = calloc(1, sizeof(*w)))) {
        w->id = id;
        HASH_ADD(hh, srv->upgrades_waiting, id, sizeof(w->id), w);
    } else if (!waiting && w) {
        HASH_DEL(srv->upgrades_waiting, w);
        free(w);
    }
    pthread_mutex_unlock(&srv->lock);
}

void wsni_upgrades_waiting_clear(wsn_server *srv)
{
    struct wsni_waiting_upgrade *w, *tmp;
    HASH_ITER(hh, srv->upgrades_waiting, w, tmp)
    {
        HASH_DEL(srv->upgrades_waiting, w);
        free(w);
    }
}

/* The first answer to a waiting id takes it; any later one, or one to an
 * id whose wait ended, is refused here rather than lost on the I/O
 * thread. (A wait that times out after this look ignores the answer.) */
int wsni_upgrade_claim(wsn_server *srv, uint64_t id)
{
    struct wsni_waiting_upgrade *w = NULL;
    pthread_mutex_lock(&srv->lock);
    HASH_FIND(hh, srv->upgrades_waiting, &id, sizeof(id), w);
    if (w)
        HASH_DEL(srv->upgrades_waiting, w);
    pthread_mutex_unlock(&srv->lock);
    free(w);
    if (!w)
        wsni_set_error(srv, "no upgrade %llu waits (never issued, answered, or timed out)",
                       (unsigned long long)id);
    return w ? WSN_OK : WSN_EGONE;
}


