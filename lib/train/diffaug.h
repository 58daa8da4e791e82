/* Internal: DiffAugment (translation, cutout, color), differentiable.
 * docs/SPECIFICATION.md "DiffAugment"; the reference's sample_aug/diffaug.
 * The random draw is kept in the struct so the same augmentation can be
 * applied, linearised and transposed (for the gradient penalty's directions). */
#ifndef TG_DIFFAUG_H
#define TG_DIFFAUG_H

#include "../core/common.h"
#include "../core/rng.h"

typedef struct tg_aug {
    int n_ops;
    int ops[3];        /* enum tg_aug_kind (io/descriptor.h), applied in this order */
    int64_t cap;       /* arrays hold this many images */
    int64_t B;         /* images of the current draw */
    int S;             /* image size of the current draw */
    int32_t *ty, *tx;  /* translation per image, each in {-s .. s}, s = round(0.2 S) */
    int cut;           /* cutout happens in this draw (probability 0.3, one draw per call) */
    int32_t *cy, *cx;  /* cutout centres per image, each in {0 .. S} */
    float *bright, *sat, *contr; /* U(-0.5,0.5), U(0,2), U(0.5,1.5) per image */
    /* training.diffaug_p (or ADA's current value): each op applies to each
     * image with probability p, set before tg_aug_sample (tg_aug_init: 1).
     * Below 1, the draw ends with one uniform per image and op deciding it;
     * bit (1 << op) of on[b] is set when op applies to image b. A skipped op
     * is the identity, so the draw stays a per-image linear map plus a
     * constant, and the penalty stays exact. */
    double p;
    uint8_t *on;
} tg_aug;

/* Arrays for up to cap images; ops/n_ops as in the descriptor. */
tg_status tg_aug_init(tg_aug *a, const int *ops, int n_ops, int64_t cap);
void tg_aug_free(tg_aug *a);
/* Draw the parameters of one call for B <= cap images of size S, in the
 * reference's order (translation, then cutout flag and centres, then colour
 * brightness/saturation/contrast), only for the ops present; then, when
 * a->p < 1, per image and per op present (translation, cutout, colour) one
 * uniform u, the op applying when u < p. */
void tg_aug_sample(tg_aug *a, tg_rng *r, int64_t B, int S);
/* Keep images [off, off + n) of the current draw as its images 0 .. n-1
 * (0 <= off, off + n <= a->B): a data-parallel replica's rows of the global
 * batch's draw. */
void tg_aug_keep(tg_aug *a, int64_t off, int64_t n);
/* y = aug(x) for x [B, C, S, S] (y and x distinct). */
void tg_aug_apply(const tg_aug *a, float *y, const float *x, int64_t C);
/* y = A v: the linear part of aug (aug(x) = A x + c; brightness is the only
 * constant part). */
void tg_aug_linear(const tg_aug *a, float *y, const float *v, int64_t C);
/* dx = A^T dy: the gradient of aug. */
void tg_aug_adjoint(const tg_aug *a, float *dx, const float *dy, int64_t C);

#endif
