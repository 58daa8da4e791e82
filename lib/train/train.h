/* Internal: the training step's buffers. */
#ifndef TG_TRAIN_H
#define TG_TRAIN_H

#include "../models/model.h"
#include "diffaug.h"

typedef struct tg_trainer {
    int64_t bmax;              /* max(d_batch, g_batch) */
    tg_gen_acts ga;            /* generator activations (g_batch, or d_batch for MT-CT) */
    tg_disc_acts da, dta;      /* discriminator activations and their tangents */
    tg_aug aug;
    float *gG, *dG, *dGs;      /* gradients: G, D, and D's discarded ones */
    float *fake, *xh, *u;      /* [bmax, C, S, S] images */
    float *du, *gx, *w;        /* image-sized gradient buffers */
    float *lowres;             /* real batch pooled to stage 1 (MT-CT) */
    float *z, *alpha, *s, *ds; /* drawn noise, scores and their gradients */
    float *gws;                /* generator inference workspace for the fakes */
    /* the state a failed step is rolled back to */
    float *bk_gw, *bk_dw, *bk_ema, *bk_gm, *bk_gv, *bk_dm, *bk_dv;
} tg_trainer;

void tg_trainer_free(tg_trainer *t);

#endif
