/* The thread-local error message behind tg_last_error(): recorded where a
 * failure is found, prefixed with context while unwinding. */
#include <stdarg.h>
#include <stdio.h>

#include "common.h"

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

const char *tg_error_message(void) { return tg_err_buf; }
