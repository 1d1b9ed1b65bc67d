#include "transport/refuse.h"

#include "transport/lws_state.h"

void wsni_input_refuse(wsn_client *c, uint16_t code, const char *reason)
{
    struct wsni_conn *conn = wsni_conn_of(c);
    if (conn->input_refused)
        return;
    conn->input_refused = 1;
    wsni_client_begin_close(c, code, reason, 1);
}

int wsni_input_refused(wsn_client *c) { return wsni_conn_of(c)->input_refused; }
