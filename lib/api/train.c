/* Public API: the training step (train/train.c does the work). */
#include "api.h"

TG_API tg_status tg_train_step(tg_model *m, const float *real, size_t n, const float *z_d,
                               const float *z_g, const float *alpha, tg_train_stats *stats)
{
    if (m && m->sampling_only) {
        tg_error_clear();
        return tg_api_sampling_only("tg_train_step", "discriminator or training state");
    }
    TG_RETURN_ON_MODEL_THREADS(m, tg_train_run(m, real, n, z_d, z_g, alpha, stats));
}
