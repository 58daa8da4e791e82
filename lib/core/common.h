/* Internal: what every file of the library needs (errors, allocation,
 * small helpers): the bottom layer, core/. Never installed. */
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

/* The message of the last failure on this thread (tg_last_error()). */
const char *tg_error_message(void);

/* Every allocation of the library goes through these (core/alloc.c), so one
 * place counts them and can make one fail. On failure each returns NULL and
 * records OUT_OF_MEMORY with a message. Free with free(). */
void *tg_alloc(size_t bytes); /* zeroed, 64-byte aligned */
void *tg_malloc(size_t bytes);
void *tg_calloc(size_t n, size_t size);
void *tg_realloc(void *p, size_t bytes); /* p stays valid on failure */
char *tg_strdup(const char *s);
char *tg_strndup(const char *s, size_t n);
/* How many allocations the library asked for in this process (for the
 * tests' check that steady-state sampling and training allocate nothing). */
long tg_alloc_count(void);
/* The bytes those allocations asked for, summed (freed ones included): the
 * tests' check that a hostile checkpoint is refused before the model's
 * state is allocated. */
unsigned long long tg_alloc_bytes(void);
/* Tests only (not exported): make the allocation that finds tg_alloc_count()
 * == k fail as if memory were exhausted; -1 turns this off. */
void tg_alloc_fail_at(long k);

/* n * m with overflow detection: returns 0 and sets *out on success. */
static inline int tg_mul_overflow(size_t n, size_t m, size_t *out)
{
    return __builtin_mul_overflow(n, m, out);
}

#define TG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TG_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
