/* LayerNorm (oneDNN) and PixelNorm (C), forward and backward. */
#include <math.h>

#include "ops.h"

#define LN_EPS 1e-5f
#define PN_EPS 1e-8f

/* Forward pd for [M, C]; training keeps mean/var for backward. */
static tg_status ln_fwd_prim(tg_dnn *c, int training, int64_t M, int64_t C, tg_prim **out)
{
    int64_t key[] = {TG_OPK_LN_FWD, training, M, C};
    *out = tg_dnn_find(c, key, 4);
    if (*out)
        return TG_OK;
    dnnl_memory_desc_t md;
    TG_TRY(tg_md_plain(&md, 2, (int64_t[]){M, C}));
    dnnl_layer_normalization_desc_t d;
    TG_DNN(dnnl_layer_normalization_forward_desc_init(
        &d, training ? dnnl_forward_training : dnnl_forward_inference, &md, NULL, LN_EPS,
        dnnl_use_scale | dnnl_use_shift));
    static const int tr[] = {DNNL_ARG_SRC, DNNL_ARG_DST, DNNL_ARG_SCALE, DNNL_ARG_SHIFT,
                             DNNL_ARG_MEAN, DNNL_ARG_VARIANCE};
    return tg_dnn_build(c, key, 4, &d, NULL, NULL, training ? 6 : 4, tr, out);
}

/* Inference LayerNorm of small inputs, parallel over rows. oneDNN's
 * (simple_layer_normalization) ran the generator's [1024, 16], [256, 64] and
 * [64, 256] norms of a batch-1 call on one thread in 6-10 us each while the
 * other thread waited; this loop splits rows across threads. Two passes as
 * oneDNN: the mean, then the mean squared deviation. The row body is inlined
 * with the common widths as constants, so that a row of 16 is one vector and
 * its sums one reduction each. Those per-row reductions still cost about 1.4x
 * the CPU time of oneDNN's JIT kernel at 16 features (fmnist-small, batch 64,
 * one thread), so larger inputs, which oneDNN runs on all threads, stay
 * with oneDNN. */
#define LN_OWN_MAX 65536
static inline __attribute__((always_inline)) void ln_row(float *restrict y,
                                                         const float *restrict x,
                                                         const float *g, const float *b,
                                                         int64_t C)
{
    float mu = 0.0f, v = 0.0f;
#pragma omp simd reduction(+ : mu)
    for (int64_t i = 0; i < C; i++)
        mu += x[i];
    mu /= (float)C;
#pragma omp simd reduction(+ : v)
    for (int64_t i = 0; i < C; i++)
        v += (x[i] - mu) * (x[i] - mu);
    float rs = 1.0f / sqrtf(v / (float)C + LN_EPS);
#pragma omp simd
    for (int64_t i = 0; i < C; i++)
        y[i] = (x[i] - mu) * rs * g[i] + b[i];
}

#define LN_ROWS(CW)                                                                       \
    for (int64_t r = r0; r < r1; r++)                                                     \
        ln_row(y + r * (CW), x + r * (CW), g, b, (CW));                                   \
    return

TG_CLONES static void ln_rows(float *y, const float *x, const float *g, const float *b,
                              int64_t r0, int64_t r1, int64_t C)
{
    switch (C) {
    case 16: LN_ROWS(16);
    case 32: LN_ROWS(32);
    case 64: LN_ROWS(64);
    case 128: LN_ROWS(128);
    case 256: LN_ROWS(256);
    case 384: LN_ROWS(384);
    default: LN_ROWS(C);
    }
}
#undef LN_ROWS

static void ln_infer(float *y, const float *x, const float *g, const float *b, int64_t M,
                     int64_t C)
{
    int64_t rows = TG_MAX(1, 4096 / C); /* rows per task: 16 KiB of input */
    int64_t tasks = (M + rows - 1) / rows;
#pragma omp parallel for schedule(static) if (tasks > 1)
    for (int64_t t = 0; t < tasks; t++)
        ln_rows(y, x, g, b, t * rows, TG_MIN(M, (t + 1) * rows), C);
}

