/* safetensors: read a whole file and validate every header field before any
 * tensor is used; write atomically (temporary file, fsync, rename, fsync of
 * the folder) with a header byte-identical to the reference's st_save. */
#include "safetensors.h"

#include "json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024) /* a larger header is hostile */
#define ST_MAX_NAME 1024
#define ST_MAX_NESTING 16 /* a header is 3 levels deep */
#define ST_MAX_JSON_INT 9007199254740992.0 /* 2^53: doubles are exact up to here */
#define ST_MSG_NAME 200 /* names are cut in messages so the file name survives */

static const char *const dtype_names[] = {"F32", "F64", "F16", "BF16"};
static const size_t dtype_sizes[] = {4, 8, 2, 2};

/* ------------------------------------------------------------------ reading */

/* Open `path` for reading, refusing anything but a regular file: a device
 * such as /dev/zero or a pipe has no size to bound the read by (reading
 * /dev/zero "whole" would end only when memory runs out). A program holding
 * such a stream reads it itself and passes the bytes to tg_st_parse. */
static tg_status open_regular(const char *path, int *fd_out, size_t *size)
{
    *fd_out = -1;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* NONBLOCK: a FIFO must not hang open() */
    if (fd < 0)
        return tg_fail(TG_ERR_IO, "safetensors %s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return tg_fail(TG_ERR_IO, "safetensors %s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return tg_fail(TG_ERR_IO, "safetensors %s: cannot read: %s", path, strerror(EISDIR));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return tg_fail(TG_ERR_IO, "safetensors %s: not a regular file (a %s); a checkpoint must be "
                       "a file of known size (read a stream yourself and use "
                       "tg_model_load_memory)", path,
                       S_ISCHR(st.st_mode) ? "character device" : S_ISBLK(st.st_mode) ? "block device"
                       : S_ISFIFO(st.st_mode) ? "pipe" : S_ISSOCK(st.st_mode) ? "socket" : "special file");
    }
    if (st.st_size < 0 || (uintmax_t)st.st_size > SIZE_MAX / 2) {
        close(fd);
        return tg_fail(TG_ERR_IO, "safetensors %s: size %jd is out of range", path,
                       (intmax_t)st.st_size);
    }
    /* blocking again: reads of a regular file never block anyway */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *fd_out = fd;
    *size = (size_t)st.st_size;
    return TG_OK;
}

/* Read n bytes at `off` of the source (the bytes in memory, or the open
 * file); the caller has checked off + n <= f->len. A file that is now
 * shorter than when it was opened is an I/O error, not a crash. */
static tg_status src_read(const tg_st_file *f, size_t off, size_t n, void *dst)
{
    if (f->bytes) {
        memcpy(dst, f->bytes + off, n);
        return TG_OK;
    }
    uint8_t *d = dst;
    while (n > 0) {
        ssize_t r = pread(f->fd, d, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return tg_fail(TG_ERR_IO, "safetensors %s: cannot read: %s", f->name, strerror(errno));
        if (r == 0)
            return tg_fail(TG_ERR_IO, "safetensors %s: the file ended at byte %zu while reading "
                           "it (%zu bytes when opened): was it changed meanwhile?", f->name, off,
                           f->len);
        d += r, off += (size_t)r, n -= (size_t)r;
    }
    return TG_OK;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* A descriptor passed where a checkpoint belongs is a common mistake; its
 * first 8 bytes then read as an absurd header length, which says nothing
 * useful. JSON text starts with '{' (after blanks) and has no NUL byte, while
 * a header length below 2^56 always has one in its top byte. */
static int looks_like_json(const uint8_t *b, size_t len)
{
    size_t i = 0;
    while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r'))
        i++;
    if (i == len || b[i] != '{')
        return 0;
    for (size_t k = 0; k < len && k < 8; k++)
        if (b[k] == 0)
            return 0;
    return 1;
}

int tg_st_looks_like_file(const char *path)
{
    uint8_t h[9];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t got = fread(h, 1, sizeof h, f);
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    fclose(f);
    if (got < sizeof h || size < 10)
        return 0;
    uint64_t hn = le64(h);
    return h[8] == '{' && hn >= 2 && hn <= ST_MAX_HEADER && hn <= (uint64_t)size - 8;
}

/* A JSON number that is an integer in [0, 2^53]; cJSON keeps only a double,
 * beyond 2^53 it can no longer tell neighbouring integers apart. */
static int json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v))
        return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_JSON_INT)
        return 0;
    uint64_t u = (uint64_t)d;
    if ((double)u != d)
        return 0;
    *out = u;
    return 1;
}

typedef struct { size_t begin, end, idx; } st_span;
typedef struct { char *key, *val; } st_kv;

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const tg_st_tensor *)a)->name, ((const tg_st_tensor *)b)->name);
}
static int cmp_span(const void *a, const void *b)
{
    const st_span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}
