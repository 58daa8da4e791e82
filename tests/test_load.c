/* Loading models: tg_model_load, tg_model_load_ex and tg_model_load_memory.
 *
 * - A checkpoint is checked before the model's state is allocated: a tiny
 *   file whose metadata names TransGAN-XL fails with MISSING or SHAPE after
 *   allocating a few KiB (the library's allocation gate counts the bytes),
 *   not the ~1 GB of the model.
 * - Only regular files are read: /dev/zero and a pipe fail at once with IO
 *   and a message that says why.
 * - Memory and file loads are the same code: same model, same images; every
 *   truncation of a small checkpoint and hostile buffers fail cleanly (each
 *   buffer is an exact-size malloc, so AddressSanitizer sees any over-read).
 * - TG_LOAD_SAMPLING_ONLY keeps one generator array (the EMA where the file
 *   has it), samples exactly like the full model, and refuses with
 *   TG_ERR_STATE what needs the dropped state. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"
#include "io/safetensors.h"
#include "testutil.h"
#include "transgan.h"

#define FIX_CKPT "tests/fixtures/tiny-ln.safetensors"
#define XL_DESC "models/transgan-xl.json"
#define S_ 8
#define C_ 3
#define L_ 10
#define PER (C_ * S_ * S_)

static void setup(void) { tu_scratch_make("tg_load"); }
static void teardown(void) { tu_scratch_remove(); }

#define FAILS_WITH(expr, status, sub)                                                         \
    do {                                                                                      \
        tg_status s_ = (expr);                                                                \
        const char *msg_ = tg_last_error();                                                   \
        ck_assert_msg(s_ == (status), "%s: got %d (%s) want %d; message: %s", #expr, (int)s_, \
                      tg_status_string(s_), (int)(status), msg_);                             \
        ck_assert_msg(msg_[0] != '\0', "%s: empty message", #expr);                          \
        ck_assert_msg(!(sub) || strstr(msg_, (sub)), "%s: message '%s' lacks '%s'", #expr,   \
                      msg_, (const char *)(sub));                                             \
    } while (0)

static unsigned char *slurp(const char *path, size_t *n) { return tu_read_file(path, n); }

/* A file's text (a descriptor, used as checkpoint metadata as it is). */
static char *text_of(const char *path)
{
    size_t n;
    return (char *)slurp(path, &n);
}

/* A checkpoint with the given metadata descriptor and tensors. */
static void write_ckpt(const char *path, const char *desc, const tg_st_entry *e, size_t n)
{
    const char *mk[] = {"format", "descriptor"};
    const char *mv[] = {"transgan-checkpoint", desc};
    OK(tg_st_write(path, e, n, mk, mv, 2));
}

/* Generate n images from seed-7 latents with `flags`. */
/* Rewrite FIX_CKPT to `out` keeping the tensors keep(name) accepts, with a
 * NaN in the first element of tensor `nan_in` (NULL: none). Returns how many
 * tensors were written. */
static size_t rewrite_fix(const char *out, int (*keep)(const char *name), const char *nan_in)
{
    tg_st_file f;
    OK(tg_st_read(FIX_CKPT, &f));
    tg_st_entry *e = calloc(f.ntensors, sizeof *e);
    float **d = calloc(f.ntensors, sizeof *d);
    ck_assert(e && d);
    size_t k = 0;
    for (size_t i = 0; i < f.ntensors; i++) {
        const tg_st_tensor *t = &f.tensors[i];
        if (!keep(t->name))
            continue;
        d[k] = malloc((t->nelem ? t->nelem : 1) * sizeof(float));
        tg_st_to_f32(t, d[k]);
        if (nan_in && !strcmp(t->name, nan_in))
            d[k][0] = NAN;
        e[k] = (tg_st_entry){.name = t->name, .ndim = t->ndim, .data = d[k]};
        memcpy(e[k].shape, t->shape, sizeof t->shape);
        k++;
    }
    write_ckpt(out, tg_st_meta(&f, "descriptor"), e, k);
    for (size_t i = 0; i < k; i++)
        free(d[i]);
    free(d), free(e);
    tg_st_free(&f);
    return k;
}

static int not_d_head_bias(const char *name) { return strcmp(name, "discriminator.head.bias") != 0; }
static int ema_generator_only(const char *name) { return strncmp(name, "ema.generator.", 14) == 0; }

