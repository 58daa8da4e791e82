/* The public API's contract (include/transgan.h): argument checking with
 * cleared out-parameters and a message for every failure, statuses and
 * versions, descriptors and seeds, model facts, one test per hostile
 * checkpoint (each must fail with the right status, a message naming the
 * problem, and leave a model given to tg_model_load_weights unchanged),
 * non-finite inputs, sampling determinism and batch independence, 8-bit
 * pixel conversion and the latent sampler. */
#include <dirent.h>
#include <fenv.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "io/safetensors.h"
#include "models/model.h"
#include "train/train.h"
#include "testutil.h"
#include "transgan.h"

static int has_sub(const char *s, const char *sub) { return !sub || strstr(s, sub) != NULL; }


/* expr fails with `status`, a non-empty message, containing `sub` if not NULL */
#define FAILS_WITH(expr, status, sub)                                                           \
    do {                                                                                        \
        tg_status s_ = (expr);                                                                  \
        ck_assert_msg(s_ == (status), "%s: got %d (%s) want %d; message: %s", #expr, (int)s_,   \
                      tg_status_string(s_), (int)(status), tg_last_error());                    \
        const char *e_ = tg_last_error();                                                       \
        ck_assert_msg(e_ != NULL && e_[0] != '\0', "%s: empty tg_last_error()", #expr);        \
        const char *sub_ = (sub);                                                               \
        ck_assert_msg(has_sub(e_, sub_), "%s: message '%s' lacks '%s'", #expr, e_,              \
                      sub_ ? sub_ : "");                                                        \
    } while (0)
#define FAILS(expr, status) FAILS_WITH(expr, status, NULL)
#define INVALID(expr) FAILS(expr, TG_ERR_INVALID_ARGUMENT)

#define FIX_CKPT "tests/fixtures/tiny-ln.safetensors"
#define FIX_DESC "tests/fixtures/tiny-ln.json"
/* tiny-ln: 8x8 RGB, latent 10 */
#define TINY_S 8
#define TINY_C 3
#define TINY_L 10
#define TINY_PER (TINY_C * TINY_S * TINY_S)

static const char *TINY_JSON =
    "{\"format\":\"transgan\",\"format_version\":1,\"name\":\"tiny-ln\",\"image\":{\"size\":8},"
    "\"latent_dim\":10,\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,2],"
    "\"heads\":3,\"mlp_ratio\":2},\"discriminator\":{\"patch_size\":2,\"embed_dim\":12,"
    "\"depth\":2,\"heads\":3,\"mlp_ratio\":2}}";

/* ------------------------------------------------------------- helpers */

static void setup(void) { tu_scratch_make("tg_api"); }
static void teardown(void) { tu_scratch_remove(); }

static tg_model *tiny_model(uint64_t seed)
{
    tg_model *m = NULL;
    OK(tg_model_create(TINY_JSON, seed, &m));
    ck_assert_ptr_nonnull(m);
    return m;
}

static tg_model *tiny_fixture(void)
{
    tg_model *m = NULL;
    OK(tg_model_load(FIX_CKPT, &m));
    ck_assert_ptr_nonnull(m);
    return m;
}

/* What a model computes, to tell whether a failed load changed it. */
#define SNAP_N 3
typedef struct {
    float raw[SNAP_N * TINY_PER], ema[SNAP_N * TINY_PER], scores[SNAP_N];
    int64_t d_steps, g_steps;
} snap;

static void take_snap(tg_model *m, snap *s)
{
    float z[SNAP_N * TINY_L], img[SNAP_N * TINY_PER];
    OK(tg_latent_sample(m, 4242, SNAP_N, z, sizeof z / sizeof *z));
    OK(tg_generate(m, z, SNAP_N, TG_GEN_RAW, s->raw, SNAP_N * TINY_PER));
    OK(tg_generate(m, z, SNAP_N, TG_GEN_EMA, s->ema, SNAP_N * TINY_PER));
    tu_seed(77);
    tu_fill(img, SNAP_N * TINY_PER, -1.0f, 1.0f);
    OK(tg_discriminate(m, img, SNAP_N, s->scores, SNAP_N));
    OK(tg_model_info(m, TG_INFO_D_STEPS, &s->d_steps));
    OK(tg_model_info(m, TG_INFO_G_STEPS, &s->g_steps));
}

static void assert_same_snap(const snap *a, const snap *b)
{
    ck_assert_msg(memcmp(a->raw, b->raw, sizeof a->raw) == 0, "raw generator changed");
    ck_assert_msg(memcmp(a->ema, b->ema, sizeof a->ema) == 0, "EMA generator changed");
    ck_assert_msg(memcmp(a->scores, b->scores, sizeof a->scores) == 0, "discriminator changed");
    ck_assert_int_eq(a->d_steps, b->d_steps);
    ck_assert_int_eq(a->g_steps, b->g_steps);
}

/* Rewrite a checkpoint through tg_st_read + tg_st_write with one edit. */
typedef struct {
    const char *drop;           /* leave this tensor out */
    const char *reshape;        /* give this tensor ... */
    int ndim;                   /* ... this shape (same element count) */
    int64_t shape[4];
    const char *poison;         /* put `value` into this tensor ... */
    size_t poison_at;           /* ... at this element */
    float value;
    const char *meta_key;       /* set (or with meta_drop, remove) this metadata key */
    const char *meta_val;
    int meta_drop;
} edit;

static void rewrite(const char *src, const char *dst, const edit *ed)
{
    tg_st_file f;
    OK(tg_st_read(src, &f));
    tg_st_entry *e = calloc(f.ntensors, sizeof *e);
    float **data = calloc(f.ntensors, sizeof *data);
    ck_assert(e && data);
    size_t k = 0;
    int hit_drop = 0, hit_reshape = 0, hit_poison = 0, hit_meta = 0;
    for (size_t i = 0; i < f.ntensors; i++) {
        const tg_st_tensor *t = &f.tensors[i];
        if (ed->drop && !strcmp(t->name, ed->drop)) {
            hit_drop = 1;
            continue;
        }
        data[k] = malloc((t->nelem ? t->nelem : 1) * sizeof(float));
        ck_assert_ptr_nonnull(data[k]);
        tg_st_to_f32(t, data[k]);
        e[k].name = t->name;
        e[k].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++)
            e[k].shape[d] = t->shape[d];
        if (ed->reshape && !strcmp(t->name, ed->reshape)) {
            int64_t ne = 1;
            for (int d = 0; d < ed->ndim; d++)
                ne *= ed->shape[d];
            ck_assert_int_eq(ne, (int64_t)t->nelem);
            e[k].ndim = ed->ndim;
            for (int d = 0; d < ed->ndim; d++)
                e[k].shape[d] = ed->shape[d];
            hit_reshape = 1;
        }
        if (ed->poison && !strcmp(t->name, ed->poison)) {
            ck_assert_uint_lt(ed->poison_at, t->nelem);
            data[k][ed->poison_at] = ed->value;
            hit_poison = 1;
        }
        e[k].data = data[k];
        k++;
    }
    const char **mk = calloc(f.nmeta + 1, sizeof *mk), **mv = calloc(f.nmeta + 1, sizeof *mv);
    ck_assert(mk && mv);
    size_t nm = 0;
    for (size_t i = 0; i < f.nmeta; i++) {
        if (ed->meta_key && !strcmp(f.meta_keys[i], ed->meta_key)) {
            hit_meta = 1;
            if (ed->meta_drop)
                continue;
            mk[nm] = f.meta_keys[i], mv[nm++] = ed->meta_val;
            continue;
        }
        mk[nm] = f.meta_keys[i], mv[nm++] = f.meta_vals[i];
    }
    if (ed->meta_key && !hit_meta && !ed->meta_drop) {
        mk[nm] = ed->meta_key, mv[nm++] = ed->meta_val;
        hit_meta = 1;
    }
    ck_assert_msg(!ed->drop || hit_drop, "no tensor %s to drop", ed->drop);
    ck_assert_msg(!ed->reshape || hit_reshape, "no tensor %s to reshape", ed->reshape);
    ck_assert_msg(!ed->poison || hit_poison, "no tensor %s to poison", ed->poison);
    ck_assert_msg(!ed->meta_key || hit_meta, "no metadata %s", ed->meta_key);
    OK(tg_st_write(dst, e, k, mk, mv, nm));
    for (size_t i = 0; i < k; i++)
        free(data[i]);
    free(data), free(e), free(mk), free(mv);
    tg_st_free(&f);
}

/* The hostile file must fail tg_model_load (with *out cleared) and
 * tg_model_load_weights (leaving the model as it was) with `status` and a
 * message containing `sub`. load_status: the status of tg_model_load when it
 * differs (e.g. FORMAT for files without a descriptor); 0 = the same. */
static void check_hostile(const char *path, tg_status status, const char *sub, int check_load)
{
    if (check_load) {
        tg_model *m2 = (tg_model *)(uintptr_t)0x1;
        FAILS_WITH(tg_model_load(path, &m2), status, sub);
        ck_assert_ptr_null(m2);
        ck_assert_msg(strstr(tg_last_error(), path) != NULL, "message '%s' does not name the file",
                      tg_last_error());
    }
    if (check_load && status != TG_ERR_IO) {
        /* the same bytes from memory: the same checks, the same verdict */
        size_t n;
        unsigned char *bytes = tu_read_file(path, &n);
        tg_model *m2 = (tg_model *)(uintptr_t)0x1;
        FAILS_WITH(tg_model_load_memory(bytes, n, 0, &m2), status, sub);
        ck_assert_ptr_null(m2);
        free(bytes);
    }
    tg_model *m = tiny_model(99);
    snap before, after;
    take_snap(m, &before);
    FAILS_WITH(tg_model_load_weights(m, path), status, sub);
    ck_assert_msg(strstr(tg_last_error(), path) != NULL, "message '%s' does not name the file",
                  tg_last_error());
    take_snap(m, &after);
    assert_same_snap(&before, &after);
    tg_model_destroy(m);
}

/* ============================================================ contract */

START_TEST(version_and_status_strings)
{
    ck_assert_uint_eq(tg_version(), TG_VERSION_NUMBER);
    ck_assert_ptr_nonnull(tg_version_string());
    ck_assert_str_eq(tg_version_string(), TG_VERSION_STRING);
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", TG_VERSION_MAJOR, TG_VERSION_MINOR, TG_VERSION_PATCH);
    ck_assert_str_eq(tg_version_string(), v);

    const char *s[14];
    for (int i = 0; i <= 13; i++) {
        s[i] = tg_status_string((tg_status)i);
        ck_assert_ptr_nonnull(s[i]);
        ck_assert_msg(s[i][0] != '\0', "status %d has an empty string", i);
        ck_assert_msg(strcmp(s[i], "unknown status") != 0, "status %d is unknown", i);
        for (int j = 0; j < i; j++)
            ck_assert_msg(strcmp(s[i], s[j]) != 0, "statuses %d and %d share '%s'", i, j, s[i]);
    }
    ck_assert_str_eq(tg_status_string((tg_status)999), "unknown status");
    ck_assert_str_eq(tg_status_string((tg_status)-1), "unknown status");
    ck_assert_str_eq(tg_status_string((tg_status)14), "unknown status");
}
END_TEST

