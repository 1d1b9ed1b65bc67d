/* Shared helpers for the libFuzzer targets (build.sh compiles the
 * whole core with them, so internal functions are callable). A broken
 * invariant aborts with a message: libFuzzer records the input. */
#ifndef WSN_FUZZ_COMMON_H
#define WSN_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond, ...)                                                 \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "invariant broken at %s:%d: %s: ", __FILE__,      \
                    __LINE__, #cond);                                         \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            abort();                                                          \
        }                                                                     \
    } while (0)

#endif
