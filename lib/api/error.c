/* Statuses, the thread-local error message and the version: the part of the
 * public API that needs no model. */
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>

#include "../common.h"

static _Thread_local char tg_err_buf[1024];

tg_status tg_fail(tg_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tg_err_buf, sizeof tg_err_buf, fmt, ap);
    va_end(ap);
    return status;
}

void tg_error_prefix(const char *fmt, ...)
{
    char pre[512], old[sizeof tg_err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, tg_err_buf, sizeof old);
    size_t n = strlen(pre);
    if (n >= sizeof tg_err_buf)
        n = sizeof tg_err_buf - 1;
    memcpy(tg_err_buf, pre, n);
    size_t m = strlen(old);
    if (m > sizeof tg_err_buf - 1 - n)
        m = sizeof tg_err_buf - 1 - n;
    memcpy(tg_err_buf + n, old, m);
    tg_err_buf[n + m] = '\0';
}

void tg_error_clear(void) { tg_err_buf[0] = '\0'; }

const char *tg_last_error(void) { return tg_err_buf; }

static atomic_long g_alloc_calls;

long tg_alloc_count(void) { return atomic_load(&g_alloc_calls); }

void *tg_alloc(size_t bytes)
{
    atomic_fetch_add(&g_alloc_calls, 1);
    /* aligned_alloc needs a multiple of the alignment; 0 bytes still gets a block */
    size_t sz = (bytes + 63) & ~(size_t)63;
    if (sz < bytes) {
        tg_fail(TG_ERR_OUT_OF_MEMORY, "allocation of %zu bytes overflows", bytes);
        return NULL;
    }
    void *p = aligned_alloc(64, sz ? sz : 64);
    if (!p) {
        tg_fail(TG_ERR_OUT_OF_MEMORY, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    memset(p, 0, sz ? sz : 64);
    return p;
}

TG_API const char *tg_status_string(tg_status s)
{
    switch (s) {
    case TG_OK: return "ok";
    case TG_ERR_INVALID_ARGUMENT: return "invalid argument";
    case TG_ERR_OUT_OF_MEMORY: return "out of memory";
    case TG_ERR_IO: return "input/output error";
    case TG_ERR_DESCRIPTOR: return "invalid model descriptor";
    case TG_ERR_FORMAT: return "malformed checkpoint";
    case TG_ERR_DTYPE: return "unsupported tensor dtype";
    case TG_ERR_SHAPE: return "tensor shape mismatch";
    case TG_ERR_MISSING: return "tensor missing from checkpoint";
    case TG_ERR_NONFINITE: return "NaN or infinity";
    case TG_ERR_BACKEND: return "oneDNN backend failure";
    case TG_ERR_UNSUPPORTED: return "unsupported";
    case TG_ERR_STATE: return "invalid state for this call";
    case TG_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

TG_API uint32_t tg_version(void) { return TG_VERSION_NUMBER; }

TG_API const char *tg_version_string(void) { return TG_VERSION_STRING; }