tg_status tg_layernorm_fwd(tg_dnn *c, float *y, float *mean, float *var, const float *x,
                           const float *g, const float *b, int64_t M, int64_t C)
{
    tg_prim *p;
    int training = mean && var;
    if (!training && M * C <= LN_OWN_MAX) {
        ln_infer(y, x, g, b, M, C);
        return TG_OK;
    }
    TG_TRY(ln_fwd_prim(c, training, M, C, &p));
    void *bufs[] = {(void *)x, y, (void *)g, (void *)b, mean, var};
    return tg_prim_exec(c, p, bufs);
}

tg_status tg_layernorm_bwd(tg_dnn *c, float *dx, float *dg, float *db, const float *dy,
                           const float *x, const float *mean, const float *var, const float *g,
                           const float *b, int64_t M, int64_t C)
{
    int64_t key[] = {TG_OPK_LN_BWD, M, C};
    tg_prim *p = tg_dnn_find(c, key, 3);
    if (!p) {
        tg_prim *fp;
        TG_TRY(ln_fwd_prim(c, 1, M, C, &fp));
        dnnl_memory_desc_t md;
        TG_TRY(tg_md_plain(&md, 2, (int64_t[]){M, C}));
        dnnl_layer_normalization_desc_t d;
        TG_DNN(dnnl_layer_normalization_backward_desc_init(&d, dnnl_backward, &md, &md, NULL,
                                                           LN_EPS, dnnl_use_scale | dnnl_use_shift));
        /* oneDNN 2.6 wants SHIFT as an input of backward although it is unused */
        static const int args[] = {DNNL_ARG_SRC,      DNNL_ARG_DIFF_DST,   DNNL_ARG_MEAN,
                                   DNNL_ARG_VARIANCE, DNNL_ARG_SCALE,      DNNL_ARG_SHIFT,
                                   DNNL_ARG_DIFF_SRC, DNNL_ARG_DIFF_SCALE, DNNL_ARG_DIFF_SHIFT};
        TG_TRY(tg_dnn_build(c, key, 3, &d, NULL, fp->pd, 9, args, &p));
    }
    /* diff_scale/diff_shift are overwritten by oneDNN: collect, then add */
    float *t = tg_dnn_tmp(c, TG_TMP_LN, (size_t)(2 * C));
    if (!t)
        return TG_ERR_OUT_OF_MEMORY;
    void *bufs[] = {(void *)x, (void *)dy, (void *)mean, (void *)var, (void *)g,
                    (void *)b, dx,         t,           t + C};
    TG_TRY(tg_prim_exec(c, p, bufs));
    for (int64_t i = 0; dg && i < C; i++) {
        dg[i] += t[i];
        db[i] += t[C + i];
    }
    return TG_OK;
}

void tg_pixelnorm_fwd(float *y, const float *x, int64_t M, int64_t C)
{
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * C;
        double ss = 0;
        for (int64_t i = 0; i < C; i++)
            ss += (double)xr[i] * xr[i];
        float r = 1.0f / sqrtf((float)(ss / (double)C) + PN_EPS);
        for (int64_t i = 0; i < C; i++)
            y[m * C + i] = xr[i] * r;
    }
}

/* y = x r, r = (mean x^2 + eps)^-1/2: dx = r dy - r^3 x (dy . x) / C */
void tg_pixelnorm_bwd(float *dx, const float *dy, const float *x, int64_t M, int64_t C)
{
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * C, *dr = dy + m * C;
        double ss = 0, dot = 0;
        for (int64_t i = 0; i < C; i++) {
            ss += (double)xr[i] * xr[i];
            dot += (double)dr[i] * xr[i];
        }
        double r = 1.0 / sqrt(ss / (double)C + PN_EPS);
        double k = r * r * r * dot / (double)C;
        for (int64_t i = 0; i < C; i++)
            dx[m * C + i] = (float)(r * dr[i] - k * xr[i]);
    }
}