static void sample(tg_model *m, uint32_t flags, float *img, size_t n)
{
    float z[4 * L_];
    ck_assert_uint_le(n, 4);
    OK(tg_latent_sample(m, 7, n, z, n * L_));
    OK(tg_generate(m, z, n, flags, img, n * PER));
}

static int64_t info(const tg_model *m, tg_info k)
{
    int64_t v = -1;
    OK(tg_model_info(m, k, &v));
    return v;
}

/* ======================================================= validate first */

/* Issue 15's reproducer: a few hundred bytes whose descriptor is TransGAN-XL
 * (hundreds of MB of state). Every load form must fail on the missing
 * tensors having allocated next to nothing. */
START_TEST(big_descriptor_tiny_file_fails_fast)
{
    char *xl = text_of(XL_DESC);
    const char *p = tu_path("xl.safetensors");
    float one = 0.5f;
    /* one tensor, and not one the model has: the file is a few hundred bytes */
    tg_st_entry e = {.name = "junk", .ndim = 1, .shape = {1}, .data = &one};
    write_ckpt(p, xl, &e, 1);
    size_t n;
    unsigned char *bytes = slurp(p, &n);
    ck_assert_uint_lt(n, 1024);

    tg_model *m = (tg_model *)(uintptr_t)1;
    unsigned long long b0 = tg_alloc_bytes();
    FAILS_WITH(tg_model_load(p, &m), TG_ERR_MISSING, "generator.");
    unsigned long long used = tg_alloc_bytes() - b0;
    ck_assert_ptr_null(m);
    /* the parameter tables and the descriptor: a few KiB; the model's
     * weights alone would be ~300 MB */
    ck_assert_msg(used < (1u << 20), "tg_model_load allocated %llu bytes", used);

    b0 = tg_alloc_bytes();
    FAILS_WITH(tg_model_load_ex(p, TG_LOAD_SAMPLING_ONLY, &m), TG_ERR_MISSING, "generator.");
    ck_assert_uint_lt(tg_alloc_bytes() - b0, 1u << 20);
    b0 = tg_alloc_bytes();
    FAILS_WITH(tg_model_load_memory(bytes, n, 0, &m), TG_ERR_MISSING, "generator.");
    ck_assert_uint_lt(tg_alloc_bytes() - b0, 1u << 20);
    ck_assert_ptr_null(m);

    /* the first tensor there with a wrong shape: SHAPE, as cheaply */
    e.name = "generator.input.weight";
    write_ckpt(p, xl, &e, 1);
    b0 = tg_alloc_bytes();
    FAILS_WITH(tg_model_load(p, &m), TG_ERR_SHAPE, "generator.input.weight");
    ck_assert_uint_lt(tg_alloc_bytes() - b0, 1u << 20);
    free(bytes);
    free(xl);
}
END_TEST

/* Structure before values: a NaN in the EMA generator and a missing
 * discriminator tensor report the missing tensor (nothing was read). */
START_TEST(structure_is_checked_before_values)
{
    const char *p = tu_path("x.safetensors");
    rewrite_fix(p, not_d_head_bias, "ema.generator.input.weight");
    tg_model *m;
    FAILS_WITH(tg_model_load(p, &m), TG_ERR_MISSING, "discriminator.head.bias");
    /* sampling only needs no discriminator: then the NaN is what fails */
    FAILS_WITH(tg_model_load_ex(p, TG_LOAD_SAMPLING_ONLY, &m), TG_ERR_NONFINITE,
               "ema.generator.input.weight");
}
END_TEST

/* ====================================================== not regular files */

