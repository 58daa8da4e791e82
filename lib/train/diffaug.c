/* DiffAugment (docs/SPECIFICATION.md "DiffAugment"; the reference's
 * sample_aug/diffaug).
 * Every op works in place on one image, so apply/linear/adjoint copy the
 * input once and then run the ops without any scratch memory. */
#include "diffaug.h"

#include <math.h>

#include "../core/desc.h"

/* below this many floats the thread start-up costs more than the work */
#define AUG_PAR_MIN 32768

enum aug_mode { AUG_APPLY, AUG_LINEAR, AUG_ADJOINT };

void tg_aug_free(tg_aug *a)
{
    if (!a)
        return;
    free(a->ty), free(a->tx), free(a->cy), free(a->cx);
    free(a->bright), free(a->sat), free(a->contr), free(a->on);
    memset(a, 0, sizeof *a);
}

tg_status tg_aug_init(tg_aug *a, const int *ops, int n_ops, int64_t cap)
{
    if (!a)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "diffaug: NULL struct");
    memset(a, 0, sizeof *a);
    if (n_ops < 0 || n_ops > 3 || (n_ops > 0 && !ops))
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "diffaug: bad op list (%d ops)", n_ops);
    for (int i = 0; i < n_ops; i++)
        if (ops[i] < TG_AUG_TRANSLATION || ops[i] > TG_AUG_COLOR)
            return tg_fail(TG_ERR_INVALID_ARGUMENT, "diffaug: unknown op %d", ops[i]);
    size_t n4;
    if (cap < 0 || tg_mul_overflow((size_t)cap, 4, &n4))
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "diffaug: bad capacity %lld", (long long)cap);
    a->n_ops = n_ops;
    for (int i = 0; i < n_ops; i++)
        a->ops[i] = ops[i];
    a->cap = cap;
    a->ty = tg_alloc(n4), a->tx = tg_alloc(n4), a->cy = tg_alloc(n4), a->cx = tg_alloc(n4);
    a->bright = tg_alloc(n4), a->sat = tg_alloc(n4), a->contr = tg_alloc(n4);
    a->on = tg_alloc((size_t)cap + 1);
    a->p = 1.0;
    if (!a->ty || !a->tx || !a->cy || !a->cx || !a->bright || !a->sat || !a->contr || !a->on) {
        tg_aug_free(a);
        return TG_ERR_OUT_OF_MEMORY; /* tg_alloc recorded the message */
    }
    return TG_OK;
}

static int has_op(const tg_aug *a, int op)
{
    for (int i = 0; i < a->n_ops; i++)
        if (a->ops[i] == op)
            return 1;
    return 0;
}

/* lo + (hi - lo) * U[0, 1) in float; rounding to float may reach hi, which
 * the half-open range excludes, so step back below it. */
static float uniform_f(tg_rng *r, double lo, double hi)
{
    float v = (float)(lo + (hi - lo) * tg_rng_uniform(r));
    return v < (float)hi ? v : nextafterf((float)hi, (float)lo);
}

