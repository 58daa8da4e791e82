/* Internal: safetensors files (8-byte little-endian header length, a JSON
 * header, raw little-endian data), validated before any tensor is used, and
 * written atomically. One parser serves three sources: a file read whole
 * (tg_st_read), a file whose tensors are read when asked for (tg_st_open:
 * loading a model never holds a second copy of the file) and the caller's
 * bytes (tg_st_parse: checkpoints packed in a program's assets). */
#ifndef TG_SAFETENSORS_H
#define TG_SAFETENSORS_H

#include "../core/common.h"

#define TG_ST_MAX_DIMS 8

enum tg_st_dtype { TG_ST_F32 = 0, TG_ST_F64, TG_ST_F16, TG_ST_BF16 };

typedef struct tg_st_tensor {
    char *name;
    int dtype;                 /* enum tg_st_dtype */
    int ndim;
    int64_t shape[TG_ST_MAX_DIMS];
    size_t nelem;
    uint64_t offset;           /* of its data, from the start of the source */
    const uint8_t *data;       /* its data when the source is in memory, else NULL */
} tg_st_tensor;

typedef struct tg_st_file {
    tg_st_tensor *tensors;
    size_t ntensors;
    char **meta_keys, **meta_vals; /* __metadata__ (string values) */
    size_t nmeta;
    char *name;                /* the path or a caller's name, for messages */
    const uint8_t *bytes;      /* the whole source when in memory, else NULL */
    size_t len;                /* its size in bytes */
    uint8_t *buf;              /* bytes owned (tg_st_read), else NULL */
    int fd, own_fd;            /* tg_st_open: the file, closed by tg_st_free */
} tg_st_file;

/* Read a whole file and validate it. Only a regular file is read, exactly
 * as many bytes as it has (a device or pipe is refused with IO). Errors: IO
 * (cannot open/read, not a regular file), FORMAT (too short, header length
 * past the end, bad JSON, bad offsets, sizes that disagree with shape x
 * dtype, overlapping or out-of-range data), DTYPE (a dtype other than
 * F32/F64/F16/BF16). Messages name the file and tensor. */
tg_status tg_st_read(const char *path, tg_st_file *out);
/* The same checks reading only the header: tensors are read by
 * tg_st_load_f32 from the file, which stays open until tg_st_free. */
tg_status tg_st_open(const char *path, tg_st_file *out);
/* The same checks on data[0 .. len), which must outlive *out; `name` is
 * what messages call it. */
tg_status tg_st_parse(const void *data, size_t len, const char *name, tg_st_file *out);
void tg_st_free(tg_st_file *f);
/* 1 if the file starts like a safetensors file (a plausible header length,
 * then '{'): lets a reader of another format say what it was given. */
int tg_st_looks_like_file(const char *path);
const tg_st_tensor *tg_st_find(const tg_st_file *f, const char *name);
const char *tg_st_meta(const tg_st_file *f, const char *key); /* NULL if absent */
/* Convert a tensor's data to float32 into dst[nelem]; t->data must be set
 * (a source in memory). */
void tg_st_to_f32(const tg_st_tensor *t, float *dst);
/* The same from any source (IO if the file can no longer be read). */
tg_status tg_st_load_f32(const tg_st_file *f, const tg_st_tensor *t, float *dst);

/* One tensor to write (float32). */
typedef struct tg_st_entry {
    const char *name;
    int ndim;
    int64_t shape[TG_ST_MAX_DIMS];
    const float *data;
} tg_st_entry;

/* Write entries (sorted by name in the file, as the reference does) and
 * string metadata atomically: a temporary file beside `path` is written,
 * fsync'ed and renamed over `path`, then the folder is fsync'ed. On failure
 * `path` is untouched and the temporary is removed. Errors: IO, OUT_OF_MEMORY,
 * INVALID_ARGUMENT (duplicate names). */
tg_status tg_st_write(const char *path, const tg_st_entry *entries, size_t n,
                      const char *const *meta_keys, const char *const *meta_vals, size_t nmeta);

#endif
