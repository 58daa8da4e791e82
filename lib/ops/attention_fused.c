/* Fused attention for long token sequences (the generator's last stages):
 * the scores of a few query rows at a time (in L1/L2), softmax and the
 * weighted sum of values in the same pass; backward recomputes each row. No
 * [N, N] matrix is ever stored, so memory is linear in tokens. Parallel over
 * (image, head) pairs on OpenMP, sharing oneDNN's thread pool.
 *
 * With tiny head widths (4 to 16 features at 1024 tokens) the matmul path is
 * bound by writing and re-reading the score matrices; this path is bound by
 * the exponentials, which are computed by a polynomial that vectorises.
 *
 * In order: the scalar exponential and the runtime-width row kernel (backward
 * and heads wider than 64), the blocked forward kernels, the forward entry
 * point, the backward kernels and entry point. */
#include <math.h>
#include <omp.h>

#include "ops.h"

/* Token count from which tg_attention_* use this path (tests lower it). */
int64_t tg_attention_fused_min_tokens = 256;

/* exp(x) for x <= 0 (softmax after the row maximum): Cephes' polynomial on
 * x = n ln2 + r, |r| <= ln2/2, ~1 ulp; exactly 0 below -87 (and for -inf). */
#pragma omp declare simd notinbranch
static inline float exp_neg(float x)
{
    float xc = x < -87.0f ? -87.0f : x;
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round */
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } sc = {.i = ((int32_t)n + 127) << 23};
    return x < -87.0f ? 0.0f : p * sc.f;
}

/* Hot loops compiled for AVX-512, AVX2 and baseline x86-64, picked at load. */
#define TG_CLONES __attribute__((target_clones("avx512f", "avx2", "default"), noinline))

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
    if (brow)
#pragma omp simd
        for (int64_t j = 0; j < N; j++)
            s[j] += brow[j];
    if (mrow)
#pragma omp simd
        for (int64_t j = 0; j < N; j++)
            s[j] = mrow[j] ? s[j] : -INFINITY;
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
 * vectors explicit (one zmm on AVX-512, two ymm on AVX2, four xmm else). */
typedef float v16f __attribute__((vector_size(64)));
typedef float v16fu __attribute__((vector_size(64), aligned(4), may_alias));
#define VLOAD(p) (*(const v16fu *)(p))
#define VSTORE(p, v) (*(v16fu *)(p) = (v))

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
 * [-1/2, 1/2]); 0 below -126 and for -inf or NaN (padding, masked keys).
 * The blocked kernels work in base 2 (scores pre-multiplied by log2 e), which
 * saves exp's range reduction; n = round(x) is read from the low mantissa
 * bits of x + 1.5 * 2^23 and shifted straight into the exponent field. */
static inline __attribute__((always_inline)) void vexp2_neg(v16f *io)
{
    const float magic = 12582912.0f;
    v16f x = *io;
    v16f t = x + magic;
    v16f f = x - (t - magic);
    v16f p = 1.534579205326736e-4f + (v16f){0};
    p = p * f + 1.3399923918768764e-3f;
    p = p * f + 9.618489071726799e-3f;
    p = p * f + 5.550328642129898e-2f;
    p = p * f + 2.4022646248340607e-1f;
    p = p * f + 6.931471824645996e-1f;
    p = p * f + 1.0f;
    v16u e = ((v16u)t + 127u) << 23; /* unsigned: the high bits shift out, defined */
    *io = (v16f)((v16i)(p * (v16f)e) & (x > -126.0f));
}

/* One block of R query rows: scores into S (R rows of NP), then P V with
 * R x DC sums in registers; when DC covers the padded head the probabilities
 * are computed in the same pass, else they are stored first and V is taken
 * DC features at a time. */