void tg_aug_sample(tg_aug *a, tg_rng *r, int64_t B, int S)
{
    /* B <= cap is the caller's contract; clamping keeps a violation in bounds */
    if (B > a->cap)
        B = a->cap;
    if (B < 0)
        B = 0;
    if (S < 0)
        S = 0;
    a->B = B;
    a->S = S;
    a->cut = 0;
    /* The draw order is the reference's fixed one (translation, cutout,
     * colour) whatever the order of application in a->ops. */
    if (has_op(a, TG_AUG_TRANSLATION)) {
        int s = (int)(S * 0.2 + 0.5);
        for (int64_t b = 0; b < B; b++) { /* torch.randint(-s, s+1, (B, 2)): row-major */
            a->ty[b] = (int32_t)tg_rng_below(r, (uint64_t)(2 * s + 1)) - s;
            a->tx[b] = (int32_t)tg_rng_below(r, (uint64_t)(2 * s + 1)) - s;
        }
    }
    if (has_op(a, TG_AUG_CUTOUT)) {
        a->cut = tg_rng_uniform(r) < 0.3;
        /* centres are drawn even without a cut, so the stream does not depend on it */
        for (int64_t b = 0; b < B; b++) {
            a->cy[b] = (int32_t)tg_rng_below(r, (uint64_t)S + 1);
            a->cx[b] = (int32_t)tg_rng_below(r, (uint64_t)S + 1);
        }
    }
    if (has_op(a, TG_AUG_COLOR)) {
        for (int64_t b = 0; b < B; b++)
            a->bright[b] = uniform_f(r, -0.5, 0.5);
        for (int64_t b = 0; b < B; b++)
            a->sat[b] = uniform_f(r, 0.0, 2.0);
        for (int64_t b = 0; b < B; b++)
            a->contr[b] = uniform_f(r, 0.5, 1.5);
    }
    /* which ops apply to which image: all at p >= 1 (no draws, so the stream
     * is the one of a library without the option) */
    uint8_t all = 0;
    for (int i = 0; i < a->n_ops; i++)
        all |= (uint8_t)(1u << a->ops[i]);
    for (int64_t b = 0; b < B; b++) {
        if (a->p >= 1) {
            a->on[b] = all;
            continue;
        }
        a->on[b] = 0;
        for (int op = TG_AUG_TRANSLATION; op <= TG_AUG_COLOR; op++)
            if ((all >> op) & 1u)
                if (tg_rng_uniform(r) < a->p)
                    a->on[b] |= (uint8_t)(1u << op);
    }
}

void tg_aug_keep(tg_aug *a, int64_t off, int64_t n)
{
    /* the contract keeps the range inside the draw; clamping keeps a violation in bounds */
    if (off < 0)
        off = 0;
    if (off > a->B)
        off = a->B;
    if (n < 0 || n > a->B - off)
        n = a->B - off;
    int32_t *iv[] = {a->ty, a->tx, a->cy, a->cx};
    float *fv[] = {a->bright, a->sat, a->contr};
    for (int i = 0; i < 4; i++)
        memmove(iv[i], iv[i] + off, (size_t)n * sizeof *iv[i]);
    for (int i = 0; i < 3; i++)
        memmove(fv[i], fv[i] + off, (size_t)n * sizeof *fv[i]);
    memmove(a->on, a->on + off, (size_t)n); /* which ops apply (diffaug_p < 1) */
    a->B = n; /* the cutout flag is one per draw: shared by every row */
}

/* out[y, x] = in[y - ty, x - tx], zero outside, in place: rows are visited
 * so that a source row is read before it is overwritten, and memmove copes
 * with the overlap when ty == 0. */
static void shift_image(float *x, int64_t C, int S, int ty, int tx)
{
    if (ty == 0 && tx == 0)
        return;
    size_t SS = (size_t)S * S;
    if (ty >= S || -ty >= S || tx >= S || -tx >= S) {
        memset(x, 0, (size_t)C * SS * sizeof *x);
        return;
    }
    int n = S - (tx > 0 ? tx : -tx); /* columns that survive */
    int d0 = tx > 0 ? tx : 0, s0 = tx > 0 ? 0 : -tx;
    for (int64_t c = 0; c < C; c++) {
        float *p = x + c * SS;
        for (int i = 0; i < S; i++) {
            int y = ty > 0 ? S - 1 - i : i, sy = y - ty;
            float *row = p + (size_t)y * S;
            if (sy < 0 || sy >= S) {
                memset(row, 0, (size_t)S * sizeof *row);
                continue;
            }
            memmove(row + d0, p + (size_t)sy * S + s0, (size_t)n * sizeof *row);
            memset(row, 0, (size_t)d0 * sizeof *row);
            memset(row + d0 + n, 0, (size_t)(S - d0 - n) * sizeof *row);
        }
    }
}

/* Zero the h x h hole centred at (cy, cx) (clamped) in every channel. */
static void cut_image(float *x, int64_t C, int S, int cy, int cx)
{
    int h = (int)(S * 0.5 + 0.5);
    int y0 = TG_MAX(cy - h / 2, 0), y1 = TG_MIN(cy + h - h / 2, S);
    int x0 = TG_MAX(cx - h / 2, 0), x1 = TG_MIN(cx + h - h / 2, S);
    if (x1 <= x0)
        return;
    size_t SS = (size_t)S * S;
    for (int64_t c = 0; c < C; c++)
        for (int y = y0; y < y1; y++)
            memset(x + c * SS + (size_t)y * S + x0, 0, (size_t)(x1 - x0) * sizeof *x);
}

