/* Internal: one unit of the convolutional discriminator
 * (docs/SPECIFICATION.md "Convolutional discriminator"), forward, backward,
 * tangent and second-order reverse. Two forms:
 *
 * residual (AutoGAN's / SNGAN's discriminator block):
 *   y = main(x) + shortcut(x)
 *   main     = [down] conv2(act(conv1(a0)))   a0 = x for the network's first
 *                                             unit, else act(x)
 *   shortcut = [down] conv_sc(x) (1x1) when the width changes or the unit
 *              down-samples, else x
 * plain (DCGAN-like):  y = [down] act(conv(x))
 *
 * act is LeakyReLU(0.2); convs are 3x3 (pad 1). [down] is a 2x2 average
 * pool, or with down-sampling by stride the unit's last conv is 4x4,
 * stride 2, pad 1 (the shortcut still pools). Activations are channels-last
 * (NHWC: [B, S, S, C]), the layout oneDNN's direct convolutions run on. */
#ifndef TG_CONVBLOCK_H
#define TG_CONVBLOCK_H

#include "../core/params.h"
#include "../ops/ops.h"

#define TG_LEAKY_SLOPE 0.2f

typedef struct tg_cblock {
    int cin, cout, S, So; /* input width and size; output size */
    int residual, first;  /* first: the network's first unit (no act on x) */
    int down;             /* 0: keeps the size; else enum tg_down_kind + 1 */
    /* offsets into the network's parameters; SIZE_MAX where absent */
    size_t c1_w, c1_b, c2_w, c2_b, sc_w, sc_b;
} tg_cblock;

/* Register the unit's tensors under `prefix`
 * ("discriminator.levels.0.blocks.1"): conv1, conv2, shortcut (residual) or
 * conv (plain); weights xavier uniform (gain sqrt 2, the shortcut 1), biases
 * 0. down: 0 or enum tg_down_kind + 1. */
void tg_cblock_define(tg_cblock *k, tg_params *t, const char *prefix, int cin, int cout, int S,
                      int residual, int first, int down);

/* What a forward keeps (for batch B), NHWC. NULL where the form has none. */
typedef struct tg_cblock_acts {
    float *a0; /* act(x) [B, cin, S, S] (residual, not first) */
    float *u1; /* conv1 (plain: conv) output, before act */
    float *a1; /* residual: act(u1), conv2's input */
    float *y;  /* the output [B, cout, So, So] */
} tg_cblock_acts;

size_t tg_cblock_acts_floats(const tg_cblock *k, int64_t B);
size_t tg_cblock_acts_carve(const tg_cblock *k, int64_t B, float *base, tg_cblock_acts *a);
/* Scratch of fwd/bwd/jvp/bwd2: B * tg_cblock_scratch_floats(k, 1). */
size_t tg_cblock_scratch_floats(const tg_cblock *k, int64_t B);
/* The (smaller) scratch of tg_cblock_fwd alone, for inference. */
size_t tg_cblock_fwd_scratch_floats(const tg_cblock *k, int64_t B);

/* x [B, cin, S, S] -> a->y, keeping what backward needs in a. */
tg_status tg_cblock_fwd(tg_dnn *c, const tg_cblock *k, const float *W, int64_t B, const float *x,
                        tg_cblock_acts *a, float *scratch);
/* Tangent: the output's tangent ta->y for an input tangent xd, at the primal
 * input x and activations a (LeakyReLU's derivative from their signs; no
 * biases: the unit is linear in x but for the activations). */
tg_status tg_cblock_jvp(tg_dnn *c, const tg_cblock *k, const float *W, int64_t B,
                        const float *xd, tg_cblock_acts *ta, const float *x,
                        const tg_cblock_acts *a, float *scratch);
/* Reverse through the unit for an output gradient dy: dx written (if not
 * NULL), weight gradients added into G (biases too if `bias`). The weights'
 * gradients are formed with the activations (xin, in): the primal ones for
 * the ordinary backward; the tangent ones (bias = 0) for the penalty's
 * second-order reverse, which is this same pass through the tangent
 * network (docs/SECOND_ORDER.md, "Convolutional discriminator"). The signs
 * of the primal (x, a) give LeakyReLU's derivative either way. */
tg_status tg_cblock_bwd(tg_dnn *c, const tg_cblock *k, const float *W, float *G, int bias,
                        int64_t B, const float *xin, const tg_cblock_acts *in, const float *x,
                        const tg_cblock_acts *a, const float *dy, float *dx, float *scratch);

#endif
