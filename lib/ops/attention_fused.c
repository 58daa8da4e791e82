/* Fused attention for long token sequences (the generator's last stages):
 * the scores of a few query rows at a time (in L1/L2), softmax and the
 * weighted sum of values in the same pass; backward recomputes each row (on
 * AVX-512 a block of rows at a time for heads up to 16 wide,
 * attention_fused_bwd_blk.inc and attention_fused_bwd_km.inc). No
 * [N, N] matrix is ever stored, so memory is linear in tokens. Parallel over
 * (image, head) pairs on OpenMP, sharing oneDNN's thread pool.
 *
 * With tiny head widths (4 to 16 features at 1024 tokens) the matmul path is
 * bound by writing and re-reading the score matrices; this path is bound by
 * the exponentials, which are computed by a polynomial that vectorises.
 *
 * In order: the constants and the two exponentials, the runtime-width row
 * kernel (backward and heads wider than 64), the blocked forward kernels
 * (attention_fused_fwd.inc, once per head width), the forward entry point,
 * the backward kernels (attention_fused_bwd.inc, by rows, and
 * attention_fused_bwd_blk.inc and _km.inc, by blocks of rows for heads up to
 * 16 wide without bias) and entry point. */
#include <math.h>
#include <omp.h>

#include <immintrin.h>

#include "attention_rows.h"
#include "bf16.h"
#include "ops.h"

/* Token count from which tg_attention_* use this path (tests lower it). */
int64_t tg_attention_fused_min_tokens = 256;

/* Constants of the exponentials. */
#define TG_LOG2E 1.44269504088896341f /* log2(e): natural-unit scores to base 2 */
/* 1.5 * 2^23: (x + M) - M rounds |x| < 2^22 to an integer in the current
 * (nearest) mode, and the low mantissa bits of x + M hold that integer */
#define TG_ROUND_MAGIC 12582912.0f
/* ln 2 = TG_LN2_HI - TG_LN2_LO, HI with few mantissa bits so n * HI is exact
 * (Cephes' two-step range reduction) */
#define TG_LN2_HI 0.693359375f
#define TG_LN2_LO 2.12194440e-4f
#define TG_EXP_MIN (-87.0f)   /* below: exp_neg returns 0 (expf is near FLT_MIN there) */
#define TG_EXP2_MIN (-126.0f) /* below: vexp2_neg returns 0 (2^x would be subnormal) */

/* Two exponentials, on purpose. The blocked kernels (the forward: sampling,
 * the hot path; and the narrow heads' blocked backward) work in base 2:
 * log2 e is folded into the query scale and the bias, which saves exp's
 * range-reduction multiply on every score, and vexp2_neg is written on
 * 16-lane vectors. The row kernel (the other backwards, and the forward for
 * heads wider than 64) keeps scores in natural units and uses
 * exp_neg, a scalar function the compiler vectorises through `declare simd`.
 * Both are within ~1e-7 relative of expf, so forward and backward see the
 * same probabilities to float rounding; making them one would move results
 * in the last bits. */

/* exp(x) for x <= 0 (softmax after the row maximum): Cephes' polynomial on
 * x = n ln2 + r, |r| <= ln2/2, ~1 ulp; exactly 0 below TG_EXP_MIN (and for -inf). */
#pragma omp declare simd notinbranch
static inline float exp_neg(float x)
{
    float xc = x < TG_EXP_MIN ? TG_EXP_MIN : x;
    float n = (xc * TG_LOG2E + TG_ROUND_MAGIC) - TG_ROUND_MAGIC; /* round */
    float r = xc - n * TG_LN2_HI + n * TG_LN2_LO;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } sc = {.i = ((int32_t)n + 127) << 23};
    return x < TG_EXP_MIN ? 0.0f : p * sc.f;
}

/* TG_CLONES (ops.h): hot loops for AVX-512, AVX2 and baseline x86-64 */

/* Scores of query row i against all keys (scaled, biased, masked), turned
 * into unnormalised probabilities in place; returns their sum. Kt is
 * [dh][N]; any head width (the scale is applied after the dot product). */
static inline __attribute__((always_inline)) float row_probs(float *restrict s, const float *q,
                                                             const float *restrict Kt, int64_t N,
                                                             int64_t dh, float scale,
                                                             const float *brow, const uint8_t *mrow)
{
#pragma omp simd
    for (int64_t j = 0; j < N; j++) {
        float a = 0.0f;
        for (int64_t d = 0; d < dh; d++)
            a += q[d] * Kt[d * N + j];
        s[j] = a * scale;
    }
    tg_att_bias_mask(s, brow, 1.0f, mrow, N);
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < N; j++)
        m = s[j] > m ? s[j] : m;
    float l = 0.0f;
