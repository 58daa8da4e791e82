/* Public API: the training step (train/train.c does the work). */
#include "api.h"

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
    TG_RETURN_ON_MODEL_THREADS(m, tg_train_run(m, real, n, z_d, z_g, alpha, stats));
}

/* every label of one array in range; what names the array in messages */
static tg_status check_range(const int32_t *y, size_t n, int K, const char *what)
{
    for (size_t i = 0; y && i < n; i++)
        if (y[i] < 0 || y[i] >= K)
            return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_train_step_labels: %s[%zu] = %d is out "
                           "of range (the model has num_classes = %d: 0 .. %d)", what, i,
                           (int)y[i], K, K - 1);
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
        return tg_train_run(m, real, n, z_d, z_g, alpha, stats);
    }
    if (!yr)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_train_step_labels: the model is "
                       "class-conditional (num_classes = %d): labels->real must hold the real "
                       "batch's %d labels", K, m->desc.t.d_batch);
    if (n != (size_t)m->desc.t.d_batch) /* before reading n labels */
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_train_step_labels: the real batch has %zu "
                       "images; training.d_batch is %d", n, m->desc.t.d_batch);
    TG_TRY(check_range(yr, n, K, "labels->real"));
    TG_TRY(check_range(yd, n, K, "labels->fake_d"));
    TG_TRY(check_range(yg, (size_t)m->desc.t.g_batch, K, "labels->fake_g"));
    return tg_train_run_labels(m, real, n, yr, yd, yg, z_d, z_g, alpha, stats);
}

TG_API tg_status tg_train_step_labels(tg_model *m, const float *real, size_t n,
                                      const tg_train_labels *labels, const float *z_d,
                                      const float *z_g, const float *alpha,
                                      tg_train_stats *stats)
{
    TG_RETURN_ON_MODEL_THREADS(m, step_labels(m, real, n, labels, z_d, z_g, alpha, stats));
}