static int cmp_kv(const void *a, const void *b)
{
    return strcmp(((const st_kv *)a)->key, ((const st_kv *)b)->key);
}

static tg_status parse_meta(const char *path, const cJSON *m, tg_st_file *out)
{
    if (cJSON_IsNull(m)) /* the reference (and safetensors) read null as "no metadata" */
        return TG_OK;
    if (!cJSON_IsObject(m))
        return tg_fail(TG_ERR_FORMAT, "safetensors %s: __metadata__ is not an object", path);
    size_t n = 0;
    for (const cJSON *c = m->child; c; c = c->next)
        n++;
    if (n == 0)
        return TG_OK;
    st_kv *kv = tg_calloc(n, sizeof *kv);
    out->meta_keys = tg_calloc(n, sizeof(char *));
    out->meta_vals = tg_calloc(n, sizeof(char *));
    if (!kv || !out->meta_keys || !out->meta_vals) {
        free(kv);
        return tg_fail(TG_ERR_OUT_OF_MEMORY, "safetensors %s: out of memory", path);
    }
    tg_status s = TG_OK;
    size_t k = 0;
    for (const cJSON *c = m->child; c; c = c->next, k++) {
        if (!cJSON_IsString(c) || !c->valuestring) {
            s = tg_fail(TG_ERR_FORMAT, "safetensors %s: __metadata__ value of '%.*s' is not a string",
                        path, ST_MSG_NAME, c->string);
            goto done;
        }
        kv[k].key = tg_strdup(c->string);
        kv[k].val = tg_strdup(c->valuestring);
        if (!kv[k].key || !kv[k].val) {
            free(kv[k].key), free(kv[k].val);
            s = tg_fail(TG_ERR_OUT_OF_MEMORY, "safetensors %s: out of memory", path);
            goto done;
        }
    }
    qsort(kv, n, sizeof *kv, cmp_kv); /* sorted: duplicates become neighbours, lookups bsearch */
    for (size_t i = 1; i < n; i++)
        if (strcmp(kv[i - 1].key, kv[i].key) == 0) {
            s = tg_fail(TG_ERR_FORMAT, "safetensors %s: duplicate __metadata__ key '%.*s'", path,
                        ST_MSG_NAME, kv[i].key);
            break;
        }
done:
    /* hand everything built so far to `out`, so one tg_st_free releases it */
    for (size_t i = 0; i < k; i++) {
        out->meta_keys[i] = kv[i].key;
        out->meta_vals[i] = kv[i].val;
    }
    out->nmeta = k;
    free(kv);
    return s;
}

