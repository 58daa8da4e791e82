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
 * row meets all M inputs while it is in L1. */
#include "ops.h"

void tg_linear_rows_fwd(float *y, const float *x, const float *w, const float *b, int64_t M,
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