#pragma omp simd reduction(+ : l)
    for (int64_t j = 0; j < N; j++) {
        s[j] = exp_neg(s[j] - m);
        l += s[j];
    }
    return l;
}

static size_t per_thread_floats(int64_t N, int64_t dh, int bwd)
{
    return (size_t)(2 * N + (bwd ? 4 : 2) * dh * N + 2 * dh);
}

/* ------------------------------------------------------------- forward
 * A block of R query rows at a time against all keys, head width padded with
 * zeros to DP (4, 8, 16, 24, 32, 48 or 64), keys padded to NP (a multiple of 16) with
 * -inf scores: every key vector loaded serves R rows, and the P V product
 * keeps its R x DC sums in registers. GCC vector types make the 16-float
 * vectors explicit (v16f, ops.h). */

static inline float hsum16(const v16f *v)
{
    float s = 0.0f;
    for (int k = 0; k < 16; k++)
        s += (*v)[k];
    return s;
}

static int64_t pad16(int64_t n) { return (n + 15) & ~(int64_t)15; }

/* padded head width for the blocked kernels; 0: none (generic path) */
static int64_t padded_dh(int64_t dh)
{
    return dh <= 4 ? 4 : dh <= 8 ? 8 : dh <= 16 ? 16 : dh <= 24 ? 24 : dh <= 32 ? 32 : dh <= 48 ? 48
         : dh <= 64 ? 64 : 0;
}

/* the backward's padded widths (0: the runtime-width kernel) */
static int64_t bwd_padded_dh(int64_t dh)
{
    int64_t p = padded_dh(dh);
    return p && p <= 32 ? p : 0;
}

/* rows per block, chosen by measurement (N = 256 and 1024 on AVX-512) */
#define ROWS_FOR(DP) ((DP) <= 4 ? 4 : (DP) <= 8 ? 2 : (DP) <= 16 ? 1 : (DP) <= 32 ? 2 : 1)
/* the bf16 kernels' rows per block (measured at N = 256 and 1024, AVX512-BF16) */
#define ROWS_BF16(DP) ((DP) == 16 ? 2 : ROWS_FOR(DP))

/* [N][dh] rows with stride `row` -> [DP][NP], zeros in the padding */
static void pack_t_pad(float *dst, const float *src, int64_t N, int64_t dh, int64_t row,
                       int64_t DP, int64_t NP)
{
    for (int64_t e = 0; e < DP * NP; e++)
        dst[e] = 0.0f;
    for (int64_t j = 0; j < N; j++)
        for (int64_t d = 0; d < dh; d++)
            dst[d * NP + j] = src[j * row + d];
}

static size_t fwd_blocked_floats(int64_t N, int64_t dh)
{
    int64_t DP = padded_dh(dh), NP = pad16(N);
    return (size_t)((ROWS_FOR(DP) + 2 * DP) * NP + 16);
}

typedef int32_t v16i __attribute__((vector_size(64)));
typedef uint32_t v16u __attribute__((vector_size(64)));

/* 2^x on 16 lanes for x <= 0, within 1.1e-7 relative (a degree-6 fit on
 * [-1/2, 1/2]); 0 below TG_EXP2_MIN and for -inf or NaN (padding, masked keys).
 * The blocked kernels work in base 2 (scores pre-multiplied by log2 e), which
 * saves exp's range reduction; n = round(x) is read from the low mantissa
 * bits of x + 1.5 * 2^23 and shifted straight into the exponent field. */
static inline __attribute__((always_inline)) void vexp2_neg(v16f *io)
{
    v16f x = *io;
    v16f t = x + TG_ROUND_MAGIC;
    v16f f = x - (t - TG_ROUND_MAGIC);
    v16f p = 1.534579205326736e-4f + (v16f){0};
    p = p * f + 1.3399923918768764e-3f;
    p = p * f + 9.618489071726799e-3f;
    p = p * f + 5.550328642129898e-2f;
    p = p * f + 2.4022646248340607e-1f;
    p = p * f + 6.931471824645996e-1f;
    p = p * f + 1.0f;
    v16u e = ((v16u)t + 127u) << 23; /* unsigned: the high bits shift out, defined */
    *io = (v16f)((v16i)(p * (v16f)e) & (x > TG_EXP2_MIN));
}

