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

/* Hot loops compiled for AVX-512, AVX2 and baseline x86-64, picked at load.
 * TG_KERNEL_ISA (a build option, `make isa-test`) compiles one variant only,
 * so that the AVX2 and baseline code paths can be tested on a machine whose
 * CPU would otherwise always pick AVX-512. */
#if defined(TG_KERNEL_ISA_AVX2)
#define TG_CLONES __attribute__((target("avx2,fma"), noinline))
#elif defined(TG_KERNEL_ISA_BASELINE)
#define TG_CLONES __attribute__((noinline))
#elif defined(__clang__) /* the fuzz build: clang refuses noinline on clones (never inlined) */
#define TG_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TG_CLONES __attribute__((target_clones("avx512f", "avx2", "default"), noinline))
#endif

/* 16 floats as one GCC vector (one zmm on AVX-512, two ymm on AVX2, four xmm
 * else, whichever a TG_CLONES clone targets); VLOAD / VSTORE at any float
 * address. The kernels that keep their sums in such vectors use these. */
typedef float v16f __attribute__((vector_size(64)));
typedef float v16fu __attribute__((vector_size(64), aligned(4), may_alias));
#define VLOAD(p) (*(const v16fu *)(p))
#define VSTORE(p, v) (*(v16fu *)(p) = (v))

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
       TG_MM_GELU = 2, /* C = GELU(product + bias) (erf form); not with SUM */
       TG_MM_INFER = 4 /* Linears only: an inference call, which may take the narrow
                        * kernel (training keeps its bf16 forward beside its backward) */ };
/* The attributes of a matmul with output scale and post-ops `post` (the
 * caller destroys them). */
tg_status tg_matmul_attr(dnnl_primitive_attr_t *out, float scale, int post);
tg_status tg_matmul(tg_dnn *c, const tg_view *va, const float *a, const tg_view *vb,
                    const float *b, const tg_view *vc, float *out, const float *bias,
                    float scale, int post);

/* ---- linear: y[M,N] = x[M,K] W[N,K]^T + b[N] (b may be NULL) */
tg_status tg_linear_fwd(tg_dnn *c, float *y, const float *x, const float *w, const float *b,
                        int64_t M, int64_t K, int64_t N);
/* the same with a fused post-op: TG_MM_SUM (y += ...) or TG_MM_GELU; with
 * TG_MM_INFER in inference */
tg_status tg_linear_fwd_post(tg_dnn *c, float *y, const float *x, const float *w,
                             const float *b, int64_t M, int64_t K, int64_t N, int post);
/* Inference MLP, y[M,C] += fc2(GELU(fc1(x))) with fc1 [H,C] and fc2 [C,H]
 * (h [M,H] scratch). When both Linears run in bf16, h holds bf16 values
 * (fc1 writes them rounded, fc2 reads them as they are): the rounding fc2
 * would apply anyway, without writing h in f32 and a pass to round it. */
tg_status tg_mlp_fwd_infer(tg_dnn *c, float *y, const float *x, float *h, const float *w1,
                           const float *b1, const float *w2, const float *b2, int64_t M,
                           int64_t C, int64_t H);
/* The same for a few rows (M <= TG_LINEAR_ROWS_MAX) in plain C (gemv.c): W
 * is read once instead of being repacked by oneDNN on each call. In a bf16
 * model it reads the bf16 copy of W (even where the layer keeps an f32
 * input: x is not rounded), else W. */
#define TG_LINEAR_ROWS_MAX 2
tg_status tg_linear_rows_fwd(tg_dnn *c, float *y, const float *x, const float *w,
                             const float *b, int64_t M, int64_t K, int64_t N);
/* A narrow Linear (gemv.c): an inference call (post has TG_MM_INFER, and
 * besides it TG_MM_SUM at most), K and N at most TG_NARROW_MAX, M * max(K, N)
 * at most TG_NARROW_VALUES_MAX values. tg_linear_fwd_post
 * (and tg_mlp_fwd_infer its second layer) send these to tg_linear_narrow_fwd,
 * f32 and split by rows across threads, because oneDNN runs them on one
 * thread. */
