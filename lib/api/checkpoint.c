/* Public API: loading and saving models as safetensors checkpoints
 * (io/checkpoint.c does the work). */
#include "api.h"

TG_API tg_status tg_model_load_weights(tg_model *m, const char *path)
{
    tg_error_clear();
    if (!m || !path)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_model_load_weights: %s is NULL", !m ? "model" : "path");
    tg_st_file f;
    TG_TRY(tg_st_read(path, &f));
    tg_status st = tg_checkpoint_load(m, &f, path);
    tg_st_free(&f);
    return st;
}

TG_API tg_status tg_model_load(const char *path, tg_model **out)
{
    tg_error_clear();
    if (out)
        *out = NULL;
    if (!path || !out)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_model_load: %s is NULL", !path ? "path" : "out");
    tg_st_file f;
    TG_TRY(tg_st_read(path, &f));
    const char *dj = tg_st_meta(&f, "descriptor");
    if (!dj) {
        tg_st_free(&f);
        return tg_fail(TG_ERR_FORMAT, "checkpoint '%s' has no descriptor in its metadata: create the "
                       "model from its descriptor, then call tg_model_load_weights", path);
    }
    tg_desc d;
    tg_status st = tg_desc_parse(dj, &d);
    if (st != TG_OK) {
        tg_error_prefix("checkpoint '%s': metadata descriptor: ", path);
        tg_st_free(&f);
        return st;
    }
    tg_model *m;
    st = tg_api_model_new(&d, &m);
    if (st == TG_OK)
        st = tg_checkpoint_load(m, &f, path);
    tg_st_free(&f);
    if (st != TG_OK) {
        tg_model_destroy(m);
        return st;
    }
    *out = m;
    return TG_OK;
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
    return tg_checkpoint_save(m, path, flags);
}