static tg_status parse_tensor(const char *path, const cJSON *e, size_t data_len, tg_st_tensor *t,
                              st_span *span)
{
    const char *name = e->string;
    size_t nl = strlen(name);
    if (nl == 0)
        return tg_fail(TG_ERR_FORMAT, "safetensors %s: empty tensor name", path);
    if (nl > ST_MAX_NAME)
        return tg_fail(TG_ERR_FORMAT, "safetensors %s: tensor name '%.*s...' is %zu bytes (limit %d)",
                       path, 64, name, nl, ST_MAX_NAME);
    if (!cJSON_IsObject(e))
        return tg_fail(TG_ERR_FORMAT, "safetensors %s: entry of tensor '%.*s' is not an object", path,
                       ST_MSG_NAME, name);
    const cJSON *dt = NULL, *sh = NULL, *off = NULL;
    /* walk the members ourselves: cJSON keeps duplicate keys and a lookup
     * would silently take the first */
    for (const cJSON *c = e->child; c; c = c->next) {
        const cJSON **slot = strcmp(c->string, "dtype") == 0          ? &dt
                             : strcmp(c->string, "shape") == 0        ? &sh
                             : strcmp(c->string, "data_offsets") == 0 ? &off
                                                                      : NULL;
        if (!slot)
            continue;
        if (*slot)
            return tg_fail(TG_ERR_FORMAT, "safetensors %s: tensor '%.*s' has \"%s\" twice", path,
                           ST_MSG_NAME, name, c->string);
        *slot = c;
    }
    const char *missing = !dt ? "dtype" : !sh ? "shape" : !off ? "data_offsets" : NULL;
    if (missing)
        return tg_fail(TG_ERR_FORMAT, "safetensors %s: tensor '%.*s' lacks \"%s\"", path,
                       ST_MSG_NAME, name, missing);

    if (!cJSON_IsString(dt) || !dt->valuestring)
        return tg_fail(TG_ERR_FORMAT, "safetensors %s: dtype of tensor '%.*s' is not a string",
                       path, ST_MSG_NAME, name);
    int dtype = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(dt->valuestring, dtype_names[i]) == 0)
            dtype = i;
    if (dtype < 0)
        return tg_fail(TG_ERR_DTYPE,
                       "safetensors %s: tensor '%.*s' has unsupported dtype '%.32s' "
                       "(supported: F32, F64, F16, BF16)",
                       path, ST_MSG_NAME, name, dt->valuestring);

    if (!cJSON_IsArray(sh))
        return tg_fail(TG_ERR_FORMAT, "safetensors %s: shape of tensor '%.*s' is not an array",
                       path, ST_MSG_NAME, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > TG_ST_MAX_DIMS)
        return tg_fail(TG_ERR_FORMAT, "safetensors %s: tensor '%.*s' has %d dims (limit %d)", path,
                       ST_MSG_NAME, name, nd, TG_ST_MAX_DIMS);
    /* the product of the non-zero dims must fit, whatever the order of dims */
    size_t prod = 1;
    int zero = 0, d = 0;
    for (const cJSON *c = sh->child; c; c = c->next, d++) {
        uint64_t v;
        if (!json_uint(c, &v))
            return tg_fail(TG_ERR_FORMAT,
                           "safetensors %s: dim %d of tensor '%.*s' is not a non-negative integer",
                           path, d, ST_MSG_NAME, name);
        t->shape[d] = (int64_t)v;
        if (v == 0)
            zero = 1;
        else if (v > SIZE_MAX || tg_mul_overflow(prod, (size_t)v, &prod))
            return tg_fail(TG_ERR_FORMAT, "safetensors %s: shape of tensor '%.*s' overflows",
                           path, ST_MSG_NAME, name);
    }
    size_t nbytes;
    if (tg_mul_overflow(prod, dtype_sizes[dtype], &nbytes))
        return tg_fail(TG_ERR_FORMAT, "safetensors %s: shape of tensor '%.*s' overflows", path,
                       ST_MSG_NAME, name);
    t->ndim = nd;
    t->dtype = dtype;
    t->nelem = zero ? 0 : prod;
    if (zero)
        nbytes = 0;

    uint64_t b, en;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !json_uint(off->child, &b) ||
        !json_uint(off->child->next, &en))
        return tg_fail(TG_ERR_FORMAT,
                       "safetensors %s: data_offsets of tensor '%.*s' are not [begin, end] "
                       "non-negative integers",
                       path, ST_MSG_NAME, name);
    if (b > en)
        return tg_fail(TG_ERR_FORMAT,
                       "safetensors %s: data_offsets [%" PRIu64 ", %" PRIu64 "] of tensor '%.*s' "
                       "have begin > end",
                       path, b, en, ST_MSG_NAME, name);
    if (en > data_len)
        return tg_fail(TG_ERR_FORMAT,
                       "safetensors %s: data_offsets [%" PRIu64 ", %" PRIu64 "] of tensor '%.*s' "
                       "run past the end of the data (%zu bytes; truncated file?)",
                       path, b, en, ST_MSG_NAME, name, data_len);
    if (en - b != nbytes)
        return tg_fail(TG_ERR_FORMAT,
                       "safetensors %s: tensor '%.*s' has %" PRIu64 " data bytes but its shape "
                       "and dtype %s need %zu",
                       path, ST_MSG_NAME, name, en - b, dtype_names[dtype], nbytes);
    span->begin = (size_t)b;
    span->end = (size_t)en;
    t->name = tg_strdup(name);
    if (!t->name)
        return tg_fail(TG_ERR_OUT_OF_MEMORY, "safetensors %s: out of memory", path);
    return TG_OK;
}

static tg_status parse_header(const char *path, const cJSON *root, size_t data_off,
                              size_t data_len, tg_st_file *out)
{
    size_t n = 0;
    const cJSON *meta = NULL;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            if (meta)
                return tg_fail(TG_ERR_FORMAT, "safetensors %s: __metadata__ appears twice", path);
            meta = c;
        } else {
            n++;
        }
    }
    if (meta)
        TG_TRY(parse_meta(path, meta, out));
    if (n == 0)
        return TG_OK;
    out->tensors = tg_calloc(n, sizeof *out->tensors);
    st_span *spans = tg_calloc(n, sizeof *spans);
    if (!out->tensors || !spans) {
        free(spans);
        return tg_fail(TG_ERR_OUT_OF_MEMORY, "safetensors %s: out of memory", path);
    }
    tg_status s = TG_OK;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (c == meta)
            continue;
        size_t i = out->ntensors;
        s = parse_tensor(path, c, data_len, &out->tensors[i], &spans[i]);
        if (out->tensors[i].name) /* owned by out from here on, even on failure */
            out->ntensors++;
        if (s != TG_OK)
            goto done;
        out->tensors[i].offset = data_off + spans[i].begin;
        out->tensors[i].data = out->bytes ? out->bytes + out->tensors[i].offset : NULL;
        spans[i].idx = i;
    }
    /* overlap: sort by begin and compare each non-empty tensor with the
     * furthest end seen so far (empty tensors occupy no bytes) */
    qsort(spans, n, sizeof *spans, cmp_span);
    size_t far_end = 0, far_idx = 0;
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        if (spans[i].begin == spans[i].end)
            continue;
        if (any && spans[i].begin < far_end) {
            s = tg_fail(TG_ERR_FORMAT, "safetensors %s: tensors '%.*s' and '%.*s' overlap", path,
                        ST_MSG_NAME, out->tensors[far_idx].name, ST_MSG_NAME,
                        out->tensors[spans[i].idx].name);
            goto done;
        }
        if (!any || spans[i].end > far_end) {
            far_end = spans[i].end;
            far_idx = spans[i].idx;
        }
        any = 1;
    }
    /* sorted by name: duplicates become neighbours and lookups bsearch */
    qsort(out->tensors, n, sizeof *out->tensors, cmp_tensor);
    for (size_t i = 1; i < n; i++)
        if (strcmp(out->tensors[i - 1].name, out->tensors[i].name) == 0) {
            s = tg_fail(TG_ERR_FORMAT, "safetensors %s: duplicate tensor name '%.*s'", path,
                        ST_MSG_NAME, out->tensors[i].name);
            goto done;
        }
