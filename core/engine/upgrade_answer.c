#include "engine/upgrade_answer.h"

#include <stdlib.h>

void wsni_upgrade_answer_free(wsni_upgrade_answer *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->channel_count; i++)
        free(a->channels[i]);
    free(a->channels);
    free(a->metadata_json);
    free(a->body);
    free(a);
}
