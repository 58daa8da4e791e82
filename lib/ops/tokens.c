/* Data movement on token grids and images, and the MSE loss: plain C loops
 * (oneDNN's shuffle would run a reference kernel), parallel on OpenMP so they
 * share oneDNN's thread pool. */
#include "ops.h"

void tg_add_inplace(float *y, const float *x, size_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

void tg_add_broadcast_fwd(float *y, const float *p, size_t B, size_t n)
{
#pragma omp parallel for schedule(static) if (B * n > 65536)
    for (size_t b = 0; b < B; b++)
        for (size_t i = 0; i < n; i++)
            y[b * n + i] += p[i];
}

void tg_add_broadcast_bwd(float *dp, const float *dy, size_t B, size_t n)
{
#pragma omp parallel for schedule(static) if (B * n > 65536)
    for (size_t i = 0; i < n; i++) {
        float s = 0;
        for (size_t b = 0; b < B; b++)
            s += dy[b * n + i];
        dp[i] += s;
    }
}

/* one index map serves both directions: the source offset of output token
 * t's first channel; its channel c is 4 * c further */
static inline int64_t shuffle_src(int64_t t, int64_t w, int64_t C)
{
    int64_t W = 2 * w, Y = t / W, X = t % W;
    int64_t h = Y >> 1, i = Y & 1, v = X >> 1, j = X & 1;
    return (h * w + v) * C + 2 * i + j;
}

/* Parallel over output tokens of all images: over B alone, a batch-1 call
 * opened a parallel region whose one iteration ran on one thread while the
 * other waited. The index map is evaluated once per token. */
void tg_pixel_shuffle_fwd(float *y, const float *x, int64_t B, int64_t w, int64_t C)
{
    int64_t N2 = 4 * w * w, C4 = C / 4;
#pragma omp parallel for schedule(static) if (B * N2 * C4 > 8192)
    for (int64_t bt = 0; bt < B * N2; bt++) {
        const float *src = x + bt / N2 * w * w * C + shuffle_src(bt % N2, w, C);
        float *dst = y + bt * C4;
        for (int64_t c = 0; c < C4; c++)
            dst[c] = src[4 * c];
    }
}

void tg_pixel_shuffle_bwd(float *dx, const float *dy, int64_t B, int64_t w, int64_t C)
{
    int64_t N2 = 4 * w * w, C4 = C / 4;
#pragma omp parallel for schedule(static) if (B * N2 * C4 > 8192)
    for (int64_t bt = 0; bt < B * N2; bt++) {
        float *dst = dx + bt / N2 * w * w * C + shuffle_src(bt % N2, w, C);
        const float *src = dy + bt * C4;
        for (int64_t c = 0; c < C4; c++)
            dst[4 * c] = src[c];
    }
}

static inline int64_t patch_src(int64_t t, int64_t f, int64_t ch, int64_t S, int64_t p)
{
    int64_t g = S / p, py = t / g, px = t % g;
    int64_t c = f / (p * p), r = (f / p) % p, q = f % p;
    (void)ch;
    return (c * S + py * p + r) * S + px * p + q;
}

void tg_patches_fwd(float *tok, const float *img, int64_t B, int64_t ch, int64_t S, int64_t p)
{
    int64_t T = (S / p) * (S / p), F = ch * p * p;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t f = 0; f < F; f++)
                tok[(b * T + t) * F + f] = img[b * ch * S * S + patch_src(t, f, ch, S, p)];
}

void tg_patches_bwd(float *dimg, const float *dtok, int64_t B, int64_t ch, int64_t S, int64_t p)
{
    int64_t T = (S / p) * (S / p), F = ch * p * p;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t f = 0; f < F; f++)
                dimg[b * ch * S * S + patch_src(t, f, ch, S, p)] = dtok[(b * T + t) * F + f];
}

void tg_transpose_fwd(float *y, const float *x, int64_t B, int64_t R, int64_t Cc)
{
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < Cc; c++)
                y[(b * Cc + c) * R + r] = x[(b * R + r) * Cc + c];
}

void tg_avgpool_fwd(float *y, const float *x, int64_t B, int64_t ch, int64_t S, int64_t k)
{
    int64_t s = S / k;
    float inv = 1.0f / (float)(k * k);
#pragma omp parallel for schedule(static)
    for (int64_t bc = 0; bc < B * ch; bc++)
        for (int64_t i = 0; i < s; i++)
            for (int64_t j = 0; j < s; j++) {
                float acc = 0;
                for (int64_t u = 0; u < k; u++)
                    for (int64_t v = 0; v < k; v++)
                        acc += x[(bc * S + i * k + u) * S + j * k + v];
                y[(bc * s + i) * s + j] = acc * inv;
            }
}

void tg_avgpool_bwd(float *dx, const float *dy, int64_t B, int64_t ch, int64_t S, int64_t k)
{
    int64_t s = S / k;
    float inv = 1.0f / (float)(k * k);
#pragma omp parallel for schedule(static)
    for (int64_t bc = 0; bc < B * ch; bc++)
        for (int64_t y = 0; y < S; y++)
            for (int64_t x = 0; x < S; x++)
                dx[(bc * S + y) * S + x] = dy[(bc * s + y / k) * s + x / k] * inv;
}

double tg_mse_fwd(const float *a, const float *b, size_t n)
{
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        s += d * d;
    }
    return n ? s / (double)n : 0.0;
}

void tg_mse_bwd(float *da, const float *a, const float *b, size_t n, float dloss)
{
    float k = 2.0f * dloss / (float)(n ? n : 1);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        da[i] = k * (a[i] - b[i]);
}
