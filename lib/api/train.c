/* Public API: the training step (train/train.c does the work). */
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