/* Masks (locality: a token sees the tokens within a radius on its grid)
 * allow each query row a contiguous span of keys [lo, hi) in raster order,
 * about (2r + 1) grid rows of the N keys; everything outside scores -inf and
 * has probability exactly 0, so the blocked kernels skip whole 16-key groups
 * outside a block's span: same results, a fraction of the work. span[2i],
 * span[2i + 1] for query row i; a row that sees no key gets all of them (its
 * scores are all -inf, as they would be without spans). One scan of the
 * mask per call, 8 bytes at a time over the masked runs. */
static inline uint64_t mask_word(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

static void mask_spans(int32_t *span, const uint8_t *mask, int64_t N)
{
    for (int64_t i = 0; i < N; i++) {
        const uint8_t *m = mask + i * N;
        int64_t lo = 0, hi = N;
        while (lo + 8 <= N && mask_word(m + lo) == 0)
            lo += 8;
        while (lo < N && !m[lo])
            lo++;
        if (lo == N) {
            lo = 0;
        } else {
            while (hi - 8 >= lo && mask_word(m + hi - 8) == 0)
                hi -= 8;
            while (!m[hi - 1])
                hi--;
        }
        span[2 * i] = (int32_t)lo;
        span[2 * i + 1] = (int32_t)hi;
    }
}

/* The spans of `mask` in the context's span buffer (*span NULL without a
 * mask), for the entry points. */
static tg_status spans_of(tg_dnn *c, const uint8_t *mask, int64_t N, int32_t **span)
{
    *span = NULL;
    if (!mask)
        return TG_OK;
    if (!(*span = (int32_t *)tg_dnn_tmp(c, TG_TMP_ATT_SPAN, (size_t)(2 * N))))
        return TG_ERR_OUT_OF_MEMORY;
    mask_spans(*span, mask, N);
    return TG_OK;
}

/* The keys a block of query rows (ri[0 .. R-1]) has to visit: [*j0, *j1),
 * multiples of `al` (the kernel's group of keys) within [0, NP); all of them
 * without a mask. */
static inline __attribute__((always_inline)) void block_span(const int32_t *span,
                                                             const int64_t *ri, int R,
                                                             int64_t NP, int64_t al,
                                                             int64_t *j0, int64_t *j1)
{
    if (!span) {
        *j0 = 0, *j1 = NP;
        return;
    }
    int64_t lo = NP, hi = 0;
    for (int r = 0; r < R; r++) {
        lo = span[2 * ri[r]] < lo ? span[2 * ri[r]] : lo;
        hi = span[2 * ri[r] + 1] > hi ? span[2 * ri[r] + 1] : hi;
    }
    *j0 = lo / al * al;
    *j1 = TG_MIN(NP, (hi + al - 1) / al * al);
}

/* A row's bias (brow, in natural units: scaled to base 2) and mask on its
 * scores j0 .. je-1 (the block's span within the N keys), and their new
 * maximum. For the blocked kernels, whose block_scores maximum predates
 * both. */
static inline __attribute__((always_inline)) float span_bias_mask_max(float *s,
                                                                      const float *brow,
                                                                      const uint8_t *mrow,
                                                                      int64_t j0, int64_t je)
{
    tg_att_bias_mask(s + j0, brow ? brow + j0 : NULL, TG_LOG2E, mrow ? mrow + j0 : NULL, je - j0);
    float mm = -INFINITY;
#pragma omp simd reduction(max : mm)
    for (int64_t j = j0; j < je; j++)
        mm = s[j] > mm ? s[j] : mm;
    return mm;
}

/* The scores of a block of R <= 4 query rows (q [R][DP <= 64], already scaled)
 * against the keys j0 .. j1-1 (multiples of 16) of Kt [DP][NP]: S[r][j] =
 * q_r . k_j, -inf for the padding keys N .. NP - 1, and m[r] the maximum
 * (NaN scores are never taken). Shared by the blocked forward and backward
 * kernels, whose R and DP are constants once it is inlined. */
static inline __attribute__((always_inline)) void block_scores(float *S, const float *Kt,
                                                               const float *q, int R, int DP,
                                                               int64_t N, int64_t NP, int64_t j0,
                                                               int64_t j1, float *m)
{
    /* a local copy: the may_alias stores into S cannot touch it, so its
     * broadcasts stay in registers across the loop over keys */
    float ql[4][64];
    for (int r = 0; r < R; r++)
        for (int d = 0; d < DP; d++)
            ql[r][d] = q[r * DP + d];
    v16f mv[4];
    for (int r = 0; r < R; r++)
        mv[r] = (v16f){0} - INFINITY;
    for (int64_t j = j0; j < j1; j += 16) {
        v16f acc[4];
        for (int r = 0; r < R; r++)
            acc[r] = (v16f){0};
        for (int d = 0; d < DP; d++) {
            v16f k = VLOAD(Kt + d * NP + j);
            for (int r = 0; r < R; r++)
                acc[r] += ql[r][d] * k;
        }
        if (j + 16 > N)
            for (int k = (int)(N - j); k < 16; k++)
                for (int r = 0; r < R; r++)
                    acc[r][k] = -INFINITY;
        for (int r = 0; r < R; r++) {
            VSTORE(S + r * NP + j, acc[r]);
            v16i gt = acc[r] > mv[r];
            mv[r] = (v16f)(((v16i)acc[r] & gt) | ((v16i)mv[r] & ~gt));
        }
    }
    for (int r = 0; r < R; r++) {
        float mm = -INFINITY;
        for (int k = 0; k < 16; k++)
            mm = mv[r][k] > mm ? mv[r][k] : mm;
        m[r] = mm;
    }
}

#define TG_CAT_(a, b) a##b
#define TG_CAT(a, b) TG_CAT_(a, b)
#define FWD_BLK TG_CAT(fwd_blk_, DP)
#define TG_WIDTHS_INC "attention_fused_fwd.inc"
#include "attention_fused_widths.inc"
#undef TG_WIDTHS_INC
#undef FWD_BLK

/* ------------------------------------------------------- bf16 forward
 * For models in bf16 precision (bf16.h) on CPUs with AVX512-BF16: the
 * kernels of attention_fused_bf16.inc, compiled for that ISA whatever the
 * build's baseline and chosen at run time, so the library still runs on any
 * x86-64. */
#define TG_BF16_TARGET target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")
#define TG_BF16_KERNEL __attribute__((TG_BF16_TARGET, noinline))

static int64_t pad32(int64_t n) { return (n + 31) & ~(int64_t)31; }

/* 2^x for finite x <= 0 (or a little above) to bf16's accuracy, in 5
 * instructions: f = x - floor(x) in [0, 1) by one vreduceps, a degree-3 fit
 * of 2^f on [0, 1) (7.5e-5 relative; the result is rounded to bf16, 2e-3),
 * and vscalefps, which multiplies by 2^floor(x) itself and gives exactly 0
 * below 2^-149 (the bf16 attention of 1,024 tokens at head width 4 is bound
 * by this: the f32 kernels' vexp2_neg takes 11). */
#define TG_BF16_INLINE __attribute__((TG_BF16_TARGET, always_inline))
static inline TG_BF16_INLINE void vexp2_bf16_finite(v16f *io)
{
    __m512 x = (__m512)*io;
    v16f f = (v16f)_mm512_reduce_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    v16f p = 7.802452e-2f + (v16f){0};
    p = p * f + 2.2606719e-1f;
    p = p * f + 6.958335e-1f;
    p = p * f + 9.999252e-1f;
    *io = (v16f)_mm512_scalef_ps((__m512)p, x);
}

/* which of the 16 keys j0 .. j0 + 15 exist (are below N) */
static inline TG_BF16_INLINE __mmask16 keys_in(int64_t j0, int64_t N)
{
    return j0 + 16 <= N ? 0xffff : j0 >= N ? 0 : (__mmask16)((1u << (N - j0)) - 1);
}

/* K and V of one head into the bf16 kernels' layouts, 16 keys at a time by
 * gathers (the scalar loop took a third of the 256-token, width-16 kernel):
 * Kt as feature pairs [DP/2][NP] (32 bits each: feature 2e low, 2e + 1
 * high), Vt as [DP][NP]; zeros for keys >= N and features >= dh. The
 * rounding is vcvtne2ps2bf16's, to nearest even as tg_bf16_round. */
TG_BF16_KERNEL static void pack_kv_bf16(uint16_t *Kt, uint16_t *Vt, const float *base, int64_t N,
                                        int64_t NP, int64_t dh, int64_t DP, int64_t C, int64_t row)
{
    uint32_t *K32 = (uint32_t *)Kt;
    const __m512i step = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    for (int64_t j0 = 0; j0 < NP; j0 += 16) {
        __mmask16 in = keys_in(j0, N);
        __m512i idx = _mm512_mullo_epi32(_mm512_add_epi32(_mm512_set1_epi32((int)j0), step),
                                         _mm512_set1_epi32((int)row));
        __m256i lo = _mm512_castsi512_si256(idx), hi = _mm512_extracti64x4_epi64(idx, 1);
        for (int64_t e = 0; e < DP / 2; e++) {
            __m512i pr = _mm512_setzero_si512();
            if (2 * e < dh) {
                /* (2e, 2e + 1) of 8 keys per 64-bit gather; 2e + 1 = dh reads
                 * the next feature of the row (in bounds) and is zeroed below */
                const float *src = base + C + 2 * e;
                __m512 a = (__m512)_mm512_mask_i32gather_epi64(_mm512_setzero_si512(), (__mmask8)in,
                                                               lo, src, 4);
                __m512 b = (__m512)_mm512_mask_i32gather_epi64(_mm512_setzero_si512(),
                                                               (__mmask8)(in >> 8), hi, src, 4);
                pr = (__m512i)_mm512_cvtne2ps_pbh(b, a);
                if (2 * e + 1 >= dh)
                    pr = _mm512_and_si512(pr, _mm512_set1_epi32(0xffff));
            }
            _mm512_storeu_si512((void *)(K32 + e * NP + j0), pr);
        }
        for (int64_t d = 0; d < DP; d += 2) {
            /* features d and d + 1 of 16 keys: 16 bf16 each */
            __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
            if (d < dh)
                a = _mm512_mask_i32gather_ps(a, in, idx, base + 2 * C + d, 4);
            if (d + 1 < dh)
                b = _mm512_mask_i32gather_ps(b, in, idx, base + 2 * C + d + 1, 4);
            __m512i ab = (__m512i)_mm512_cvtne2ps_pbh(b, a);
            _mm256_storeu_si256((__m256i *)(Vt + d * NP + j0), _mm512_castsi512_si256(ab));
            _mm256_storeu_si256((__m256i *)(Vt + (d + 1) * NP + j0), _mm512_extracti64x4_epi64(ab, 1));
        }
    }
}

/* pack_kv_bf16 element by element, for heads too large for 32-bit indices */
static void pack_kv_scalar(uint16_t *Kt, uint16_t *Vt, const float *base, int64_t N, int64_t NP,
                           int64_t dh, int64_t DP, int64_t C, int64_t row)
{
    for (int64_t j = 0; j < NP; j++)
        for (int64_t d = 0; d < DP; d++) {
            int in = j < N && d < dh;
            Kt[((d / 2) * NP + j) * 2 + (d & 1)] = tg_bf16_round(in ? base[C + j * row + d] : 0.0f);
            Vt[d * NP + j] = tg_bf16_round(in ? base[2 * C + j * row + d] : 0.0f);
        }
}

/* the same for x that may be -inf or NaN (padding, masked keys): they go to
 * -160 first, so they give 0 */
static inline TG_BF16_INLINE void vexp2_neg_bf16(v16f *io)
{
    *io = (v16f)_mm512_max_ps((__m512)*io, _mm512_set1_ps(-160.0f)); /* NaN: the -160 */
    vexp2_bf16_finite(io);
}

/* the bf16 kernels' padded head width: the f32 kernels' up to 64 except 6
 * for heads of 5 or 6 features (TransGAN-S's last stage: padded to 8 they
 * cost a third more vdpbf16ps per score: the whole generator at batch 64
 * took 7 % less CPU per image), then 96 and 128 (where f32 has only its row
 * kernel, 14-30x slower at 256-1024 tokens); 0: none (f32). Below 256 tokens oneDNN's f32 matmuls stay: the
 * blocked kernels' per-row overhead (packing, horizontal sums) loses there
 * (measured 3-4x slower at 64 tokens, 96-wide heads). */
static int64_t bf16_padded_dh(int64_t dh)
{
    int64_t p = padded_dh(dh);
    if (p == 8 && dh <= 6)
        return 6;
    return p ? p : dh <= 96 ? 96 : dh <= 128 ? 128 : 0;
}

/* 1 when the forward runs the bf16 kernels (a bf16 model's inference) */
static int bf16_fused(tg_dnn *c, int64_t dh)
{
    return tg_dnn_bf16_state(c)->on && bf16_padded_dh(dh) != 0;
}

/* floats of a thread's workspace: scores R x NP, then bf16 K, V and P */
static size_t fwd_bf16_floats(int64_t N, int64_t dh)
{
    int64_t DP = bf16_padded_dh(dh), NP = pad32(N);
    return (size_t)(ROWS_BF16(DP) * NP + DP * NP + (ROWS_BF16(DP) * NP + 1) / 2 + 16);
}

/* the float a bf16 value stands for */
static inline float bf16_value(uint16_t v)
{
    uint32_t u = (uint32_t)v << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#define FWD_BF16 TG_CAT(fwd_bf16_, DP)
#define FWD_BF16_ONEPASS TG_CAT(fwd_bf16_onepass_, DP)
#define TG_WIDTHS_INC "attention_fused_bf16.inc"
#define TG_WIDTHS_WIDE
#include "attention_fused_widths.inc"
#undef TG_WIDTHS_WIDE
#undef TG_WIDTHS_INC
#undef FWD_BF16
#undef FWD_BF16_ONEPASS

/* rows r0 .. r1-1 of head h of image b */
static void fwd_one_bf16(float *out, const float *qkv, const float *bias, const uint8_t *mask,
                         const int32_t *sp, int64_t b, int64_t h, int64_t N, int64_t C,
                         int64_t H, int64_t r0, int64_t r1, float *s)
{
    switch (bf16_padded_dh(C / H)) {
    case 4: fwd_bf16_4(out, qkv, bias, mask, sp, b, h, N, C, H, r0, r1, s); break;
    case 6: fwd_bf16_6(out, qkv, bias, mask, sp, b, h, N, C, H, r0, r1, s); break;
    case 8: fwd_bf16_8(out, qkv, bias, mask, sp, b, h, N, C, H, r0, r1, s); break;
    case 16: fwd_bf16_16(out, qkv, bias, mask, sp, b, h, N, C, H, r0, r1, s); break;
    case 24: fwd_bf16_24(out, qkv, bias, mask, sp, b, h, N, C, H, r0, r1, s); break;
    case 32: fwd_bf16_32(out, qkv, bias, mask, sp, b, h, N, C, H, r0, r1, s); break;
    case 48: fwd_bf16_48(out, qkv, bias, mask, sp, b, h, N, C, H, r0, r1, s); break;
    case 64: fwd_bf16_64(out, qkv, bias, mask, sp, b, h, N, C, H, r0, r1, s); break;
    case 96: fwd_bf16_96(out, qkv, bias, mask, sp, b, h, N, C, H, r0, r1, s); break;
    default: fwd_bf16_128(out, qkv, bias, mask, sp, b, h, N, C, H, r0, r1, s);
    }
}

/* head widths above 64: one row at a time, runtime width */
TG_CLONES static void fwd_one_wide(float *out, const float *qkv, const float *bias,
                                   const uint8_t *mask, int64_t b, int64_t h, int64_t N,
                                   int64_t C, int64_t H, float *s)
{
    int64_t dh = C / H, row = 3 * C;
    float scale = 1.0f / sqrtf((float)dh);
    float *Kt = s + 2 * N, *Vt = Kt + dh * N;
    const float *base = qkv + b * N * row + h * dh;
    pack_t_pad(Kt, base + C, N, dh, row, dh, N);
    pack_t_pad(Vt, base + 2 * C, N, dh, row, dh, N);
    for (int64_t i = 0; i < N; i++) {
        float l = row_probs(s, base + i * row, Kt, N, dh, scale,
                              bias ? bias + (h * N + i) * N : NULL, mask ? mask + i * N : NULL);
        float *o = out + (b * N + i) * C + h * dh, inv = 1.0f / l;
        for (int64_t d = 0; d < dh; d++) {
            const float *v = Vt + d * N;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int64_t j = 0; j < N; j++)
                acc += s[j] * v[j];
            o[d] = acc * inv;
        }
    }
}

static void fwd_one(float *out, const float *qkv, const float *bias, const uint8_t *mask,
                    const int32_t *sp, int64_t b, int64_t h, int64_t N, int64_t C, int64_t H,
                    float *s)
{
    switch (padded_dh(C / H)) {
    case 4: fwd_blk_4(out, qkv, bias, mask, sp, b, h, N, C, H, s); break;
    case 8: fwd_blk_8(out, qkv, bias, mask, sp, b, h, N, C, H, s); break;
    case 16: fwd_blk_16(out, qkv, bias, mask, sp, b, h, N, C, H, s); break;
    case 24: fwd_blk_24(out, qkv, bias, mask, sp, b, h, N, C, H, s); break;
    case 32: fwd_blk_32(out, qkv, bias, mask, sp, b, h, N, C, H, s); break;
    case 48: fwd_blk_48(out, qkv, bias, mask, sp, b, h, N, C, H, s); break;
    case 64: fwd_blk_64(out, qkv, bias, mask, sp, b, h, N, C, H, s); break;
    default: fwd_one_wide(out, qkv, bias, mask, b, h, N, C, H, s);
    }
}

tg_status tg_attention_fused_fwd(tg_dnn *c, float *out, const float *qkv, const float *bias,
                                 const uint8_t *mask, int64_t B, int64_t N, int64_t C, int64_t H)
{
    int64_t dh = C / H;
    int nt = omp_get_max_threads();
    /* bf16 only in a bf16 model's inference (its context says so, and only
     * where the CPU has AVX512-BF16); heads wider than 128 stay f32 */
    int bf = bf16_fused(c, dh);
    size_t per = bf              ? fwd_bf16_floats(N, dh)
                 : padded_dh(dh) ? fwd_blocked_floats(N, dh)
                                 : per_thread_floats(N, dh, 0);
    float *ws = tg_dnn_tmp(c, TG_TMP_ATT_P, per * (size_t)nt);
    if (!ws)
        return TG_ERR_OUT_OF_MEMORY;
    int32_t *span;
    TG_TRY(spans_of(c, mask, N, &span));
    /* bf16: with fewer than 4 heads per thread (a batch-1 generator: 4 heads
     * on 2 threads) one thread finishing its last head early waited for the
     * other, so heads are split into row ranges (multiples of 16 rows) until
     * there are 4 tasks per thread. Each range packs its head's K and V
     * again, which costs less than the wait did. */
    int64_t parts = 1;
    if (bf && B * H < 4 * nt)
        parts = TG_MIN((4 * nt + B * H - 1) / (B * H), N / 128);
    parts = TG_MAX(parts, 1);
    int64_t rows = (N + parts - 1) / parts;
    rows = (rows + 15) / 16 * 16;
    parts = (N + rows - 1) / rows;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t t = 0; t < B * H * parts; t++) {
        float *w = ws + per * (size_t)omp_get_thread_num();
        int64_t bh = t / parts, r0 = t % parts * rows;
        if (bf)
            fwd_one_bf16(out, qkv, bias, mask, span, bh / H, bh % H, N, C, H, r0,
                         TG_MIN(N, r0 + rows), w);
        else
            fwd_one(out, qkv, bias, mask, span, bh / H, bh % H, N, C, H, w);
    }
    return TG_OK;
}

