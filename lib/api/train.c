/* Public API: the training step and its data-parallel setting (train/train.c
 * does the work). */
#include "api.h"

/* Training computes in its own precision (training.precision: f32, or bf16
 * where the CPU has it) whatever the inference precision; the inference
 * bf16 copies follow the weights it changed (or restored). */
static tg_status train_call(tg_model *m, const float *real, size_t n, const tg_step_labels *lab,
                           const float *z_d, const float *z_g, const float *alpha,
                           tg_train_stats *stats)
{
    if (!m)
        return tg_train_run(m, real, n, lab, z_d, z_g, alpha, stats);
    tg_model_train_begin(m);
    tg_status st = tg_train_run(m, real, n, lab, z_d, z_g, alpha, stats);
    tg_model_train_end(m);
    return st;
}

TG_API tg_status tg_train_step(tg_model *m, const float *real, size_t n, const float *z_d,
                               const float *z_g, const float *alpha, tg_train_stats *stats)
{
    if (m && m->sampling_only) {
        tg_error_clear();
        return tg_api_sampling_only("tg_train_step", "discriminator or training state");
    }
    if (m && m->desc.num_classes) {
        tg_error_clear();
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_train_step: the model is class-conditional "
                       "(num_classes = %d): train it with tg_train_step_labels and the real "
                       "batch's labels", m->desc.num_classes);
    }
    TG_RETURN_ON_MODEL_THREADS(m, train_call(m, real, n, NULL, z_d, z_g, alpha, stats));
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
    if (world != m->dp_world || rank != m->dp_rank) {
        tg_trainer_free(m->trainer);
        m->trainer = NULL;
    }
    m->dp_rank = rank; /* 0 when world is 1 */
    m->dp_world = world;
    m->dp_fn = world > 1 ? allreduce : NULL;
    m->dp_user = world > 1 ? user : NULL;
    return TG_OK;
}

static tg_status step_labels(tg_model *m, const float *real, size_t n,
                             const tg_train_labels *labels, const float *z_d, const float *z_g,
                             const float *alpha, tg_train_stats *stats)
{
    tg_error_clear();
    if (!m)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_train_step_labels: model is NULL");
    if (m->sampling_only)
        return tg_api_sampling_only("tg_train_step_labels", "discriminator or training state");
    if (labels && labels->struct_size < offsetof(tg_train_labels, fake_g) + sizeof labels->fake_g)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_train_step_labels: labels->struct_size is "
                       "not set (set it to sizeof(tg_train_labels))");
    const int32_t *yr = labels ? labels->real : NULL, *yd = labels ? labels->fake_d : NULL,
                  *yg = labels ? labels->fake_g : NULL;
    int K = m->desc.num_classes;
    if (K == 0) {
        if (yr || yd || yg)
            return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_train_step_labels: labels given, but the "
                           "model is unconditional (num_classes = 0); pass labels = NULL");
        return train_call(m, real, n, NULL, z_d, z_g, alpha, stats);
    }
    if (!yr)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_train_step_labels: the model is "
                       "class-conditional (num_classes = %d): labels->real must hold the real "
                       "batch's %d labels", K, m->desc.t.d_batch);
    /* a data-parallel replica's share of the batches (tg_model_set_data_parallel) */
    int world = m->dp_world;
    size_t bd = (size_t)(m->desc.t.d_batch / world), bg = (size_t)(m->desc.t.g_batch / world);
    if (n != bd) /* before reading n labels */
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_train_step_labels: the real batch has %zu "
                       "images; training.d_batch is %d (%zu per replica of %d)", n,
                       m->desc.t.d_batch, bd, world);
    const char *fn = "tg_train_step_labels";
    TG_TRY(tg_api_labels_in_range(fn, "labels->real", yr, n, K));
    TG_TRY(tg_api_labels_in_range(fn, "labels->fake_d", yd, n, K));
    TG_TRY(tg_api_labels_in_range(fn, "labels->fake_g", yg, bg, K));
    const tg_step_labels lab = {yr, yd, yg};
    return train_call(m, real, n, &lab, z_d, z_g, alpha, stats);
}

TG_API tg_status tg_train_step_labels(tg_model *m, const float *real, size_t n,
                                      const tg_train_labels *labels, const float *z_d,
                                      const float *z_g, const float *alpha,
                                      tg_train_stats *stats)
{
    TG_RETURN_ON_MODEL_THREADS(m, step_labels(m, real, n, labels, z_d, z_g, alpha, stats));
}
