/* Internal to ops/attention.c and ops/attention_fused.c: the one place
 * attention logits get their bias and mask. */
#ifndef TG_ATTENTION_ROWS_H
#define TG_ATTENTION_ROWS_H

#include <math.h>
#include <stdint.h>

/* s[j] += bscale * brow[j] for one row of N logits. bscale is 1 for scores
 * in natural units and log2(e) for the fused forward's base-2 scores. */
static inline __attribute__((always_inline)) void tg_att_bias_row(float *s, const float *brow,
                                                                  float bscale, int64_t N)
{
#pragma omp simd
    for (int64_t j = 0; j < N; j++)
        s[j] += brow[j] * bscale;
}

/* s[j] = -inf where mrow[j] == 0: hidden tokens get probability 0. */
static inline __attribute__((always_inline)) void tg_att_mask_row(float *s, const uint8_t *mrow,
                                                                  int64_t N)
{
#pragma omp simd
    for (int64_t j = 0; j < N; j++)
        s[j] = mrow[j] ? s[j] : -INFINITY;
}

/* Both, in that order; brow or mrow NULL: that part is skipped. */
static inline __attribute__((always_inline)) void tg_att_bias_mask(float *s, const float *brow,
                                                                   float bscale,
                                                                   const uint8_t *mrow, int64_t N)
{
    if (brow)
        tg_att_bias_row(s, brow, bscale, N);
    if (mrow)
        tg_att_mask_row(s, mrow, N);
}

#endif