#define BWD_ONE TG_CAT(bwd_one_, DP)
#define DP 4
#include "attention_fused_bwd.inc"
#undef DP
#define DP 8
#include "attention_fused_bwd.inc"
#undef DP
#define DP 16
#include "attention_fused_bwd.inc"
#undef DP
#define DP 24
#include "attention_fused_bwd.inc"
#undef DP
#define DP 32
#include "attention_fused_bwd.inc"
#undef DP
#define DP 0
#include "attention_fused_bwd.inc"
#undef DP
#undef BWD_ONE

/* the blocked backward kernels: compiled for AVX-512 whatever the build's
 * baseline, chosen at run time (bwd_blocked_ok below) */
#define TG_AVX512_KERNEL __attribute__((target("avx512f"), noinline))
/* rows per block of the blocked backward: R x DP sums of dQ in registers */
#define BWD_ROWS(DP) ((DP) <= 4 ? 4 : 2)
/* floats of its workspace: K, V, dK, dV [DP][NP], then R rows of scores and of dP */
static size_t bwd_blk_floats(int64_t N, int64_t DP)
{
    return (size_t)((4 * DP + 2 * BWD_ROWS(DP)) * pad16(N));
}
#define BWD_BLK TG_CAT(bwd_blk_, DP)
#define DP 4
#include "attention_fused_bwd_blk.inc"
#undef DP
#define DP 8
#include "attention_fused_bwd_blk.inc"
#undef DP
#undef BWD_BLK

