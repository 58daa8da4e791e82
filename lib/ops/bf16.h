/* Internal: bf16 inference and training (lib/ops/bf16.c). A model in bf16 precision keeps
 * a bf16 copy of each weight array its inference reads, in its oneDNN
 * context; while a call runs in bf16 (tg_dnn_bf16_set), the Linear layers
 * whose weights lie in such an array run as oneDNN bf16 x bf16 -> f32
 * matmuls (f32 accumulation, f32 bias and post-ops), their input rounded to
 * bf16 on the way in. Everything else (norms, softmax, residual stream, the
 * output layers) stays f32. bf16 training (training.precision) uses the
 * same copies of the weights it trains, made again after each update
 * (tg_dnn_bf16_changed), and adds the Linear's backward: dx = dy W and
 * dw += dy^T x as bf16 x bf16 -> f32 matmuls (dy and x rounded on the way
 * in; dw accumulated in f32). */
#ifndef TG_BF16_H
#define TG_BF16_H

#include <string.h>

#include "dnn.h"

/* Weight arrays a context can shadow (the generator's weights and EMA, the
 * discriminator's weights, one spare). */
#define TG_BF16_ARRAYS 4

/* One shadow: the f32 array it copies, the copy, and whether the copy is
 * behind the array. */
typedef struct tg_bf16_shadow {
    const float *src;
    size_t n, cap; /* floats shadowed; room in bf */
    size_t keep_lo, keep_hi; /* weights from these offsets keep f32 */
    uint16_t *bf;
    int stale;
} tg_bf16_shadow;
/* A Linear's weights from a shadow's copy, reordered to the layout its
 * matmul prefers (tg_linear_bf16 with few rows); stale when the copy
 * changed since. */
typedef struct tg_bf16_packed {
    const uint16_t *src; /* the plain copy, inside a shadow's bf */
    dnnl_memory_desc_t md;
    void *buf;
    int stale;
} tg_bf16_packed;
typedef struct tg_bf16_state {
    int on; /* the current call computes in bf16 */
    int train; /* a training call (bf16 training): convolutions in bf16 too */
    tg_bf16_shadow s[TG_BF16_ARRAYS];
    tg_bf16_packed *pk;
    size_t npk, cap_pk;
} tg_bf16_state;
/* The context's bf16 state (dnn.c holds it; bf16.c works on it). */
tg_bf16_state *tg_dnn_bf16_state(tg_dnn *c);

/* 1 when this CPU, as oneDNN sees it (ONEDNN_MAX_CPU_ISA honoured), has
 * AVX512-BF16 (avx512_core_bf16 or above) and the CPU reports the
 * instructions our kernels use (cpuid); else 0. Cached after the first call. */
int tg_bf16_supported(void);

/* f32 -> bf16 bits, round half to even on the dropped bits (finite inputs):
 * one value, inline for the kernels' inner loops (attention_fused_bf16.inc). */
static inline __attribute__((always_inline)) uint16_t tg_bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* dst[i] = tg_bf16_round(src[i]), as the high 16 bits of a float; parallel
 * for large n. */
void tg_bf16_from_f32(uint16_t *dst, const float *src, size_t n);

/* Shadow the f32 array src[n] in `slot` (src NULL: the slot shadows
 * nothing); a Linear whose weights start in [keep_off, keep_off + keep_n)
 * keeps f32. The copy is marked stale and converted at its next use (made
 * at its first: an array inference never reads costs nothing); callers
 * rebind after every change of the weights. */
void tg_dnn_bf16_bind(tg_dnn *c, int slot, const float *src, size_t n, size_t keep_off,
                      size_t keep_n);
/* The f32 array src changed (an optimiser step): every copy of it is
 * converted again at its next use. */
void tg_dnn_bf16_changed(tg_dnn *c, const float *src);
/* Mark the calls that follow as training (1) or not (0): with the bf16
 * path on, training runs the convolutions on weights of a bound array in
 * bf16 too (conv.c); inference keeps them f32. */
void tg_dnn_bf16_train(tg_dnn *c, int on);
/* 1 when a convolution with weights at w runs in bf16: a training call with
 * the bf16 path on and w inside a bound array (outside its f32 range). */
int tg_dnn_bf16_conv(tg_dnn *c, const float *w);
/* Free every copy; the context computes in f32 from then on. */
void tg_dnn_bf16_release(tg_dnn *c);
/* Turn the bf16 path on (1) or off (0) for the calls that follow; returns
 * the previous setting. Off unless copies exist. */
int tg_dnn_bf16_set(tg_dnn *c, int on);

/* *out = the bf16 copy of the weights at w (inside a bound array; the copy
 * made, or made current, first), or NULL: run in f32. OUT_OF_MEMORY when the
 * copy cannot be made. */
tg_status tg_dnn_bf16_weights(tg_dnn *c, const float *w, const uint16_t **out);

/* The same, but also for a layer in its array's keep range: the copy there
 * is made like any other, and a kernel that rounds only the weights (not
 * the input) may read it (the generator's input GEMV, gemv.c). */
tg_status tg_dnn_bf16_copy(tg_dnn *c, const float *w, const uint16_t **out);

/* Linears with fewer outputs than this stay f32 (the output layers). */
#define TG_BF16_MIN_OUT 16

/* Up to this many rows (tokens times images) tg_linear_bf16's matmul takes
 * its weights prepacked: oneDNN 2.6's brgemm wants bf16 weights in a blocked
 * (VNNI) layout and reorders plain ones on every call, which at 64 rows (the
 * generator's first stage at batch 1) is ~10% of the matmul. Each packed
 * matrix is one more copy of its weights (made at first use, redone when the
 * weights change), so the large batches, where the reorder is a small part
 * of a big product, stay on the plain copy. */
#define TG_BF16_PACK_ROWS_MAX 256

/* Operand formats of tg_linear_bf16, or-ed into its post: x is already
 * bf16 (read as it is, no rounding pass), y is written as bf16 (rounded to
 * nearest even after the post-op, as tg_bf16_from_f32 rounds). */
enum { TG_LIN_X_BF16 = 16, TG_LIN_Y_BF16 = 32 };

/* y[M,N] = bf16(x)[M,K] wb[N,K]^T + b[N] with post (TG_MM_SUM or
 * TG_MM_GELU, as tg_linear_fwd_post), accumulated in f32; x and y are f32
 * unless post says otherwise (TG_LIN_*). wb must be a pointer
 * tg_dnn_bf16_weights gave (its packed copies are keyed by it). */
tg_status tg_linear_bf16(tg_dnn *c, void *y, const void *x, const uint16_t *wb, const float *b,
                         int64_t M, int64_t K, int64_t N, int post);

/* The Linear's backward in bf16 (training): dx[M,K] = bf16(dy) wb (written;
 * skipped when NULL), dw[N,K] += bf16(dy)^T bf16(x) (skipped when NULL),
 * both accumulated in f32. The bias gradient stays with the caller (f32). */
tg_status tg_linear_bf16_bwd(tg_dnn *c, float *dx, float *dw, const float *dy, const float *x,
                             const uint16_t *wb, int64_t M, int64_t K, int64_t N);

#endif