done:
    free(spans);
    return s;
}

/* Validate the source set up in `out` (bytes or fd, len, name): the header
 * length, the JSON header and every tensor entry. Only the header is read;
 * on failure `out` is freed. */
static tg_status parse(tg_st_file *out)
{
    const char *path = out->name;
    tg_status s;
    cJSON *root = NULL;
    char *hcopy = NULL;
    /* the header length, and what follows: enough to spot JSON text after
     * blank lines (a descriptor given by mistake) */
    uint8_t head[4096] = {0};
    size_t got = TG_MIN(out->len, sizeof head);
    if ((s = src_read(out, 0, got, head)) != TG_OK)
        goto fail;
    uint64_t hn = out->len >= 8 ? le64(head) : 0;
    if ((out->len < 8 || hn == 0 || hn > ST_MAX_HEADER || hn > out->len - 8) &&
        looks_like_json(head, got)) {
        s = tg_fail(TG_ERR_FORMAT, "%s: this looks like a JSON descriptor, not a safetensors "
                    "checkpoint; use tg_model_create_from_file", path);
        goto fail;
    }
    if (out->len < 8) {
        s = tg_fail(TG_ERR_FORMAT, "safetensors %s: file is %zu bytes, shorter than the 8-byte "
                    "header length", path, out->len);
        goto fail;
    }
    if (hn == 0) {
        s = tg_fail(TG_ERR_FORMAT, "safetensors %s: header length is 0", path);
        goto fail;
    }
    if (hn > ST_MAX_HEADER) {
        s = tg_fail(TG_ERR_FORMAT, "safetensors %s: header length %" PRIu64 " is absurd (limit "
                    "%" PRIu64 " bytes)", path, hn, ST_MAX_HEADER);
        goto fail;
    }
    if (hn > out->len - 8) {
        s = tg_fail(TG_ERR_FORMAT, "safetensors %s: header length %" PRIu64 " runs past the end "
                    "of the file (%zu bytes; truncated file?)", path, hn, out->len);
        goto fail;
    }
    /* cJSON gets its own NUL-terminated copy: whatever it does at the end of
     * the header can then never touch the data block or run off the buffer.
     * Its size is bounded by the source's real size (checked above). */
    hcopy = tg_malloc((size_t)hn + 1);
    if (!hcopy) {
        s = tg_fail(TG_ERR_OUT_OF_MEMORY, "safetensors %s: out of memory for the header", path);
        goto fail;
    }
    if ((s = src_read(out, 8, (size_t)hn, hcopy)) != TG_OK)
        goto fail;
    hcopy[hn] = '\0';
    /* the syntax first (io/json.h): cJSON failing after it is out of memory.
     * Only blank padding may follow the JSON value. */
    size_t at;
    const char *why;
    if (!tg_json_check(hcopy, (size_t)hn, ST_MAX_NESTING, &at, &why)) {
        s = tg_fail(TG_ERR_FORMAT, "safetensors %s: header is not valid JSON (%s at byte %zu of %"
                    PRIu64 ")", path, why, at, hn);
        goto fail;
    }
    root = cJSON_ParseWithLengthOpts(hcopy, (size_t)hn, NULL, 0);
    if (!root) {
        s = tg_fail(TG_ERR_OUT_OF_MEMORY, "safetensors %s: out of memory parsing the header", path);
        goto fail;
    }
    if (!cJSON_IsObject(root)) {
        s = tg_fail(TG_ERR_FORMAT, "safetensors %s: header is not a JSON object", path);
        goto fail;
    }
    s = parse_header(path, root, 8 + (size_t)hn, out->len - 8 - (size_t)hn, out);
    if (s != TG_OK)
        goto fail;
    cJSON_Delete(root);
    free(hcopy);
    return TG_OK;
fail:
    cJSON_Delete(root);
    free(hcopy);
    tg_st_free(out);
    return s;
}

