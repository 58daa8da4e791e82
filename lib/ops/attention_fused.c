/* Fused attention for long token sequences (the generator's last stages):
 * one query row at a time, scores of that row only (in L1), softmax and the
 * weighted sum of values in the same pass; backward recomputes the row. No
 * [N, N] matrix is ever stored, so memory is linear in tokens. Parallel over
 * (image, head) pairs on OpenMP, sharing oneDNN's thread pool.
 *
 * With tiny head widths (4 to 16 features at 1024 tokens) the matmul path is
 * bound by writing and re-reading the score matrices; this path is bound by
 * the exponentials, which are computed by a polynomial that vectorises. */
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
 * [DH][N]. DH is a compile-time constant in the specialised copies below, so
 * the loop over features unrolls and one pass over the keys does it all. */
#define ROW_PROBS(DH)                                                                      \
    static inline __attribute__((always_inline)) float row_probs_##DH(                    \
        float *restrict s, const float *q, const float *restrict Kt, int64_t N, int64_t dh, \
        float scale, const float *brow, const uint8_t *mrow)                               \
    {                                                                                      \
        const int64_t D = DH ? DH : dh;                                                    \
        float qs[64];                                                                      \
        for (int64_t d = 0; d < D; d++)                                                    \
            qs[d] = q[d] * scale;                                                          \
        float m = -INFINITY;                                                               \
        if (!brow && !mrow) {                                                              \
            _Pragma("omp simd reduction(max : m)") for (int64_t j = 0; j < N; j++)         \
            {                                                                              \
                float a = 0.0f;                                                            \
                for (int64_t d = 0; d < D; d++)                                            \
                    a += qs[d] * Kt[d * N + j];                                            \
                s[j] = a;                                                                  \
                m = a > m ? a : m;                                                         \
            }                                                                              \
        } else {                                                                           \
            _Pragma("omp simd") for (int64_t j = 0; j < N; j++)                            \
            {                                                                              \
                float a = 0.0f;                                                            \
                for (int64_t d = 0; d < D; d++)                                            \
                    a += qs[d] * Kt[d * N + j];                                            \
                s[j] = a;                                                                  \
            }                                                                              \
            if (brow)                                                                      \
                _Pragma("omp simd") for (int64_t j = 0; j < N; j++) s[j] += brow[j];       \
            if (mrow)                                                                      \
                _Pragma("omp simd") for (int64_t j = 0; j < N; j++)                        \
                    s[j] = mrow[j] ? s[j] : -INFINITY;                                     \
            _Pragma("omp simd reduction(max : m)") for (int64_t j = 0; j < N; j++)         \
                m = s[j] > m ? s[j] : m;                                                   \
        }                                                                                  \
        float l = 0.0f;                                                                    \
        _Pragma("omp simd reduction(+ : l)") for (int64_t j = 0; j < N; j++)               \
        {                                                                                  \
            s[j] = exp_neg(s[j] - m);                                                      \
            l += s[j];                                                                     \
        }                                                                                  \
        return l;                                                                          \
    }

/* [N][dh] rows with stride `row` -> [dh][N] */
static void pack_t(float *dst, const float *src, int64_t N, int64_t dh, int64_t row)
{
    for (int64_t j = 0; j < N; j++)
        for (int64_t d = 0; d < dh; d++)
            dst[d * N + j] = src[j * row + d];
}

static size_t per_thread_floats(int64_t N, int64_t dh, int bwd)
{
    return (size_t)(2 * N + (bwd ? 4 : 2) * dh * N + 2 * dh);
}

/* out row = P V with P = probs / l; per-feature accumulators in one pass */
#define FWD_ONE(DH)                                                                        \
    ROW_PROBS(DH)                                                                          \
    TG_CLONES static void fwd_one_##DH(float *out, const float *qkv, const float *bias,    \
                                       const uint8_t *mask, int64_t b, int64_t h, int64_t N, \
                                       int64_t C, int64_t H, float *s)                     \
    {                                                                                      \
        int64_t dh = C / H, row = 3 * C;                                                   \
        const int64_t D = DH ? DH : dh;                                                    \
        float scale = 1.0f / sqrtf((float)dh);                                             \
        float *Kt = s + 2 * N, *Vt = Kt + dh * N;                                          \
        const float *base = qkv + b * N * row + h * dh;                                    \
        pack_t(Kt, base + C, N, dh, row);                                                  \
        pack_t(Vt, base + 2 * C, N, dh, row);                                              \
        for (int64_t i = 0; i < N; i++) {                                                  \
            float l = row_probs_##DH(s, base + i * row, Kt, N, dh, scale,                  \
                                     bias ? bias + (h * N + i) * N : NULL,                 \
                                     mask ? mask + i * N : NULL);                          \
            float *o = out + (b * N + i) * C + h * dh, inv = 1.0f / l;                     \
            for (int64_t d = 0; d < D; d++) {                                              \
                const float *v = Vt + d * N;                                               \
                float acc = 0.0f;                                                          \
                _Pragma("omp simd reduction(+ : acc)") for (int64_t j = 0; j < N; j++)     \
                    acc += s[j] * v[j];                                                    \
                o[d] = acc * inv;                                                          \
            }                                                                              \
        }                                                                                  \
    }

