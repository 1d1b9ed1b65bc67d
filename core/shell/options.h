/* The options object and the validated configuration a server keeps. */
#ifndef WSN_OPTIONS_H
#define WSN_OPTIONS_H

#include "wsnotify.h"

#define WSN_OPTION_COUNT 51 /* highest wsn_option id */

struct wsn_options {
    int64_t ints[WSN_OPTION_COUNT + 1];  /* int, bool and duration values */
    char *strings[WSN_OPTION_COUNT + 1]; /* string values, owned */
    wsn_log_fn log_fn;
    void *log_user;
    wsn_origin_fn origin_fn;
    void *origin_user;
};

/* Deep copy; NULL on allocation failure. */
wsn_options *wsni_options_clone(const wsn_options *src);

/* Checks relations between options; on failure writes why into err. */
int wsni_options_validate(const wsn_options *o, char *err, size_t err_len);

static inline int64_t opt_int(const wsn_options *o, wsn_option id) { return o->ints[id]; }
static inline const char *opt_str(const wsn_options *o, wsn_option id) { return o->strings[id]; }

#endif