START_TEST(null_and_no_model)
{
    tg_model_destroy(NULL); /* no-op */
    ck_assert_ptr_null(tg_model_descriptor(NULL));

    tg_model *m = (tg_model *)(uintptr_t)0x1;
    FAILS_WITH(tg_model_create(NULL, 1, &m), TG_ERR_INVALID_ARGUMENT, "descriptor_json");
    ck_assert_ptr_null(m);
    INVALID(tg_model_create(TINY_JSON, 1, NULL));
    m = (tg_model *)(uintptr_t)0x1;
    INVALID(tg_model_create_from_file(NULL, 1, &m));
    ck_assert_ptr_null(m);
    INVALID(tg_model_create_from_file(FIX_DESC, 1, NULL));
    m = (tg_model *)(uintptr_t)0x1;
    FAILS_WITH(tg_model_load(NULL, &m), TG_ERR_INVALID_ARGUMENT, "path");
    ck_assert_ptr_null(m);
    INVALID(tg_model_load(FIX_CKPT, NULL));

    int64_t v = 42;
    FAILS_WITH(tg_model_info(NULL, TG_INFO_IMAGE_SIZE, &v), TG_ERR_INVALID_ARGUMENT, "model");
    ck_assert_int_eq(v, 0);
    INVALID(tg_model_load_weights(NULL, FIX_CKPT));
    INVALID(tg_model_save(NULL, "/tmp/never-written.safetensors", 0));
    float z[TINY_L], img[TINY_PER], sc[1];
    uint8_t px[TINY_S * TINY_S * 4];
    memset(z, 0, sizeof z);
    memset(img, 0, sizeof img);
    INVALID(tg_latent_sample(NULL, 1, 1, z, TINY_L));
    INVALID(tg_generate(NULL, z, 1, 0, img, TINY_PER));
    INVALID(tg_generate_pixels(NULL, z, 1, 0, TG_PIXEL_RGB8, px, sizeof px));
    INVALID(tg_discriminate(NULL, img, 1, sc, 1));
    /* a model is required even for n == 0 */
    INVALID(tg_latent_sample(NULL, 1, 0, NULL, 0));
    INVALID(tg_generate(NULL, NULL, 0, 0, NULL, 0));
    INVALID(tg_discriminate(NULL, NULL, 0, NULL, 0));
    INVALID(tg_images_to_pixels(NULL, 1, 3, TINY_S, TG_PIXEL_RGB8, px, sizeof px));
    INVALID(tg_images_to_pixels(img, 1, 3, TINY_S, TG_PIXEL_RGB8, NULL, sizeof px));
    ck_assert_ptr_null(tg_model_descriptor(NULL));
}
END_TEST

START_TEST(null_buffers_with_model)
{
    tg_model *m = tiny_model(1);
    float z[TINY_L] = {0}, img[TINY_PER] = {0}, sc[1];
    uint8_t px[TINY_S * TINY_S * 4];
    int64_t v;
    FAILS_WITH(tg_model_info(m, TG_INFO_IMAGE_SIZE, NULL), TG_ERR_INVALID_ARGUMENT, "value");
    FAILS_WITH(tg_model_load_weights(m, NULL), TG_ERR_INVALID_ARGUMENT, "path");
    FAILS_WITH(tg_model_save(m, NULL, 0), TG_ERR_INVALID_ARGUMENT, "path");
    INVALID(tg_model_save(m, "", 0));
    FAILS_WITH(tg_latent_sample(m, 1, 1, NULL, TINY_L), TG_ERR_INVALID_ARGUMENT, "z");
    FAILS_WITH(tg_generate(m, NULL, 1, 0, img, TINY_PER), TG_ERR_INVALID_ARGUMENT, "z");
    FAILS_WITH(tg_generate(m, z, 1, 0, NULL, TINY_PER), TG_ERR_INVALID_ARGUMENT, "out");
    FAILS_WITH(tg_generate_pixels(m, NULL, 1, 0, TG_PIXEL_RGB8, px, sizeof px),
               TG_ERR_INVALID_ARGUMENT, "z");
    FAILS_WITH(tg_generate_pixels(m, z, 1, 0, TG_PIXEL_RGB8, NULL, sizeof px),
               TG_ERR_INVALID_ARGUMENT, "out");
    FAILS_WITH(tg_discriminate(m, NULL, 1, sc, 1), TG_ERR_INVALID_ARGUMENT, "images");
    FAILS_WITH(tg_discriminate(m, img, 1, NULL, 1), TG_ERR_INVALID_ARGUMENT, "scores");
    /* unknown info keys */
    v = 42;
    FAILS_WITH(tg_model_info(m, (tg_info)0, &v), TG_ERR_INVALID_ARGUMENT, "key");
    ck_assert_int_eq(v, 0);
    v = 42;
    FAILS(tg_model_info(m, (tg_info)(TG_INFO_TRAIN_PRECISION + 1), &v), TG_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(v, 0);
    v = 42;
    FAILS(tg_model_info(m, (tg_info)-1, &v), TG_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(v, 0);
    tg_model_destroy(m);
}
END_TEST

START_TEST(bad_flags)
{
    tg_model *m = tiny_model(1);
    float z[TINY_L] = {0}, img[TINY_PER];
    uint8_t px[TINY_S * TINY_S * 4];
    FAILS_WITH(tg_generate(m, z, 1, 0x80, img, TINY_PER), TG_ERR_INVALID_ARGUMENT, "flags");
    FAILS_WITH(tg_generate(m, z, 0, 0x80, NULL, 0), TG_ERR_INVALID_ARGUMENT, "flags");
    FAILS_WITH(tg_generate_pixels(m, z, 1, 0x80, TG_PIXEL_RGB8, px, sizeof px),
               TG_ERR_INVALID_ARGUMENT, "flags");
    FAILS_WITH(tg_generate_pixels(m, z, 0, 0x80, TG_PIXEL_RGB8, NULL, 0), TG_ERR_INVALID_ARGUMENT,
               "flags");
    /* unknown pixel formats */
    FAILS_WITH(tg_generate_pixels(m, z, 1, 0, (tg_pixel_format)2, px, sizeof px),
               TG_ERR_INVALID_ARGUMENT, "format");
    FAILS(tg_generate_pixels(m, z, 1, 0, (tg_pixel_format)0, px, sizeof px),
          TG_ERR_INVALID_ARGUMENT);
    FAILS(tg_generate_pixels(m, z, 1, 0, (tg_pixel_format)5, px, sizeof px),
          TG_ERR_INVALID_ARGUMENT);

    setup();
    const char *p = tu_path("flags.safetensors");
    FAILS_WITH(tg_model_save(m, p, 0x80), TG_ERR_INVALID_ARGUMENT, "flags");
    ck_assert_msg(access(p, F_OK) != 0, "a rejected save wrote %s", p);
    FAILS(tg_model_save(m, p, TG_SAVE_WEIGHTS_ONLY | 0x80), TG_ERR_INVALID_ARGUMENT);
    /* into a folder that does not exist: IO */
    FAILS(tg_model_save(m, tu_path("no/such/dir/x.safetensors"), 0), TG_ERR_IO);
    OK(tg_model_save(m, p, TG_SAVE_WEIGHTS_ONLY));
    teardown();
    tg_model_destroy(m);
}
END_TEST

START_TEST(short_buffers)
{
    tg_model *m = tiny_model(1);
    enum { N = 3 };
    float z[N * TINY_L] = {0}, img[N * TINY_PER] = {0}, sc[N];
    uint8_t px[N * TINY_S * TINY_S * 4];
    FAILS_WITH(tg_latent_sample(m, 1, N, z, N * TINY_L - 1), TG_ERR_INVALID_ARGUMENT, "z");
    OK(tg_latent_sample(m, 1, N, z, N * TINY_L));
    FAILS_WITH(tg_generate(m, z, N, 0, img, N * TINY_PER - 1), TG_ERR_INVALID_ARGUMENT, "out");
    OK(tg_generate(m, z, N, 0, img, N * TINY_PER));
    for (int bpp = 1; bpp <= 4; bpp++) {
        if (bpp == 2)
            continue;
        size_t need = (size_t)N * TINY_S * TINY_S * bpp;
        FAILS_WITH(tg_generate_pixels(m, z, N, 0, (tg_pixel_format)bpp, px, need - 1),
                   TG_ERR_INVALID_ARGUMENT, "out");
        OK(tg_generate_pixels(m, z, N, 0, (tg_pixel_format)bpp, px, need));
        FAILS_WITH(tg_images_to_pixels(img, N, TINY_C, TINY_S, (tg_pixel_format)bpp, px, need - 1),
                   TG_ERR_INVALID_ARGUMENT, "out");
        OK(tg_images_to_pixels(img, N, TINY_C, TINY_S, (tg_pixel_format)bpp, px, need));
    }
    FAILS_WITH(tg_discriminate(m, img, N, sc, N - 1), TG_ERR_INVALID_ARGUMENT, "scores");
    OK(tg_discriminate(m, img, N, sc, N));
    tg_model_destroy(m);
}
END_TEST

START_TEST(impossible_sizes)
{
    tg_model *m = tiny_model(1);
    float z[TINY_L] = {0}, img[TINY_PER] = {0}, sc[1];
    uint8_t px[TINY_S * TINY_S * 4];
    /* n so large that n * (floats per item) overflows size_t: rejected before
     * anything is read or written */
    size_t huge[] = {SIZE_MAX, SIZE_MAX / 2, SIZE_MAX / TINY_L + 1, SIZE_MAX / TINY_PER + 1,
                     SIZE_MAX / (TINY_S * TINY_S) + 1};
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
        size_t n = huge[i];
        if (n > SIZE_MAX / TINY_L) /* z would overflow */
            FAILS_WITH(tg_latent_sample(m, 1, n, z, SIZE_MAX), TG_ERR_INVALID_ARGUMENT,
                       "too large");
        FAILS_WITH(tg_generate(m, z, n, 0, img, SIZE_MAX), TG_ERR_INVALID_ARGUMENT, "too large");
        FAILS(tg_generate_pixels(m, z, n, 0, TG_PIXEL_RGBA8, px, SIZE_MAX),
              TG_ERR_INVALID_ARGUMENT);
        FAILS_WITH(tg_discriminate(m, img, n, sc, SIZE_MAX), TG_ERR_INVALID_ARGUMENT, "too large");
        FAILS(tg_images_to_pixels(img, n, 4, TINY_S, TG_PIXEL_RGBA8, px, SIZE_MAX),
              TG_ERR_INVALID_ARGUMENT);
    }
    FAILS(tg_images_to_pixels(img, SIZE_MAX / 2, 1, 65536, TG_PIXEL_RGBA8, px, SIZE_MAX),
          TG_ERR_INVALID_ARGUMENT);
    /* impossible channels, sizes and formats */
    int bad_ch[] = {0, 2, 5, -1, 3 + 256};
    for (size_t i = 0; i < sizeof bad_ch / sizeof *bad_ch; i++)
        FAILS_WITH(tg_images_to_pixels(img, 1, bad_ch[i], TINY_S, TG_PIXEL_RGB8, px, sizeof px),
                   TG_ERR_INVALID_ARGUMENT, "channels");
    int bad_size[] = {0, -1, -8, 65537, 1 << 30};
    for (size_t i = 0; i < sizeof bad_size / sizeof *bad_size; i++)
        FAILS_WITH(tg_images_to_pixels(img, 1, 3, bad_size[i], TG_PIXEL_RGB8, px, sizeof px),
                   TG_ERR_INVALID_ARGUMENT, "size");
    int bad_fmt[] = {0, 2, 5, -3};
    for (size_t i = 0; i < sizeof bad_fmt / sizeof *bad_fmt; i++)
        FAILS_WITH(tg_images_to_pixels(img, 1, 3, TINY_S, (tg_pixel_format)bad_fmt[i], px, sizeof px),
                   TG_ERR_INVALID_ARGUMENT, "format");
    /* a legal size whose buffer is far too small */
    FAILS(tg_images_to_pixels(img, 1, 1, 65536, TG_PIXEL_RGBA8, px, sizeof px),
          TG_ERR_INVALID_ARGUMENT);
    tg_model_destroy(m);
}
END_TEST

START_TEST(zero_n_is_fine)
{
    tg_model *m = tiny_model(1);
    float z[TINY_L], img[TINY_PER], sc[1];
    uint8_t px[TINY_S * TINY_S * 4];
    OK(tg_latent_sample(m, 1, 0, NULL, 0));
    OK(tg_latent_sample(m, 1, 0, z, 0));
    OK(tg_generate(m, NULL, 0, TG_GEN_EMA, NULL, 0));
    OK(tg_generate(m, NULL, 0, TG_GEN_RAW, NULL, 0));
    OK(tg_generate(m, z, 0, 0, img, 0));
    OK(tg_generate_pixels(m, NULL, 0, 0, TG_PIXEL_GRAY8, NULL, 0));
    OK(tg_generate_pixels(m, z, 0, 0, TG_PIXEL_RGBA8, px, 0));
    OK(tg_images_to_pixels(NULL, 0, 3, TINY_S, TG_PIXEL_RGB8, NULL, 0));
    OK(tg_images_to_pixels(img, 0, 1, TINY_S, TG_PIXEL_RGBA8, px, 0));
    OK(tg_discriminate(m, NULL, 0, NULL, 0));
    OK(tg_discriminate(m, img, 0, sc, 0));
    tg_model_destroy(m);
}
END_TEST

/* ---------------------------------------------------- thread-local errors */

typedef struct {
    pthread_barrier_t *bar;
    char initial[64];
    char mine[1024];
    char after[1024];
} thr_ctx;

static void *thr_main(void *arg)
{
    thr_ctx *c = arg;
    snprintf(c->initial, sizeof c->initial, "%s", tg_last_error());
    /* this thread fails in its own way ... */
    tg_generate(NULL, NULL, 0, 0, NULL, 0);
    snprintf(c->mine, sizeof c->mine, "%s", tg_last_error());
    pthread_barrier_wait(c->bar); /* 1: main checks its message */
    pthread_barrier_wait(c->bar); /* 2: main has failed again, differently */
    snprintf(c->after, sizeof c->after, "%s", tg_last_error());
    return NULL;
}

START_TEST(last_error_is_thread_local)
{
    int64_t v;
    FAILS(tg_model_info(NULL, TG_INFO_IMAGE_SIZE, &v), TG_ERR_INVALID_ARGUMENT);
    char main_msg[1024];
    snprintf(main_msg, sizeof main_msg, "%s", tg_last_error());
    ck_assert_str_ne(main_msg, "");

    pthread_barrier_t bar;
    ck_assert_int_eq(pthread_barrier_init(&bar, NULL, 2), 0);
    thr_ctx c = {.bar = &bar};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, thr_main, &c), 0);
    pthread_barrier_wait(&bar); /* 1 */
    /* the other thread's failure did not touch this thread's message */
    ck_assert_str_eq(tg_last_error(), main_msg);
    /* now fail differently here while the other thread waits */
    FAILS(tg_model_load(NULL, NULL), TG_ERR_INVALID_ARGUMENT);
    char main2[1024];
    snprintf(main2, sizeof main2, "%s", tg_last_error());
    pthread_barrier_wait(&bar); /* 2 */
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    pthread_barrier_destroy(&bar);

    ck_assert_str_eq(c.initial, ""); /* a new thread starts with no message */
    ck_assert_str_ne(c.mine, "");
    ck_assert_msg(strstr(c.mine, "tg_generate") != NULL, "thread message: %s", c.mine);
    ck_assert_str_ne(c.mine, main_msg);
    ck_assert_str_eq(c.after, c.mine); /* unchanged by this thread's later failure */
    ck_assert_str_eq(tg_last_error(), main2);
    ck_assert_str_ne(main2, c.mine);
}
END_TEST