/* Clear *out and give it its name (for messages). */
static tg_status start(tg_st_file *out, const char *name)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    out->name = tg_strdup(name);
    if (!out->name)
        return tg_fail(TG_ERR_OUT_OF_MEMORY, "safetensors %s: out of memory", name);
    return TG_OK;
}

tg_status tg_st_read(const char *path, tg_st_file *out)
{
    if (!out)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_st_read: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_st_read: path is NULL");
    int fd;
    size_t size;
    TG_TRY(open_regular(path, &fd, &size));
    tg_status s = start(out, path);
    if (s == TG_OK && !(out->buf = tg_malloc(size ? size : 1)))
        s = tg_fail(TG_ERR_OUT_OF_MEMORY, "safetensors %s: out of memory for %zu bytes", path,
                    size);
    /* exactly the size fstat gave, read through the one pread loop */
    out->fd = fd;
    out->len = size;
    if (s == TG_OK)
        s = src_read(out, 0, size, out->buf);
    close(fd);
    out->fd = -1;
    if (s != TG_OK) {
        tg_st_free(out);
        return s;
    }
    out->bytes = out->buf;
    return parse(out);
}

tg_status tg_st_open(const char *path, tg_st_file *out)
{
    if (!out)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_st_open: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_st_open: path is NULL");
    int fd;
    size_t size;
    TG_TRY(open_regular(path, &fd, &size));
    tg_status s = start(out, path);
    if (s != TG_OK) {
        close(fd);
        return s;
    }
    out->fd = fd;
    out->own_fd = 1;
    out->len = size;
    return parse(out);
}

tg_status tg_st_parse(const void *data, size_t len, const char *name, tg_st_file *out)
{
    if (!out)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_st_parse: out is NULL");
    memset(out, 0, sizeof *out);
    if (!data || !name)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_st_parse: %s is NULL", !data ? "data" : "name");
    TG_TRY(start(out, name));
    out->bytes = data;
    out->len = len;
    return parse(out);
}