/* The blocked backwards run on AVX-512 CPUs only (bwd_blocked_ok): they
 * keep R x 16-float vectors of sums in registers, 16 to 32 of AVX-512's 32,
 * which on AVX2 are twice as many registers of half the width, and the
 * spills made them slower there than the row kernel. One-ISA builds
 * (TG_KERNEL_ISA_AVX2, -O3, 1 thread, 32 images, docs/PERFORMANCE.md "Heads
 * of 16 in blocks"): the key-major kernel 165 ms against the row kernel's
 * 30 at 256 tokens x 2 heads of 16; bwd_blk 357 against 289 ms at 1,024
 * tokens x 2 heads of 4, 1,119 against 812 at 4 heads of 8. The one-ISA
 * test builds (TG_KERNEL_ISA_*) test the row kernel, the path such CPUs
 * take. */
static int bwd_blocked_ok(void)
{
#if defined(TG_KERNEL_ISA_AVX2) || defined(TG_KERNEL_ISA_BASELINE)
    return 0;
#else
    return __builtin_cpu_supports("avx512f");
#endif
}

/* the key-major blocked backward for heads of 9 to 16 (4 rows per block):
 * K, V [16][NP], K, dK, dV [NP][16], then 4 rows of scores and of dP;
 * compiled for AVX-512 whatever the build's baseline */
