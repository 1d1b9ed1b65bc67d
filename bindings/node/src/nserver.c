/*
 * The end of a NativeServer's state: its last reference (the JS wrapper's
 * or the event function's, whichever goes last) frees it.
 */
#include <stdlib.h>
#include <unistd.h>

#include "nserver.h"

void nw_server_unref(struct nserver *ns) {
    if (--ns->refs > 0)
        return;
    if (ns->wake_fd >= 0)
        close(ns->wake_fd);
    pthread_mutex_destroy(&ns->mu);
    pthread_cond_destroy(&ns->cv);
    free(ns);
}