/* ============================================================== threads */

/* 16x16 so that stage 2 has 256 tokens: the fused attention's parallel path */
static const char *THR_JSON =
    "{\"format\":\"transgan\",\"format_version\":1,\"image\":{\"size\":16,\"channels\":1},"
    "\"latent_dim\":8,\"generator\":{\"bottom_width\":8,\"embed_dim\":16,\"depths\":[1,1],"
    "\"heads\":2,\"mlp_ratio\":2},\"discriminator\":{\"patch_size\":4,\"embed_dim\":16,"
    "\"depth\":1,\"heads\":2,\"mlp_ratio\":2},\"training\":{\"d_batch\":4,\"g_batch\":4,"
    "\"n_critic\":1,\"diffaug\":[]}}";

static float max_abs_diff(const float *a, const float *b, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(a[i] - b[i]));
    return m;
}

START_TEST(thread_count_option)
{
    enum { N = 6, PER = 16 * 16, L = 8 };
    tg_model *m = NULL, *twin = NULL;
    OK(tg_model_create(THR_JSON, 5, &m));
    OK(tg_model_create(THR_JSON, 5, &twin));
    int64_t v = -1;
    OK(tg_model_info(m, TG_INFO_THREADS, &v));
    ck_assert_int_eq(v, 0); /* default: the caller's OpenMP maximum */
    INVALID(tg_model_set_threads(NULL, 1));
    FAILS_WITH(tg_model_set_threads(m, -1), TG_ERR_INVALID_ARGUMENT, "n = -1");
    FAILS_WITH(tg_model_set_threads(m, 5000), TG_ERR_INVALID_ARGUMENT, "n = 5000");
    OK(tg_model_info(m, TG_INFO_THREADS, &v));
    ck_assert_int_eq(v, 0); /* unchanged by the failures */

    float z[N * L], a[N * PER], b[N * PER], c[N * PER];
    OK(tg_latent_sample(m, 3, N, z, N * L));
    omp_set_num_threads(3);
    OK(tg_generate(m, z, N, 0, a, N * PER)); /* 3 threads: the caller's */
    int counts[] = {1, 2, 1};                /* back to 1: its primitives are reused */
    for (int i = 0; i < 3; i++) {
        OK(tg_model_set_threads(m, counts[i]));
        OK(tg_model_info(m, TG_INFO_THREADS, &v));
        ck_assert_int_eq(v, counts[i]);
        OK(tg_generate(m, z, N, 0, b, N * PER));
        ck_assert_int_eq(omp_get_max_threads(), 3); /* the caller's count is restored */
        float d = max_abs_diff(a, b, N * PER);
        ck_assert_msg(d < 1e-5f, "%d threads: images differ by %g", counts[i], (double)d);
    }

    /* training: the same step on 1 and on 2 threads gives the same model */
    float real[4 * PER], zd[4 * L], zg[4 * L], alpha[4];
    tu_fill(real, 4 * PER, -1.0f, 1.0f);
    tu_fill(zd, 4 * L, -1.0f, 1.0f);
    tu_fill(zg, 4 * L, -1.0f, 1.0f);
    tu_fill(alpha, 4, 0.0f, 1.0f);
    OK(tg_model_set_threads(m, 1));
    OK(tg_model_set_threads(twin, 2));
    for (int k = 0; k < 2; k++) {
        OK(tg_train_step(m, real, 4, zd, zg, alpha, NULL));
        OK(tg_train_step(twin, real, 4, zd, zg, alpha, NULL));
        ck_assert_int_eq(omp_get_max_threads(), 3);
    }
    OK(tg_generate(m, z, N, TG_GEN_RAW, b, N * PER));
    OK(tg_generate(twin, z, N, TG_GEN_RAW, c, N * PER));
    float d = max_abs_diff(b, c, N * PER);
    ck_assert_msg(d < 1e-4f, "after training on 1 and 2 threads images differ by %g", (double)d);
    ck_assert_msg(max_abs_diff(a, b, N * PER) > 1e-4f, "training changed nothing");
    float sb[N], sc[N];
    OK(tg_discriminate(m, b, N, sb, N));
    OK(tg_discriminate(twin, b, N, sc, N));
    d = max_abs_diff(sb, sc, N);
    ck_assert_msg(d < 1e-3f, "scores differ by %g", (double)d);
    omp_set_num_threads(omp_get_num_procs());
    tg_model_destroy(m);
    tg_model_destroy(twin);
}
END_TEST

/* Steady state: once a shape has been seen, sampling, discriminating and
 * training call tg_alloc no more and build no oneDNN primitive. */
START_TEST(steady_state_allocates_nothing)
{
    enum { N = 8, PER = 16 * 16, L = 8 };
    tg_model *m = NULL;
    OK(tg_model_create(THR_JSON, 2, &m));
    float z[N * L], img[N * PER], sc[N], real[4 * PER];
    uint8_t px[N * PER];
    OK(tg_latent_sample(m, 1, N, z, N * L));
    tu_fill(real, 4 * PER, -1.0f, 1.0f);
    /* warm-up: every shape once; training twice (its buffers and the Adam
     * moments come with the first update of each network) */
    OK(tg_generate(m, z, N, 0, img, N * PER));
    OK(tg_generate_pixels(m, z, N, 0, TG_PIXEL_GRAY8, px, sizeof px));
    OK(tg_discriminate(m, img, N, sc, N));
    for (int i = 0; i < 2; i++)
        OK(tg_train_step(m, real, 4, NULL, NULL, NULL, NULL));
    long allocs = tg_alloc_count();
    size_t prims = tg_dnn_prim_count(m->dnn);
    ck_assert_uint_gt(prims, 0);
    for (int i = 0; i < 3; i++) {
        OK(tg_generate(m, z, N, 0, img, N * PER));
        OK(tg_generate(m, z, N, TG_GEN_RAW, img, N * PER));
        OK(tg_generate_pixels(m, z, N, 0, TG_PIXEL_GRAY8, px, sizeof px));
        OK(tg_discriminate(m, img, N, sc, N));
        OK(tg_train_step(m, real, 4, NULL, NULL, NULL, NULL));
    }
    ck_assert_msg(tg_alloc_count() == allocs, "steady state allocated %ld times",
                  tg_alloc_count() - allocs);
    ck_assert_msg(tg_dnn_prim_count(m->dnn) == prims, "steady state built %zu primitives",
                  tg_dnn_prim_count(m->dnn) - prims);
    /* a new batch size is a new shape: it may build, then it is steady too */
    OK(tg_generate(m, z, 5, 0, img, 5 * PER));
    allocs = tg_alloc_count();
    prims = tg_dnn_prim_count(m->dnn);
    OK(tg_generate(m, z, 5, 0, img, 5 * PER));
    ck_assert_int_eq(tg_alloc_count(), allocs);
    ck_assert_uint_eq(tg_dnn_prim_count(m->dnn), prims);
    tg_model_destroy(m);
}
END_TEST