static size_t bwd_km_floats(int64_t N) { return (size_t)((5 * 16 + 2 * 4) * pad16(N)); }
#define BWD_KM TG_CAT(bwd_km_, DP)
#define DP 16
#include "attention_fused_bwd_km.inc"
#undef DP
#undef BWD_KM

static void bwd_one(float *dqkv, float *dbias, const float *dout, const float *qkv,
                    const float *bias, const uint8_t *mask, int64_t b, int64_t h, int64_t N,
                    int64_t C, int64_t H, float *w)
{
    switch (bwd_padded_dh(C / H)) {
    case 4: bwd_one_4(dqkv, dbias, dout, qkv, bias, mask, b, h, N, C, H, w); break;
    case 8: bwd_one_8(dqkv, dbias, dout, qkv, bias, mask, b, h, N, C, H, w); break;
    case 16: bwd_one_16(dqkv, dbias, dout, qkv, bias, mask, b, h, N, C, H, w); break;
    case 24: bwd_one_24(dqkv, dbias, dout, qkv, bias, mask, b, h, N, C, H, w); break;
    case 32: bwd_one_32(dqkv, dbias, dout, qkv, bias, mask, b, h, N, C, H, w); break;
    default: bwd_one_0(dqkv, dbias, dout, qkv, bias, mask, b, h, N, C, H, w);
    }
}

