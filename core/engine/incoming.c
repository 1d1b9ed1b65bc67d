#include "engine/incoming.h"

#include <stdlib.h>
#include <string.h>

void wsni_incoming_clear(incoming *in)
{
    if (in->storage) {
        free(in->storage);
    } else {
        free(in->channel);
        free(in->payload);
        free(in->message_id);
        free(in->reply_to_id);
    }
    memset(in, 0, sizeof(*in));
}