/* ============================================ descriptors, files, seeds */

START_TEST(bad_descriptors)
{
    tg_model *m = (tg_model *)(uintptr_t)0x1;
    const char *empty_depths =
        "{\"format\":\"transgan\",\"format_version\":1,\"image\":{\"size\":8},\"latent_dim\":10,"
        "\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[],\"heads\":3}}";
    FAILS_WITH(tg_model_create(empty_depths, 1, &m), TG_ERR_DESCRIPTOR, "generator.depths");
    ck_assert_ptr_null(m);
    const char *bad_depth =
        "{\"format\":\"transgan\",\"format_version\":1,\"image\":{\"size\":8},\"latent_dim\":10,"
        "\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,\"two\"],\"heads\":3}}";
    m = (tg_model *)(uintptr_t)0x1;
    FAILS_WITH(tg_model_create(bad_depth, 1, &m), TG_ERR_DESCRIPTOR, "generator.depths");
    ck_assert_ptr_null(m);
    const char *unknown =
        "{\"format\":\"transgan\",\"format_version\":1,\"discriminator\":{\"depht\":3}}";
    FAILS_WITH(tg_model_create(unknown, 1, &m), TG_ERR_DESCRIPTOR, "discriminator.depht");
    ck_assert_ptr_null(m);
    FAILS_WITH(tg_model_create("{\"format\":\"transgan\",\n\"format_version\":1,,}", 1, &m),
               TG_ERR_DESCRIPTOR, "line 2");
    ck_assert_ptr_null(m);
    FAILS(tg_model_create("", 1, &m), TG_ERR_DESCRIPTOR);
    FAILS(tg_model_create("[]", 1, &m), TG_ERR_DESCRIPTOR);
    FAILS_WITH(tg_model_create("{\"format\":\"transgan\"}", 1, &m), TG_ERR_DESCRIPTOR,
               "format_version");
    ck_assert_ptr_null(m);

    /* from a file: the message names the file and the key */
    setup();
    const char *p = tu_path("bad.json");
    tu_write_file(p, empty_depths, strlen(empty_depths));
    m = (tg_model *)(uintptr_t)0x1;
    FAILS_WITH(tg_model_create_from_file(p, 1, &m), TG_ERR_DESCRIPTOR, "generator.depths");
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(tg_last_error(), p) != NULL, "'%s' lacks the path", tg_last_error());
    /* missing file and a folder: IO */
    m = (tg_model *)(uintptr_t)0x1;
    FAILS_WITH(tg_model_create_from_file(tu_path("missing.json"), 1, &m), TG_ERR_IO, "missing.json");
    ck_assert_ptr_null(m);
    m = (tg_model *)(uintptr_t)0x1;
    FAILS(tg_model_create_from_file(tu_scratch_dir(), 1, &m), TG_ERR_IO);
    ck_assert_ptr_null(m);
    teardown();
}
END_TEST

START_TEST(create_from_file)
{
    tg_model *m = NULL;
    OK(tg_model_create_from_file("models/fmnist-small.json", TG_SEED_FROM_DESCRIPTOR, &m));
    ck_assert_ptr_nonnull(m);
    int64_t v;
    OK(tg_model_info(m, TG_INFO_IMAGE_SIZE, &v));
    ck_assert_int_eq(v, 32);
    OK(tg_model_info(m, TG_INFO_CHANNELS, &v));
    ck_assert_int_eq(v, 1);
    OK(tg_model_info(m, TG_INFO_LATENT_DIM, &v));
    ck_assert_int_eq(v, 128);
    OK(tg_model_info(m, TG_INFO_G_BATCH, &v));
    ck_assert_int_eq(v, 64);
    OK(tg_model_info(m, TG_INFO_D_BATCH, &v));
    ck_assert_int_eq(v, 32);
    const char *d = tg_model_descriptor(m);
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_nonnull(strstr(d, "fmnist-small"));
    /* the descriptor it reports makes the same model */
    tg_model *m2 = NULL;
    OK(tg_model_create(d, TG_SEED_FROM_DESCRIPTOR, &m2));
    ck_assert_str_eq(tg_model_descriptor(m2), d);
    float z[2 * 128], a[2 * 32 * 32], b[2 * 32 * 32];
    OK(tg_latent_sample(m, 3, 2, z, sizeof z / sizeof *z));
    OK(tg_generate(m, z, 2, 0, a, sizeof a / sizeof *a));
    OK(tg_generate(m2, z, 2, 0, b, sizeof b / sizeof *b));
    ck_assert_mem_eq(a, b, sizeof a);
    tg_model_destroy(m2);
    tg_model_destroy(m);
}
END_TEST

static void gen_with_seed(const char *json, uint64_t seed, float *out)
{
    tg_model *m = NULL;
    OK(tg_model_create(json, seed, &m));
    float z[4 * TINY_L];
    OK(tg_latent_sample(m, 11, 4, z, 4 * TINY_L));
    OK(tg_generate(m, z, 4, TG_GEN_RAW, out, 4 * TINY_PER));
    float s[4], img[4 * TINY_PER];
    tu_seed(5);
    tu_fill(img, 4 * TINY_PER, -1, 1);
    OK(tg_discriminate(m, img, 4, s, 4));
    memcpy(out + 4 * TINY_PER, s, sizeof s);
    tg_model_destroy(m);
}

START_TEST(seeds)
{
    enum { NF = 4 * TINY_PER + 4 };
    static float a[NF], b[NF], c[NF], d[NF];
    /* the descriptor's training.seed (its default, as the filled-in descriptor says) */
    tg_model *m = tiny_model(TG_SEED_FROM_DESCRIPTOR);
    cJSON *root = cJSON_Parse(tg_model_descriptor(m));
    ck_assert_ptr_nonnull(root);
    const cJSON *seed = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "training"), "seed");
    ck_assert_msg(cJSON_IsNumber(seed), "descriptor has no training.seed");
    uint64_t dseed = (uint64_t)seed->valuedouble;
    cJSON_Delete(root);
    tg_model_destroy(m);

    gen_with_seed(TINY_JSON, TG_SEED_FROM_DESCRIPTOR, a);
    gen_with_seed(TINY_JSON, dseed, b);
    ck_assert_msg(memcmp(a, b, sizeof a) == 0, "TG_SEED_FROM_DESCRIPTOR != seed %llu",
                  (unsigned long long)dseed);
    gen_with_seed(TINY_JSON, 7, c);
    gen_with_seed(TINY_JSON, 7, d);
    ck_assert_msg(memcmp(c, d, sizeof c) == 0, "the same seed gave different models");
    ck_assert_msg(memcmp(a, c, 4 * TINY_PER * sizeof(float)) != 0, "seeds 7 and %llu agree",
                  (unsigned long long)dseed);
    gen_with_seed(TINY_JSON, 8, d);
    ck_assert_msg(memcmp(c, d, 4 * TINY_PER * sizeof(float)) != 0, "seeds 7 and 8: same images");
    ck_assert_msg(memcmp(c + 4 * TINY_PER, d + 4 * TINY_PER, 4 * sizeof(float)) != 0,
                  "seeds 7 and 8: same scores");

    /* an explicit training.seed in the descriptor */
    const char *with_seed =
        "{\"format\":\"transgan\",\"format_version\":1,\"name\":\"tiny-ln\",\"image\":{\"size\":8},"
        "\"latent_dim\":10,\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,2],"
        "\"heads\":3,\"mlp_ratio\":2},\"discriminator\":{\"patch_size\":2,\"embed_dim\":12,"
        "\"depth\":2,\"heads\":3,\"mlp_ratio\":2},\"training\":{\"seed\":777}}";
    gen_with_seed(with_seed, TG_SEED_FROM_DESCRIPTOR, a);
    gen_with_seed(with_seed, 777, b);
    ck_assert_msg(memcmp(a, b, sizeof a) == 0, "TG_SEED_FROM_DESCRIPTOR != training.seed 777");
    gen_with_seed(with_seed, 778, b);
    ck_assert_msg(memcmp(a, b, 4 * TINY_PER * sizeof(float)) != 0, "seeds 777 and 778 agree");
    /* seed 0 and seeds near TG_SEED_FROM_DESCRIPTOR are ordinary seeds */
    gen_with_seed(with_seed, 0, c);
    gen_with_seed(with_seed, UINT64_MAX - 1, d);
    ck_assert_msg(memcmp(c, a, 4 * TINY_PER * sizeof(float)) != 0, "seed 0 == seed 777");
    ck_assert_msg(memcmp(d, a, 4 * TINY_PER * sizeof(float)) != 0, "seed 2^64-2 == seed 777");
}
END_TEST

/* ================================================================= info */

START_TEST(info_tiny)
{
    tg_st_file f;
    OK(tg_st_read(FIX_CKPT, &f));
    int64_t g = 0, d = 0;
    for (size_t i = 0; i < f.ntensors; i++) {
        if (!strncmp(f.tensors[i].name, "generator.", 10))
            g += (int64_t)f.tensors[i].nelem;
        else if (!strncmp(f.tensors[i].name, "discriminator.", 14))
            d += (int64_t)f.tensors[i].nelem;
    }
    tg_st_free(&f);
    /* by hand from the descriptor (L 10, bottom 4, dims 24 -> 6, depths 1, 2,
     * mlp 2, no qkv bias, 3 channels; D: patch 2, dim 12, 16 + 1 tokens):
     * block(C) = 2C + 3C^2 + C^2 + C + 2C + 2C^2 + 2C + 2C^2 + C = 8C^2 + 8C */
#define BLK(C) (8 * (C) * (C) + 8 * (C))
    int64_t g_hand = 10 * 16 * 24 + 16 * 24 + BLK(24) + 16 * 24 + 2 * BLK(6) + 64 * 6 + 3 * 6 + 3;
    int64_t d_hand = 12 * 12 + 12 + 12 + 17 * 12 + 2 * BLK(12) + 2 * 12 + 12 + 1;
#undef BLK
    ck_assert_int_eq(g, g_hand);
    ck_assert_int_eq(d, d_hand);
    ck_assert_int_eq(g, 10485);
    ck_assert_int_eq(d, 2905);

    tg_model *ms[2] = {tiny_fixture(), tiny_model(3)};
    for (int k = 0; k < 2; k++) {
        tg_model *m = ms[k];
        int64_t v = -1;
        OK(tg_model_info(m, TG_INFO_IMAGE_SIZE, &v));
        ck_assert_int_eq(v, TINY_S);
        OK(tg_model_info(m, TG_INFO_CHANNELS, &v));
        ck_assert_int_eq(v, TINY_C);
        OK(tg_model_info(m, TG_INFO_LATENT_DIM, &v));
        ck_assert_int_eq(v, TINY_L);
        OK(tg_model_info(m, TG_INFO_G_PARAMS, &v));
        ck_assert_int_eq(v, g);
        OK(tg_model_info(m, TG_INFO_D_PARAMS, &v));
        ck_assert_int_eq(v, d);
        OK(tg_model_info(m, TG_INFO_D_STEPS, &v));
        ck_assert_int_eq(v, 0);
        OK(tg_model_info(m, TG_INFO_G_STEPS, &v));
        ck_assert_int_eq(v, 0);
        OK(tg_model_info(m, TG_INFO_HAS_EMA, &v));
        ck_assert_int_eq(v, 1);
        OK(tg_model_info(m, TG_INFO_D_BATCH, &v));
        ck_assert_int_eq(v, 64);
        OK(tg_model_info(m, TG_INFO_G_BATCH, &v));
        ck_assert_int_eq(v, 128);
        v = 5;
        FAILS_WITH(tg_model_info(m, (tg_info)12345, &v), TG_ERR_INVALID_ARGUMENT, "unknown key");
        ck_assert_int_eq(v, 0);
    }
    /* the JSON descriptor and the checkpoint's describe the same model */
    ck_assert_str_eq(tg_model_descriptor(ms[0]), tg_model_descriptor(ms[1]));
    tg_model_destroy(ms[0]);
    tg_model_destroy(ms[1]);
}
END_TEST

