/* Giving freed heap memory back to the system after a load peak. */
#ifndef WSN_MEMORY_H
#define WSN_MEMORY_H

#include <stddef.h>

/* Returns the calling thread's cached free chunks to its malloc arena and
 * then releases every arena's free pages (glibc: malloc_trim). Meant for
 * the I/O thread once its clients have left (it made and freed their
 * memory); it costs about a millisecond, so not on every disconnect.
 * Other C libraries: nothing. Thread: any (acts on the caller's cache). */
void wsni_memory_give_back(void);

/* Lets the system take back the whole pages of a scratch buffer that is
 * not in use (their contents become zeros). For the I/O thread's
 * coalescing buffer, which the biggest writes touch to its end, once no
 * client is left. Thread: the buffer's owner. */
void wsni_memory_discard(void *buf, size_t len);

#endif
