#ifndef WSN_STRLIST_H
#define WSN_STRLIST_H

#include "wsnotify.h"

wsn_strlist *wsni_strlist_new(void);
/* Appends a copy; 0 or WSN_ENOMEM. */
int wsni_strlist_push(wsn_strlist *l, const char *s);

#endif
