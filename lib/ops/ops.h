/* Internal: the numeric operations TransGAN is made of, forward and backward.
 *
 * Conventions (llm.c style): plain row-major float32 buffers with explicit
 * sizes. A backward writes (overwrites) the gradient of its inputs and ADDS
 * to the gradient of its parameters, so one buffer can collect a parameter's
 * gradient over several uses. Heavy work runs on oneDNN primitives (cached
 * by shape in the tg_dnn context); data movement runs as plain C loops. */
#ifndef TG_OPS_H
#define TG_OPS_H

#include "dnn.h"

/* ---- matmul on views: C[..., M, N] (+)= scale * A[..., M, K] B[..., K, N] (+ bias[N]) */
typedef struct tg_view {
    int nd;              /* 2 to 4 */
    int64_t dims[4];
    int64_t strides[4];  /* in elements */
} tg_view;

tg_view tg_view_plain(int nd, const int64_t *dims);
/* post: 0, or what oneDNN fuses into the matmul's output pass (inference
 * uses them to save a pass over memory each) */
enum { TG_MM_SUM = 1,  /* C += the product (instead of C =)            */
       TG_MM_GELU = 2  /* C = GELU(product + bias) (erf form); not with SUM */ };
tg_status tg_matmul(tg_dnn *c, const tg_view *va, const float *a, const tg_view *vb,
                    const float *b, const tg_view *vc, float *out, const float *bias,
                    float scale, int post);

/* ---- linear: y[M,N] = x[M,K] W[N,K]^T + b[N] (b may be NULL) */
tg_status tg_linear_fwd(tg_dnn *c, float *y, const float *x, const float *w, const float *b,
                        int64_t M, int64_t K, int64_t N);
/* the same with a fused post-op: TG_MM_SUM (y += ...) or TG_MM_GELU */
tg_status tg_linear_fwd_post(tg_dnn *c, float *y, const float *x, const float *w,
                             const float *b, int64_t M, int64_t K, int64_t N, int post);
/* The same for a few rows (M <= TG_LINEAR_ROWS_MAX) in plain C (gemv.c): W
 * is read once instead of being repacked by oneDNN on each call. */
#define TG_LINEAR_ROWS_MAX 2
void tg_linear_rows_fwd(float *y, const float *x, const float *w, const float *b, int64_t M,
                        int64_t K, int64_t N);
/* dx = dy W (skipped when dx is NULL); dw += dy^T x; db += column sums of dy */
tg_status tg_linear_bwd(tg_dnn *c, float *dx, float *dw, float *db, const float *dy,
                        const float *x, const float *w, int64_t M, int64_t K, int64_t N);

/* ---- LayerNorm over the last dim (eps 1e-5), affine. mean/var [M] are
 * saved for backward; pass NULL for both in inference. */
tg_status tg_layernorm_fwd(tg_dnn *c, float *y, float *mean, float *var, const float *x,
                           const float *g, const float *b, int64_t M, int64_t C);
/* dg/db NULL: only dx (parameter gradients not wanted) */
tg_status tg_layernorm_bwd(tg_dnn *c, float *dx, float *dg, float *db, const float *dy,
                           const float *x, const float *mean, const float *var, const float *g,
                           const float *b, int64_t M, int64_t C);

/* ---- PixelNorm: y = x * rsqrt(mean_c x^2 + 1e-8), no parameters */
void tg_pixelnorm_fwd(float *y, const float *x, int64_t M, int64_t C);
void tg_pixelnorm_bwd(float *dx, const float *dy, const float *x, int64_t M, int64_t C);

/* ---- element-wise activations (exact erf GELU; tanh) */
tg_status tg_gelu_fwd(tg_dnn *c, float *y, const float *x, int64_t n);
tg_status tg_gelu_bwd(tg_dnn *c, float *dx, const float *dy, const float *x, int64_t n);
tg_status tg_tanh_fwd(tg_dnn *c, float *y, const float *x, int64_t n);
/* tanh backward from its output y */
tg_status tg_tanh_bwd(tg_dnn *c, float *dx, const float *dy, const float *y, int64_t n);

/* ---- multi-head softmax attention.
 * qkv [B, N, 3C] laid out [q | k | v], each split into H heads of C/H;
 * out [B, N, C] (heads concatenated). logits = q k^T * scale (+ bias[h,i,j])
 * with scale = (C/H)^-0.5, then -inf where mask[i*N+j] == 0 (mask [N,N] or NULL;
 * a token must see at least one token). Memory stays bounded: the [H,N,N]
 * score matrices are built for a few images at a time, and backward
 * recomputes them instead of keeping them. */
tg_status tg_attention_fwd(tg_dnn *c, float *out, const float *qkv, const float *bias,
                           const uint8_t *mask, int64_t B, int64_t N, int64_t C, int64_t H);
