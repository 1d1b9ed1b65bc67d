#ifndef WSN_STRLIST_H
#define WSN_STRLIST_H

#include "wsnotify.h"

wsn_strlist *strlist_new(void);
/* Appends a copy; 0 or WSN_ENOMEM. */
int strlist_push(wsn_strlist *l, const char *s);

#endif