START_TEST(devices_and_pipes_are_refused)
{
    tg_model *m = (tg_model *)(uintptr_t)1;
    unsigned long long b0 = tg_alloc_bytes();
    FAILS_WITH(tg_model_load("/dev/zero", &m), TG_ERR_IO, "not a regular file (a character device)");
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(tg_last_error(), "/dev/zero"), "%s", tg_last_error());
    ck_assert_uint_lt(tg_alloc_bytes() - b0, 4096);
    FAILS_WITH(tg_model_load_ex("/dev/null", TG_LOAD_SAMPLING_ONLY, &m), TG_ERR_IO,
               "not a regular file");
    /* a FIFO with no writer: refused at once, not a hang in open() */
    const char *fifo = tu_path("pipe");
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    FAILS_WITH(tg_model_load(fifo, &m), TG_ERR_IO, "not a regular file (a pipe)");
    tg_model *w;
    OK(tg_model_load(FIX_CKPT, &w));
    FAILS_WITH(tg_model_load_weights(w, "/dev/zero"), TG_ERR_IO, "not a regular file");
    tg_model_destroy(w);
    /* the whole-file reader too */
    tg_st_file f;
    FAILS_WITH(tg_st_read("/dev/zero", &f), TG_ERR_IO, "not a regular file");
    ck_assert_ptr_null(f.buf);
}
END_TEST

/* ============================================================== memory */

START_TEST(memory_load_equals_file_load)
{
    size_t n;
    unsigned char *bytes = slurp(FIX_CKPT, &n);
    tg_model *a, *b;
    OK(tg_model_load(FIX_CKPT, &a));
    OK(tg_model_load_memory(bytes, n, 0, &b));
    memset(bytes, 0xff, n); /* the model keeps nothing of the caller's buffer */
    free(bytes);
    ck_assert_str_eq(tg_model_descriptor(a), tg_model_descriptor(b));
    for (int k = TG_INFO_IMAGE_SIZE; k <= TG_INFO_TRAIN_PRECISION; k++)
        ck_assert_int_eq(info(a, (tg_info)k), info(b, (tg_info)k));
    float x[2 * PER], y[2 * PER], sa[2], sb[2];
    for (uint32_t fl = 0; fl <= TG_GEN_RAW; fl++) {
        sample(a, fl, x, 2);
        sample(b, fl, y, 2);
        ck_assert_int_eq(memcmp(x, y, sizeof x), 0);
    }
    OK(tg_discriminate(a, x, 2, sa, 2));
    OK(tg_discriminate(b, x, 2, sb, 2));
    ck_assert_int_eq(memcmp(sa, sb, sizeof sa), 0);
    tg_model_destroy(a);
    tg_model_destroy(b);
}
END_TEST

/* A small checkpoint cut at every length fails every time, with a message,
 * *out NULL, and no read past the buffer (exact-size copies). */
START_TEST(memory_truncated_at_every_length)
{
    /* the smallest model the tests have, weights only: a few KiB */
    const char *p = tu_path("small.safetensors");
    tg_model *m0;
    OK(tg_model_load(FIX_CKPT, &m0));
    OK(tg_model_save(m0, p, TG_SAVE_WEIGHTS_ONLY));
    tg_model_destroy(m0);
    size_t n;
    unsigned char *full = slurp(p, &n);
    tg_model *m;
    OK(tg_model_load_memory(full, n, TG_LOAD_SAMPLING_ONLY, &m));
    tg_model_destroy(m);
    for (size_t len = 0; len < n; len++) {
        unsigned char *cut = malloc(len ? len : 1);
        memcpy(cut, full, len);
        m = (tg_model *)(uintptr_t)1;
        tg_status st = tg_model_load_memory(len ? cut : (const void *)full, len, 0, &m);
        ck_assert_msg(st == TG_ERR_FORMAT, "length %zu of %zu: status %d (%s)", len, n, (int)st,
                      tg_last_error());
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(tg_last_error(), "<memory>"), "length %zu: %s", len, tg_last_error());
        free(cut);
    }
    free(full);
}
END_TEST

/* Rewrite the 8-byte header length of a copy of `b`. */
static unsigned char *with_hlen(const unsigned char *b, size_t n, uint64_t hl)
{
    unsigned char *c = malloc(n);
    memcpy(c, b, n);
    for (int i = 0; i < 8; i++)
        c[i] = (unsigned char)(hl >> (8 * i));
    return c;
}