/* ====================================================== hostile checkpoints */

START_TEST(hostile_truncated)
{
    size_t n;
    unsigned char *b = tu_read_file(FIX_CKPT, &n);
    const char *p = tu_path("truncated.safetensors");
    tu_write_file(p, b, n / 2);
    free(b);
    check_hostile(p, TG_ERR_FORMAT, "truncated", 1);
}
END_TEST

START_TEST(hostile_header_length)
{
    size_t n;
    unsigned char *b = tu_read_file(FIX_CKPT, &n);
    uint64_t hn = (uint64_t)n; /* larger than the n - 8 bytes that follow */
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(hn >> (8 * i));
    const char *p = tu_path("hlen.safetensors");
    tu_write_file(p, b, n);
    free(b);
    check_hostile(p, TG_ERR_FORMAT, "header length", 1);
}
END_TEST

START_TEST(hostile_dtype)
{
    size_t n;
    unsigned char *b = tu_read_file(FIX_CKPT, &n);
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--)
        hn = hn << 8 | b[i];
    ck_assert_uint_le(hn + 8, n);
    char *hdr = (char *)b + 8;
    char *f32 = NULL;
    for (size_t i = 0; i + 3 <= hn; i++)
        if (!memcmp(hdr + i, "F32", 3)) {
            f32 = hdr + i;
            break;
        }
    ck_assert_ptr_nonnull(f32);
    f32[0] = 'I';
    const char *p = tu_path("dtype.safetensors");
    tu_write_file(p, b, n);
    free(b);
    check_hostile(p, TG_ERR_DTYPE, "I32", 1);
}
END_TEST

START_TEST(hostile_shape)
{
    /* a 2-D weight [384, 10] written as [10, 384], then as [3840] */
    const char *p = tu_path("shape.safetensors");
    edit e = {.reshape = "generator.input.weight", .ndim = 2, .shape = {10, 384},
              .meta_key = "d_steps", .meta_val = "7"};
    rewrite(FIX_CKPT, p, &e);
    check_hostile(p, TG_ERR_SHAPE, "generator.input.weight", 1);
    tg_model *m = (tg_model *)(uintptr_t)0x1;
    FAILS_WITH(tg_model_load(p, &m), TG_ERR_SHAPE, "has shape [10, 384], the model needs [384, 10]");
    ck_assert_ptr_null(m);
    edit e2 = {.reshape = "discriminator.head.weight", .ndim = 1, .shape = {12},
               .meta_key = "d_steps", .meta_val = "7"};
    rewrite(FIX_CKPT, p, &e2);
    check_hostile(p, TG_ERR_SHAPE, "discriminator.head.weight", 1);
    /* the last tensor checked: the EMA, after G and D were staged */
    edit e3 = {.reshape = "ema.generator.to_rgb.weight", .ndim = 2, .shape = {6, 3},
               .meta_key = "g_steps", .meta_val = "9"};
    rewrite(FIX_CKPT, p, &e3);
    check_hostile(p, TG_ERR_SHAPE, "ema.generator.to_rgb.weight", 1);
}
END_TEST

START_TEST(hostile_missing)
{
    const char *p = tu_path("missing.safetensors");
    edit e = {.drop = "discriminator.head.bias", .meta_key = "d_steps", .meta_val = "7"};
    rewrite(FIX_CKPT, p, &e);
    check_hostile(p, TG_ERR_MISSING, "discriminator.head.bias", 1);
    /* a partial EMA is missing tensors too (not "no EMA") */
    edit e2 = {.drop = "ema.generator.to_rgb.bias", .meta_key = "d_steps", .meta_val = "7"};
    rewrite(FIX_CKPT, p, &e2);
    check_hostile(p, TG_ERR_MISSING, "ema.generator.to_rgb.bias", 1);
}
END_TEST

START_TEST(hostile_nonfinite)
{
    const char *p = tu_path("nan.safetensors");
    edit e = {.poison = "discriminator.blocks.1.mlp.fc2.weight", .poison_at = 17, .value = NAN,
              .meta_key = "d_steps", .meta_val = "7"};
    rewrite(FIX_CKPT, p, &e);
    check_hostile(p, TG_ERR_NONFINITE, "discriminator.blocks.1.mlp.fc2.weight", 1);
    edit e2 = {.poison = "ema.generator.to_rgb.bias", .poison_at = 2, .value = -INFINITY,
               .meta_key = "g_steps", .meta_val = "9"};
    rewrite(FIX_CKPT, p, &e2);
    check_hostile(p, TG_ERR_NONFINITE, "ema.generator.to_rgb.bias", 1);
}
END_TEST

START_TEST(hostile_descriptor_mismatch)
{
    tg_st_file f;
    OK(tg_st_read(FIX_CKPT, &f));
    const char *dj = tg_st_meta(&f, "descriptor");
    ck_assert_ptr_nonnull(dj);
    const char *needle = "\"embed_dim\": 24";
    const char *hit = strstr(dj, needle);
    ck_assert_msg(hit != NULL, "descriptor lacks %s: %s", needle, dj);
    size_t pre = (size_t)(hit - dj);
    char *nd = malloc(strlen(dj) + 8);
    ck_assert_ptr_nonnull(nd);
    snprintf(nd, strlen(dj) + 8, "%.*s\"embed_dim\": 48%s", (int)pre, dj, hit + strlen(needle));
    tg_st_free(&f);
    const char *p = tu_path("desc.safetensors");
    edit e = {.meta_key = "descriptor", .meta_val = nd};
    rewrite(FIX_CKPT, p, &e);
    free(nd);
    tg_model *m = (tg_model *)(uintptr_t)0x1;
    FAILS_WITH(tg_model_load(p, &m), TG_ERR_SHAPE, "generator.");
    ck_assert_ptr_null(m);
    /* the tensors themselves fit a tiny-ln model: load_weights ignores the descriptor */
    m = tiny_model(99);
    OK(tg_model_load_weights(m, p));
    tg_model_destroy(m);

    /* an invalid descriptor in the metadata: DESCRIPTOR, naming the key */
    edit e2 = {.meta_key = "descriptor",
               .meta_val = "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":-3}"};
    rewrite(FIX_CKPT, p, &e2);
    m = (tg_model *)(uintptr_t)0x1;
    FAILS_WITH(tg_model_load(p, &m), TG_ERR_DESCRIPTOR, "latent_dim");
    ck_assert_ptr_null(m);
    /* not a transgan-checkpoint */
    edit e3 = {.meta_key = "format", .meta_val = "pt"};
    rewrite(FIX_CKPT, p, &e3);
    check_hostile(p, TG_ERR_FORMAT, "transgan-checkpoint", 1);
    /* step counts that are not numbers */
    edit e4 = {.meta_key = "d_steps", .meta_val = "-1"};
    rewrite(FIX_CKPT, p, &e4);
    check_hostile(p, TG_ERR_FORMAT, "d_steps", 1);
}
END_TEST

START_TEST(hostile_no_descriptor)
{
    const char *p = tu_path("nodesc.safetensors");
    edit e = {.meta_key = "descriptor", .meta_drop = 1};
    rewrite(FIX_CKPT, p, &e);
    tg_model *m = (tg_model *)(uintptr_t)0x1;
    FAILS_WITH(tg_model_load(p, &m), TG_ERR_FORMAT, "descriptor");
    ck_assert_ptr_null(m);
    /* but the weights load into a model made from the descriptor file */
    m = NULL;
    OK(tg_model_create_from_file(FIX_DESC, 99, &m));
    OK(tg_model_load_weights(m, p));
    tg_model *ref = tiny_fixture();
    snap a, b;
    take_snap(m, &a);
    take_snap(ref, &b);
    assert_same_snap(&a, &b);
    tg_model_destroy(ref);
    tg_model_destroy(m);
}
END_TEST

START_TEST(hostile_empty_and_foreign)
{
    const char *p = tu_path("empty.safetensors");
    tu_write_file(p, "", 0);
    check_hostile(p, TG_ERR_FORMAT, "8-byte", 1);
    /* a JSON text file: its first 8 bytes would be an absurd header length */
    size_t n;
    unsigned char *b = tu_read_file(FIX_DESC, &n);
    p = tu_path("text.safetensors");
    tu_write_file(p, b, n);
    free(b);
    check_hostile(p, TG_ERR_FORMAT, "JSON descriptor", 1);
    /* 7 bytes */
    p = tu_path("short.safetensors");
    tu_write_file(p, "abcdefg", 7);
    check_hostile(p, TG_ERR_FORMAT, NULL, 1);
    /* missing file and a folder */
    check_hostile(tu_path("nonexistent.safetensors"), TG_ERR_IO, "nonexistent", 1);
    check_hostile(tu_scratch_dir(), TG_ERR_IO, NULL, 1);
}
END_TEST

START_TEST(save_load_roundtrip)
{
    tg_model *m = tiny_model(5);
    const char *p = tu_path("m.safetensors");
    OK(tg_model_save(m, p, 0));
    tg_model *m2 = NULL;
    OK(tg_model_load(p, &m2));
    snap a, b;
    take_snap(m, &a);
    take_snap(m2, &b);
    assert_same_snap(&a, &b);
    tg_model *m3 = tiny_model(6);
    OK(tg_model_load_weights(m3, p));
    take_snap(m3, &b);
    assert_same_snap(&a, &b);
    tg_model_destroy(m);
    tg_model_destroy(m2);
    tg_model_destroy(m3);
}
END_TEST

/* ================================================== non-finite inputs */

