#include "util/unix_path.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Only ECONNREFUSED says nobody serves the file: a live socket of another
 * type answers EPROTOTYPE, and a full one EAGAIN. */
static int stale(const char *path, int type)
{
    struct stat st;
    if (lstat(path, &st) || !S_ISSOCK(st.st_mode))
        return 0;
    int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, path, strlen(path) + 1);
    int refused = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 && errno == ECONNREFUSED;
    close(fd);
    return refused;
}

int wsni_unix_bind(const char *what, const char *path, int type, wsni_unix_path *bound,
                   char *why, size_t why_len)
{
    size_t len = strlen(path);
    if (len >= sizeof(bound->path)) {
        snprintf(why, why_len, "%s path is %zu bytes, a unix socket path takes %zu", what, len,
                 sizeof(bound->path) - 1);
        return -1;
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, path, len + 1);
    int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&addr, sizeof(addr));
    if (rc && errno == EADDRINUSE && stale(path, type) && !unlink(path))
        rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
    struct stat st;
    if (rc || lstat(path, &st)) {
        snprintf(why, why_len, "%s: cannot listen on %s: %s", what, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    memcpy(bound->path, path, len + 1);
    bound->ino = st.st_ino;
    bound->dev = st.st_dev;
    return fd;
}

void wsni_unix_unlink(const wsni_unix_path *bound)
{
    struct stat st;
    if (!lstat(bound->path, &st) && st.st_ino == bound->ino && st.st_dev == bound->dev)
        unlink(bound->path);
}