/* Second order of LayerNorm (docs/SECOND_ORDER.md section 7). Per row:
 * n = (x - mu) r, r = (var + eps)^-1/2, y = g n + b. Tangent:
 * nd = r (xd - mean(xd) - n mean(n xd)), yd = g nd. The Jacobian
 * J = r (I - 11^T/C - n n^T/C) is symmetric. */
void tg_layernorm_jvp(float *yd, const float *xd, const float *x, const float *mean,
                      const float *var, const float *g, int64_t M, int64_t C)
{
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * C, *xdr = xd + m * C;
        double mu = mean[m], r = 1.0 / sqrt((double)var[m] + LN_EPS), s = 0, sn = 0;
        for (int64_t i = 0; i < C; i++) {
            s += xdr[i];
            sn += (xr[i] - mu) * r * xdr[i];
        }
        s /= (double)C, sn /= (double)C;
        for (int64_t i = 0; i < C; i++) {
            double n = (xr[i] - mu) * r;
            yd[m * C + i] = (float)(g[i] * r * (xdr[i] - s - n * sn));
        }
    }
}

/* Reverse of (y, yd), docs/SECOND_ORDER.md section 7. With nb = g dy,
 * ndb = g dyd and a = mean(n xd):
 *   dxd = J ndb;
 *   nd = r (xd - mean(xd) - n a) reaches x through r, n and a:
 *     rb = sum(ndb nd) / r,  nb += -r a ndb + ab xd / C,  ab = -r sum(ndb n);
 *   dx = J nb - rb r^2 n / C  (dr/dx = -r^2 n / C). */
void tg_layernorm_bwd2(float *dx, float *dxd, float *dg, float *db, const float *dy,
                       const float *dyd, const float *x, const float *xd, const float *mean,
                       const float *var, const float *g, int64_t M, int64_t C)
{
    /* per-thread partial sums of dg/db would need buffers; rows are few in the
     * discriminator, so accumulate the parameter gradients serially after */
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * C, *xdr = xd + m * C, *dyr = dy + m * C, *dydr = dyd + m * C;
        double mu = mean[m], r = 1.0 / sqrt((double)var[m] + LN_EPS);
        double mxd = 0, a = 0;
        for (int64_t i = 0; i < C; i++) {
            double n = (xr[i] - mu) * r;
            mxd += xdr[i];
            a += n * xdr[i];
        }
        mxd /= (double)C, a /= (double)C;
        /* dxd = J ndb */
        double mndb = 0, nndb = 0, rb = 0;
        for (int64_t i = 0; i < C; i++) {
            double n = (xr[i] - mu) * r, ndb = (double)g[i] * dydr[i];
            double nd = r * (xdr[i] - mxd - n * a);
            mndb += ndb;
            nndb += n * ndb;
            rb += ndb * nd / r;
        }
        mndb /= (double)C, nndb /= (double)C;
        /* ab = -r sum(ndb n) is the adjoint of a = mean(n xd) */
        double ab = -r * nndb * (double)C;
        double mnb = 0, nnb = 0;
        for (int64_t i = 0; i < C; i++) {
            double n = (xr[i] - mu) * r, ndb = (double)g[i] * dydr[i];
            dxd[m * C + i] = (float)(r * (ndb - mndb - n * nndb));
            double nb = (double)g[i] * dyr[i] - r * ndb * a + ab * xdr[i] / (double)C;
            mnb += nb;
            nnb += n * nb;
        }
        mnb /= (double)C, nnb /= (double)C;
        for (int64_t i = 0; i < C; i++) {
            double n = (xr[i] - mu) * r, ndb = (double)g[i] * dydr[i];
            double nb = (double)g[i] * dyr[i] - r * ndb * a + ab * xdr[i] / (double)C;
            dx[m * C + i] = (float)(r * (nb - mnb - n * nnb) - rb * r * r * n / (double)C);
        }
    }
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * C, *xdr = xd + m * C, *dyr = dy + m * C, *dydr = dyd + m * C;
        double mu = mean[m], r = 1.0 / sqrt((double)var[m] + LN_EPS), mxd = 0, a = 0;
        for (int64_t i = 0; i < C; i++) {
            mxd += xdr[i];
            a += (xr[i] - mu) * r * xdr[i];
        }
        mxd /= (double)C, a /= (double)C;
        for (int64_t i = 0; i < C; i++) {
            double n = (xr[i] - mu) * r, nd = r * (xdr[i] - mxd - n * a);
            dg[i] += (float)(dyr[i] * n + dydr[i] * nd);
            db[i] += dyr[i];
        }
    }
}

