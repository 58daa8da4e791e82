/* Losses, clipping, SGD, Adam and EMA (docs/SPECIFICATION.md "Training step"). */
#include "optim.h"

#include <math.h>

#include "../core/desc.h"

double tg_d_loss_real(int loss, double drift, const float *s, int64_t B, float *ds)
{
    double mean = 0;
    for (int64_t i = 0; i < B; i++)
        mean += s[i];
    return tg_d_loss_real_at(loss, drift, s, B, mean / (double)B, ds);
}

double tg_d_loss_real_at(int loss, double drift, const float *s, int64_t B, double mean, float *ds)
{
    double l = 0;
    for (int64_t i = 0; i < B; i++) {
        switch (loss) {
        case TG_LOSS_HINGE: /* mean relu(1 - s) */
            l += fmax(0.0, 1.0 - s[i]) / (double)B;
            ds[i] = 1.0 - s[i] > 0 ? (float)(-1.0 / (double)B) : 0.0f;
            break;
        case TG_LOSS_LSGAN: /* mean (s - 1)^2 */
            l += (s[i] - 1.0) * (s[i] - 1.0) / (double)B;
            ds[i] = (float)(2.0 * (s[i] - 1.0) / (double)B);
            break;
        default: /* -mean s, + drift (mean s)^2 for wgan-gp-eps */
            ds[i] = (float)(-1.0 / (double)B);
            if (loss == TG_LOSS_WGAN_GP_EPS)
                ds[i] += (float)(drift * 2.0 * mean / (double)B);
        }
    }
    if (tg_loss_has_gp(loss))
        l = -mean + (loss == TG_LOSS_WGAN_GP_EPS ? drift * mean * mean : 0.0);
    return l;
}

double tg_d_loss_fake(int loss, const float *s, int64_t B, float *ds)
{
    double l = 0;
    for (int64_t i = 0; i < B; i++) {
        switch (loss) {
        case TG_LOSS_HINGE: /* mean relu(1 + s) */
            l += fmax(0.0, 1.0 + s[i]) / (double)B;
            ds[i] = 1.0 + s[i] > 0 ? (float)(1.0 / (double)B) : 0.0f;
            break;
        case TG_LOSS_LSGAN: /* mean s^2 */
            l += (double)s[i] * s[i] / (double)B;
            ds[i] = (float)(2.0 * s[i] / (double)B);
            break;
        default: /* +mean s */
            l += s[i] / (double)B;
            ds[i] = (float)(1.0 / (double)B);
        }
    }
    return l;
}

double tg_g_loss(int loss, const float *s, int64_t B, float *ds)
{
    double l = 0;
    for (int64_t i = 0; i < B; i++) {
        if (loss == TG_LOSS_LSGAN) {
            l += (s[i] - 1.0) * (s[i] - 1.0) / (double)B;
            ds[i] = (float)(2.0 * (s[i] - 1.0) / (double)B);
        } else {
            l -= s[i] / (double)B;
            ds[i] = (float)(-1.0 / (double)B);
        }
    }
    return l;
}

double tg_grad_norm(const float *g, size_t n)
{
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * g[i];
    return sqrt(s);
}

void tg_scale(float *g, size_t n, float s)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        g[i] *= s;
}

void tg_sgd_step(float *w, const float *g, size_t n, double lr)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        w[i] = (float)(w[i] - lr * g[i]);
}

void tg_adam_step(float *w, float *m, float *v, const float *g, size_t n, double lr, double b1,
                  double b2, double eps, uint64_t step)
{
    double c1 = 1.0 - pow(b1, (double)step), c2 = 1.0 - pow(b2, (double)step);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        double mi = b1 * m[i] + (1.0 - b1) * g[i];
        double vi = b2 * v[i] + (1.0 - b2) * (double)g[i] * g[i];
        m[i] = (float)mi;
        v[i] = (float)vi;
        w[i] = (float)(w[i] - lr * (mi / c1) / (sqrt(vi / c2) + eps));
    }
}

void tg_ema_update(float *ema, const float *w, size_t n, double beta)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        ema[i] = (float)(beta * ema[i] + (1.0 - beta) * w[i]);
}

int tg_all_finite(const float *x, size_t n)
{
    int ok = 1;
#pragma omp parallel for reduction(& : ok) schedule(static)
    for (size_t i = 0; i < n; i++)
        ok &= isfinite(x[i]) != 0;
    return ok;
}
