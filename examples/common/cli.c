#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *cli_prog = "example";

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", cli_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void check(tg_status st, const char *what)
{
    if (st != TG_OK)
        die("%s: %s: %s", what, tg_status_string(st), tg_last_error());
}

uint64_t parse_u64(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || s[0] == '-')
        die("%s: '%s' is not a non-negative integer", opt, s);
    return (uint64_t)v;
}

void mkdirs(const char *path)
{
    char *p = strdup(path);
    if (!p)
        die("out of memory");
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST)
                die("cannot create folder '%s': %s", p, strerror(errno));
            if (!(*s = c))
                break;
        }
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        die("'%s' is not a folder", path);
    free(p);
}
