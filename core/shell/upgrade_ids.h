/* The ids of upgrades waiting for the host's answer (shell/upgrade_ids.c). */
#ifndef WSN_SHELL_UPGRADE_IDS_H
#define WSN_SHELL_UPGRADE_IDS_H

#include "engine/objects.h"

#include <stdint.h>

/* The transport's word (io): id waits for the host, or no longer. */
void wsni_upgrade_waiting(wsn_server *srv, uint64_t id, int waiting);
/* Takes id for an answer: WSN_OK once, else WSN_EGONE (error set). */
int wsni_upgrade_claim(wsn_server *srv, uint64_t id);
/* Frees the set (the server is being freed). */
void wsni_upgrades_waiting_clear(wsn_server *srv);

#endif
