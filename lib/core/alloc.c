/* Every allocation of the library passes through gate(): one place that
 * counts them (the tests' check that steady-state sampling and training
 * allocate nothing) and the one place to make the k-th fail in a test.
 * cJSON's own allocations are the exception: its hooks are process-wide and
 * belong to the application. */
#include <stdatomic.h>
#include <stdio.h>

#include "common.h"

static atomic_long g_alloc_calls;
static atomic_ullong g_alloc_bytes;
/* the count at which the gate refuses (tg_alloc_fail_at); -1: never */
static atomic_long g_fail_at = -1;

long tg_alloc_count(void) { return atomic_load(&g_alloc_calls); }
unsigned long long tg_alloc_bytes(void) { return atomic_load(&g_alloc_bytes); }

void tg_alloc_fail_at(long k) { atomic_store(&g_fail_at, k); }

/* Counts the request; 0 = go ahead. */
static int gate(size_t bytes)
{
    long n = atomic_fetch_add(&g_alloc_calls, 1);
    atomic_fetch_add(&g_alloc_bytes, (unsigned long long)bytes);
    return n == atomic_load(&g_fail_at);
}

static void *oom(size_t bytes)
{
    tg_fail(TG_ERR_OUT_OF_MEMORY, "out of memory allocating %zu bytes", bytes);
    return NULL;
}

void *tg_alloc(size_t bytes)
{
    if (gate(bytes))
        return oom(bytes);
    /* aligned_alloc needs a multiple of the alignment; 0 bytes still gets a block */
    size_t sz = (bytes + 63) & ~(size_t)63;
    if (sz < bytes) {
        tg_fail(TG_ERR_OUT_OF_MEMORY, "allocation of %zu bytes overflows", bytes);
        return NULL;
    }
    void *p = aligned_alloc(64, sz ? sz : 64);
    if (!p)
        return oom(bytes);
    memset(p, 0, sz ? sz : 64);
    return p;
}

void *tg_malloc(size_t bytes)
{
    void *p = gate(bytes) ? NULL : malloc(bytes ? bytes : 1);
    return p ? p : oom(bytes);
}

void *tg_calloc(size_t n, size_t size)
{
    size_t bytes;
    if (tg_mul_overflow(n, size, &bytes))
        return oom(SIZE_MAX);
    void *p = gate(bytes) ? NULL : calloc(n ? n : 1, size ? size : 1);
    return p ? p : oom(bytes);
}

void *tg_realloc(void *old, size_t bytes)
{
    void *p = gate(bytes) ? NULL : realloc(old, bytes ? bytes : 1);
    return p ? p : oom(bytes); /* old stays valid, as with realloc */
}

char *tg_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = tg_malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

char *tg_strdup(const char *s) { return tg_strndup(s, SIZE_MAX); }