/* ---- the class-conditional norm (ops.h): plain C, because oneDNN's
 * LayerNorm has one scale and shift for all rows ---- */

/* mean and r = (var + eps)^-1/2 of row x[C]; PixelNorm: mean 0, var = mean x^2 */
static void row_stats(const float *x, int64_t C, int pixel, double *mu, double *var, double *r)
{
    double s = 0, ss = 0;
    for (int64_t i = 0; i < C; i++)
        s += x[i];
    double m = pixel ? 0.0 : s / (double)C;
    for (int64_t i = 0; i < C; i++)
        ss += (x[i] - m) * (x[i] - m);
    *mu = m;
    *var = ss / (double)C;
    *r = 1.0 / sqrt(*var + (pixel ? (double)PN_EPS : (double)LN_EPS));
}

void tg_cond_norm_fwd(float *y, float *mean, float *var, const float *x, const float *g,
                      const float *b, const float *cg, const float *cb, const int32_t *lab,
                      int64_t M, int64_t N, int64_t C, int pixel)
{
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * C, *cgr = cg + (int64_t)lab[m / N] * C,
                    *cbr = cb + (int64_t)lab[m / N] * C;
        double mu, v, r;
        row_stats(xr, C, pixel, &mu, &v, &r);
        if (mean) {
            mean[m] = (float)mu;
            var[m] = (float)v;
        }
        for (int64_t i = 0; i < C; i++) {
            double n = (xr[i] - mu) * r;
            double gain = (g ? g[i] : 1.0) + cgr[i], bias = (b ? b[i] : 0.0) + cbr[i];
            y[m * C + i] = (float)(n * gain + bias);
        }
    }
}

/* With nb = dy (g + cg[lab]) the gradient of n: LayerNorm
 * dx = r (nb - mean(nb) - n mean(nb n)); PixelNorm dx = r (nb - n mean(nb n)). */
void tg_cond_norm_bwd(float *dx, float *dg, float *db, float *dcg, float *dcb, const float *dy,
                      const float *x, const float *g, const float *cg, const int32_t *lab,
                      int64_t M, int64_t N, int64_t C, int pixel)
{
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * C, *dyr = dy + m * C, *cgr = cg + (int64_t)lab[m / N] * C;
        double mu, v, r, mnb = 0, nnb = 0;
        row_stats(xr, C, pixel, &mu, &v, &r);
        for (int64_t i = 0; i < C; i++) {
            double nb = dyr[i] * ((g ? g[i] : 1.0) + cgr[i]);
            mnb += nb;
            nnb += nb * (xr[i] - mu) * r;
        }
        mnb = pixel ? 0.0 : mnb / (double)C;
        nnb /= (double)C;
        for (int64_t i = 0; i < C; i++) {
            double nb = dyr[i] * ((g ? g[i] : 1.0) + cgr[i]), n = (xr[i] - mu) * r;
            dx[m * C + i] = (float)(r * (nb - mnb - n * nnb));
        }
    }
    if (!dcg)
        return;
    /* serial: rows of one class add into the same table row */
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * C, *dyr = dy + m * C;
        float *dcgr = dcg + (int64_t)lab[m / N] * C, *dcbr = dcb + (int64_t)lab[m / N] * C;
        double mu, v, r;
        row_stats(xr, C, pixel, &mu, &v, &r);
        for (int64_t i = 0; i < C; i++) {
            float gn = (float)(dyr[i] * (xr[i] - mu) * r);
            dcgr[i] += gn;
            dcbr[i] += dyr[i];
            if (dg) {
                dg[i] += gn;
                db[i] += dyr[i];
            }
        }
    }
}
