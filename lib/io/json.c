/* A strict JSON syntax check that allocates nothing (json.h says why). It
 * mirrors the places where cJSON 1.7.15 is stricter than RFC 8259 (numbers
 * of at most 63 characters, surrogate escapes in pairs), so that what
 * passes here cannot fail in cJSON except for memory. */
#include "json.h"

#include <string.h>

typedef struct {
    const unsigned char *s;
    size_t n, i;
    int depth, max_depth;
    const char *why;
} jc;

static int fail(jc *c, const char *why)
{
    c->why = why;
    return 0;
}

static int at(const jc *c, unsigned char ch) { return c->i < c->n && c->s[c->i] == ch; }
static int digit(const jc *c) { return c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9'; }

static void blanks(jc *c)
{
    while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' ||
                           c->s[c->i] == '\r'))
        c->i++;
}

size_t tg_utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k;
    unsigned v, min;
    if (n == 0)
        return 0;
    if (c < 0x80)
        return 1;
    else if ((c & 0xe0) == 0xc0)
        k = 2, v = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        k = 3, v = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0)
        k = 4, v = c & 0x07, min = 0x10000;
    else
        return 0;
    if (k > n)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    return k;
}

/* four hex digits after \u */
static int hex4(jc *c, unsigned *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++, c->i++) {
        if (c->i >= c->n)
            return 0;
        unsigned ch = c->s[c->i], d;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
            d = (ch | 0x20) - 'a' + 10;
        else
            return 0;
        *v = *v << 4 | d;
    }
    return 1;
}

static int string(jc *c)
{
    c->i++; /* the opening quote */
    for (;;) {
        if (c->i >= c->n)
            return fail(c, "unterminated string");
        unsigned ch = c->s[c->i];
        if (ch == '"') {
            c->i++;
            return 1;
        }
        if (ch < 0x20)
            return fail(c, "control character in a string (escape it)");
        if (ch >= 0x80) {
            size_t k = tg_utf8_len(c->s + c->i, c->n - c->i);
            if (!k)
                return fail(c, "invalid UTF-8 in a string");
            c->i += k;
            continue;
        }
        if (ch != '\\') {
            c->i++;
            continue;
        }
        c->i++;
        if (c->i < c->n && c->s[c->i] && strchr("\"\\/bfnrt", c->s[c->i])) {
            c->i++;
            continue;
        }
        if (!at(c, 'u'))
            return fail(c, "invalid escape in a string");
        c->i++;
        unsigned v, w;
        if (!hex4(c, &v))
            return fail(c, "\\u needs four hex digits");
        /* cJSON refuses unpaired surrogates (they are no character) */
        if (v >= 0xdc00 && v <= 0xdfff)
            return fail(c, "\\u escape of a lone low surrogate");
        if (v >= 0xd800 && v <= 0xdbff) {
            if (!(c->i + 1 < c->n && c->s[c->i] == '\\' && c->s[c->i + 1] == 'u'))
                return fail(c, "\\u escape of a high surrogate without its low surrogate");
            c->i += 2;
            if (!hex4(c, &w) || w < 0xdc00 || w > 0xdfff)
                return fail(c, "\\u escape of a high surrogate without its low surrogate");
        }
    }
}

static int number(jc *c)
{
    size_t start = c->i;
    if (at(c, '-'))
        c->i++;
    if (at(c, '0')) {
        c->i++;
        if (digit(c))
            return fail(c, "leading zero in a number");
    } else if (digit(c)) {
        while (digit(c))
            c->i++;
    } else {
        return fail(c, "expected a digit");
    }
    if (at(c, '.')) {
        c->i++;
        if (!digit(c))
            return fail(c, "expected a digit after the decimal point");
        while (digit(c))
            c->i++;
    }
    if (at(c, 'e') || at(c, 'E')) {
        c->i++;
        if (at(c, '+') || at(c, '-'))
            c->i++;
        if (!digit(c))
            return fail(c, "expected a digit in the exponent");
        while (digit(c))
            c->i++;
    }
    if (c->i - start > TG_JSON_MAX_NUMBER) {
        c->i = start;
        return fail(c, "number longer than 63 characters");
    }
    return 1;
}

static int literal(jc *c, const char *word)
{
    size_t k = strlen(word);
    if (c->n - c->i < k || memcmp(c->s + c->i, word, k) != 0)
        return fail(c, "expected a value");
    c->i += k;
    return 1;
}

static int value(jc *c);

/* an array or an object; the opening bracket is at c->i */
static int container(jc *c)
{
    int obj = c->s[c->i] == '{';
    unsigned char close = obj ? '}' : ']';
    if (++c->depth > c->max_depth)
        return fail(c, "nested too deeply");
    c->i++;
    blanks(c);
    if (at(c, close)) {
        c->i++;
        c->depth--;
        return 1;
    }
    for (;;) {
        if (obj) {
            if (!at(c, '"'))
                return fail(c, "expected a string key");
            if (!string(c))
                return 0;
            blanks(c);
            if (!at(c, ':'))
                return fail(c, "expected ':'");
            c->i++;
            blanks(c);
        }
        if (!value(c))
            return 0;
        blanks(c);
        if (at(c, close)) {
            c->i++;
            c->depth--;
            return 1;
        }
        if (!at(c, ','))
            return fail(c, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        c->i++;
        blanks(c);
    }
}

static int value(jc *c)
{
    if (c->i >= c->n)
        return fail(c, "unexpected end");
    switch (c->s[c->i]) {
    case '{':
    case '[': return container(c);
    case '"': return string(c);
    case 't': return literal(c, "true");
    case 'f': return literal(c, "false");
    case 'n': return literal(c, "null");
    default:
        if (c->s[c->i] == '-' || digit(c))
            return number(c);
        return fail(c, "expected a value");
    }
}

int tg_json_check(const char *s, size_t n, int max_depth, size_t *pos, const char **why)
{
    jc c = {(const unsigned char *)s, n, 0, 0, max_depth, NULL};
    if (n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) /* cJSON skips a byte-order mark */
        c.i = 3;
    blanks(&c);
    int ok = value(&c);
    if (ok) {
        blanks(&c);
        if (c.i < n)
            ok = fail(&c, "trailing bytes");
    }
    *pos = c.i;
    *why = ok ? NULL : c.why;
    return ok;
}
