/* Internal: the training step's buffers. */
#ifndef TG_TRAIN_H
#define TG_TRAIN_H

#include "../models/model.h"
#include "diffaug.h"

typedef struct tg_trainer {
    /* data parallel (tg_model_set_data_parallel): this replica computes rows
     * [rank * bd, (rank + 1) * bd) of the global d_batch and likewise of
     * g_batch; world 1, rank 0 without it */
    int rank, world;
    int64_t bd, bg;            /* the replica's batches: d_batch / world, g_batch / world */
    int64_t bmax;              /* max(bd, bg) */
    tg_gen_acts ga;            /* generator activations (bg, or bd for MT-CT) */
    tg_disc_acts da, dta;      /* discriminator activations and their tangents */
    tg_aug aug;
    float *fake, *xh, *u;      /* [bmax, C, S, S] images */
    float *du, *gx, *w;        /* image-sized gradient buffers */
    float *lowres;             /* real batch pooled to stage 1 (MT-CT) */
    float *z, *alpha, *s, *ds; /* drawn noise, scores and their gradients */
    float *gws;                /* generator inference workspace for the fakes */
    int32_t *lab_d, *lab_g;    /* fakes' classes drawn by a conditional step */
    /* the state a failed step is rolled back to (gradients are in the
     * networks' state, group TG_GROUP_GRAD) */
    tg_net_state bk_g, bk_d;
    tg_rng bk_rng;
    double bk_ada_p;
    int64_t bk_ada_sum, bk_ada_n;
} tg_trainer;

tg_status tg_trainer_make(tg_model *m);
void tg_trainer_free(tg_trainer *t);

/* The classes of a conditional model's step: the real batch's [n]
 * (required), D's fakes' [n] and G's fakes' [g_batch / world] (NULL: drawn
 * from the model's RNG, uniformly, after alpha and after z_g respectively).
 * api/ checks them against num_classes. */
typedef struct tg_step_labels {
    const int32_t *real, *fake_d, *fake_g;
} tg_step_labels;

/* One training step: the body of tg_train_step and tg_train_step_labels
 * (include/transgan.h), its arguments checked here (labels: NULL on an
 * unconditional model); run by api/ on the model's threads. */
tg_status tg_train_run(tg_model *m, const float *real, size_t n, const tg_step_labels *labels,
                       const float *z_d, const float *z_g, const float *alpha,
                       tg_train_stats *stats);

/* The gradient penalty (docs/SPECIFICATION.md "Training step") at
 * interpolates xh [B, C, S, S] under the augmentation draw `aug` (NULL:
 * none): writes GP into *gp and, when G is not NULL, adds
 * gp_weight * dGP/dweights into G (exact, second order; derived in
 * docs/SECOND_ORDER.md). */
tg_status tg_penalty(tg_model *m, const float *xh, int64_t B, const tg_aug *aug, float *G,
                     double *gp);
/* R1 (training.r1_gamma): R1 = mean_i |d D(x_i) / d x_i|^2 at the images
 * x [B, C, S, S] as D sees them (already augmented) into *r1 and, when G is
 * not NULL, (r1_gamma / 2) * r1_interval * dR1/dweights added into G (the
 * same second-order passes as tg_penalty). */
tg_status tg_penalty_r1(tg_model *m, const float *x, int64_t B, float *G, double *r1);
/* The weight of the penalty's value in D's loss: gp_weight for GP; for R1
 * (r1 != 0) gamma / 2 times the interval of the steps that take it (lazy
 * regularisation, docs/SPECIFICATION.md "Training step"). */
static inline double tg_penalty_weight(const tg_desc *d, int r1)
{
    return r1 ? 0.5 * d->t.r1_gamma * d->t.r1_interval : d->t.gp_weight;
}
/* In bf16 training, which of the penalty's passes run in bf16: bit 1 the
 * first-order one (g = dD/dx and the penalty's value), bit 2 the
 * second-order one (D's tangent along v and its reverse); the rest run in
 * f32. Tests and bench/ change it to measure the others. The default, 2:
 * the first-order pass in f32, because it decides the penalty's value and
 * direction, and bf16 there moved them most (measured by
 * tests/test_bf16_train.c: on a conv D the value by 2% and the penalty's
 * weight gradient by 1.5%, against 0% and 0.25% with only the second-order
 * pass in bf16; a transformer D's step 2x further from f32); the
 * second-order pass, twice the first's work, in bf16. */
extern int tg_penalty_bf16;
#define TG_PENALTY_BF16_DEFAULT 2

#endif
