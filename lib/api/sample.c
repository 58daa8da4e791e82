/* Public API: latent noise, sampling images, 8-bit pixels, scoring. */
#include <math.h>

#include "api.h"

/* Images are computed in slices of at most this many floats of workspace
 * (~128 MiB), so any n works in bounded memory. */
#define TG_SLICE_BUDGET_FLOATS ((size_t)32 << 20)
#define TG_SLICE_MAX 64

static int all_finite(const float *x, size_t n)
{
    int ok = 1;
#pragma omp parallel for reduction(& : ok) schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        ok &= isfinite(x[i]) != 0;
    return ok;
}

/* n * k floats must fit in len, without overflow */
static tg_status check_len(const char *fn, const char *what, size_t n, size_t k, size_t len)
{
    size_t need;
    if (tg_mul_overflow(n, k, &need))
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "%s: n = %zu is too large", fn, n);
    if (len < need)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "%s: %s holds %zu values, %zu are needed", fn,
                       what, len, need);
    return TG_OK;
}

TG_API tg_status tg_latent_sample(const tg_model *m, uint64_t seed, size_t n, float *z,
                                  size_t z_len)
{
    tg_error_clear();
    if (!m || (!z && n))
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_latent_sample: %s is NULL", !m ? "model" : "z");
    TG_TRY(check_len("tg_latent_sample", "z", n, (size_t)m->desc.latent_dim, z_len));
    tg_rng r;
    tg_rng_seed(&r, seed);
    for (size_t i = 0; i < n * (size_t)m->desc.latent_dim; i++)
        z[i] = (float)tg_rng_normal(&r);
    return TG_OK;
}

static int64_t gen_slice(const tg_model *m, size_t n)
{
    size_t per = tg_gen_infer_floats(&m->gen, 2) - tg_gen_infer_floats(&m->gen, 1);
    size_t s = per ? TG_SLICE_BUDGET_FLOATS / per : TG_SLICE_MAX;
    s = TG_MAX((size_t)1, TG_MIN(s, (size_t)TG_SLICE_MAX));
    return (int64_t)TG_MIN(s, n);
}

/* A model workspace of at least `need` floats: grown (the only allocation)
 * when a larger batch is first seen, kept for later calls. */
static tg_status grow(float **buf, size_t *floats, size_t need)
{
    if (need <= *floats)
        return TG_OK;
    free(*buf);
    *floats = 0;
    *buf = tg_alloc(need * sizeof(float));
    if (!*buf)
        return TG_ERR_OUT_OF_MEMORY;
    *floats = need;
    return TG_OK;
}

/* Labels given to a call: none on an unconditional model, each in range on
 * a conditional one (docs/SPECIFICATION.md "Class conditioning"). */
static tg_status check_labels(const tg_model *m, const char *fn, const int32_t *labels, size_t n)
{
    int K = m->desc.num_classes;
    if (!labels)
        return TG_OK;
    if (K == 0)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "%s: labels given, but the model is unconditional "
                       "(num_classes = 0); pass labels = NULL", fn);
    return tg_api_labels_in_range(fn, "labels", labels, n, K);
}

tg_status tg_api_labels_in_range(const char *fn, const char *what, const int32_t *labels,
                                 size_t n, int K)
{
    for (size_t i = 0; labels && i < n; i++)
        if (labels[i] < 0 || labels[i] >= K)
            return tg_fail(TG_ERR_INVALID_ARGUMENT, "%s: %s[%zu] = %d is out of range "
                           "(the model has num_classes = %d: 0 .. %d)", fn, what, i,
                           (int)labels[i], K, K - 1);
    return TG_OK;
}

/* The class of latent z[L] when the caller gives none: a hash of its float
 * bits, so the same z always gives the same class (include/transgan.h,
 * tg_generate_labels). FNV-1a over the bytes, then splitmix64's finaliser. */
static int32_t label_of_z(const float *z, size_t L, int K)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)z;
    for (size_t i = 0; i < L * sizeof(float); i++)
        h = (h ^ p[i]) * 1099511628211ull;
    h ^= h >> 30, h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27, h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return (int32_t)(h % (uint64_t)K);
}

