/* Internal: a strict JSON syntax check (RFC 8259) that allocates nothing,
 * run before cJSON parses a text. Everything it accepts cJSON 1.7 parses,
 * so a NULL from cJSON afterwards can only mean out of memory (cJSON says
 * no more than NULL; its allocator hooks are the application's, not ours).
 * It is also stricter than cJSON where cJSON is lax: leading zeros ("06"),
 * raw control characters and invalid UTF-8 in strings, bad \u escapes. */
#ifndef TG_JSON_H
#define TG_JSON_H

#include <stddef.h>

/* cJSON 1.7.15 reads a number through a 64-byte buffer: no longer token */
#define TG_JSON_MAX_NUMBER 63

/* 1 if s[0..n) is one JSON value (after an optional UTF-8 byte-order mark,
 * with blanks around it) nested at most max_depth arrays/objects deep
 * (max_depth <= 1000, cJSON's own limit). Else 0, with the byte offset of
 * the first problem in *pos and what is wrong in *why ("trailing bytes"
 * exactly when a complete value is followed by more than blanks). */
int tg_json_check(const char *s, size_t n, int max_depth, size_t *pos, const char **why);

/* The length of the strictly valid UTF-8 sequence at s[0..n) (no overlongs,
 * surrogates or values past U+10FFFF), 0 if it is not one. */
size_t tg_utf8_len(const unsigned char *s, size_t n);

#endif
