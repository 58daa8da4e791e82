/* Internal: what every file of the library needs. Never installed. */
#ifndef TG_COMMON_H
#define TG_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transgan.h"

/* Record a failure for tg_last_error() and return its status. The message is
 * printf-formatted; it replaces any earlier message of this thread. */
tg_status tg_fail(tg_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefix the current thread's message with "context: " (used while unwinding,
 * e.g. "checkpoint x.safetensors: " + the reader's message). */
void tg_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Clear this thread's message; every public entry point calls it first. */
void tg_error_clear(void);

/* Propagate a failing status. */
#define TG_TRY(expr)                      \
    do {                                  \
        tg_status tg_try_s_ = (expr);     \
        if (tg_try_s_ != TG_OK)           \
            return tg_try_s_;             \
    } while (0)

/* Allocation that records OUT_OF_MEMORY; zeroed, 64-byte aligned. Free with free(). */
void *tg_alloc(size_t bytes);
/* How many times tg_alloc was called in this process (for the tests' check
 * that steady-state sampling and training allocate nothing). */
long tg_alloc_count(void);

/* n * m with overflow detection: returns 0 and sets *out on success. */
static inline int tg_mul_overflow(size_t n, size_t m, size_t *out)
{
    return __builtin_mul_overflow(n, m, out);
}

#define TG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TG_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