static tg_status generate(tg_model *m, const char *fn, const float *z, const int32_t *labels,
                          size_t n, uint32_t flags, float *out, size_t out_len)
{
    tg_error_clear();
    if (!m || (n && (!z || !out)))
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                       !m ? "model" : !z ? "z" : "out");
    if (flags & ~TG_GEN_RAW)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", fn, flags);
    const float *W = (m->gnet.ema && !(flags & TG_GEN_RAW)) ? m->gnet.ema : m->gnet.w;
    if (!W) /* sampling only, the EMA kept */
        return tg_api_sampling_only(fn, "raw generator (TG_GEN_RAW): it kept the EMA "
                                    "generator only");
    size_t L = (size_t)m->desc.latent_dim, per = (size_t)m->desc.channels * m->desc.image_size *
                                                 m->desc.image_size;
    TG_TRY(check_len(fn, "out", n, per, out_len));
    TG_TRY(check_labels(m, fn, labels, n));
    if (n == 0)
        return TG_OK;
    if (!all_finite(z, n * L))
        return tg_fail(TG_ERR_NONFINITE, "%s: z contains NaN or infinity", fn);

    int64_t slice = gen_slice(m, n);
    TG_TRY(grow(&m->g_ws, &m->g_ws_floats, tg_gen_infer_floats(&m->gen, slice)));
    uint8_t *const *masks = tg_model_masks(m, m->gnet.steps);
    int32_t drawn[TG_SLICE_MAX]; /* a slice's classes when the caller gives none */
    for (size_t i = 0; i < n; i += (size_t)slice) {
        int64_t b = (int64_t)TG_MIN((size_t)slice, n - i);
        const int32_t *lab = labels ? labels + i : NULL;
        if (m->desc.num_classes && !labels) {
            for (int64_t k = 0; k < b; k++)
                drawn[k] = label_of_z(z + (i + (size_t)k) * L, L, m->desc.num_classes);
            lab = drawn;
        }
        TG_TRY(tg_gen_infer_labels(m->dnn, &m->gen, W, z + i * L, lab, b, masks, out + i * per,
                                   m->g_ws));
    }
    if (!all_finite(out, n * per))
        return tg_fail(TG_ERR_NONFINITE, "%s: the generator produced NaN or infinity", fn);
    return TG_OK;
}

TG_API tg_status tg_generate(tg_model *m, const float *z, size_t n, uint32_t flags, float *out,
                             size_t out_len)
{
    TG_RETURN_ON_MODEL_THREADS(m, generate(m, "tg_generate", z, NULL, n, flags, out, out_len));
}

TG_API tg_status tg_generate_labels(tg_model *m, const float *z, const int32_t *labels, size_t n,
                                    uint32_t flags, float *out, size_t out_len)
{
    TG_RETURN_ON_MODEL_THREADS(m, generate(m, "tg_generate_labels", z, labels, n, flags, out,
                                           out_len));
}

static uint8_t to_u8(float x)
{
    float v = (x + 1.0f) * 127.5f;
    if (!(v > 0.0f)) /* also NaN */
        return 0;
    if (v >= 255.0f)
        return 255;
    return (uint8_t)roundf(v); /* round(): halves away from zero, whatever the FP rounding mode */
}

TG_API tg_status tg_images_to_pixels(const float *img, size_t n, int channels, int size,
                                     tg_pixel_format format, uint8_t *out, size_t out_len)
{
    tg_error_clear();
    if (n && (!img || !out))
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_images_to_pixels: %s is NULL",
                       !img ? "images" : "out");
    if (channels != 1 && channels != 3 && channels != 4)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_images_to_pixels: channels must be 1, 3 or 4 (got %d)", channels);
    if (size < 1 || size > 65536)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_images_to_pixels: bad image size %d", size);
    int bpp = (int)format;
    if (bpp != 1 && bpp != 3 && bpp != 4)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_images_to_pixels: unknown pixel format %d", bpp);
    size_t hw = (size_t)size * (size_t)size, per;
    if (tg_mul_overflow(hw, (size_t)bpp, &per))
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_images_to_pixels: size too large");
    TG_TRY(check_len("tg_images_to_pixels", "out", n, per, out_len));
    for (size_t b = 0; b < n; b++) {
        const float *x = img + b * hw * (size_t)channels;
        uint8_t *o = out + b * per;
        for (size_t p = 0; p < hw; p++) {
            float r = x[p], g = r, bl = r, a = 1.0f;
            if (channels >= 3)
                g = x[hw + p], bl = x[2 * hw + p];
            if (channels == 4)
                a = x[3 * hw + p];
            if (bpp == 1) {
                o[p] = to_u8(channels == 1 ? r : 0.299f * r + 0.587f * g + 0.114f * bl);
            } else {
                o[p * bpp] = to_u8(r);
                o[p * bpp + 1] = to_u8(g);
                o[p * bpp + 2] = to_u8(bl);
                if (bpp == 4)
                    o[p * bpp + 3] = to_u8(a);
            }
        }
    }
    return TG_OK;
}

