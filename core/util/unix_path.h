/* Binding a unix socket at a path the way a restarted server expects: a
 * socket file left by a process that died is replaced, one that a
 * running process still serves is not taken from it, and at close the
 * path is unlinked only if it is still the file we bound (a successor may
 * have bound its own there since). Owns: unix_path.c. Any thread. */
#ifndef WSN_UTIL_UNIX_PATH_H
#define WSN_UTIL_UNIX_PATH_H

#include <stddef.h>
#include <sys/types.h>

typedef struct wsni_unix_path {
    char path[108];
    ino_t ino;
    dev_t dev;
} wsni_unix_path;

/* A non-blocking, close-on-exec socket of type (SOCK_STREAM,
 * SOCK_DGRAM...) bound at path, its identity kept in *bound. Returns the
 * descriptor, or -1 with why filled ("<what>: ..."). */
int wsni_unix_bind(const char *what, const char *path, int type, wsni_unix_path *bound,
                   char *why, size_t why_len);
/* Unlinks the path if it is still the socket file bound there. */
void wsni_unix_unlink(const wsni_unix_path *bound);

#endif