void tg_st_free(tg_st_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->ntensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    for (size_t i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->buf);
    free(f->name);
    if (f->own_fd)
        close(f->fd);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

const tg_st_tensor *tg_st_find(const tg_st_file *f, const char *name)
{
    if (!f || !name || f->ntensors == 0)
        return NULL;
    tg_st_tensor key = {.name = (char *)name};
    return bsearch(&key, f->tensors, f->ntensors, sizeof key, cmp_tensor);
}

const char *tg_st_meta(const tg_st_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    size_t lo = 0, hi = f->nmeta; /* meta_keys are sorted by tg_st_read */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, f->meta_keys[mid]);
        if (c == 0)
            return f->meta_vals[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* IEEE binary16 -> binary32 by bits: exact for normals, subnormals, inf and
 * nan (payload kept), and no libm or float rounding involved. */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0 && mant == 0) {
        bits = sign;
    } else if (exp == 0) { /* subnormal: renormalise into a float normal */
        uint32_t e = 113;
        while (!(mant & 0x400)) {
            mant <<= 1;
            e--;
        }
        bits = sign | e << 23 | (mant & 0x3ff) << 13;
    } else if (exp == 31) {
        bits = sign | 0xffu << 23 | mant << 13;
    } else {
        bits = sign | (exp + 112) << 23 | mant << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* n elements of `dtype` at p to float32. Bytes are assembled little-endian
 * by hand: the data may be unaligned and the host need not be little-endian. */
static void convert(int dtype, const uint8_t *p, size_t n, float *dst)
{
    switch (dtype) {
    case TG_ST_F32:
        for (size_t i = 0; i < n; i++, p += 4) {
            uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                         (uint32_t)p[3] << 24;
            memcpy(&dst[i], &u, 4);
        }
        break;
    case TG_ST_F64: {
        /* out-of-range doubles become inf explicitly: the C cast would be UB */
        const double lim = (double)FLT_MAX + 0x1p103; /* FLT_MAX + half an ulp rounds to inf */
        for (size_t i = 0; i < n; i++, p += 8) {
            uint64_t u = le64(p);
            double d;
            memcpy(&d, &u, 8);
            if (d >= lim)
                dst[i] = (float)INFINITY;
            else if (d <= -lim)
                dst[i] = -(float)INFINITY;
            else
                dst[i] = (float)d;
        }
        break;
    }
    case TG_ST_F16:
        for (size_t i = 0; i < n; i++, p += 2)
            dst[i] = half_to_float((uint16_t)(p[0] | p[1] << 8));
        break;
    case TG_ST_BF16:
        for (size_t i = 0; i < n; i++, p += 2) {
            uint32_t u = ((uint32_t)p[0] | (uint32_t)p[1] << 8) << 16;
            memcpy(&dst[i], &u, 4);
        }
        break;
    default:
        break;
    }
}

void tg_st_to_f32(const tg_st_tensor *t, float *dst) { convert(t->dtype, t->data, t->nelem, dst); }

tg_status tg_st_load_f32(const tg_st_file *f, const tg_st_tensor *t, float *dst)
{
    if (f->bytes) {
        convert(t->dtype, f->bytes + t->offset, t->nelem, dst);
        return TG_OK;
    }
    /* from the file through a small bounce buffer: the tensor's bytes never
     * need a second full-size copy (a whole element per chunk: 8 divides it) */
    uint8_t chunk[32768];
    size_t es = dtype_sizes[t->dtype], per = sizeof chunk / es;
    for (size_t i = 0; i < t->nelem; i += per) {
        size_t k = TG_MIN(per, t->nelem - i);
        TG_TRY(src_read(f, t->offset + i * es, k * es, chunk));
        convert(t->dtype, chunk, k, dst + i);
    }
    return TG_OK;
}

/* ------------------------------------------------------------------ writing */

typedef struct { char *p; size_t len, cap; int oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (n > SIZE_MAX - b->len - 1) {
        b->oom = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->len + n + 1)
            c = c > SIZE_MAX / 2 ? b->len + n + 1 : c * 2;
        char *np = tg_realloc(b->p, c);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = c;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_u64(sbuf *b, uint64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%" PRIu64, v);
    sb_put(b, t, (size_t)n);
}

/* Decode one UTF-8 sequence strictly (no overlongs, surrogates or values
 * past U+10FFFF); returns its length, 0 if invalid. */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
    unsigned c = s[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        n = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/* A JSON string as Python's json.dumps writes it (ensure_ascii): only
 * printable ASCII verbatim, the rest escaped, \uXXXX in lowercase hex with
 * surrogate pairs above the BMP. Returns 0 on invalid UTF-8. */
static int sb_json_str(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp;
        size_t n = utf8_next(p, &cp);
        if (!n)
            return 0;
        p += n;
        char t[16];
        const char *esc = cp == '"'    ? "\\\""
                          : cp == '\\' ? "\\\\"
                          : cp == '\n' ? "\\n"
                          : cp == '\r' ? "\\r"
                          : cp == '\t' ? "\\t"
                          : cp == '\b' ? "\\b"
                          : cp == '\f' ? "\\f"
                                       : NULL;
        if (esc) {
            sb_str(b, esc);
        } else if (cp >= 0x20 && cp <= 0x7e) {
            t[0] = (char)cp;
            sb_put(b, t, 1);
        } else if (cp < 0x10000) {
            snprintf(t, sizeof t, "\\u%04x", (unsigned)cp);
            sb_put(b, t, 6);
        } else {
            uint32_t v = cp - 0x10000;
            snprintf(t, sizeof t, "\\u%04x\\u%04x", (unsigned)(0xd800 + (v >> 10)),
                     (unsigned)(0xdc00 + (v & 0x3ff)));
            sb_put(b, t, 12);
        }
    }
    sb_put(b, "\"", 1);
    return 1;
}

static int cmp_entry_ptr(const void *a, const void *b)
{
    return strcmp((*(const tg_st_entry *const *)a)->name, (*(const tg_st_entry *const *)b)->name);
}
static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Validate the entries, sort them and build the padded header. */
static tg_status build_header(const char *path, const tg_st_entry *entries, size_t n,
                              const char *const *mk, const char *const *mv, size_t nmeta,
                              const tg_st_entry **order, size_t *nelems, sbuf *h)
{
    for (size_t i = 0; i < n; i++) {
        const tg_st_entry *e = &entries[i];
        if (!e->name || !e->name[0] || strlen(e->name) > ST_MAX_NAME ||
            strcmp(e->name, "__metadata__") == 0)
            return tg_fail(TG_ERR_INVALID_ARGUMENT,
                           "safetensors write %s: entry %zu has an empty, reserved or too long "
                           "name", path, i);
        if (e->ndim < 0 || e->ndim > TG_ST_MAX_DIMS)
            return tg_fail(TG_ERR_INVALID_ARGUMENT, "safetensors write %s: tensor '%.*s' has %d dims",
                           path, ST_MSG_NAME, e->name, e->ndim);
        size_t ne = 1;
        for (int d = 0; d < e->ndim; d++)
            if (e->shape[d] < 0 || (uint64_t)e->shape[d] > SIZE_MAX ||
                tg_mul_overflow(ne, (size_t)e->shape[d], &ne))
                return tg_fail(TG_ERR_INVALID_ARGUMENT,
                               "safetensors write %s: tensor '%.*s' has a bad shape", path,
                               ST_MSG_NAME, e->name);
        size_t nb;
        if (tg_mul_overflow(ne, 4, &nb))
            return tg_fail(TG_ERR_INVALID_ARGUMENT, "safetensors write %s: tensor '%.*s' is too large",
                           path, ST_MSG_NAME, e->name);
        if (ne > 0 && !e->data)
            return tg_fail(TG_ERR_INVALID_ARGUMENT, "safetensors write %s: tensor '%.*s' has no data",
                           path, ST_MSG_NAME, e->name);
        order[i] = e;
    }
    qsort(order, n, sizeof *order, cmp_entry_ptr); /* byte order = Python's code point order */
    for (size_t i = 1; i < n; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0)
            return tg_fail(TG_ERR_INVALID_ARGUMENT, "safetensors write %s: duplicate tensor name '%.*s'",
                           path, ST_MSG_NAME, order[i]->name);
    for (size_t i = 0; i < nmeta; i++)
        if (!mk[i] || !mv[i])
            return tg_fail(TG_ERR_INVALID_ARGUMENT, "safetensors write %s: metadata %zu is NULL",
                           path, i);
    if (nmeta > 1) {
        const char **keys = tg_malloc(nmeta * sizeof *keys);
        if (!keys)
            return tg_fail(TG_ERR_OUT_OF_MEMORY, "safetensors write %s: out of memory", path);
        memcpy(keys, mk, nmeta * sizeof *keys);
        qsort(keys, nmeta, sizeof *keys, cmp_str_ptr);
        for (size_t i = 1; i < nmeta; i++)
            if (strcmp(keys[i - 1], keys[i]) == 0) {
                tg_status s = tg_fail(TG_ERR_INVALID_ARGUMENT,
                                      "safetensors write %s: duplicate metadata key '%.*s'", path,
                                      ST_MSG_NAME, keys[i]);
                free(keys);
                return s;
            }
        free(keys);
    }

    sb_put(h, "{", 1);
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const tg_st_entry *e = order[i];
        size_t ne = 1;
        for (int d = 0; d < e->ndim; d++)
            ne *= (size_t)e->shape[d]; /* checked above */
        nelems[i] = ne;
        if (i)
            sb_put(h, ",", 1);
        if (!sb_json_str(h, e->name))
            return tg_fail(TG_ERR_INVALID_ARGUMENT,
                           "safetensors write %s: tensor name '%.*s' is not valid UTF-8", path,
                           ST_MSG_NAME, e->name);
        sb_str(h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            if (d)
                sb_put(h, ",", 1);
            sb_u64(h, (uint64_t)e->shape[d]);
        }
        sb_str(h, "],\"data_offsets\":[");
        sb_u64(h, off);
        sb_put(h, ",", 1);
        if ((uint64_t)ne * 4 > UINT64_MAX - off)
            return tg_fail(TG_ERR_INVALID_ARGUMENT, "safetensors write %s: data too large", path);
        off += (uint64_t)ne * 4;
        sb_u64(h, off);
        sb_str(h, "]}");
    }
    if (nmeta > 0) { /* the reference omits an empty __metadata__ (`if meta:`) */
        sb_str(h, n ? ",\"__metadata__\":{" : "\"__metadata__\":{");
        for (size_t i = 0; i < nmeta; i++) {
            if (i)
                sb_put(h, ",", 1);
            if (!sb_json_str(h, mk[i]) || (sb_put(h, ":", 1), !sb_json_str(h, mv[i])))
                return tg_fail(TG_ERR_INVALID_ARGUMENT,
                               "safetensors write %s: metadata '%.*s' is not valid UTF-8", path,
                               ST_MSG_NAME, mk[i]);
        }
        sb_put(h, "}", 1);
    }
    sb_put(h, "}", 1);
    while (!h->oom && h->len % 8)
        sb_put(h, " ", 1);
    if (h->oom)
        return tg_fail(TG_ERR_OUT_OF_MEMORY, "safetensors write %s: out of memory for the header",
                       path);
    return TG_OK;
}

/* fwrite + error with errno; 0 on success. */
static int put(FILE *f, const void *p, size_t n) { return n && fwrite(p, 1, n, f) != n; }

static tg_status write_body(FILE *f, const char *tmp, const sbuf *h, const tg_st_entry **order,
                            const size_t *nelems, size_t n)
{
    uint8_t len8[8], chunk[4096 * 4];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)h->len >> (8 * i));
    if (put(f, len8, 8) || put(f, h->p, h->len))
        return tg_fail(TG_ERR_IO, "safetensors write %s: %s", tmp, strerror(errno));
    for (size_t i = 0; i < n; i++) {
        const float *x = order[i]->data;
        for (size_t k = 0; k < nelems[i];) {
            size_t m = TG_MIN(nelems[i] - k, sizeof chunk / 4);
            for (size_t j = 0; j < m; j++) { /* little-endian whatever the host */
                uint32_t u;
                memcpy(&u, &x[k + j], 4);
                chunk[4 * j] = (uint8_t)u, chunk[4 * j + 1] = (uint8_t)(u >> 8);
                chunk[4 * j + 2] = (uint8_t)(u >> 16), chunk[4 * j + 3] = (uint8_t)(u >> 24);
            }
            if (put(f, chunk, 4 * m))
                return tg_fail(TG_ERR_IO, "safetensors write %s: %s", tmp, strerror(errno));
            k += m;
        }
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        return tg_fail(TG_ERR_IO, "safetensors write %s: %s", tmp, strerror(errno));
    return TG_OK;
}

/* The folder of path ("." for a bare name, "/" at the root) into dir, without
 * allocating (the callers run after the rename, when running out of memory
 * must not fail a save); -1 when it does not fit (a path longer than this
 * could not have been created). */
#define TG_DIR_MAX 4096
static int dir_of(const char *path, char dir[TG_DIR_MAX])
{
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (slash == path ? 1 : (size_t)(slash - path)) : 1;
    if (dl >= TG_DIR_MAX)
        return -1;
    memcpy(dir, slash ? path : ".", dl);
    dir[dl] = '\0';
    return 0;
}

/* Make the rename durable. Filesystems that cannot fsync a folder (EINVAL)
 * are tolerated: there is nothing more we could do there. */
static tg_status sync_dir(const char *path)
{
    char dir[TG_DIR_MAX];
    if (dir_of(path, dir))
        return tg_fail(TG_ERR_IO, "safetensors write %s: written, but its folder's name is too "
                       "long to sync", path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    tg_status s = TG_OK;
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        s = tg_fail(TG_ERR_IO, "safetensors write %s: written, but syncing folder %s failed: %s",
                    path, dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    return s;
}

/* Remove the temporaries `<path>.tmp.<pid>.<n>` that writers killed before
 * their rename left behind: those whose process no longer exists. A live
 * writer's (any pid that exists, ours included) is never touched. Best
 * effort, after our own rename: nothing here can fail a save. */
static void remove_stale_tmps(const char *path)
{
    char dir[TG_DIR_MAX];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (dir_of(path, dir))
        return;
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        const char *q = e->d_name;
        if (strncmp(q, base, bl) != 0 || strncmp(q + bl, ".tmp.", 5) != 0)
            continue;
        q += bl + 5;
        size_t np = strspn(q, "0123456789");
        if (np == 0 || np > 9 || q[np] != '.' || strspn(q + np + 1, "0123456789") == 0 ||
            q[np + 1 + strspn(q + np + 1, "0123456789")] != '\0')
            continue;
        long pid = strtol(q, NULL, 10);
        if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

tg_status tg_st_write(const char *path, const tg_st_entry *entries, size_t n,
                      const char *const *meta_keys, const char *const *meta_vals, size_t nmeta)
{
    if (!path || !path[0] || (n && !entries) || (nmeta && (!meta_keys || !meta_vals)))
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_st_write: NULL or empty argument");
    static atomic_uint counter; /* distinct temporaries for concurrent writers in one process */
    const tg_st_entry **order = tg_calloc(n ? n : 1, sizeof *order);
    size_t *nelems = tg_calloc(n ? n : 1, sizeof *nelems);
    sbuf h = {0};
    char *tmp = NULL;
    FILE *f = NULL;
    tg_status s;
    if (!order || !nelems) {
        s = tg_fail(TG_ERR_OUT_OF_MEMORY, "safetensors write %s: out of memory", path);
        goto out;
    }
    s = build_header(path, entries, n, meta_keys, meta_vals, nmeta, order, nelems, &h);
    if (s != TG_OK)
        goto out;

    size_t tl = strlen(path) + 48;
    tmp = tg_malloc(tl);
    if (!tmp) {
        s = tg_fail(TG_ERR_OUT_OF_MEMORY, "safetensors write %s: out of memory", path);
        goto out;
    }
    snprintf(tmp, tl, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&counter, 1));
    f = fopen(tmp, "wbx"); /* x: never clobber someone else's file */
    if (!f) {
        s = tg_fail(TG_ERR_IO, "safetensors write %s: cannot create %s: %s", path, tmp,
                    strerror(errno));
        free(tmp);
        tmp = NULL; /* nothing to remove */
        goto out;
    }
    s = write_body(f, tmp, &h, order, nelems, n);
    int cerr = fclose(f); /* close before rename: errors of delayed writes show here */
    f = NULL;
    if (s == TG_OK && cerr != 0)
        s = tg_fail(TG_ERR_IO, "safetensors write %s: closing %s: %s", path, tmp, strerror(errno));
    if (s == TG_OK && rename(tmp, path) != 0)
        s = tg_fail(TG_ERR_IO, "safetensors write %s: cannot rename %s over it: %s", path, tmp,
                    strerror(errno));
    if (s != TG_OK) {
        unlink(tmp);
        goto out;
    }
    remove_stale_tmps(path);
    s = sync_dir(path);
out:
    free(tmp);
    free(h.p);
    free(order);
    free(nelems);
    return s;
}
