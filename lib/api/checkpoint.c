/* Public API: loading and saving models as safetensors checkpoints
 * (io/checkpoint.c does the work). A file and a caller's buffer go through
 * the same reader (io/safetensors.c) and the same checks. */
#include "api.h"

/* The message of a call on a sampling-only model that needs what it dropped. */
tg_status tg_api_sampling_only(const char *fn, const char *what)
{
    return tg_fail(TG_ERR_STATE, "%s: the model was loaded for sampling only "
                   "(TG_LOAD_SAMPLING_ONLY): it has no %s; load it without the flag", fn, what);
}

TG_API tg_status tg_model_load_weights(tg_model *m, const char *path)
{
    tg_error_clear();
    if (!m || !path)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_model_load_weights: %s is NULL", !m ? "model" : "path");
    if (m->sampling_only)
        return tg_api_sampling_only("tg_model_load_weights", "discriminator or training state");
    tg_st_file f;
    TG_TRY(tg_st_open(path, &f));
    tg_status st = tg_checkpoint_load(m, &f);
    tg_st_free(&f);
    tg_model_weights_changed(m); /* new arrays: the bf16 copies follow */
    return st;
}

/* A new model from the opened checkpoint f: its metadata descriptor, then
 * the tensors, checked before the model's state is allocated. */
static tg_status load_new(const tg_st_file *f, uint32_t flags, tg_model **out)
{
    const char *dj = tg_st_meta(f, "descriptor");
    if (!dj)
        return tg_fail(TG_ERR_FORMAT, "checkpoint '%s' has no descriptor in its metadata: create the "
                       "model from its descriptor, then call tg_model_load_weights", f->name);
    tg_desc d;
    tg_status st = tg_desc_parse(dj, &d);
    if (st != TG_OK) {
        tg_error_prefix("checkpoint '%s': metadata descriptor: ", f->name);
        return st;
    }
    tg_model *m;
    TG_TRY(tg_model_define(&d, tg_desc_to_json(&d), (flags & TG_LOAD_SAMPLING_ONLY) != 0, &m));
    st = tg_checkpoint_load_new(m, f);
    if (st != TG_OK) {
        tg_model_destroy(m);
        return st;
    }
    *out = m;
    return TG_OK;
}

static tg_status check_load_args(const char *fn, const void *src, const char *src_name,
                                 uint32_t flags, tg_model **out)
{
    if (out)
        *out = NULL;
    if (!src || !out)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !src ? src_name : "out");
    if (flags & ~TG_LOAD_SAMPLING_ONLY)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", fn, flags);
    return TG_OK;
}

static tg_status load_path(const char *fn, const char *path, uint32_t flags, tg_model **out)
{
    tg_error_clear();
    TG_TRY(check_load_args(fn, path, "path", flags, out));
    tg_st_file f;
    TG_TRY(tg_st_open(path, &f)); /* tensors are read from the file as they are needed */
    tg_status st = load_new(&f, flags, out);
    tg_st_free(&f);
    return st;
}

TG_API tg_status tg_model_load(const char *path, tg_model **out)
{
    return load_path("tg_model_load", path, 0, out);
}

TG_API tg_status tg_model_load_ex(const char *path, uint32_t flags, tg_model **out)
{
    return load_path("tg_model_load_ex", path, flags, out);
}

TG_API tg_status tg_model_load_memory(const void *data, size_t size, uint32_t flags,
                                      tg_model **out)
{
    tg_error_clear();
    TG_TRY(check_load_args("tg_model_load_memory", data, "data", flags, out));
    tg_st_file f;
    TG_TRY(tg_st_parse(data, size, "<memory>", &f));
    tg_status st = load_new(&f, flags, out);
    tg_st_free(&f);
    return st;
}

TG_API tg_status tg_model_save(tg_model *m, const char *path, uint32_t flags)
{
    tg_error_clear();
    if (!m || !path)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_model_save: %s is NULL", !m ? "model" : "path");
    if (!path[0])
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_model_save: path is empty");
    if (flags & ~(TG_SAVE_WEIGHTS_ONLY | TG_SAVE_NO_OPTIMIZER))
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_model_save: unknown flags 0x%x", flags);
    /* a checkpoint holds both networks; this model has one generator array */
    if (m->sampling_only)
        return tg_api_sampling_only("tg_model_save", "discriminator to save");
    return tg_checkpoint_save(m, path, flags);
}
