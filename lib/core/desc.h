/* Internal: the model descriptor as a plain struct (docs/SPECIFICATION.md
 * "Descriptor"), with every default filled in and every constraint checked
 * by its parser (io/descriptor.c). The types live in the bottom layer
 * because every layer reads them; reading and writing JSON is io/'s. */
#ifndef TG_DESC_H
#define TG_DESC_H

#include "common.h"

#define TG_MAX_STAGES 8
#define TG_MAX_SCHEDULE 32

enum tg_norm_kind { TG_NORM_LAYERNORM = 0, TG_NORM_PIXELNORM = 1 };
enum tg_output_kind { TG_OUTPUT_LINEAR = 0, TG_OUTPUT_TANH = 1 };
enum tg_loss_kind { TG_LOSS_WGAN_GP_EPS = 0, TG_LOSS_WGAN_GP = 1, TG_LOSS_HINGE = 2, TG_LOSS_LSGAN = 3 };
/* the losses with the gradient penalty (and without R1) */
static inline int tg_loss_has_gp(int loss)
{
    return loss == TG_LOSS_WGAN_GP || loss == TG_LOSS_WGAN_GP_EPS;
}
enum tg_optim_kind { TG_OPTIM_ADAM = 0, TG_OPTIM_SGD = 1 };
enum tg_ema_kind { TG_EMA_NONE = 0, TG_EMA_HALF_LIFE = 1, TG_EMA_BETA = 2 };
enum tg_aug_kind { TG_AUG_TRANSLATION = 0, TG_AUG_CUTOUT = 1, TG_AUG_COLOR = 2 };
/* discriminator.kind (TG_INFO_D_KIND reports it) */
enum tg_disc_kind { TG_DISC_TRANSFORMER = 0, TG_DISC_CONV = 1 };
enum tg_down_kind { TG_DOWN_AVGPOOL = 0, TG_DOWN_STRIDE = 1 };
enum tg_pool_kind { TG_POOL_SUM = 0, TG_POOL_MEAN = 1 };

#define TG_R1_INTERVAL_DEFAULT 16 /* StyleGAN2's lazy interval */

typedef struct tg_desc {
    char *name;                 /* owned; "" by default */
    int image_size, channels;   /* 32, 3 */
    int latent_dim;             /* 256 */
    int num_classes;            /* 0: unconditional (the default) */
    char **class_names;         /* owned; NULL, or num_classes names */
    struct {
        int bottom_width;       /* 8 */
        int embed_dim;          /* 384 */
        int nstages;            /* length of depths */
        int depths[TG_MAX_STAGES]; /* [5, 2, 2] */
        int heads, mlp_ratio;   /* 4, 4 */
        int norm;               /* enum tg_norm_kind */
        int rel_bias;           /* 0/1 */
        int output;             /* enum tg_output_kind */
    } g;
    struct {
        int patch_size, embed_dim, depth, heads, mlp_ratio; /* 4, 384, 7, 4, 4 */
        /* kind "conv" (docs/SPECIFICATION.md "Convolutional discriminator") */
        int kind;               /* enum tg_disc_kind */
        int nlevels;            /* length of widths */
        int widths[TG_MAX_STAGES];  /* [128, 128, 128] */
        int blocks[TG_MAX_STAGES];  /* [1, 1, 2] */
        int down;               /* enum tg_down_kind */
        int residual;           /* 1 */
        int pool;               /* enum tg_pool_kind */
    } d;
    struct {
        int loss;               /* enum tg_loss_kind */
        double gp_weight, drift_weight;          /* 10, 0.001 */
        /* training.r1_gamma, r1_interval: R1 on the real batch every
         * r1_interval-th D step (docs/SPECIFICATION.md "Training step");
         * gamma 0: off. Not with the wgan-gp losses */
        double r1_gamma;        /* 0 */
        int r1_interval;        /* TG_R1_INTERVAL_DEFAULT */
        int optimizer;          /* enum tg_optim_kind */
        double g_lr, d_lr, beta1, beta2, adam_eps; /* 1e-4, 1e-4, 0, 0.99, 1e-8 */
        int n_critic, g_batch, d_batch;          /* 4, 128, 64 */
        double grad_clip;       /* 5.0 */
        int ema;                /* enum tg_ema_kind */
        double ema_half_life_kimg, ema_warmup, ema_beta; /* 500, 0.1, - */
        int ndiffaug;
        int diffaug[3];         /* enum tg_aug_kind, in order */
        double diffaug_p;       /* 1: probability that an op applies to an image */
        int ada_on;             /* training.ada given (not null): adaptive p */
        double ada_target, ada_kimg; /* 0.6, 100 */
        int ada_interval;       /* 4 (D steps between adjustments) */
        double sr_aux_weight;   /* 0 */
        /* training.class_loss_weight: the dual projection's class loss
         * (docs/SPECIFICATION.md "Class conditioning"); 0: off. Needs
         * num_classes > 0 */
        double class_loss_weight;
        int loc_on;             /* locality given (not null) */
        int loc_nstages;
        int loc_stages[TG_MAX_STAGES];
        int loc_nsched;
        int64_t loc_until[TG_MAX_SCHEDULE];
        int loc_radius[TG_MAX_SCHEDULE];
        /* training.lr_schedule (docs/SPECIFICATION.md "Training step"):
         * lrs_n points (d_step, factor), steps increasing; the factor
         * scales g_lr and d_lr, linear between points. 0: null */
        int lrs_n;
        int64_t lrs_step[TG_MAX_SCHEDULE];
        double lrs_factor[TG_MAX_SCHEDULE];
        uint64_t seed;          /* 12345 */
        /* training.precision: TG_PRECISION_F32 (the default) or
         * TG_PRECISION_BF16 (asked for; in effect only where the CPU has
         * AVX512-BF16, TG_INFO_TRAIN_PRECISION) */
        int precision;
    } t;
} tg_desc;

/* Free what a descriptor owns (its name, its class names) and zero it; NULL
 * is fine. */
void tg_desc_free(tg_desc *d);

/* Derived sizes. */
static inline int tg_desc_stage_dim(const tg_desc *d, int s) { return d->g.embed_dim >> (2 * s); }
static inline int tg_desc_stage_res(const tg_desc *d, int s) { return d->g.bottom_width << s; }

#endif