static tg_status generate_pixels(tg_model *m, const char *fn, const float *z,
                                 const int32_t *labels, size_t n, uint32_t flags,
                                 tg_pixel_format format, uint8_t *out, size_t out_len)
{
    tg_error_clear();
    if (!m || (n && (!z || !out)))
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                       !m ? "model" : !z ? "z" : "out");
    int bpp = (int)format, S = m->desc.image_size, ch = m->desc.channels;
    if (bpp != 1 && bpp != 3 && bpp != 4)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "%s: unknown pixel format %d", fn, bpp);
    if (flags & ~TG_GEN_RAW)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", fn, flags);
    TG_TRY(check_len(fn, "out", n, (size_t)S * S * bpp, out_len));
    TG_TRY(check_labels(m, fn, labels, n));
    /* one slice of float images at a time keeps memory bounded */
    size_t per = (size_t)ch * S * S, L = (size_t)m->desc.latent_dim;
    size_t slice = (size_t)gen_slice(m, n ? n : 1);
    /* the float slice lives in the model: no allocation in a steady loop */
    TG_TRY(grow(&m->px_ws, &m->px_ws_floats, slice * per));
    float *img = m->px_ws;
    tg_status st = TG_OK;
    for (size_t i = 0; i < n && st == TG_OK; i += slice) {
        size_t b = TG_MIN(slice, n - i);
        st = tg_generate_labels(m, z + i * L, labels ? labels + i : NULL, b, flags, img, b * per);
        if (st == TG_OK)
            st = tg_images_to_pixels(img, b, ch, S, format, out + i * (size_t)S * S * bpp,
                                     b * (size_t)S * S * bpp);
    }
    return st;
}

TG_API tg_status tg_generate_pixels(tg_model *m, const float *z, size_t n, uint32_t flags,
                                    tg_pixel_format format, uint8_t *out, size_t out_len)
{
    return generate_pixels(m, "tg_generate_pixels", z, NULL, n, flags, format, out, out_len);
}

TG_API tg_status tg_generate_pixels_labels(tg_model *m, const float *z, const int32_t *labels,
                                           size_t n, uint32_t flags, tg_pixel_format format,
                                           uint8_t *out, size_t out_len)
{
    return generate_pixels(m, "tg_generate_pixels_labels", z, labels, n, flags, format, out,
                           out_len);
}

/* Images per tg_disc_infer call: as many as the workspace budget allows, up
 * to TG_SLICE_MAX (smaller slices, 8-32 images, measured slower on TransGAN-S:
 * the matmuls get shorter and the weights are read once per slice). */
static int64_t disc_slice(const tg_model *m, size_t n)
{
    size_t per = tg_disc_infer_floats(&m->disc, 2) - tg_disc_infer_floats(&m->disc, 1);
    size_t s = per ? TG_SLICE_BUDGET_FLOATS / per : TG_SLICE_MAX;
    s = TG_MAX((size_t)1, TG_MIN(s, (size_t)TG_SLICE_MAX));
    return (int64_t)TG_MIN(s, n);
}

static tg_status discriminate(tg_model *m, const char *fn, const float *images,
                              const int32_t *labels, size_t n, float *scores, size_t scores_len)
{
    tg_error_clear();
    if (!m || (n && (!images || !scores)))
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                       !m ? "model" : !images ? "images" : "scores");
    if (m->sampling_only)
        return tg_api_sampling_only(fn, "discriminator");
    TG_TRY(check_len(fn, "scores", n, 1, scores_len));
    TG_TRY(check_labels(m, fn, labels, n));
    size_t per = (size_t)m->desc.channels * m->desc.image_size * m->desc.image_size;
    size_t total;
    if (tg_mul_overflow(n, per, &total))
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "%s: n = %zu is too large", fn, n);
    if (n == 0)
        return TG_OK;
    if (!all_finite(images, total))
        return tg_fail(TG_ERR_NONFINITE, "%s: images contain NaN or infinity", fn);
    int64_t slice = disc_slice(m, n);
    TG_TRY(grow(&m->d_ws, &m->d_ws_floats, tg_disc_infer_floats(&m->disc, slice)));
    for (size_t i = 0; i < n; i += (size_t)slice) {
        int64_t b = (int64_t)TG_MIN((size_t)slice, n - i);
        /* labels NULL: without the projection term */
        TG_TRY(tg_disc_infer(m->dnn, &m->disc, m->dnet.w, images + i * per, b,
                             labels ? labels + i : NULL, scores + i, m->d_ws));
    }
    if (!all_finite(scores, n))
        return tg_fail(TG_ERR_NONFINITE, "%s: the discriminator produced NaN or infinity", fn);
    return TG_OK;
}

TG_API tg_status tg_discriminate(tg_model *m, const float *images, size_t n, float *scores,
                                 size_t scores_len)
{
    TG_RETURN_ON_MODEL_THREADS(m, discriminate(m, "tg_discriminate", images, NULL, n, scores,
                                               scores_len));
}

TG_API tg_status tg_discriminate_labels(tg_model *m, const float *images, const int32_t *labels,
                                        size_t n, float *scores, size_t scores_len)
{
    TG_RETURN_ON_MODEL_THREADS(m, discriminate(m, "tg_discriminate_labels", images, labels, n,
                                               scores, scores_len));
}
