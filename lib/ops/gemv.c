/* A linear layer for a few rows (the generator's input layer at batch 1 and 2):
 * y[M,N] = x[M,K] W[N,K]^T + b[N] by dot products along W's rows.
 *
 * Why not oneDNN: W [N, K] row-major is the matmul's B transposed, and for
 * M = 1 oneDNN 2.6's brgemm matmul repacks all of B on every call; for
 * TransGAN-S's input layer (256 x 24576, 25 MB) that copy is the single
 * largest item of a batch-1 sample (~4.7 ms of ~17 ms of primitives,
 * measured with ONEDNN_VERBOSE; 0.5 ms here against 1.4, best of 200 calls;
 * at M = 2 0.9 against 1.7, at M = 4 level, hence TG_LINEAR_ROWS_MAX 2).
 * Here W is read once, row by row, and each
 * row meets all M inputs while it is in L1.
 *
 * In a bf16 model (bf16.h) the layer is bound by reading W, so it reads the
 * model's bf16 copy of W instead: half the bytes. Only the weights are
 * rounded: x stays f32 and the products are summed in f32, because rounding
 * the latent z itself moves the pixels too much (lib/models/model.c keeps
 * this layer out of the bf16 matmuls for that reason). */
#include <immintrin.h>
#include <string.h>

#include "bf16.h"
#include "ops.h"

static void rows_f32(float *y, const float *x, const float *w, const float *b, int64_t M,
                     int64_t K, int64_t N)
{
#pragma omp parallel for schedule(static) if (N * K > 65536)
    for (int64_t j = 0; j < N; j++) {
        const float *wj = w + j * K;
        for (int64_t m = 0; m < M; m++) {
            const float *xm = x + m * K;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int64_t k = 0; k < K; k++)
                acc += wj[k] * xm[k];
            y[m * N + j] = acc + (b ? b[j] : 0.0f);
        }
    }
}

/* ------------------------------------------------------------ bf16 W
 * AVX-512 (only called where tg_bf16_supported(), which implies it). A bf16
 * is the high half of a float: widening 16 of them is a zero-extension and a
 * shift. ROWS rows of W per block, read one after the other (W streams in
 * order), give ROWS * M independent FMA chains for the out-of-order core.
 * W's loads are masked only at a row's tail: with a masked load in the body
 * the kernel ran 2x slower than the f32 GEMV whenever W came from memory
 * (as it does in a sample: the rest of the network evicts it), on this
 * project's AMD CPU; x, in L1, may be loaded masked. */
#define TG_GEMV_KERNEL __attribute__((target("avx512f,avx512bw,avx512vl")))
#define ROWS 4

static inline __attribute__((always_inline)) TG_GEMV_KERNEL __m512
widen(const uint16_t *p, __mmask16 k)
{
    __m256i h = k == (__mmask16)0xffff ? _mm256_loadu_si256((const __m256i *)p)
                                        : _mm256_maskz_loadu_epi16(k, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* rows [j0, j0 + ROWS) (all present), M 1 or 2 */
static inline __attribute__((always_inline)) TG_GEMV_KERNEL void
block_bf16(float *y, const float *x, const uint16_t *w, const float *b, int64_t M, int64_t K,
           int64_t N, int64_t j0)
{
    /* the loops over m and r unrolled: acc and wv in registers (at -O2 GCC
     * kept them in memory, a store-load chain per FMA: 3x slower) */
    __m512 acc[TG_LINEAR_ROWS_MAX][ROWS];
#pragma GCC unroll 8
    for (int m = 0; m < TG_LINEAR_ROWS_MAX; m++)
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++)
            acc[m][r] = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++)
        for (int64_t k = 0; k < K; k += 16) {
            __mmask16 km = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
            __m512 wv = widen(w + (j0 + r) * K + k, km);
#pragma GCC unroll 8
            for (int m = 0; m < M; m++)
                acc[m][r] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(km, x + m * K + k), acc[m][r]);
        }