START_TEST(memory_hostile_buffers)
{
    size_t n;
    unsigned char *b = slurp(FIX_CKPT, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | b[i];
    tg_model *m = (tg_model *)(uintptr_t)1;

    FAILS_WITH(tg_model_load_memory(NULL, n, 0, &m), TG_ERR_INVALID_ARGUMENT, "data");
    ck_assert_ptr_null(m);
    FAILS_WITH(tg_model_load_memory(NULL, 0, 0, &m), TG_ERR_INVALID_ARGUMENT, "data");
    FAILS_WITH(tg_model_load_memory(b, n, 0, NULL), TG_ERR_INVALID_ARGUMENT, "out");
    FAILS_WITH(tg_model_load_memory(b, n, 2, &m), TG_ERR_INVALID_ARGUMENT, "flags");
    FAILS_WITH(tg_model_load_memory(b, n, ~0u, &m), TG_ERR_INVALID_ARGUMENT, "flags");
    FAILS_WITH(tg_model_load_memory(b, 0, 0, &m), TG_ERR_FORMAT, "shorter than");

    /* corrupted header lengths */
    const uint64_t bad[] = {0, 1, hl / 2, n - 8 + 1, (uint64_t)1 << 40, UINT64_MAX};
    const char *why[] = {"header length is 0", "not valid JSON", "not valid JSON",
                         "past the end", "absurd", "absurd"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        unsigned char *c = with_hlen(b, n, bad[i]);
        FAILS_WITH(tg_model_load_memory(c, n, 0, &m), TG_ERR_FORMAT, why[i]);
        ck_assert_ptr_null(m);
        free(c);
    }
    /* one byte shorter or longer: the header loses a padding blank or takes
     * the first data byte, and every tensor's data moves by one byte; the
     * format cannot tell, but the load must still fail (here the shifted
     * floats are not finite, or the JSON breaks) and never read outside the
     * buffer */
    for (int dl = -1; dl <= 1; dl += 2) {
        unsigned char *c = with_hlen(b, n, hl + (uint64_t)(int64_t)dl);
        tg_status st = tg_model_load_memory(c, n, 0, &m);
        ck_assert_msg(st == TG_ERR_FORMAT || st == TG_ERR_NONFINITE, "status %d: %s", (int)st,
                      tg_last_error());
        ck_assert_ptr_null(m);
        free(c);
    }

    /* data offsets past the end: the last tensor's end moved beyond the
     * buffer (the header's text edited in place, same length) */
    {
        unsigned char *c = malloc(n);
        memcpy(c, b, n);
        char *h = (char *)c + 8;
        char want[32];
        snprintf(want, sizeof want, ",%zu]", n - 8 - (size_t)hl);
        char *at = NULL;
        for (char *q = h; (q = strstr(q, want)) != NULL && q < h + hl; q++)
            at = q;
        ck_assert_ptr_nonnull(at);
        at[strlen(want) - 2] += 1; /* the last digit of the end offset, +1 */
        FAILS_WITH(tg_model_load_memory(c, n, 0, &m), TG_ERR_FORMAT, "past the end of the data");
        free(c);
    }

    /* a descriptor given where a checkpoint belongs */
    char *desc = text_of("tests/fixtures/tiny-ln.json");
    FAILS_WITH(tg_model_load_memory(desc, strlen(desc), 0, &m), TG_ERR_FORMAT,
               "looks like a JSON descriptor");
    /* ... also after many blank lines */
    char padded[4000];
    snprintf(padded, sizeof padded, "%*s%s", 1000, "\n", desc);
    FAILS_WITH(tg_model_load_memory(padded, strlen(padded), 0, &m), TG_ERR_FORMAT,
               "looks like a JSON descriptor");
    free(desc);
    /* garbage of every kind of byte */
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 131 + 7);
    FAILS_WITH(tg_model_load_memory(junk, sizeof junk, 0, &m), TG_ERR_FORMAT, "<memory>");
    free(b);
}
END_TEST

/* ======================================================== sampling only */