START_TEST(nonfinite_inputs)
{
    tg_model *m = tiny_fixture();
    enum { N = 3 };
    float z[N * TINY_L], img[N * TINY_PER], sc[N];
    uint8_t px[N * TINY_PER];
    OK(tg_latent_sample(m, 1, N, z, N * TINY_L));
    float bad[] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        float keep = z[N * TINY_L - 1];
        z[N * TINY_L - 1] = bad[k]; /* the last value of the last row */
        FAILS_WITH(tg_generate(m, z, N, TG_GEN_RAW, img, N * TINY_PER), TG_ERR_NONFINITE, "z");
        FAILS(tg_generate(m, z, N, TG_GEN_EMA, img, N * TINY_PER), TG_ERR_NONFINITE);
        FAILS(tg_generate_pixels(m, z, N, 0, TG_PIXEL_RGB8, px, sizeof px), TG_ERR_NONFINITE);
        z[N * TINY_L - 1] = keep;
    }
    OK(tg_generate(m, z, N, 0, img, N * TINY_PER));
    for (int k = 0; k < 3; k++) {
        float keep = img[TINY_PER + 5];
        img[TINY_PER + 5] = bad[k];
        FAILS_WITH(tg_discriminate(m, img, N, sc, N), TG_ERR_NONFINITE, "images");
        img[TINY_PER + 5] = keep;
    }
    OK(tg_discriminate(m, img, N, sc, N));
    tg_model_destroy(m);
}
END_TEST

/* ============================================================= sampling */

START_TEST(same_z_same_images)
{
    tg_model *m = tiny_fixture();
    enum { N = 5 };
    float z[N * TINY_L], a[N * TINY_PER], b[N * TINY_PER], sa[N], sb[N];
    OK(tg_latent_sample(m, 123, N, z, N * TINY_L));
    for (int fl = 0; fl < 2; fl++) {
        OK(tg_generate(m, z, N, (uint32_t)fl, a, N * TINY_PER));
        OK(tg_generate(m, z, N, (uint32_t)fl, b, N * TINY_PER));
        ck_assert_mem_eq(a, b, sizeof a);
        for (size_t i = 0; i < N * TINY_PER; i++)
            ck_assert_msg(isfinite(a[i]), "image value %zu is not finite", i);
    }
    OK(tg_discriminate(m, a, N, sa, N));
    OK(tg_discriminate(m, a, N, sb, N));
    ck_assert_mem_eq(sa, sb, sizeof sa);
    /* a second model loaded from the same file agrees */
    tg_model *m2 = tiny_fixture();
    OK(tg_generate(m2, z, N, TG_GEN_RAW, b, N * TINY_PER));
    OK(tg_generate(m, z, N, TG_GEN_RAW, a, N * TINY_PER));
    ck_assert_mem_eq(a, b, sizeof a);
    /* the fixture's EMA is not its raw generator: the flag selects weights */
    OK(tg_generate(m, z, N, TG_GEN_EMA, b, N * TINY_PER));
    ck_assert_msg(memcmp(a, b, sizeof a) != 0, "TG_GEN_EMA and TG_GEN_RAW gave the same images");
    tg_model_destroy(m2);
    tg_model_destroy(m);
}
END_TEST

/* max |a - b| relative to max |b|: the error against the scale of the row */
static double max_rel_err(const float *a, const float *b, size_t n)
{
    double w = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        w = fmax(w, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return w / (scale > 0 ? scale : 1);
}

START_TEST(batch_split_agrees)
{
    tg_model *m = tiny_fixture();
    enum { N = 38 };
    static float z[N * TINY_L], all[N * TINY_PER], part[N * TINY_PER], sa[N], sp[N];
    OK(tg_latent_sample(m, 2024, N, z, N * TINY_L));
    const char *names[] = {"EMA", "raw"};
    for (int fl = 0; fl < 2; fl++) {
        OK(tg_generate(m, z, N, (uint32_t)fl, all, N * TINY_PER));
        OK(tg_generate(m, z, 1, (uint32_t)fl, part, TINY_PER));
        OK(tg_generate(m, z + TINY_L, N - 1, (uint32_t)fl, part + TINY_PER, (N - 1) * TINY_PER));
        int bitwise = 1;
        double worst = 0;
        for (int r = 0; r < N; r++) {
            double e = max_rel_err(part + r * TINY_PER, all + r * TINY_PER, TINY_PER);
            worst = fmax(worst, e);
            ck_assert_msg(e <= 1e-5, "%s row %d: batch 1/37 vs 38 relative error %g", names[fl], r,
                          e);
            if (memcmp(part + r * TINY_PER, all + r * TINY_PER, TINY_PER * sizeof(float)))
                bitwise = 0;
        }
        fprintf(stderr, "test_api: generate %s, batches 1 + 37 vs 38: %s (worst row %.3g)\n",
                names[fl], bitwise ? "bitwise equal" : "equal within 1e-5 (not bitwise)", worst);
    }
    /* the same for the discriminator */
    OK(tg_discriminate(m, all, N, sa, N));
    OK(tg_discriminate(m, all, 1, sp, 1));
    OK(tg_discriminate(m, all + TINY_PER, N - 1, sp + 1, N - 1));
    double e = max_rel_err(sp, sa, N);
    ck_assert_msg(e <= 1e-5, "discriminate batches 1 + 37 vs 38: relative error %g", e);
    fprintf(stderr, "test_api: discriminate batches 1 + 37 vs 38: %s\n",
            memcmp(sp, sa, sizeof sa) ? "equal within 1e-5 (not bitwise)" : "bitwise equal");
    tg_model_destroy(m);
}
END_TEST

START_TEST(generate_pixels_matches)
{
    tg_model *m = tiny_fixture();
    enum { N = 6 };
    static float z[N * TINY_L], img[N * TINY_PER];
    static uint8_t a[N * TINY_S * TINY_S * 4 + 1], b[N * TINY_S * TINY_S * 4 + 1];
    OK(tg_latent_sample(m, 9, N, z, N * TINY_L));
    for (int fl = 0; fl < 2; fl++) {
        OK(tg_generate(m, z, N, (uint32_t)fl, img, N * TINY_PER));
        tg_pixel_format fmts[] = {TG_PIXEL_GRAY8, TG_PIXEL_RGB8, TG_PIXEL_RGBA8};
        for (int k = 0; k < 3; k++) {
            size_t len = (size_t)N * TINY_S * TINY_S * (size_t)fmts[k];
            memset(a, 0xAB, sizeof a);
            memset(b, 0xCD, sizeof b);
            OK(tg_generate_pixels(m, z, N, (uint32_t)fl, fmts[k], a, len));
            OK(tg_images_to_pixels(img, N, TINY_C, TINY_S, fmts[k], b, len));
            ck_assert_mem_eq(a, b, len);
            /* nothing written past out_len */
            ck_assert_uint_eq(a[len], 0xAB);
        }
    }
    tg_model_destroy(m);
}
END_TEST

static uint8_t px1(float x)
{
    uint8_t o = 0xEE;
    OK(tg_images_to_pixels(&x, 1, 1, 1, TG_PIXEL_GRAY8, &o, 1));
    return o;
}

START_TEST(pixel_values)
{
    ck_assert_uint_eq(px1(-1.0f), 0);
    ck_assert_uint_eq(px1(1.0f), 255);
    ck_assert_uint_eq(px1(0.0f), 128); /* round(127.5) */
    ck_assert_uint_eq(px1(0.003f), 128);  /* 127.88 */
    ck_assert_uint_eq(px1(-0.003f), 127); /* 127.12 */
    ck_assert_uint_eq(px1(0.5f), 191);    /* 191.25 */
    ck_assert_uint_eq(px1(-0.5f), 64);    /* 63.75 */
    ck_assert_uint_eq(px1(NAN), 0);
    ck_assert_uint_eq(px1(-NAN), 0);
    ck_assert_uint_eq(px1(INFINITY), 255);
    ck_assert_uint_eq(px1(-INFINITY), 0);
    ck_assert_uint_eq(px1(1.5f), 255);
    ck_assert_uint_eq(px1(1e30f), 255);
    ck_assert_uint_eq(px1(-1.5f), 0);
    ck_assert_uint_eq(px1(-1e30f), 0);
    ck_assert_uint_eq(px1(-1.0f + 1e-7f), 0);
    ck_assert_uint_eq(px1(nextafterf(1.0f, 0.0f)), 255);
    /* every level is reached by its centre value */
    for (int k = 0; k <= 255; k++) {
        float x = (float)k / 127.5f - 1.0f;
        ck_assert_msg(px1(x) == k, "level %d: x %.9g gives %u", k, (double)x, px1(x));
    }
}
END_TEST

/* The header documents value = round((x + 1) * 127.5): halves round away
 * from zero, whatever the caller's floating-point rounding mode. */
START_TEST(pixel_rounding_ties)
{
    int ties = 0;
    for (int k = 0; k < 255; k++) {
        float x = (2.0f * (float)k + 1.0f) / 255.0f - 1.0f;
        for (int j = 0; j < 64; j++)
            x = nextafterf(x, -2.0f);
        for (int j = 0; j < 128; j++, x = nextafterf(x, 2.0f)) {
            volatile float v = (x + 1.0f) * 127.5f; /* as the header's formula, in float */
            if (v != (float)k + 0.5f)
                continue;
            ties++;
            ck_assert_msg(px1(x) == k + 1, "x %.9g: (x+1)*127.5 = %d.5 gives %u, round() gives %d",
                          (double)x, k, px1(x), k + 1);
            break;
        }
    }
    ck_assert_int_gt(ties, 100);
    /* the caller's rounding mode does not matter */
    int modes[] = {FE_TOWARDZERO, FE_DOWNWARD, FE_UPWARD};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(fesetround(modes[i]), 0);
        uint8_t a = px1(0.003f), b = px1(-0.003f), c = px1(0.0f);
        ck_assert_int_eq(fesetround(FE_TONEAREST), 0);
        ck_assert_msg(a == 128 && b == 127 && c == 128, "rounding mode %d: %u %u %u", modes[i], a, b,
                      c);
    }
}
END_TEST