#pragma GCC unroll 8
    for (int m = 0; m < M; m++)
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++)
            y[m * N + j0 + r] = _mm512_reduce_add_ps(acc[m][r]) + (b ? b[j0 + r] : 0.0f);
}

/* one row j (the tail of N) */
static inline __attribute__((always_inline)) TG_GEMV_KERNEL void
row_bf16(float *y, const float *x, const uint16_t *w, const float *b, int64_t M, int64_t K,
         int64_t N, int64_t j)
{
    for (int64_t m = 0; m < M; m++) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; k += 16) {
            __mmask16 km = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
            acc = _mm512_fmadd_ps(widen(w + j * K + k, km), _mm512_maskz_loadu_ps(km, x + m * K + k),
                                  acc);
        }
        y[m * N + j] = _mm512_reduce_add_ps(acc) + (b ? b[j] : 0.0f);
    }
}

static TG_GEMV_KERNEL void rows_bf16(float *y, const float *x, const uint16_t *w, const float *b,
                                     int64_t M, int64_t K, int64_t N)
{
    int64_t nb = N / ROWS;
    /* M as a constant in each loop: the accumulators stay in registers */
    if (M == 1) {
#pragma omp parallel for schedule(static) if (N * K > 65536)
        for (int64_t i = 0; i < nb; i++)
            block_bf16(y, x, w, b, 1, K, N, i * ROWS);
    } else {
#pragma omp parallel for schedule(static) if (N * K > 65536)
        for (int64_t i = 0; i < nb; i++)
            block_bf16(y, x, w, b, 2, K, N, i * ROWS);
    }
    for (int64_t j = nb * ROWS; j < N; j++)
        row_bf16(y, x, w, b, M, K, N, j);
}

tg_status tg_linear_rows_fwd(tg_dnn *c, float *y, const float *x, const float *w,
                             const float *b, int64_t M, int64_t K, int64_t N)
{
    if (M > TG_LINEAR_ROWS_MAX)
        return tg_fail(TG_ERR_INTERNAL, "tg_linear_rows_fwd with %lld rows", (long long)M);
    const uint16_t *wb = NULL;
    if (N >= TG_BF16_MIN_OUT) /* a bf16 model's copy of W (NULL: f32) */
        TG_TRY(tg_dnn_bf16_copy(c, w, &wb));
    if (wb)
        rows_bf16(y, x, wb, b, M, K, N);
    else
        rows_f32(y, x, w, b, M, K, N);
    return TG_OK;
}

/* ------------------------------------------------------------ narrow layers
 * An inference Linear whose W is tiny (K, N <= TG_NARROW_MAX) on few rows:
 * the fmnist-small generator's last stage at batch 1 (1024 tokens of 16
 * features: qkv 16 -> 48, proj 16 -> 16, the MLP's 64 -> 16). oneDNN runs these
 * on one thread (ONEDNN_VERBOSE: the same time at 1 and 2 threads) and, in a
 * bf16 model, after a serial pass rounding x; the other thread waits
 * (docs/PERFORMANCE.md, "Batch 1 on two threads"). Here rows are split
 * across threads and computed in f32 from W itself (a few hundred kFLOP:
 * bf16 would save nothing). Training keeps oneDNN (callers do not pass
 * TG_MM_INFER): there a bf16 model's forward stays bf16 like its backward,
 * and training runs at batches where these shapes do not occur anyway. The
 * to_rgb layer (16 -> 1, 16 kFLOP) is left alone: nothing to gain.
 *
 * Each task transposes W into a stack copy, N padded to NV vectors of 16
 * (K x 64 floats, 16 KiB at most), so that a row's outputs are NV vector
 * products per input feature. GCC's generic vectors (v16f, ops.h) with NV a
 * constant keep the 4 x NV
 * accumulators in registers; a plain loop over n kept them in memory, a
 * store-load chain per product that made the kernel 10 % of a sample. */