FWD_ONE(4)
FWD_ONE(8)
FWD_ONE(16)
FWD_ONE(32)
FWD_ONE(0)

static void fwd_one(float *out, const float *qkv, const float *bias, const uint8_t *mask,
                    int64_t b, int64_t h, int64_t N, int64_t C, int64_t H, float *s)
{
    switch (C / H) {
    case 4: fwd_one_4(out, qkv, bias, mask, b, h, N, C, H, s); break;
    case 8: fwd_one_8(out, qkv, bias, mask, b, h, N, C, H, s); break;
    case 16: fwd_one_16(out, qkv, bias, mask, b, h, N, C, H, s); break;
    case 32: fwd_one_32(out, qkv, bias, mask, b, h, N, C, H, s); break;
    default: fwd_one_0(out, qkv, bias, mask, b, h, N, C, H, s);
    }
}

tg_status tg_attention_fused_fwd(tg_dnn *c, float *out, const float *qkv, const float *bias,
                                 const uint8_t *mask, int64_t B, int64_t N, int64_t C, int64_t H)
{
    int64_t dh = C / H;
    int nt = omp_get_max_threads();
    size_t per = per_thread_floats(N, dh, 0);
    float *ws = tg_dnn_tmp(c, 0, per * (size_t)nt);
    if (!ws)
        return TG_ERR_OUT_OF_MEMORY;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t bh = 0; bh < B * H; bh++)
        fwd_one(out, qkv, bias, mask, bh / H, bh % H, N, C, H,
                ws + per * (size_t)omp_get_thread_num());
    return TG_OK;
}

/* one (image, head): gradients of q, k, v rows and, if dbias, of the bias */
TG_CLONES static void bwd_one(float *dqkv, float *dbias, const float *dout, const float *qkv,
                    const float *bias, const uint8_t *mask, int64_t b, int64_t h, int64_t N,
                    int64_t C, int64_t H, float *w)
{
    int64_t dh = C / H, row = 3 * C;
    float scale = 1.0f / sqrtf((float)dh);
    float *p = w, *dp = p + N, *Kt = dp + N, *Vt = Kt + dh * N, *dKt = Vt + dh * N,
          *dVt = dKt + dh * N;
    const float *base = qkv + b * N * row + h * dh;
    pack_t(Kt, base + C, N, dh, row);
    pack_t(Vt, base + 2 * C, N, dh, row);
    for (int64_t e = 0; e < 2 * dh * N; e++)
        dKt[e] = 0.0f; /* dKt and dVt are adjacent */
    for (int64_t i = 0; i < N; i++) {
        const float *q = base + i * row, *dO = dout + (b * N + i) * C + h * dh;
        float inv = 1.0f / row_probs_0(p, q, Kt, N, dh, scale,
                                       bias ? bias + (h * N + i) * N : NULL,
                                       mask ? mask + i * N : NULL);
        for (int64_t j = 0; j < N; j++)
            p[j] *= inv;
        for (int64_t j = 0; j < N; j++)
            dp[j] = 0.0f;
        for (int64_t d = 0; d < dh; d++) { /* dP = dO V^T; dV += P^T dO */
            float g = dO[d];
            const float *v = Vt + d * N;
            float *dv = dVt + d * N;
            for (int64_t j = 0; j < N; j++) {
                dp[j] += g * v[j];
                dv[j] += p[j] * g;
            }
        }
        float D = 0.0f;
#pragma omp simd reduction(+ : D)
        for (int64_t j = 0; j < N; j++)
            D += p[j] * dp[j];
        for (int64_t j = 0; j < N; j++) /* dS = P o (dP - rowsum(P o dP)) */
            dp[j] = p[j] * (dp[j] - D);
        if (dbias) {
            float *db = dbias + (h * N + i) * N;
            for (int64_t j = 0; j < N; j++)
                db[j] += dp[j];
        }
        float *dq = dqkv + (b * N + i) * row + h * dh;
        for (int64_t d = 0; d < dh; d++) { /* dQ = scale dS K; dK += scale dS^T Q */
            const float *k = Kt + d * N;
            float *dk = dKt + d * N, qd = q[d] * scale, acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int64_t j = 0; j < N; j++) {
                acc += dp[j] * k[j];
                dk[j] += dp[j] * qd;
            }
            dq[d] = acc * scale;
        }
    }
    for (int64_t j = 0; j < N; j++)
        for (int64_t d = 0; d < dh; d++) {
            dqkv[(b * N + j) * row + C + h * dh + d] = dKt[d * N + j];
            dqkv[(b * N + j) * row + 2 * C + h * dh + d] = dVt[d * N + j];
        }
}

tg_status tg_attention_fused_bwd(tg_dnn *c, float *dqkv, float *dbias, const float *dout,
                                 const float *qkv, const float *bias, const uint8_t *mask,
                                 int64_t B, int64_t N, int64_t C, int64_t H)
{
    int64_t dh = C / H;
    int nt = omp_get_max_threads();
    size_t per = per_thread_floats(N, dh, 1);
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