START_TEST(sampling_only_samples_like_the_full_model)
{
    tg_model *full, *so;
    OK(tg_model_load(FIX_CKPT, &full));
    OK(tg_model_load_ex(FIX_CKPT, TG_LOAD_SAMPLING_ONLY, &so));
    ck_assert_int_eq(info(full, TG_INFO_SAMPLING_ONLY), 0);
    ck_assert_int_eq(info(so, TG_INFO_SAMPLING_ONLY), 1);
    ck_assert_int_eq(info(so, TG_INFO_HAS_EMA), 1);
    ck_assert_str_eq(tg_model_descriptor(full), tg_model_descriptor(so));
    for (int k = TG_INFO_IMAGE_SIZE; k <= TG_INFO_THREADS; k++)
        ck_assert_int_eq(info(full, (tg_info)k), info(so, (tg_info)k));
    float x[3 * PER], y[3 * PER];
    sample(full, TG_GEN_EMA, x, 3);
    sample(so, TG_GEN_EMA, y, 3);
    ck_assert_int_eq(memcmp(x, y, sizeof x), 0);
    uint8_t px[2][S_ * S_ * 4];
    float z[L_];
    OK(tg_latent_sample(so, 3, 1, z, L_));
    OK(tg_generate_pixels(full, z, 1, 0, TG_PIXEL_RGBA8, px[0], sizeof px[0]));
    OK(tg_generate_pixels(so, z, 1, 0, TG_PIXEL_RGBA8, px[1], sizeof px[1]));
    ck_assert_int_eq(memcmp(px[0], px[1], sizeof px[0]), 0);

    /* what it dropped */
    float sc[1], img[PER];
    const char *why = "loaded for sampling only";
    FAILS_WITH(tg_generate(so, z, 1, TG_GEN_RAW, img, PER), TG_ERR_STATE, why);
    FAILS_WITH(tg_generate_pixels(so, z, 1, TG_GEN_RAW, TG_PIXEL_RGB8, px[1], sizeof px[1]),
               TG_ERR_STATE, "raw generator");
    FAILS_WITH(tg_discriminate(so, x, 1, sc, 1), TG_ERR_STATE, why);
    int64_t db = info(so, TG_INFO_D_BATCH);
    float *real = calloc((size_t)db * PER, sizeof *real);
    FAILS_WITH(tg_train_step(so, real, (size_t)db, NULL, NULL, NULL, NULL), TG_ERR_STATE, why);
    free(real);
    FAILS_WITH(tg_model_save(so, tu_path("so.safetensors"), 0), TG_ERR_STATE, why);
    ck_assert_int_eq(access(tu_path("so.safetensors"), F_OK), -1);
    FAILS_WITH(tg_model_load_weights(so, FIX_CKPT), TG_ERR_STATE, why);
    /* argument errors still come first */
    FAILS_WITH(tg_model_save(so, NULL, 0), TG_ERR_INVALID_ARGUMENT, "path");
    /* still samples after the refusals, and takes a thread count */
    sample(so, TG_GEN_EMA, y, 3);
    ck_assert_int_eq(memcmp(x, y, sizeof x), 0);
    OK(tg_model_set_threads(so, 1));
    ck_assert_int_eq(info(so, TG_INFO_THREADS), 1);
    tg_model_destroy(full);
    tg_model_destroy(so);
}
END_TEST

/* Without an EMA in the file the raw generator is kept: both flags work
 * and give the full model's raw images. */
START_TEST(sampling_only_without_ema_keeps_the_raw_generator)
{
    const char *p = tu_path("w.safetensors");
    tg_model *full, *so;
    OK(tg_model_load(FIX_CKPT, &full));
    OK(tg_model_save(full, p, TG_SAVE_WEIGHTS_ONLY));
    size_t n;
    unsigned char *bytes = slurp(p, &n);
    OK(tg_model_load_memory(bytes, n, TG_LOAD_SAMPLING_ONLY, &so));
    free(bytes);
    ck_assert_int_eq(info(so, TG_INFO_HAS_EMA), 0);
    ck_assert_int_eq(info(so, TG_INFO_SAMPLING_ONLY), 1);
    float x[2 * PER], y[2 * PER];
    sample(full, TG_GEN_RAW, x, 2);
    sample(so, TG_GEN_RAW, y, 2);
    ck_assert_int_eq(memcmp(x, y, sizeof x), 0);
    sample(so, TG_GEN_EMA, y, 2); /* the EMA of such a file is the generator */
    ck_assert_int_eq(memcmp(x, y, sizeof x), 0);
    float sc[2];
    FAILS_WITH(tg_discriminate(so, x, 2, sc, 2), TG_ERR_STATE, "sampling only");
    tg_model_destroy(full);
    tg_model_destroy(so);
}
END_TEST

/* A file holding only what sampling needs (a game's asset: the EMA
 * generator) loads for sampling, and only for sampling. */