START_TEST(pixel_layouts)
{
    enum { S = 2, HW = S * S };
    /* two RGBA images, planar */
    float img[2 * 4 * HW];
    const float vals[4][HW] = {{-1.0f, 1.0f, 0.0f, 0.5f},   /* R */
                               {1.0f, -1.0f, 0.0f, -0.5f},  /* G */
                               {-1.0f, -1.0f, 0.0f, 1.0f},  /* B */
                               {0.0f, 1.0f, -1.0f, 0.25f}}; /* A */
    for (int b = 0; b < 2; b++)
        for (int c = 0; c < 4; c++)
            for (int p = 0; p < HW; p++)
                img[(b * 4 + c) * HW + p] = b ? -vals[c][p] : vals[c][p];
    uint8_t out[2 * HW * 4];

    /* RGBA -> RGBA keeps every channel; RGBA -> RGB drops alpha */
    OK(tg_images_to_pixels(img, 2, 4, S, TG_PIXEL_RGBA8, out, sizeof out));
    for (int b = 0; b < 2; b++)
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < 4; c++)
                ck_assert_uint_eq(out[(b * HW + p) * 4 + c], px1(img[(b * 4 + c) * HW + p]));
    OK(tg_images_to_pixels(img, 2, 4, S, TG_PIXEL_RGB8, out, 2 * HW * 3));
    for (int b = 0; b < 2; b++)
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < 3; c++)
                ck_assert_uint_eq(out[(b * HW + p) * 3 + c], px1(img[(b * 4 + c) * HW + p]));

    /* RGB (the first three planes of each image, re-packed) -> GRAY: BT.601 luma */
    float rgb[2 * 3 * HW];
    for (int b = 0; b < 2; b++)
        memcpy(rgb + b * 3 * HW, img + b * 4 * HW, 3 * HW * sizeof(float));
    OK(tg_images_to_pixels(rgb, 2, 3, S, TG_PIXEL_GRAY8, out, 2 * HW));
    for (int b = 0; b < 2; b++)
        for (int p = 0; p < HW; p++) {
            const float *x = rgb + b * 3 * HW;
            double y = 0.299 * x[p] + 0.587 * x[HW + p] + 0.114 * x[2 * HW + p];
            double v = (y + 1.0) * 127.5;
            int want = v <= 0 ? 0 : v >= 255 ? 255 : (int)floor(v + 0.5);
            ck_assert_msg(abs((int)out[b * HW + p] - want) <= 0, "luma image %d pixel %d: %u want %d",
                          b, p, out[b * HW + p], want);
        }
    /* the familiar values: pure red 76, green 150, blue 29 (from -1..1 planes) */
    float red[3] = {1, -1, -1}, green[3] = {-1, 1, -1}, blue[3] = {-1, -1, 1}, white[3] = {1, 1, 1};
    uint8_t g;
    OK(tg_images_to_pixels(red, 1, 3, 1, TG_PIXEL_GRAY8, &g, 1));
    ck_assert_uint_eq(g, 76);
    OK(tg_images_to_pixels(green, 1, 3, 1, TG_PIXEL_GRAY8, &g, 1));
    ck_assert_uint_eq(g, 150);
    OK(tg_images_to_pixels(blue, 1, 3, 1, TG_PIXEL_GRAY8, &g, 1));
    ck_assert_uint_eq(g, 29);
    OK(tg_images_to_pixels(white, 1, 3, 1, TG_PIXEL_GRAY8, &g, 1));
    ck_assert_uint_eq(g, 255);
    /* RGBA -> GRAY ignores alpha */
    OK(tg_images_to_pixels(img, 2, 4, S, TG_PIXEL_GRAY8, out + 2 * HW, 2 * HW));
    ck_assert_mem_eq(out, out + 2 * HW, 2 * HW);

    /* grey -> RGB / RGBA replicates, alpha 255 */
    float grey[2 * HW] = {-1.0f, 1.0f, 0.0f, 0.5f, -0.5f, 0.25f, 2.0f, NAN};
    OK(tg_images_to_pixels(grey, 2, 1, S, TG_PIXEL_RGBA8, out, 2 * HW * 4));
    for (int i = 0; i < 2 * HW; i++) {
        uint8_t w = px1(grey[i]);
        ck_assert_uint_eq(out[i * 4 + 0], w);
        ck_assert_uint_eq(out[i * 4 + 1], w);
        ck_assert_uint_eq(out[i * 4 + 2], w);
        ck_assert_uint_eq(out[i * 4 + 3], 255);
    }
    OK(tg_images_to_pixels(grey, 2, 1, S, TG_PIXEL_RGB8, out, 2 * HW * 3));
    for (int i = 0; i < 2 * HW; i++)
        for (int c = 0; c < 3; c++)
            ck_assert_uint_eq(out[i * 3 + c], px1(grey[i]));
    /* RGB -> RGBA: alpha 255 */
    OK(tg_images_to_pixels(rgb, 2, 3, S, TG_PIXEL_RGBA8, out, 2 * HW * 4));
    for (int b = 0; b < 2; b++)
        for (int p = 0; p < HW; p++) {
            for (int c = 0; c < 3; c++)
                ck_assert_uint_eq(out[(b * HW + p) * 4 + c], px1(rgb[(b * 3 + c) * HW + p]));
            ck_assert_uint_eq(out[(b * HW + p) * 4 + 3], 255);
        }
    /* grey -> grey is the identity conversion */
    OK(tg_images_to_pixels(grey, 2, 1, S, TG_PIXEL_GRAY8, out, 2 * HW));
    for (int i = 0; i < 2 * HW; i++)
        ck_assert_uint_eq(out[i], px1(grey[i]));
}
END_TEST

/* ================================================================ latent */

START_TEST(latent_sampler)
{
    tg_model *m = tiny_model(1);
    enum { N = 10000, NZ = N * TINY_L }; /* 100k draws */
    float *a = malloc(NZ * sizeof *a), *b = malloc(NZ * sizeof *b);
    ck_assert(a && b);
    OK(tg_latent_sample(m, 31337, N, a, NZ));
    OK(tg_latent_sample(m, 31337, N, b, NZ));
    ck_assert_mem_eq(a, b, NZ * sizeof *a);
    /* the same on another model with the same latent_dim */
    tg_model *m2 = tiny_fixture();
    OK(tg_latent_sample(m2, 31337, N, b, NZ));
    ck_assert_mem_eq(a, b, NZ * sizeof *a);
    tg_model_destroy(m2);
    OK(tg_latent_sample(m, 31338, N, b, NZ));
    size_t same = 0;
    for (size_t i = 0; i < NZ; i++)
        same += a[i] == b[i];
    ck_assert_msg(same < 10, "seeds 31337 and 31338 share %zu of %d values", same, NZ);
    double s = 0, s2 = 0, s3 = 0, s4 = 0;
    size_t within1 = 0;
    for (size_t i = 0; i < NZ; i++) {
        ck_assert(isfinite(a[i]));
        double x = a[i];
        s += x, s2 += x * x, s3 += x * x * x, s4 += x * x * x * x;
        within1 += fabs(x) < 1.0;
    }
    double mean = s / NZ, var = s2 / NZ - mean * mean, sd = sqrt(var);
    ck_assert_msg(fabs(mean) < 0.05, "mean %g", mean);
    ck_assert_msg(fabs(sd - 1.0) < 0.05, "std %g", sd);
    ck_assert_msg(fabs(s3 / NZ) < 0.1, "skew %g", s3 / NZ);
    ck_assert_msg(fabs(s4 / NZ - 3.0) < 0.2, "kurtosis %g", s4 / NZ);
    double frac = (double)within1 / NZ; /* 0.6827 for N(0, 1) */
    ck_assert_msg(fabs(frac - 0.6827) < 0.01, "P(|z| < 1) = %g", frac);
    /* z_len larger than needed is fine and nothing beyond n * L is written */
    b[TINY_L] = 12345.0f;
    OK(tg_latent_sample(m, 31337, 1, b, NZ));
    ck_assert_mem_eq(a, b, TINY_L * sizeof *a);
    ck_assert(b[TINY_L] == 12345.0f);
    free(a), free(b);
    tg_model_destroy(m);
}
END_TEST

/* ==================================================== mixed-up files */

/* A descriptor given to the checkpoint readers, and a checkpoint given to
 * tg_model_create_from_file, say what the file looks like and what to call. */
START_TEST(descriptor_checkpoint_mixups)
{
    check_hostile(FIX_DESC, TG_ERR_FORMAT, "looks like a JSON descriptor", 1);
    check_hostile(FIX_DESC, TG_ERR_FORMAT, "use tg_model_create_from_file", 1);
    const char *p = tu_path("blank.json");
    tu_write_file(p, " \n{}", 4); /* shorter than a header length */
    check_hostile(p, TG_ERR_FORMAT, "use tg_model_create_from_file", 1);

    tg_model *m = (tg_model *)(uintptr_t)0x1;
    tg_status st = tg_model_create_from_file(FIX_CKPT, 1, &m);
    ck_assert_int_ne(st, TG_OK);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(tg_last_error(), "looks like a safetensors checkpoint") &&
                      strstr(tg_last_error(), "use tg_model_load") &&
                      strstr(tg_last_error(), FIX_CKPT),
                  "message: %s", tg_last_error());
    /* the hint is not given for a broken descriptor, nor for binary junk */
    p = tu_path("broken.json");
    tu_write_file(p, "{\"name\":", 8);
    FAILS(tg_model_create_from_file(p, 1, &m), TG_ERR_DESCRIPTOR);
    ck_assert_ptr_null(strstr(tg_last_error(), "tg_model_load"));
    p = tu_path("junk.bin");
    tu_write_file(p, "\x05\0\0\0\0\0\0\0[1]  ", 13); /* header length 5, but "[1]  " is no JSON object */
    st = tg_model_create_from_file(p, 1, &m);
    ck_assert_int_ne(st, TG_OK);
    ck_assert_ptr_null(strstr(tg_last_error(), "tg_model_load"));
}
END_TEST

/* ------------------------------------------------ class-conditional API */

/* cond-ln: tiny-ln's sizes with 3 named classes (tests/fixtures/cond-ln.json) */
#define COND_CKPT "tests/fixtures/cond-ln.safetensors"
static const char *COND_JSON =
    "{\"format\":\"transgan\",\"format_version\":1,\"image\":{\"size\":8},\"latent_dim\":10,"
    "\"num_classes\":3,\"class_names\":[\"boot\",\"bag\",\"shirt\"],"
    "\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,2],\"heads\":3,\"mlp_ratio\":2},"
    "\"discriminator\":{\"patch_size\":2,\"embed_dim\":12,\"depth\":2,\"heads\":3,\"mlp_ratio\":2},"
    "\"training\":{\"d_batch\":2,\"g_batch\":3,\"n_critic\":1,\"diffaug\":[]}}";

/* the same without classes */
static const char *UNCOND_JSON =
    "{\"format\":\"transgan\",\"format_version\":1,\"image\":{\"size\":8},\"latent_dim\":10,"
    "\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,2],\"heads\":3,\"mlp_ratio\":2},"
    "\"discriminator\":{\"patch_size\":2,\"embed_dim\":12,\"depth\":2,\"heads\":3,\"mlp_ratio\":2},"
    "\"training\":{\"d_batch\":2,\"g_batch\":3,\"n_critic\":1,\"diffaug\":[]}}";

