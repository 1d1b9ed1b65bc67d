/* wsn_handoff(): the front's side of the handoff socket
 * (transport/handoff.c). It runs in whatever process accepted the
 * connection, usually not the engine's, and needs no server. */
#include "wsnotify.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define EPOLL_SETS_MAX 16

/* The process's epoll descriptors, found once: hosts make theirs at start
 * and keep them. A number that was since closed or reused costs one
 * failed epoll_ctl (EBADF, EINVAL or ENOENT), never a wrong removal, as
 * the socket handed over is in no set of ours but the host's. */
static int epoll_sets[EPOLL_SETS_MAX];
static int epoll_set_count;
static pthread_once_t epoll_sets_once = PTHREAD_ONCE_INIT;

static void find_epoll_sets(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return;
    struct dirent *d;
    while ((d = readdir(dir)) && epoll_set_count < EPOLL_SETS_MAX) {
        char target[32];
        if (d->d_name[0] == '.')
            continue;
        ssize_t n = readlinkat(dirfd(dir), d->d_name, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = 0;
        if (!strcmp(target, "anon_inode:[eventpoll]"))
            epoll_sets[epoll_set_count++] = atoi(d->d_name);
    }
    closedir(dir);
}

static void forget_in_epoll_sets(int fd)
{
    pthread_once(&epoll_sets_once, find_epoll_sets);
    for (int i = 0; i < epoll_set_count; i++)
        (void)epoll_ctl(epoll_sets[i], EPOLL_CTL_DEL, fd, NULL);
}

WSN_API int wsn_handoff(const char *path, int fd, const void *head, size_t head_len)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (!path || !*path || strlen(path) >= sizeof(addr.sun_path) || fd < 0 || !head || !head_len)
        return WSN_EINVAL;
    if (head_len > WSN_HANDOFF_MAX_HEAD)
        return WSN_ELIMIT;
    memcpy(addr.sun_path, path, strlen(path) + 1);
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct iovec iov = {(void *)head, head_len};
    struct msghdr msg = {.msg_name = &addr, .msg_namelen = sizeof(addr), .msg_iov = &iov,
                         .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof(control.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));

    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return WSN_EIO;
    ssize_t n;
    do
        n = sendmsg(s, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    int err = n < 0 ? errno : 0;
    close(s);
    if (!err) {
        forget_in_epoll_sets(fd);
        return WSN_OK;
    }
    if (err == ENOENT || err == ECONNREFUSED || err == ENOTDIR)
        return WSN_ECLOSED;
    /* The receiver's queue is net.unix.max_dgram_qlen long (10 by default). */
    if (err == EAGAIN || err == EWOULDBLOCK)
        return WSN_EAGAIN;
    return WSN_EIO;
}
