/* Public API: creating, describing and destroying models. */
#include <errno.h>
#include <stdio.h>

#include "api.h"

tg_status tg_api_model_new(tg_desc *desc, tg_model **out)
{
    return tg_model_build(desc, tg_desc_to_json(desc), out);
}

TG_API tg_status tg_model_create(const char *descriptor_json, uint64_t seed, tg_model **out)
{
    tg_error_clear();
    if (out)
        *out = NULL;
    if (!descriptor_json || !out)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_model_create: %s is NULL",
                       !descriptor_json ? "descriptor_json" : "out");
    tg_desc d;
    TG_TRY(tg_desc_parse(descriptor_json, &d));
    uint64_t s = seed == TG_SEED_FROM_DESCRIPTOR ? d.t.seed : seed;
    tg_model *m;
    TG_TRY(tg_api_model_new(&d, &m));
    tg_model_init_weights(m, s);
    *out = m;
    return TG_OK;
}

/* Read a whole (small) text file; NUL-terminated, malloc'd. */
static tg_status read_text(const char *path, char **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return tg_fail(TG_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = tg_malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        if (cap > ((size_t)64 << 20)) {
            free(buf);
            fclose(f);
            return tg_fail(TG_ERR_DESCRIPTOR, "'%s' is larger than 64 MiB: not a descriptor", path);
        }
        char *nb = tg_realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf)
        return tg_fail(TG_ERR_OUT_OF_MEMORY, "out of memory reading '%s'", path);
    if (err) {
        free(buf);
        return tg_fail(TG_ERR_IO, "error reading '%s'", path);
    }
    buf[n] = '\0';
    *out = buf;
    return TG_OK;
}

TG_API tg_status tg_model_create_from_file(const char *path, uint64_t seed, tg_model **out)
{
    tg_error_clear();
    if (out)
        *out = NULL;
    if (!path || !out)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_model_create_from_file: %s is NULL",
                       !path ? "descriptor_path" : "out");
    char *text;
    TG_TRY(read_text(path, &text));
    tg_status st = tg_model_create(text, seed, out);
    free(text);
    if (st != TG_OK && tg_st_looks_like_file(path))
        return tg_fail(st, "%s: this looks like a safetensors checkpoint, not a JSON "
                       "descriptor; use tg_model_load", path);
    if (st != TG_OK)
        tg_error_prefix("%s: ", path);
    return st;
}

TG_API void tg_model_destroy(tg_model *m)
{
    if (!m)
        return;
    tg_trainer_free(m->trainer);
    tg_model_free(m);
}

TG_API const char *tg_model_descriptor(const tg_model *m)
{
    return m ? m->desc_json : NULL;
}

TG_API const char *tg_model_class_name(const tg_model *m, int64_t k)
{
    if (!m || !m->desc.class_names || k < 0 || k >= m->desc.num_classes)
        return NULL;
    return m->desc.class_names[k];
}

TG_API tg_status tg_model_info(const tg_model *m, tg_info key, int64_t *value)
{
    tg_error_clear();
    if (value)
        *value = 0;
    if (!m || !value)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_model_info: %s is NULL", !m ? "model" : "value");
    int64_t v;
    switch (key) {
    case TG_INFO_IMAGE_SIZE: v = m->desc.image_size; break;
    case TG_INFO_CHANNELS: v = m->desc.channels; break;
    case TG_INFO_LATENT_DIM: v = m->desc.latent_dim; break;
    case TG_INFO_G_PARAMS: {
        v = 0;
        for (size_t i = 0; i < m->gen.P.count; i++)
            v += (int64_t)m->gen.P.p[i].n;
        break;
    }
    case TG_INFO_D_PARAMS: {
        v = 0;
        for (size_t i = 0; i < m->disc.P.count; i++)
            v += (int64_t)m->disc.P.p[i].n;
        break;
    }
    case TG_INFO_D_STEPS: v = (int64_t)m->dnet.steps; break;
    case TG_INFO_G_STEPS: v = (int64_t)m->gnet.steps; break;
    case TG_INFO_HAS_EMA: v = m->gnet.ema != NULL; break;
    case TG_INFO_D_BATCH: v = m->desc.t.d_batch; break;
    case TG_INFO_G_BATCH: v = m->desc.t.g_batch; break;
    case TG_INFO_THREADS: v = m->threads; break;
    case TG_INFO_SAMPLING_ONLY: v = m->sampling_only; break;
    case TG_INFO_PRECISION: v = m->precision; break;
    case TG_INFO_D_KIND: v = m->desc.d.kind; break;
    case TG_INFO_TRAIN_PRECISION: v = tg_model_train_precision(m); break;
    case TG_INFO_NUM_CLASSES: v = m->desc.num_classes; break;
    default: return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_model_info: unknown key %d", (int)key);
    }
    *value = v;
    return TG_OK;
}

TG_API tg_status tg_model_set_threads(tg_model *m, int n)
{
    tg_error_clear();
    if (!m)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_model_set_threads: model is NULL");
    if (n < 0 || n > 4096)
        return tg_fail(TG_ERR_INVALID_ARGUMENT,
                       "tg_model_set_threads: n = %d (use 1..4096, or 0 for OpenMP's default)", n);
    m->threads = n;
    return TG_OK;
}

TG_API tg_status tg_model_set_precision(tg_model *m, tg_precision p)
{
    tg_error_clear();
    if (!m)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_model_set_precision: model is NULL");
    if (p != TG_PRECISION_F32 && p != TG_PRECISION_BF16)
        return tg_fail(TG_ERR_INVALID_ARGUMENT,
                       "tg_model_set_precision: unknown precision %d (use TG_PRECISION_F32 "
                       "or TG_PRECISION_BF16)", (int)p);
    return tg_model_precision_set(m, (int)p);
}
