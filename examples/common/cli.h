/* Small helpers shared by the example programs' command lines. */
#ifndef TG_EXAMPLES_CLI_H
#define TG_EXAMPLES_CLI_H

#include <stdint.h>

#include <transgan.h>

/* The program name that prefixes messages ("train", "generate", ...). */
extern const char *cli_prog;

/* Print "prog: message" to stderr and exit(1). */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* die() with the status name and tg_last_error() unless st is TG_OK. */
void check(tg_status st, const char *what);
/* A non-negative decimal integer, or die() naming the option. */
uint64_t parse_u64(const char *opt, const char *s);

/* mkdir -p, or die(). */
void mkdirs(const char *path);

#endif