tg_status tg_attention_fused_bwd(tg_dnn *c, float *dqkv, float *dbias, const float *dout,
                                 const float *qkv, const float *bias, const uint8_t *mask,
                                 int64_t B, int64_t N, int64_t C, int64_t H)
{
    int64_t dh = C / H;
    int nt = omp_get_max_threads();
    int64_t dp = bwd_padded_dh(dh);
    /* heads up to 16 wide without bias: the blocked kernels (a mask's spans
     * skip the keys it hides) */
    int blk = !bias && !dbias && (dp == 4 || dp == 8 || dp == 16) && bwd_blocked_ok();
    size_t per = !blk     ? per_thread_floats(N, dp ? dp : dh, 1)
               : dp == 16 ? bwd_km_floats(N)
                          : bwd_blk_floats(N, dp);
    float *ws = tg_dnn_tmp(c, TG_TMP_ATT_P, per * (size_t)nt);
    if (!ws)
        return TG_ERR_OUT_OF_MEMORY;
    int32_t *span;
    TG_TRY(spans_of(c, blk ? mask : NULL, N, &span));
    if (blk) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (int64_t bh = 0; bh < B * H; bh++) {
            float *w = ws + per * (size_t)omp_get_thread_num();
            if (dp == 4)
                bwd_blk_4(dqkv, dout, qkv, mask, span, bh / H, bh % H, N, C, H, w);
            else if (dp == 8)
                bwd_blk_8(dqkv, dout, qkv, mask, span, bh / H, bh % H, N, C, H, w);
            else
                bwd_km_16(dqkv, dout, qkv, mask, span, bh / H, bh % H, N, C, H, w);
        }
    } else if (!dbias) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (int64_t bh = 0; bh < B * H; bh++)
            bwd_one(dqkv, NULL, dout, qkv, bias, mask, bh / H, bh % H, N, C, H,
                    ws + per * (size_t)omp_get_thread_num());
    } else { /* heads own their bias-gradient rows: parallel over heads only */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (int64_t h = 0; h < H; h++)
            for (int64_t b = 0; b < B; b++)
                bwd_one(dqkv, dbias, dout, qkv, bias, mask, b, h, N, C, H,
                        ws + per * (size_t)omp_get_thread_num());
    }
    return TG_OK;
}