START_TEST(cond_info_and_names)
{
    tg_model *m = NULL, *u = NULL;
    int64_t v = -1;
    OK(tg_model_load(COND_CKPT, &m));
    OK(tg_model_info(m, TG_INFO_NUM_CLASSES, &v));
    ck_assert_int_eq(v, 3);
    ck_assert_str_eq(tg_model_class_name(m, 0), "boot");
    ck_assert_str_eq(tg_model_class_name(m, 2), "shirt");
    ck_assert_ptr_null(tg_model_class_name(m, 3));
    ck_assert_ptr_null(tg_model_class_name(m, -1));
    ck_assert_ptr_null(tg_model_class_name(NULL, 0));
    /* an old, unconditional checkpoint: 0 classes, no names */
    OK(tg_model_load(FIX_CKPT, &u));
    OK(tg_model_info(u, TG_INFO_NUM_CLASSES, &v));
    ck_assert_int_eq(v, 0);
    ck_assert_ptr_null(tg_model_class_name(u, 0));
    /* labels where they do not belong, out of range */
    float z[2 * TINY_L] = {0}, out[2 * TINY_PER], sc[2];
    int32_t good[2] = {0, 2}, bad[2] = {0, 3}, neg[2] = {-1, 0};
    FAILS_WITH(tg_generate_labels(u, z, good, 2, 0, out, 2 * TINY_PER), TG_ERR_INVALID_ARGUMENT,
               "unconditional");
    FAILS_WITH(tg_generate_labels(m, z, bad, 2, 0, out, 2 * TINY_PER), TG_ERR_INVALID_ARGUMENT,
               "labels[1] = 3 is out of range");
    FAILS_WITH(tg_generate_labels(m, z, neg, 2, 0, out, 2 * TINY_PER), TG_ERR_INVALID_ARGUMENT,
               "labels[0] = -1");
    uint8_t px[2 * TINY_S * TINY_S];
    FAILS_WITH(tg_generate_pixels_labels(m, z, bad, 2, 0, TG_PIXEL_GRAY8, px, sizeof px),
               TG_ERR_INVALID_ARGUMENT, "out of range");
    FAILS_WITH(tg_discriminate_labels(u, out, good, 2, sc, 2), TG_ERR_INVALID_ARGUMENT,
               "unconditional");
    FAILS_WITH(tg_discriminate_labels(m, out, bad, 2, sc, 2), TG_ERR_INVALID_ARGUMENT,
               "out of range");
    /* unconditional models: the labels calls with NULL are the old calls */
    float a[2 * TINY_PER], b[2 * TINY_PER];
    OK(tg_latent_sample(u, 5, 2, z, 2 * TINY_L));
    OK(tg_generate(u, z, 2, 0, a, 2 * TINY_PER));
    OK(tg_generate_labels(u, z, NULL, 2, 0, b, 2 * TINY_PER));
    ck_assert_mem_eq(a, b, sizeof a);
    tg_model_destroy(m);
    tg_model_destroy(u);
}
END_TEST

/* labels = NULL: each image's class comes from its z alone, so it does not
 * depend on the batch; it is one of the classes (the image equals the one
 * asked for with that class). */
START_TEST(cond_default_labels)
{
    tg_model *m = NULL;
    OK(tg_model_load(COND_CKPT, &m));
    enum { N = 8 };
    float z[N * TINY_L], a[N * TINY_PER], b[N * TINY_PER], one[TINY_PER];
    OK(tg_latent_sample(m, 77, N, z, sizeof z / sizeof *z));
    OK(tg_generate(m, z, N, 0, a, N * TINY_PER));
    OK(tg_generate_labels(m, z, NULL, N, 0, b, N * TINY_PER));
    ck_assert_mem_eq(a, b, sizeof a);
    int seen[3] = {0};
    for (int i = 0; i < N; i++) {
        OK(tg_generate_labels(m, z + i * TINY_L, NULL, 1, 0, one, TINY_PER));
        double e = 0;
        for (int k = 0; k < TINY_PER; k++)
            e = fmax(e, fabs(one[k] - a[i * TINY_PER + k]));
        ck_assert_msg(e < 1e-5, "image %d depends on its batch (%g)", i, e);
        int match = -1;
        for (int32_t c = 0; c < 3; c++) {
            OK(tg_generate_labels(m, z + i * TINY_L, &c, 1, 0, one, TINY_PER));
            double d = 0;
            for (int k = 0; k < TINY_PER; k++)
                d = fmax(d, fabs(one[k] - a[i * TINY_PER + k]));
            if (d < 1e-5)
                match = c;
        }
        ck_assert_msg(match >= 0, "image %d is none of the classes", i);
        seen[match]++;
    }
    ck_assert_msg(seen[0] + seen[1] + seen[2] == N && (!!seen[0] + !!seen[1] + !!seen[2]) >= 2,
                  "the default classes of 8 latents are all the same");
    tg_model_destroy(m);
}
END_TEST

static void cond_batch(float *x, int32_t *y)
{
    tu_seed(5);
    for (int i = 0; i < 2 * TINY_PER; i++)
        x[i] = (float)(2.0 * (i % 7) / 6.0 - 1.0);
    y[0] = 2, y[1] = 0;
}

START_TEST(cond_train_step)
{
    tg_model *m = NULL, *m2 = NULL, *u = NULL;
    OK(tg_model_create(COND_JSON, 1, &m));
    OK(tg_model_create(COND_JSON, 1, &m2));
    OK(tg_model_create(UNCOND_JSON, 1, &u));
    float x[2 * TINY_PER];
    int32_t y[2], bad[3] = {0, 1, 3};
    cond_batch(x, y);
    tg_train_stats st = {.struct_size = sizeof st};
    tg_train_labels tl = {.struct_size = sizeof tl, .real = y};
    /* missing labels, labels on an unconditional model, bad ranges, struct_size */
    FAILS_WITH(tg_train_step(m, x, 2, NULL, NULL, NULL, &st), TG_ERR_INVALID_ARGUMENT,
               "tg_train_step_labels");
    FAILS_WITH(tg_train_step_labels(m, x, 2, NULL, NULL, NULL, NULL, &st),
               TG_ERR_INVALID_ARGUMENT, "labels->real must hold");
    tg_train_labels none = {.struct_size = sizeof none};
    FAILS_WITH(tg_train_step_labels(m, x, 2, &none, NULL, NULL, NULL, &st),
               TG_ERR_INVALID_ARGUMENT, "class-conditional");
    tg_train_labels t2 = {.struct_size = 4, .real = y};
    FAILS_WITH(tg_train_step_labels(m, x, 2, &t2, NULL, NULL, NULL, &st),
               TG_ERR_INVALID_ARGUMENT, "struct_size");
    tg_train_labels t3 = {.struct_size = sizeof t3, .real = y, .fake_g = bad};
    FAILS_WITH(tg_train_step_labels(m, x, 2, &t3, NULL, NULL, NULL, &st),
               TG_ERR_INVALID_ARGUMENT, "labels->fake_g[2] = 3 is out of range");
    tg_train_labels t4 = {.struct_size = sizeof t4, .real = bad + 1};
    FAILS_WITH(tg_train_step_labels(m, x, 2, &t4, NULL, NULL, NULL, &st),
               TG_ERR_INVALID_ARGUMENT, "labels->real[1] = 3");
    FAILS_WITH(tg_train_step_labels(u, x, 2, &tl, NULL, NULL, NULL, &st),
               TG_ERR_INVALID_ARGUMENT, "unconditional");
    /* the failures changed nothing: no training state was even made */
    int64_t v = -1;
    OK(tg_model_info(m, TG_INFO_D_STEPS, &v));
    ck_assert_int_eq(v, 0);
    ck_assert_ptr_null(m->trainer);
    ck_assert_ptr_null(m->dnet.adam_m);
    /* an unconditional model takes NULL labels (the plain step) */
    tg_train_stats su = {.struct_size = sizeof su};
    OK(tg_train_step_labels(u, x, 2, &none, NULL, NULL, NULL, &su));
    ck_assert_uint_eq(su.d_steps, 1);
    /* steps with drawn fake classes are deterministic and change the class tables */
    float *cls0 = malloc(m->disc.P.total * sizeof(float));
    memcpy(cls0, m->dnet.w, m->disc.P.total * sizeof(float));
    for (int k = 0; k < 2; k++) {
        OK(tg_train_step_labels(m, x, 2, &tl, NULL, NULL, NULL, &st));
        OK(tg_train_step_labels(m2, x, 2, &tl, NULL, NULL, NULL, &st));
    }
    ck_assert_uint_eq(st.d_steps, 2);
    ck_assert(isfinite(st.d_loss) && isfinite(st.gp) && st.gp > 0 && st.g_updated);
    ck_assert_mem_eq(m->dnet.w, m2->dnet.w, m->disc.P.total * sizeof(float));
    ck_assert_mem_eq(m->gnet.w, m2->gnet.w, m->gen.P.total * sizeof(float));
    ck_assert_mem_eq(&m->rng, &m2->rng, sizeof m->rng);
    size_t off = m->disc.proj, n = 3 * (size_t)m->disc.C;
    ck_assert_msg(memcmp(cls0 + off, m->dnet.w + off, n * sizeof(float)) != 0,
                  "the projection's class embedding did not change");
    /* nothing of the caller's stays behind in the model */
    ck_assert_ptr_null(m->trainer->da.labels);
    ck_assert_ptr_null(m->trainer->ga.labels);
    /* given fake classes are used: other classes give another result */
    int32_t fd[2] = {1, 1}, fg[3] = {0, 1, 2};
    tg_train_labels t5 = {.struct_size = sizeof t5, .real = y, .fake_d = fd, .fake_g = fg};
    OK(tg_train_step_labels(m, x, 2, &t5, NULL, NULL, NULL, &st));
    OK(tg_train_step_labels(m2, x, 2, &tl, NULL, NULL, NULL, &st));
    ck_assert_msg(memcmp(m->dnet.w, m2->dnet.w, m->disc.P.total * sizeof(float)) != 0,
                  "the given fake classes were ignored");
    free(cls0);
    tg_model_destroy(m);
    tg_model_destroy(m2);
    tg_model_destroy(u);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("api");

    TCase *tc = tcase_create("contract");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, version_and_status_strings);
    tcase_add_test(tc, null_and_no_model);
    tcase_add_test(tc, null_buffers_with_model);
    tcase_add_test(tc, bad_flags);
    tcase_add_test(tc, short_buffers);
    tcase_add_test(tc, impossible_sizes);
    tcase_add_test(tc, zero_n_is_fine);
    tcase_add_test(tc, last_error_is_thread_local);
    suite_add_tcase(s, tc);

    tc = tcase_create("models");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, bad_descriptors);
    tcase_add_test(tc, create_from_file);
    tcase_add_test(tc, seeds);
    tcase_add_test(tc, info_tiny);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, hostile_truncated);
    tcase_add_test(tc, hostile_header_length);
    tcase_add_test(tc, hostile_dtype);
    tcase_add_test(tc, hostile_shape);
    tcase_add_test(tc, hostile_missing);
    tcase_add_test(tc, hostile_nonfinite);
    tcase_add_test(tc, hostile_descriptor_mismatch);
    tcase_add_test(tc, hostile_no_descriptor);
    tcase_add_test(tc, hostile_empty_and_foreign);
    tcase_add_test(tc, save_load_roundtrip);
    tcase_add_test(tc, descriptor_checkpoint_mixups);
    suite_add_tcase(s, tc);

    tc = tcase_create("sampling");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, nonfinite_inputs);
    tcase_add_test(tc, same_z_same_images);
    tcase_add_test(tc, batch_split_agrees);
    tcase_add_test(tc, generate_pixels_matches);
    tcase_add_test(tc, pixel_values);
    tcase_add_test(tc, pixel_rounding_ties);
    tcase_add_test(tc, pixel_layouts);
    tcase_add_test(tc, latent_sampler);
    tcase_add_test(tc, thread_count_option);
    tcase_add_test(tc, steady_state_allocates_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("conditional");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, cond_info_and_names);
    tcase_add_test(tc, cond_default_labels);
    tcase_add_test(tc, cond_train_step);
    suite_add_tcase(s, tc);

    return tu_run(s) ? 1 : 0;
}
