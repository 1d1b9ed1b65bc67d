/* The core's threads (the I/O thread, a broker's thread) take no
 * asynchronous signals: the host's handlers then run on the host's
 * threads, where a wsn_server_wait returns on EINTR, and never race the
 * host's main thread from ours. Faults (SIGSEGV and the like) stay
 * deliverable.
 *
 * Owns: thread creation with that mask. Any thread. */
#ifndef WSN_UTIL_THREAD_H
#define WSN_UTIL_THREAD_H

#include <pthread.h>

/* pthread_create with every asynchronous signal blocked in the new
 * thread (the caller's mask is restored before returning). */
int wsni_thread_create(pthread_t *tid, void *(*fn)(void *), void *arg);

#endif
