/* Internal: the pre-norm transformer block of both networks,
 *   x += proj(Attn(norm1(x)));  x += fc2(GELU(fc1(norm2(x)))),
 * forward and backward, plus the relative-position-bias gather/scatter. */
#ifndef TG_BLOCK_H
#define TG_BLOCK_H

#include "../core/params.h"
#include "../ops/ops.h"

typedef struct tg_block {
    int C, H, hid, norm; /* norm: enum tg_norm_kind */
    int rel_w;           /* token grid width for the relative bias, 0 = none */
    /* offsets into the network's parameter array; SIZE_MAX where absent */
    size_t n1_g, n1_b, qkv_w, proj_w, proj_b, n2_g, n2_b, fc1_w, fc1_b, fc2_w, fc2_b, rel;
    /* class-conditional norms (tg_block_add_classes): per-class gain and
     * bias offsets [ncls, C] of norm1 and norm2; ncls = 0: none */
    int ncls;
    size_t n1_cg, n1_cb, n2_cg, n2_cb;
} tg_block;

/* Register the block's tensors under `prefix` ("generator.stages.0.blocks.1").
 * d_init selects the discriminator's initialisation (truncated normal weights,
 * zero biases) instead of the generator's (PyTorch default uniform). */
tg_status tg_block_define(tg_block *b, tg_params *t, const char *prefix, int C, int H,
                          int mlp_ratio, int norm, int rel_w, int d_init);

/* Make both norms of a defined block class-conditional (docs/SPECIFICATION.md
 * "Class conditioning"): registers `<prefix>.norm{1,2}.class_weight` and
 * `.class_bias`, [ncls, C] each, initialised to 0 (the block starts as the
 * unconditional one). */
tg_status tg_block_add_classes(tg_block *b, tg_params *t, const char *prefix, int ncls);

/* What one block keeps from forward for backward; M = B * N rows. In
 * inference the same buffers serve as scratch (x_in unused). `labels` [B]
 * is the batch's classes, set by the caller before forward when the block
 * has class tables (read by forward and backward). */
typedef struct tg_block_acts {
    float *x_in, *ln1, *mean1, *var1, *qkv, *att, *x_mid, *ln2, *mean2, *var2, *h1, *g1;
    const int32_t *labels;
} tg_block_acts;

size_t tg_block_acts_floats(const tg_block *b, int64_t M);
/* Point the fields into base[tg_block_acts_floats]; returns floats used. */
size_t tg_block_acts_carve(const tg_block *b, int64_t M, float *base, tg_block_acts *a);

/* Inference needs far less: tg_block_fwd with training = 0 touches only ln1,
 * qkv, att, ln2 and g1, and their lives do not overlap much (ln2 reuses ln1,
 * g1 reuses qkv and att), so one block's scratch is M * (C + max(4C, hid))
 * floats instead of tg_block_acts_floats' M * (8C + 2 hid + 4). Every block
 * of a network with the same C and hid can share it. The other fields are
 * NULL. */
size_t tg_block_infer_floats(const tg_block *b, int64_t M);
size_t tg_block_infer_carve(const tg_block *b, int64_t M, float *base, tg_block_acts *a);

/* Scratch of a block backward: M rows. */
size_t tg_block_grad_floats(const tg_block *b, int64_t M, int64_t N);

/* x [B, N, C] is updated in place. bias [H, N, N] (or NULL) is added to the
 * logits, mask [N, N] (or NULL) hides tokens. `training` keeps x_in and the
 * norm statistics in `a` for tg_block_bwd. */
tg_status tg_block_fwd(tg_dnn *c, const tg_block *b, const float *W, float *x, int64_t B,
                       int64_t N, const float *bias, const uint8_t *mask, tg_block_acts *a,
                       int training);

/* dx [B, N, C]: in, the gradient of the block's output; out, of its input.
 * Parameter gradients are added into G (same layout as W; NULL: not wanted,
 * e.g. D's in a generator step); the gradient of
 * the bias [H, N, N] is added into dbias when not NULL. `scratch` holds
 * tg_block_grad_floats floats. */
tg_status tg_block_bwd(tg_dnn *c, const tg_block *b, const float *W, float *G, float *dx,
                       int64_t B, int64_t N, const float *bias, const uint8_t *mask, float *dbias,
                       const tg_block_acts *a, float *scratch);

/* Second order (layernorm blocks without bias or mask: the discriminator's;
 * docs/SECOND_ORDER.md section 4).
 * Tangent forward: xd [B, N, C] in place (the tangent of the block's input
 * becomes its output's), along the primal activations `a` of a training
 * forward; the tangent activations are kept in `ta`. */
tg_status tg_block_jvp(tg_dnn *c, const tg_block *b, const float *W, float *xd, int64_t B,
                       int64_t N, const tg_block_acts *a, tg_block_acts *ta);
/* Reverse of (output, tangent): dx, dxd in place (adjoints of the output and
 * its tangent in; of the input and its tangent out); parameter gradients
 * added into G. scratch holds 2 * tg_block_grad_floats floats. */
tg_status tg_block_bwd2(tg_dnn *c, const tg_block *b, const float *W, float *G, float *dx,
                        float *dxd, int64_t B, int64_t N, const tg_block_acts *a,
                        const tg_block_acts *ta, float *scratch);

/* Relative position index of a w x w grid: idx[i*N + j] for tokens i, j. */
void tg_relbias_index(int32_t *idx, int w);
/* bias[h, i, j] = table[idx[i*N+j], h] */
void tg_relbias_gather(float *bias, const float *table, const int32_t *idx, int64_t N, int64_t H);
/* dtable[idx[i*N+j], h] += dbias[h, i, j] */
void tg_relbias_scatter(float *dtable, const float *dbias, const int32_t *idx, int64_t N,
                        int64_t H);
/* Chebyshev-distance mask of a w x w grid: mask[i*N+j] = dist <= radius */
void tg_locality_mask(uint8_t *mask, int w, int radius);

#endif
