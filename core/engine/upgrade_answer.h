/* The host's answer to an upgrade that waited for it (WSN_OPT_AUTHENTICATE):
 * made by the shell's accept/reject calls on any thread, carried by a
 * command to the I/O thread, where the transport ends the wait and, for an
 * accepted one, the shell applies it to the new client.
 *
 * Owns: the record and its freeing (upgrade_answer.c). */
#ifndef WSN_ENGINE_UPGRADE_ANSWER_H
#define WSN_ENGINE_UPGRADE_ANSWER_H

#include <stddef.h>
#include <stdint.h>

typedef struct wsni_upgrade_answer {
    uint64_t id;
    int accept;
    int status;           /* rejected: 400..599 */
    char *body;           /* rejected: owned, may be NULL */
    char *metadata_json;  /* accepted: owned JSON object text, may be NULL */
    char **channels;      /* accepted: owned, channel_count of them */
    size_t channel_count;
    int64_t expires_at_ms; /* accepted: Unix ms, 0 = never */
} wsni_upgrade_answer;

void wsni_upgrade_answer_free(wsni_upgrade_answer *a); /* NULL is fine */

#endif