#define NARROW_RB 4 /* rows per block */

/* rows [m0, m0 + rows), rows <= NARROW_RB (a short block repeats row M - 1
 * in the registers it does not store) */
static inline __attribute__((always_inline)) void
narrow_block(float *y, const float *x, const float *wt, const float *bp, int64_t m0, int64_t M,
             int64_t K, int64_t N, int NV, int sum)
{
    v16f acc[NARROW_RB][4];
    const float *xr[NARROW_RB];
#pragma GCC unroll 4
    for (int r = 0; r < NARROW_RB; r++) {
        xr[r] = x + TG_MIN(m0 + r, M - 1) * K;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            acc[r][v] = VLOAD(bp + 16 * v);
    }
    /* the loops over v and r unrolled: acc in registers (as block_bf16) */
    for (int64_t k = 0; k < K; k++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            v16f w = VLOAD(wt + (k * NV + v) * 16);
#pragma GCC unroll 4
            for (int r = 0; r < NARROW_RB; r++)
                acc[r][v] += xr[r][k] * w;
        }
#pragma GCC unroll 4
    for (int r = 0; r < NARROW_RB; r++) {
        float *ym = y + (m0 + r) * N;
        if (m0 + r >= M)
            break;
        if (N == 16 * NV) { /* whole vectors */
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                VSTORE(ym + 16 * v, sum ? acc[r][v] + VLOAD(ym + 16 * v) : acc[r][v]);
        } else {
            float o[64];
            memcpy(o, acc[r], (size_t)NV * sizeof(v16f));
            for (int64_t n = 0; n < N; n++)
                ym[n] = sum ? ym[n] + o[n] : o[n];
        }
    }
}

#define NARROW_CASE(NVC)                                                                  \
    case NVC:                                                                             \
        for (int64_t m = m0; m < m1; m += NARROW_RB)                                      \
            narrow_block(y, x, wt, bp, m, m1, K, N, NVC, sum);                            \
        return

TG_CLONES static void narrow_rows(float *y, const float *x, const float *w, const float *b,
                                  int64_t m0, int64_t m1, int64_t K, int64_t N, int sum)
{
    int NV = (int)((N + 15) / 16);
    float wt[TG_NARROW_MAX * TG_NARROW_MAX], bp[TG_NARROW_MAX];
    for (int64_t n = 0; n < NV * 16; n++) {
        bp[n] = b && n < N ? b[n] : 0.0f;
        for (int64_t k = 0; k < K; k++)
            wt[k * NV * 16 + n] = n < N ? w[n * K + k] : 0.0f;
    }
    switch (NV) {
        NARROW_CASE(1);
        NARROW_CASE(2);
        NARROW_CASE(3);
    default:
        NARROW_CASE(4);
    }
}
#undef NARROW_CASE

int tg_linear_is_narrow(int64_t M, int64_t K, int64_t N, int post)
{
    return (post & TG_MM_INFER) && (post & ~(TG_MM_SUM | TG_MM_INFER)) == 0 &&
           K <= TG_NARROW_MAX && N <= TG_NARROW_MAX &&
           M * TG_MAX(K, N) <= TG_NARROW_VALUES_MAX;
}

void tg_linear_narrow_fwd(float *y, const float *x, const float *w, const float *b, int64_t M,
                          int64_t K, int64_t N, int post)
{
    int64_t rows = 128; /* rows per task: 4 tasks per thread at batch 1 */
    int64_t tasks = (M + rows - 1) / rows;
#pragma omp parallel for schedule(static) if (tasks > 1 && M * K * N > 65536)
    for (int64_t t = 0; t < tasks; t++)
        narrow_rows(y, x, w, b, t * rows, TG_MIN(M, (t + 1) * rows), K, N, post & TG_MM_SUM);
}
