/* Public API: the training step and its data-parallel setting (train/train.c
 * does the work). */
#include "api.h"

/* Training computes in f32 whatever the inference precision; the bf16 copies
 * follow the weights it changed (or restored). */
static tg_status train_f32(tg_model *m, const float *real, size_t n, const float *z_d,
                           const float *z_g, const float *alpha, tg_train_stats *stats)
{
    if (!m)
        return tg_train_run(m, real, n, z_d, z_g, alpha, stats);
    tg_model_force_f32(m, 1);
    tg_status st = tg_train_run(m, real, n, z_d, z_g, alpha, stats);
    tg_model_force_f32(m, 0);
    tg_model_weights_changed(m);
    return st;
}

TG_API tg_status tg_train_step(tg_model *m, const float *real, size_t n, const float *z_d,
                               const float *z_g, const float *alpha, tg_train_stats *stats)
{
    if (m && m->sampling_only) {
        tg_error_clear();
        return tg_api_sampling_only("tg_train_step", "discriminator or training state");
    }
    TG_RETURN_ON_MODEL_THREADS(m, train_f32(m, real, n, z_d, z_g, alpha, stats));
}

TG_API tg_status tg_model_set_data_parallel(tg_model *m, int rank, int world,
                                            tg_allreduce_fn allreduce, void *user)
{
    tg_error_clear();
    if (!m)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_model_set_data_parallel: model is NULL");
    if (m->sampling_only)
        return tg_api_sampling_only("tg_model_set_data_parallel", "discriminator or training state");
    if (world < 1 || rank < 0 || rank >= world)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_model_set_data_parallel: rank %d of world %d "
                       "(need world >= 1 and 0 <= rank < world)", rank, world);
    if (world > 1 && !allreduce)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_model_set_data_parallel: world %d needs an "
                       "all-reduce function (NULL given)", world);
    const tg_desc *d = &m->desc;
    if (d->t.d_batch % world || d->t.g_batch % world)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_model_set_data_parallel: world %d does not "
                       "divide training.d_batch %d and training.g_batch %d (each replica takes "
                       "an equal share of both)", world, d->t.d_batch, d->t.g_batch);
    /* the training buffers are sized for the replica's batches: the next
     * step makes them again (the networks' state arrays stay) */
    if ((world > 1 ? world : 1) != (m->dp_world > 1 ? m->dp_world : 1) || rank != m->dp_rank) {
        tg_trainer_free(m->trainer);
        m->trainer = NULL;
    }
    m->dp_rank = world > 1 ? rank : 0;
    m->dp_world = world;
    m->dp_fn = world > 1 ? allreduce : NULL;
    m->dp_user = world > 1 ? user : NULL;
    return TG_OK;
}