#define FWD_BLOCKED(DP)                                                                        \
    TG_CLONES static void fwd_blk_##DP(float *out, const float *qkv, const float *bias,        \
                                       const uint8_t *mask, int64_t b, int64_t h, int64_t N,   \
                                       int64_t C, int64_t H, float *w)                         \
    {                                                                                          \
        /* R x DC accumulators: 16 of the 32 vector registers */                              \
        enum { R = ROWS_FOR(DP), DC = DP < 16 / R ? DP : 16 / R };                             \
        int64_t dh = C / H, row = 3 * C, NP = pad16(N);                                        \
        float scale = 1.44269504088896341f / sqrtf((float)dh); /* base 2: log2(e) */           \
        float *S = w, *Kt = S + R * NP, *Vt = Kt + DP * NP;                                    \
        const float *base = qkv + b * N * row + h * dh;                                        \
        pack_t_pad(Kt, base + C, N, dh, row, DP, NP);                                          \
        pack_t_pad(Vt, base + 2 * C, N, dh, row, DP, NP);                                      \
        for (int64_t i0 = 0; i0 < N; i0 += R) {                                                \
            int64_t ri[R];                                                                     \
            float qs[R][DP];                                                                   \
            for (int r = 0; r < R; r++) { /* a short last block repeats its last row */      \
                ri[r] = i0 + r < N ? i0 + r : N - 1;                                           \
                for (int d = 0; d < DP; d++)                                                   \
                    qs[r][d] = d < dh ? base[ri[r] * row + d] * scale : 0.0f;                  \
            }                                                                                  \
            /* scores S[r][j] = q_r . k_j and their running maximum */                         \
            v16f mv[R];                                                                        \
            for (int r = 0; r < R; r++)                                                        \
                mv[r] = (v16f){0} - INFINITY;                                                  \
            for (int64_t j = 0; j < NP; j += 16) {                                             \
                v16f acc[R];                                                                   \
                for (int r = 0; r < R; r++)                                                    \
                    acc[r] = (v16f){0};                                                        \
                for (int d = 0; d < DP; d++) {                                                 \
                    v16f k = VLOAD(Kt + d * NP + j);                                           \
                    for (int r = 0; r < R; r++)                                                \
                        acc[r] += qs[r][d] * k;                                                \
                }                                                                              \
                for (int r = 0; r < R; r++) {                                                  \
                    VSTORE(S + r * NP + j, acc[r]);                                            \
                    v16i gt = acc[r] > mv[r];                                                  \
                    mv[r] = (v16f)(((v16i)acc[r] & gt) | ((v16i)mv[r] & ~gt));                 \
                }                                                                              \
            }                                                                                  \
            float m[R];                                                                        \
            for (int r = 0; r < R; r++) {                                                      \
                float *s = S + r * NP;                                                         \
                if (bias || mask || NP != N) {                                                 \
                    if (bias) {                                                                \
                        const float *br = bias + (h * N + ri[r]) * N;                          \
                        _Pragma("omp simd") for (int64_t j = 0; j < N; j++)                    \
                            s[j] += br[j] * 1.44269504088896341f;                              \
                    }                                                                          \
                    if (mask) {                                                                \
                        const uint8_t *mr = mask + ri[r] * N;                                  \
                        _Pragma("omp simd") for (int64_t j = 0; j < N; j++)                    \
                            s[j] = mr[j] ? s[j] : -INFINITY;                                   \
                    }                                                                          \
                    for (int64_t j = N; j < NP; j++)                                           \
                        s[j] = -INFINITY;                                                      \
                    float mm = -INFINITY;                                                      \
                    _Pragma("omp simd reduction(max : mm)") for (int64_t j = 0; j < N; j++)    \
                        mm = s[j] > mm ? s[j] : mm;                                            \
                    m[r] = mm;                                                                 \
                } else {                                                                       \
                    float mm = -INFINITY;                                                      \
                    for (int k = 0; k < 16; k++)                                               \
                        mm = mv[r][k] > mm ? mv[r][k] : mm;                                    \
                    m[r] = mm;                                                                 \
                }                                                                              \
            }                                                                                  \
            /* P = exp(S - m), l = row sums, out_r = P_r V / l_r */                            \
            v16f lv[R];                                                                        \
            for (int r = 0; r < R; r++)                                                        \
                lv[r] = (v16f){0};                                                             \
            if (DC < DP) /* several chunks of features: exponentiate once, in place */         \
                for (int64_t j = 0; j < NP; j += 16)                                           \
                    for (int r = 0; r < R; r++) {                                              \
                        v16f p = VLOAD(S + r * NP + j) - m[r];                                 \
                        vexp2_neg(&p);                                                         \
                        lv[r] += p;                                                            \
                        VSTORE(S + r * NP + j, p);                                             \
                    }                                                                          \
            for (int d0 = 0; d0 < dh; d0 += DC) {                                              \
                v16f acc[R][DC];                                                               \
                for (int r = 0; r < R; r++)                                                    \
                    for (int d = 0; d < DC; d++)                                               \
                        acc[r][d] = (v16f){0};                                                 \
                for (int64_t j = 0; j < NP; j += 16) {                                         \
                    v16f p[R];                                                                 \
                    for (int r = 0; r < R; r++) {                                              \
                        if (DC < DP) {                                                         \
                            p[r] = VLOAD(S + r * NP + j);                                      \
                        } else { /* one chunk: exponentiate on the fly */                      \
                            p[r] = VLOAD(S + r * NP + j) - m[r];                               \
                            vexp2_neg(&p[r]);                                                  \
                            lv[r] += p[r];                                                     \
                        }                                                                      \
                    }                                                                          \
                    for (int d = 0; d < DC; d++) {                                             \
                        v16f v = VLOAD(Vt + (d0 + d) * NP + j);                                \
                        for (int r = 0; r < R; r++)                                            \
                            acc[r][d] += p[r] * v;                                             \
                    }                                                                          \
                }                                                                              \
                for (int r = 0; r < R && i0 + r < N; r++) {                                    \
                    float *o = out + (b * N + i0 + r) * C + h * dh, inv = 1.0f / hsum16(&lv[r]); \
                    for (int d = 0; d < DC && d0 + d < dh; d++)                                \
                        o[d0 + d] = hsum16(&acc[r][d]) * inv;                                  \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

FWD_BLOCKED(4)
FWD_BLOCKED(8)
FWD_BLOCKED(16)
FWD_BLOCKED(24)
FWD_BLOCKED(32)
FWD_BLOCKED(48)
FWD_BLOCKED(64)

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
                    int64_t b, int64_t h, int64_t N, int64_t C, int64_t H, float *s)
{
    switch (padded_dh(C / H)) {
    case 4: fwd_blk_4(out, qkv, bias, mask, b, h, N, C, H, s); break;
    case 8: fwd_blk_8(out, qkv, bias, mask, b, h, N, C, H, s); break;
    case 16: fwd_blk_16(out, qkv, bias, mask, b, h, N, C, H, s); break;
    case 24: fwd_blk_24(out, qkv, bias, mask, b, h, N, C, H, s); break;
    case 32: fwd_blk_32(out, qkv, bias, mask, b, h, N, C, H, s); break;
    case 48: fwd_blk_48(out, qkv, bias, mask, b, h, N, C, H, s); break;
    case 64: fwd_blk_64(out, qkv, bias, mask, b, h, N, C, H, s); break;
    default: fwd_one_wide(out, qkv, bias, mask, b, h, N, C, H, s);
    }
}

tg_status tg_attention_fused_fwd(tg_dnn *c, float *out, const float *qkv, const float *bias,
                                 const uint8_t *mask, int64_t B, int64_t N, int64_t C, int64_t H)
{
    int64_t dh = C / H;
    int nt = omp_get_max_threads();
    size_t per = padded_dh(dh) ? fwd_blocked_floats(N, dh) : per_thread_floats(N, dh, 0);
    float *ws = tg_dnn_tmp(c, 0, per * (size_t)nt);
    if (!ws)
        return TG_ERR_OUT_OF_MEMORY;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t bh = 0; bh < B * H; bh++)
        fwd_one(out, qkv, bias, mask, bh / H, bh % H, N, C, H,
                ws + per * (size_t)omp_get_thread_num());
    return TG_OK;
}

/* one (image, head): gradients of q, k, v rows and, if dbias, of the bias.
 * DP > 0: the head width padded to DP (zero rows in Kt, Vt), so the loops
 * over features have a compile-time length; DP = 0: any width. */
#define BWD_ONE(DP)                                                                            \
    TG_CLONES static void bwd_one_##DP(float *dqkv, float *dbias, const float *dout,           \
                                       const float *qkv, const float *bias,                    \
                                       const uint8_t *mask, int64_t b, int64_t h, int64_t N,   \
                                       int64_t C, int64_t H, float *w)                         \
    {                                                                                          \
        int64_t dh = C / H, row = 3 * C;                                                       \
        const int64_t D = DP ? DP : dh;                                                        \
        float scale = 1.0f / sqrtf((float)dh);                                                 \
        float *p = w, *dp = p + N, *Kt = dp + N, *Vt = Kt + D * N, *dKt = Vt + D * N,          \
              *dVt = dKt + D * N;                                                              \
        const float *base = qkv + b * N * row + h * dh;                                        \
        pack_t_pad(Kt, base + C, N, dh, row, D, N);                                            \
        pack_t_pad(Vt, base + 2 * C, N, dh, row, D, N);                                        \
        for (int64_t e = 0; e < 2 * D * N; e++)                                                \
            dKt[e] = 0.0f; /* dKt and dVt are adjacent */                                      \
        float q[DP ? DP : 1], dO[DP ? DP : 1];                                                 \
        for (int64_t i = 0; i < N; i++) {                                                      \
            const float *qi = base + i * row, *dOi = dout + (b * N + i) * C + h * dh;          \
            if (DP) {                                                                          \
                for (int d = 0; d < D; d++) {                                                  \
                    q[d] = d < dh ? qi[d] : 0.0f;                                              \
                    dO[d] = d < dh ? dOi[d] : 0.0f;                                            \
                }                                                                              \
            }                                                                                  \
            const float *qq = DP ? q : qi, *gg = DP ? dO : dOi;                                \
            float inv = 1.0f / row_probs(p, qq, Kt, N, D, scale,                               \
                                         bias ? bias + (h * N + i) * N : NULL,                 \
                                         mask ? mask + i * N : NULL);                          \
            float Dsum = 0.0f;                                                                 \
            _Pragma("omp simd reduction(+ : Dsum)") for (int64_t j = 0; j < N; j++)            \
            { /* dP = dO V^T; dV += P^T dO; D = rowsum(P o dP) */                              \
                float pj = p[j] * inv, a = 0.0f;                                               \
                for (int64_t d = 0; d < D; d++) {                                              \
                    a += gg[d] * Vt[d * N + j];                                                \
                    dVt[d * N + j] += pj * gg[d];                                              \
                }                                                                              \
                p[j] = pj;                                                                     \
                dp[j] = a;                                                                     \
                Dsum += pj * a;                                                                \
            }                                                                                  \
            _Pragma("omp simd") for (int64_t j = 0; j < N; j++) /* dS = P o (dP - D) */        \
                dp[j] = p[j] * (dp[j] - Dsum);                                                 \
            if (dbias) {                                                                       \
                float *db = dbias + (h * N + i) * N;                                           \
                _Pragma("omp simd") for (int64_t j = 0; j < N; j++) db[j] += dp[j];            \
            }                                                                                  \
            float *dq = dqkv + (b * N + i) * row + h * dh;                                     \
            float acc[DP ? DP : 64];                                                           \
            for (int64_t d0 = 0; d0 < D; d0 += 64) { /* dQ = scale dS K; dK += scale dS^T Q */ \
                int64_t dn = D - d0 < 64 ? D - d0 : 64;                                        \
                for (int64_t d = 0; d < dn; d++)                                               \
                    acc[d] = 0.0f;                                                             \
                for (int64_t d = 0; d < dn; d++) {                                             \
                    const float *k = Kt + (d0 + d) * N;                                        \
                    float *dk = dKt + (d0 + d) * N, qd = qq[d0 + d] * scale, ad = 0.0f;        \
                    _Pragma("omp simd reduction(+ : ad)") for (int64_t j = 0; j < N; j++)      \
                    {                                                                          \
                        ad += dp[j] * k[j];                                                    \
                        dk[j] += dp[j] * qd;                                                   \
                    }                                                                          \
                    acc[d] = ad;                                                               \
                }                                                                              \
                for (int64_t d = 0; d < dn && d0 + d < dh; d++)                                \
                    dq[d0 + d] = acc[d] * scale;                                               \
            }                                                                                  \
        }                                                                                      \
        for (int64_t j = 0; j < N; j++)                                                        \
            for (int64_t d = 0; d < dh; d++) {                                                 \
                dqkv[(b * N + j) * row + C + h * dh + d] = dKt[d * N + j];                     \
                dqkv[(b * N + j) * row + 2 * C + h * dh + d] = dVt[d * N + j];                 \
            }                                                                                  \
    }

BWD_ONE(4)
BWD_ONE(8)
BWD_ONE(16)
BWD_ONE(24)
BWD_ONE(32)
BWD_ONE(0)

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
    size_t per = per_thread_floats(N, dp ? dp : dh, 1);
    float *ws = tg_dnn_tmp(c, 0, per * (size_t)nt);
    if (!ws)
        return TG_ERR_OUT_OF_MEMORY;
    if (!dbias) {
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