START_TEST(sampling_only_needs_only_the_generator)
{
    const char *p = tu_path("ema.safetensors");
    ck_assert_uint_gt(rewrite_fix(p, ema_generator_only, NULL), 4);
    tg_model *full, *so;
    FAILS_WITH(tg_model_load(p, &full), TG_ERR_MISSING, "'generator.");
    OK(tg_model_load(FIX_CKPT, &full));
    OK(tg_model_load_ex(p, TG_LOAD_SAMPLING_ONLY, &so));
    float x[2 * PER], y[2 * PER];
    sample(full, TG_GEN_EMA, x, 2);
    sample(so, TG_GEN_EMA, y, 2);
    ck_assert_int_eq(memcmp(x, y, sizeof x), 0);
    tg_model_destroy(full);
    tg_model_destroy(so);
}
END_TEST

/* The sampling-only model holds one generator array: its load allocates
 * about a third of a full load of the same file (G + D + EMA). */
START_TEST(sampling_only_allocates_one_generator)
{
    tg_model *m;
    unsigned long long b0 = tg_alloc_bytes();
    OK(tg_model_load(FIX_CKPT, &m));
    unsigned long long full = tg_alloc_bytes() - b0;
    int64_t g = info(m, TG_INFO_G_PARAMS), d = info(m, TG_INFO_D_PARAMS);
    tg_model_destroy(m);
    b0 = tg_alloc_bytes();
    OK(tg_model_load_ex(FIX_CKPT, TG_LOAD_SAMPLING_ONLY, &m));
    unsigned long long so = tg_alloc_bytes() - b0;
    tg_model_destroy(m);
    fprintf(stderr, "test_load: G %lld D %lld floats; full load %llu bytes, sampling only %llu\n",
            (long long)g, (long long)d, full, so);
    /* full: G, EMA and D arrays, and neither a staging copy of them (another
     * (2g + d) floats) nor a copy of the file; the rest (header, tables,
     * descriptor) is ~60 KiB here */
    ck_assert_uint_ge(full, (unsigned long long)(2 * g + d) * 4);
    ck_assert_msg(full < (unsigned long long)(2 * g + d) * 4 + (128u << 10),
                  "full load allocated %llu bytes for %lld floats of state", full,
                  (long long)(2 * g + d));
    /* sampling only: the EMA array, neither the weights nor D */
    ck_assert_uint_ge(so, (unsigned long long)g * 4);
    ck_assert_msg(full - so >= (unsigned long long)(g + d) * 4,
                  "sampling-only load allocated %llu bytes, the full one %llu", so, full);
}
END_TEST

START_TEST(load_ex_arguments)
{
    tg_model *m = (tg_model *)(uintptr_t)1;
    FAILS_WITH(tg_model_load_ex(NULL, 0, &m), TG_ERR_INVALID_ARGUMENT, "path");
    ck_assert_ptr_null(m);
    FAILS_WITH(tg_model_load_ex(FIX_CKPT, 0, NULL), TG_ERR_INVALID_ARGUMENT, "out");
    FAILS_WITH(tg_model_load_ex(FIX_CKPT, 0x80000000u, &m), TG_ERR_INVALID_ARGUMENT, "flags");
    ck_assert_ptr_null(m);
    FAILS_WITH(tg_model_load_ex(tu_path("none"), 0, &m), TG_ERR_IO, "No such file");
    OK(tg_model_load_ex(FIX_CKPT, 0, &m)); /* flags 0 is tg_model_load */
    ck_assert_int_eq(info(m, TG_INFO_SAMPLING_ONLY), 0);
    tg_model_destroy(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("load");
    TCase *tc = tcase_create("load");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, big_descriptor_tiny_file_fails_fast);
    tcase_add_test(tc, structure_is_checked_before_values);
    tcase_add_test(tc, devices_and_pipes_are_refused);
    tcase_add_test(tc, memory_load_equals_file_load);
    tcase_add_test(tc, memory_truncated_at_every_length);
    tcase_add_test(tc, memory_hostile_buffers);
    tcase_add_test(tc, sampling_only_samples_like_the_full_model);
    tcase_add_test(tc, sampling_only_without_ema_keeps_the_raw_generator);
    tcase_add_test(tc, sampling_only_needs_only_the_generator);
    tcase_add_test(tc, sampling_only_allocates_one_generator);
    tcase_add_test(tc, load_ex_arguments);
    suite_add_tcase(s, tc);
    return tu_run(s) ? 1 : 0;
}