/* Floats of scores per chunk (default 4 Mi); tests lower it. */
extern int64_t tg_attention_chunk_floats;
/* From this many tokens on, the fused row-at-a-time kernels run instead of
 * oneDNN matmuls (default 256); tests lower it to compare both paths. */
extern int64_t tg_attention_fused_min_tokens;
tg_status tg_attention_fused_fwd(tg_dnn *c, float *out, const float *qkv, const float *bias,
                                 const uint8_t *mask, int64_t B, int64_t N, int64_t C, int64_t H);
tg_status tg_attention_fused_bwd(tg_dnn *c, float *dqkv, float *dbias, const float *dout,
                                 const float *qkv, const float *bias, const uint8_t *mask,
                                 int64_t B, int64_t N, int64_t C, int64_t H);
/* dqkv [B,N,3C] written; dbias [H,N,N] += (if not NULL) */
tg_status tg_attention_bwd(tg_dnn *c, float *dqkv, float *dbias, const float *dout,
                           const float *qkv, const float *bias, const uint8_t *mask, int64_t B,
                           int64_t N, int64_t C, int64_t H);

/* ---- second order, for the exact gradient penalty (reverse over forward;
 * derived in docs/SECOND_ORDER.md, sections 5-8).
 * A *_jvp computes the tangent of an op's output for an input tangent xd
 * (forward mode); a *_bwd2 is the reverse mode of the pair (output, tangent):
 * given the adjoints of both (dy, dyd) it writes the adjoints of the input
 * and of its tangent (dx, dxd) and adds the parameters' gradients. Linear
 * layers need nothing new: their tangent is the Linear without bias. */
/* yd = LayerNorm'(x) xd (the saved mean/var of x; g the scale) */
void tg_layernorm_jvp(float *yd, const float *xd, const float *x, const float *mean,
                      const float *var, const float *g, int64_t M, int64_t C);
void tg_layernorm_bwd2(float *dx, float *dxd, float *dg, float *db, const float *dy,
                       const float *dyd, const float *x, const float *xd, const float *mean,
                       const float *var, const float *g, int64_t M, int64_t C);
/* dx += GELU''(x) * xd * dyd (the second-order term; the first-order ones are
 * tg_gelu_bwd) */
void tg_gelu_hvp(float *dx, const float *x, const float *xd, const float *dyd, int64_t n);
/* attention without bias or mask (the discriminator's) */
tg_status tg_attention_jvp(tg_dnn *c, float *outd, const float *qkv, const float *qkvd,
                           int64_t B, int64_t N, int64_t C, int64_t H);
tg_status tg_attention_bwd2(tg_dnn *c, float *dqkv, float *dqkvd, const float *dout,
                            const float *doutd, const float *qkv, const float *qkvd, int64_t B,
                            int64_t N, int64_t C, int64_t H);

/* ---- data movement (C loops) */
/* y[i] += x[i] (residual add; its backward passes the gradient to both) */
void tg_add_inplace(float *y, const float *x, size_t n);
/* y[b, i] += p[i] for b < B, i < n (position embeddings) */
void tg_add_broadcast_fwd(float *y, const float *p, size_t B, size_t n);
/* dp[i] += sum_b dy[b, i] */
void tg_add_broadcast_bwd(float *dp, const float *dy, size_t B, size_t n);

/* PixelShuffle(2) on token grids: x [B, w*w, C] -> y [B, 4*w*w, C/4] with
 * y[(2h+i)*2w + 2v+j, c] = x[h*w + v, 4c + 2i + j]. Backward is the inverse. */
void tg_pixel_shuffle_fwd(float *y, const float *x, int64_t B, int64_t w, int64_t C);
void tg_pixel_shuffle_bwd(float *dx, const float *dy, int64_t B, int64_t w, int64_t C);

/* Patches: img [B, ch, S, S] -> tokens [B, (S/p)^2, ch*p*p], token = patch row *
 * (S/p) + patch col, features in (channel, row, col) order. Backward inverse. */
void tg_patches_fwd(float *tok, const float *img, int64_t B, int64_t ch, int64_t S, int64_t p);
void tg_patches_bwd(float *dimg, const float *dtok, int64_t B, int64_t ch, int64_t S, int64_t p);

/* [B, R, Cc] <-> [B, Cc, R] (tokens to NCHW images and back). */
void tg_transpose_fwd(float *y, const float *x, int64_t B, int64_t R, int64_t Cc);

/* Average pooling by k x k: [B, ch, S, S] -> [B, ch, S/k, S/k]. */
void tg_avgpool_fwd(float *y, const float *x, int64_t B, int64_t ch, int64_t S, int64_t k);
void tg_avgpool_bwd(float *dx, const float *dy, int64_t B, int64_t ch, int64_t S, int64_t k);

/* Mean squared error over n values; da = 2 (a - b) / n * dloss (da may be NULL). */
double tg_mse_fwd(const float *a, const float *b, size_t n);
void tg_mse_bwd(float *da, const float *a, const float *b, size_t n, float dloss);

#endif