/* x += b, then x = (x - mean_c x) * s + mean_c x per pixel. */
static void saturate_image(float *x, int64_t C, int S, float b, float s)
{
    size_t SS = (size_t)S * S;
    for (size_t p = 0; p < SS; p++) {
        float m = 0;
        for (int64_t c = 0; c < C; c++)
            m += x[c * SS + p] + b;
        m /= (float)C;
        for (int64_t c = 0; c < C; c++) {
            float v = x[c * SS + p] + b;
            x[c * SS + p] = (v - m) * s + m;
        }
    }
}

/* x = (x - mean_chw x) * k + mean_chw x. */
static void contrast_image(float *x, int64_t C, int S, float k)
{
    size_t n = (size_t)C * S * S;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    float m = (float)(sum / (double)n);
    for (size_t i = 0; i < n; i++)
        x[i] = (x[i] - m) * k + m;
}

/* One image through the ops: forward order for apply/linear, reverse order of
 * the transposed ops for the adjoint. The linear part drops the brightness
 * offset; translation's transpose shifts back; cutout, saturation and contrast
 * are symmetric (a mask; s I + (1 - s) P with P an orthogonal mean projection). */
static void run_image(const tg_aug *a, float *x, int64_t C, int64_t b, enum aug_mode mode)
{
    int S = a->S;
    int64_t cc = C == 4 ? 3 : C; /* the planes color acts on: all but RGBA's alpha */
    for (int j = 0; j < a->n_ops; j++) {
        int op = a->ops[mode == AUG_ADJOINT ? a->n_ops - 1 - j : j];
        if (!((a->on[b] >> op) & 1u))
            continue; /* not applied to this image: the identity */
        switch (op) {
        case TG_AUG_TRANSLATION:
            if (mode == AUG_ADJOINT)
                shift_image(x, C, S, -a->ty[b], -a->tx[b]);
            else
                shift_image(x, C, S, a->ty[b], a->tx[b]);
            break;
        case TG_AUG_CUTOUT:
            if (a->cut)
                cut_image(x, C, S, a->cy[b], a->cx[b]);
            break;
        case TG_AUG_COLOR:
            /* colour channels only: RGBA's alpha (the last plane) passes
             * unchanged. Shifting it with the brightness and mixing it into
             * the means let D see augmented reals as semi-transparent as
             * the fakes, so it could not teach G clean 0/1 alpha */
            if (mode == AUG_ADJOINT) {
                contrast_image(x, cc, S, a->contr[b]);
                saturate_image(x, cc, S, 0.0f, a->sat[b]);
            } else {
                saturate_image(x, cc, S, mode == AUG_APPLY ? a->bright[b] : 0.0f, a->sat[b]);
                contrast_image(x, cc, S, a->contr[b]);
            }
            break;
        default:
            break; /* tg_aug_init rejected unknown ops */
        }
    }
}

static void run(const tg_aug *a, float *y, const float *x, int64_t C, enum aug_mode mode)
{
    int64_t B = a->B;
    size_t per = (size_t)C * a->S * a->S;
    if (B <= 0 || per == 0)
        return;
#pragma omp parallel for schedule(static) if ((size_t)B * per > AUG_PAR_MIN)
    for (int64_t b = 0; b < B; b++) {
        float *yb = y + (size_t)b * per;
        memcpy(yb, x + (size_t)b * per, per * sizeof *yb);
        run_image(a, yb, C, b, mode);
    }
}

void tg_aug_apply(const tg_aug *a, float *y, const float *x, int64_t C)
{
    run(a, y, x, C, AUG_APPLY);
}

void tg_aug_linear(const tg_aug *a, float *y, const float *v, int64_t C)
{
    run(a, y, v, C, AUG_LINEAR);
}

void tg_aug_adjoint(const tg_aug *a, float *dx, const float *dy, int64_t C)
{
    run(a, dx, dy, C, AUG_ADJOINT);
}