#define TG_NARROW_MAX 64
#define TG_NARROW_VALUES_MAX 65536
int tg_linear_is_narrow(int64_t M, int64_t K, int64_t N, int post);
void tg_linear_narrow_fwd(float *y, const float *x, const float *w, const float *b, int64_t M,
                          int64_t K, int64_t N, int post);
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

/* ---- class-conditional norm (the generator of a conditional model;
 * docs/SPECIFICATION.md "Class conditioning"). Row m of x [M, C] belongs to
 * image m / N, whose class is lab[m / N]. With n the row normalised without
 * affine (LayerNorm: (x - mean) (var + 1e-5)^-1/2; pixel != 0, PixelNorm:
 * x (mean x^2 + 1e-8)^-1/2):  y = n (g + cg[lab]) + b + cb[lab], where g and
 * b are NULL for PixelNorm (1 and 0) and cg, cb are [classes, C] tables.
 * mean/var [M] are written when not NULL (PixelNorm: 0 and mean x^2). */
void tg_cond_norm_fwd(float *y, float *mean, float *var, const float *x, const float *g,
                      const float *b, const float *cg, const float *cb, const int32_t *lab,
                      int64_t M, int64_t N, int64_t C, int pixel);
/* dx [M, C] from dy (dx != dy); the parameter gradients are added into dg,
 * db, dcg, dcb when dcg is not NULL (dg, db only for LayerNorm). */
void tg_cond_norm_bwd(float *dx, float *dg, float *db, float *dcg, float *dcb, const float *dy,
                      const float *x, const float *g, const float *cg, const int32_t *lab,
                      int64_t M, int64_t N, int64_t C, int pixel);

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

/* ---- 2-D convolution (ops/conv.c), channels-last (NHWC) activations and
 * OIHW weights (PyTorch's), square images: x [B, S, S, cin] -> y [B, So, So,
 * cout] with
 * So = (S + 2 pad - k) / stride + 1 (zero padding). Linear in x and in w, so
 * its tangent is itself without bias and its second-order reverse is two
 * backward passes (docs/SECOND_ORDER.md, "Convolutional discriminator"). */
typedef struct tg_conv_shape {
    int64_t B, cin, cout, S, k, stride, pad;
} tg_conv_shape;
static inline int64_t tg_conv_out(const tg_conv_shape *s)
{
    return (s->S + 2 * s->pad - s->k) / s->stride + 1;
}
/* y = conv(x, w) (+ b[cout] if b) */
tg_status tg_conv2d_fwd(tg_dnn *c, const tg_conv_shape *s, float *y, const float *x,
                        const float *w, const float *b);
/* dx = conv^T(dy, w) (written; skipped when NULL); dw += the weight
 * gradient from x and dy, db += dy summed over B and positions (each
 * skipped when NULL) */
tg_status tg_conv2d_bwd(tg_dnn *c, const tg_conv_shape *s, float *dx, float *dw, float *db,
                        const float *dy, const float *x, const float *w);
/* LeakyReLU y = x > 0 ? x : slope x; backward dx = dy * (u > 0 ? 1 : slope),
 * u being the forward's input (dx may be dy) */
void tg_leaky_fwd(float *y, const float *x, size_t n, float slope);
void tg_leaky_bwd(float *dx, const float *dy, const float *u, size_t n, float slope);
/* 2x2 average pooling on NHWC [B, S, S, C] -> [B, S/2, S/2, C]; backward
 * writes dx. */
void tg_avgpool2_nhwc_fwd(float *y, const float *x, int64_t B, int64_t S, int64_t C);
void tg_avgpool2_nhwc_bwd(float *dx, const float *dy, int64_t B, int64_t S, int64_t C);
/* Global pooling of NHWC: y[b, c] = sum (mean: mean) over the SS positions
 * of x[b, :, c]; backward writes dx. */
void tg_gpool_fwd(float *y, const float *x, int64_t B, int64_t C, int64_t SS, int mean);
void tg_gpool_bwd(float *dx, const float *dy, int64_t B, int64_t C, int64_t SS, int mean);

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
