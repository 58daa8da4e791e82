/* DiffAugment: each op's semantics (ranges, exact values, holes, colour
 * formulas against a plain double re-implementation), the draw order, and the
 * calculus the gradient penalty relies on: aug(x) - aug(0) == A x, <A v, w> ==
 * <v, A^T w>, and A^T r == d sum(r * aug(x)) / dx by finite differences.
 * Odd sizes (7, 9), batch 1 and > 1, 1/3/4 channels. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/descriptor.h"
#include "train/diffaug.h"
#include "testutil.h"


static void setup(void) { tu_seed(42); }

static const int ALL3[3] = {TG_AUG_TRANSLATION, TG_AUG_CUTOUT, TG_AUG_COLOR};
static const int ONLY_T[1] = {TG_AUG_TRANSLATION};
static const int ONLY_CUT[1] = {TG_AUG_CUTOUT};
static const int ONLY_COL[1] = {TG_AUG_COLOR};
static const int PERMUTED[3] = {TG_AUG_COLOR, TG_AUG_CUTOUT, TG_AUG_TRANSLATION};

static const int SIZES[2] = {7, 9};
static const int64_t CHANS[3] = {1, 3, 4};
static const int64_t BATCHES[2] = {1, 5};

/* round(0.2 S) and round(0.5 S) (half up) in integers, independent of the
 * library's floating-point formula */
static int shift_max(int S) { return (S + 2) / 5; }
static int hole(int S) { return (S + 1) / 2; }

static float *zalloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* ------------------------------------------------- plain double reference */
/* The reference's diffaug, written out naively per image in double; with
 * `linear` the brightness offset is dropped. */
static void ref_aug(const tg_aug *a, double *out, const float *x, int64_t C, int linear)
{
    int S = a->S;
    size_t SS = (size_t)S * S, n = (size_t)C * SS;
    double *cur = malloc(n * sizeof *cur), *tmp = malloc(n * sizeof *tmp);
    ck_assert(cur && tmp);
    for (int64_t b = 0; b < a->B; b++) {
        for (size_t i = 0; i < n; i++)
            cur[i] = x[b * n + i];
        for (int j = 0; j < a->n_ops; j++) {
            if (!((a->on[b] >> a->ops[j]) & 1)) /* training.diffaug_p: not applied */
                continue;
            if (a->ops[j] == TG_AUG_TRANSLATION) {
                int ty = a->ty[b], tx = a->tx[b];
                for (int64_t c = 0; c < C; c++)
                    for (int yy = 0; yy < S; yy++)
                        for (int xx = 0; xx < S; xx++) {
                            int sy = yy - ty, sx = xx - tx;
                            tmp[c * SS + yy * S + xx] =
                                sy >= 0 && sy < S && sx >= 0 && sx < S ? cur[c * SS + sy * S + sx] : 0;
                        }
                memcpy(cur, tmp, n * sizeof *cur);
            } else if (a->ops[j] == TG_AUG_CUTOUT) {
                if (!a->cut)
                    continue;
                int h = hole(S), r0 = a->cy[b] - h / 2, c0 = a->cx[b] - h / 2;
                for (int64_t c = 0; c < C; c++)
                    for (int yy = 0; yy < S; yy++)
                        for (int xx = 0; xx < S; xx++)
                            if (yy >= r0 && yy <= r0 + h - 1 && xx >= c0 && xx <= c0 + h - 1)
                                cur[c * SS + yy * S + xx] = 0;
            } else { /* colour channels only: RGBA's alpha is left alone */
                int64_t Cc = C == 4 ? 3 : C;
                size_t nc = (size_t)Cc * SS;
                double br = linear ? 0 : a->bright[b], s = a->sat[b], k = a->contr[b];
                for (size_t i = 0; i < nc; i++)
                    cur[i] += br;
                for (size_t p = 0; p < SS; p++) {
                    double m = 0;
                    for (int64_t c = 0; c < Cc; c++)
                        m += cur[c * SS + p];
                    m /= (double)Cc;
                    for (int64_t c = 0; c < Cc; c++)
                        cur[c * SS + p] = (cur[c * SS + p] - m) * s + m;
                }
                double m2 = 0;
                for (size_t i = 0; i < nc; i++)
                    m2 += cur[i];
                m2 /= (double)nc;
                for (size_t i = 0; i < nc; i++)
                    cur[i] = (cur[i] - m2) * k + m2;
            }
        }
        memcpy(out + b * n, cur, n * sizeof *cur);
    }
    free(cur), free(tmp);
}

static void check_against_ref(const tg_aug *a, const float *x, int64_t C, int linear)
{
    size_t n = (size_t)a->B * C * a->S * a->S;
    float *y = zalloc(n), *yr = zalloc(n);
    double *ref = malloc(n * sizeof *ref);
    ck_assert_ptr_nonnull(ref);
    if (linear)
        tg_aug_linear(a, y, x, C);
    else
        tg_aug_apply(a, y, x, C);
    ref_aug(a, ref, x, C, linear);
    for (size_t i = 0; i < n; i++)
        yr[i] = (float)ref[i];
    tu_assert_close(y, yr, n, 1e-5, 1e-5);
    free(y), free(yr), free(ref);
}

/* ------------------------------------------------------------ translation */
START_TEST(translation_range)
{
    for (int si = 0; si < 3; si++) {
        int S = si < 2 ? SIZES[si] : 32, s = shift_max(S);
        tg_aug a;
        OK(tg_aug_init(&a, ONLY_T, 1, 64));
        tg_rng r;
        tg_rng_seed(&r, 1 + si);
        long seen_y[64] = {0}, seen_x[64] = {0};
        for (int it = 0; it < 100; it++) {
            tg_aug_sample(&a, &r, 64, S);
            ck_assert_int_eq(a.B, 64);
            ck_assert_int_eq(a.S, S);
            for (int b = 0; b < 64; b++) {
                ck_assert_int_ge(a.ty[b], -s);
                ck_assert_int_le(a.ty[b], s);
                ck_assert_int_ge(a.tx[b], -s);
                ck_assert_int_le(a.tx[b], s);
                seen_y[a.ty[b] + s]++, seen_x[a.tx[b] + s]++;
            }
        }
        for (int v = 0; v <= 2 * s; v++) {
            ck_assert_msg(seen_y[v] > 0 && seen_x[v] > 0, "S %d: shift %d never drawn", S, v - s);
            /* uniform: each value about 6400 / (2s + 1) times */
            double expect = 6400.0 / (2 * s + 1);
            ck_assert_msg(fabs(seen_y[v] - expect) < 0.15 * expect, "S %d ty %d: %ld of %g", S,
                          v - s, seen_y[v], expect);
        }
        tg_aug_free(&a);
    }
}
END_TEST

START_TEST(translation_values)
{
    tg_rng r;
    tg_rng_seed(&r, 99);
    for (int si = 0; si < 2; si++)
        for (int ci = 0; ci < 3; ci++)
            for (int bi = 0; bi < 2; bi++) {
                int S = SIZES[si];
                int64_t C = CHANS[ci], B = BATCHES[bi];
                size_t SS = (size_t)S * S, n = (size_t)B * C * SS;
                tg_aug a;
                OK(tg_aug_init(&a, ONLY_T, 1, B));
                float *x = tu_rand(n, 1, 2), *y = zalloc(n); /* nonzero, so zeros are fill */
                for (int it = 0; it < 20; it++) {
                    tg_aug_sample(&a, &r, B, S);
                    tg_aug_apply(&a, y, x, C);
                    for (int64_t b = 0; b < B; b++) {
                        int ty = a.ty[b], tx = a.tx[b];
                        size_t zeros = 0;
                        for (int64_t c = 0; c < C; c++)
                            for (int yy = 0; yy < S; yy++)
                                for (int xx = 0; xx < S; xx++) {
                                    int sy = yy - ty, sx = xx - tx;
                                    float got = y[(b * C + c) * SS + yy * S + xx];
                                    if (sy >= 0 && sy < S && sx >= 0 && sx < S) {
                                        ck_assert(got == x[(b * C + c) * SS + sy * S + sx]);
                                    } else {
                                        ck_assert(got == 0.0f);
                                        zeros++;
                                    }
                                }
                        /* the shifted-in band: S^2 - (S - |ty|)(S - |tx|) pixels per channel */
                        size_t band = SS - (size_t)(S - abs(ty)) * (S - abs(tx));
                        ck_assert_uint_eq(zeros, band * C);
                    }
                    check_against_ref(&a, x, C, 0);
                }
                free(x), free(y);
                tg_aug_free(&a);
            }
}
END_TEST

/* 3 x 3, two channels, shifts set by hand; expected outputs worked out on paper */
START_TEST(translation_example)
{
    tg_aug a;
    OK(tg_aug_init(&a, ONLY_T, 1, 1));
    tg_rng r;
    tg_rng_seed(&r, 5);
    tg_aug_sample(&a, &r, 1, 3);
    ck_assert_int_le(abs(a.ty[0]), 1); /* s = round(0.6) = 1 */
    float x[18] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19}, y[18];
    /* down 1, left 1: out[y, x] = in[y - 1, x + 1] */
    a.ty[0] = 1, a.tx[0] = -1;
    tg_aug_apply(&a, y, x, 2);
    const float e1[18] = {0, 0, 0, 2, 3, 0, 5, 6, 0, 0, 0, 0, 12, 13, 0, 15, 16, 0};
    ck_assert_mem_eq(y, e1, sizeof e1);
    /* up 1, right 1: out[y, x] = in[y + 1, x - 1] */
    a.ty[0] = -1, a.tx[0] = 1;
    tg_aug_apply(&a, y, x, 2);
    const float e2[18] = {0, 4, 5, 0, 7, 8, 0, 0, 0, 0, 14, 15, 0, 17, 18, 0, 0, 0};
    ck_assert_mem_eq(y, e2, sizeof e2);
    /* its adjoint shifts back: the surviving 2 x 2 block returns, the rest is 0 */
    float z[18];
    tg_aug_adjoint(&a, z, y, 2);
    const float e3[18] = {0, 0, 0, 4, 5, 0, 7, 8, 0, 0, 0, 0, 14, 15, 0, 17, 18, 0};
    ck_assert_mem_eq(z, e3, sizeof e3);
    /* a shift by the whole size empties the image */
    a.ty[0] = 0, a.tx[0] = 3;
    tg_aug_apply(&a, y, x, 2);
    for (int i = 0; i < 18; i++)
        ck_assert(y[i] == 0.0f);
    a.ty[0] = 0, a.tx[0] = 0;
    tg_aug_apply(&a, y, x, 2);
    ck_assert_mem_eq(y, x, sizeof x);
    tg_aug_free(&a);
}
END_TEST

/* ----------------------------------------------------------------- cutout */
START_TEST(cutout_probability)
{
    tg_aug a;
    OK(tg_aug_init(&a, ONLY_CUT, 1, 8));
    tg_rng r;
    tg_rng_seed(&r, 3);
    const int N = 20000, S = 9;
    long cuts = 0, seen_c[10] = {0};
    for (int it = 0; it < N; it++) {
        tg_aug_sample(&a, &r, 8, S);
        cuts += a.cut != 0;
        for (int b = 0; b < 8; b++) {
            ck_assert(a.cy[b] >= 0 && a.cy[b] <= S && a.cx[b] >= 0 && a.cx[b] <= S);
            seen_c[a.cy[b]]++;
        }
    }
    double p = (double)cuts / N; /* binomial sd 0.0032 */
    ck_assert_msg(fabs(p - 0.3) < 0.015, "cutout frequency %g", p);
    for (int v = 0; v <= S; v++) /* centres uniform in {0 .. S}: 16000 each */
        ck_assert_msg(fabs(seen_c[v] - 16000.0) < 1000, "centre %d drawn %ld times", v, seen_c[v]);
    tg_aug_free(&a);
}
END_TEST

START_TEST(cutout_hole)
{
    tg_rng r;
    tg_rng_seed(&r, 11);
    long inside = 0, clamped = 0, nocut = 0;
    for (int si = 0; si < 2; si++)
        for (int ci = 0; ci < 3; ci++)
            for (int bi = 0; bi < 2; bi++) {
                int S = SIZES[si], h = hole(S);
                ck_assert_int_eq(h, S == 7 ? 4 : 5);
                int64_t C = CHANS[ci], B = BATCHES[bi];
                size_t SS = (size_t)S * S, n = (size_t)B * C * SS;
                tg_aug a;
                OK(tg_aug_init(&a, ONLY_CUT, 1, B));
                float *x = tu_rand(n, 1, 2), *y = zalloc(n);
                for (int it = 0; it < 60; it++) {
                    tg_aug_sample(&a, &r, B, S);
                    tg_aug_apply(&a, y, x, C);
                    if (!a.cut) {
                        ck_assert_mem_eq(y, x, n * sizeof *x);
                        nocut++;
                        continue;
                    }
                    for (int64_t b = 0; b < B; b++) {
                        int r0 = a.cy[b] - h / 2, c0 = a.cx[b] - h / 2;
                        int full = r0 >= 0 && r0 + h <= S && c0 >= 0 && c0 + h <= S;
                        int rows = (r0 + h < S ? r0 + h : S) - (r0 > 0 ? r0 : 0);
                        int cols = (c0 + h < S ? c0 + h : S) - (c0 > 0 ? c0 : 0);
                        if (rows < 0)
                            rows = 0;
                        if (cols < 0)
                            cols = 0;
                        inside += full, clamped += !full;
                        for (int64_t c = 0; c < C; c++) {
                            size_t zeros = 0;
                            for (int yy = 0; yy < S; yy++)
                                for (int xx = 0; xx < S; xx++) {
                                    size_t i = (b * C + c) * SS + yy * S + xx;
                                    int in = yy >= r0 && yy < r0 + h && xx >= c0 && xx < c0 + h;
                                    if (in) {
                                        ck_assert(y[i] == 0.0f);
                                        zeros++;
                                    } else {
                                        ck_assert(y[i] == x[i]); /* nothing else changed */
                                    }
                                }
                            /* the same hole in every channel, h x h unless at a border */
                            ck_assert_uint_eq(zeros, (size_t)rows * cols);
                            if (full)
                                ck_assert_uint_eq(zeros, (size_t)h * h);
                            else
                                ck_assert_uint_lt(zeros, (size_t)h * h);
                        }
                    }
                    check_against_ref(&a, x, C, 0);
                }
                free(x), free(y);
                tg_aug_free(&a);
            }
    ck_assert(inside > 0 && clamped > 0 && nocut > 0);
}
END_TEST

/* ------------------------------------------------------------------ colour */
START_TEST(color_ranges)
{
    tg_aug a;
    OK(tg_aug_init(&a, ONLY_COL, 1, 64));
    tg_rng r;
    tg_rng_seed(&r, 17);
    double lo[3] = {1e9, 1e9, 1e9}, hi[3] = {-1e9, -1e9, -1e9}, sum[3] = {0};
    const int N = 200;
    for (int it = 0; it < N; it++) {
        tg_aug_sample(&a, &r, 64, 7);
        for (int b = 0; b < 64; b++) {
            double v[3] = {a.bright[b], a.sat[b], a.contr[b]};
            for (int k = 0; k < 3; k++) {
                lo[k] = fmin(lo[k], v[k]), hi[k] = fmax(hi[k], v[k]);
                sum[k] += v[k];
            }
        }
    }
    const double L[3] = {-0.5, 0, 0.5}, H[3] = {0.5, 2, 1.5};
    for (int k = 0; k < 3; k++) {
        double w = H[k] - L[k], mean = sum[k] / (N * 64);
        ck_assert_msg(lo[k] >= L[k] && hi[k] < H[k], "param %d outside [%g, %g): %g %g", k, L[k],
                      H[k], lo[k], hi[k]);
        /* 12800 draws: the extremes come within 0.5% of the ends */
        ck_assert_msg(lo[k] < L[k] + 0.005 * w && hi[k] > H[k] - 0.005 * w, "param %d: %g %g", k,
                      lo[k], hi[k]);
        ck_assert_msg(fabs(mean - (L[k] + H[k]) / 2) < 0.02 * w, "param %d mean %g", k, mean);
    }
    tg_aug_free(&a);
}
END_TEST

START_TEST(color_values)
{
    tg_rng r;
    tg_rng_seed(&r, 23);
    for (int si = 0; si < 2; si++)
        for (int ci = 0; ci < 3; ci++)
            for (int bi = 0; bi < 2; bi++) {
                int S = SIZES[si];
                int64_t C = CHANS[ci], B = BATCHES[bi];
                size_t n = (size_t)B * C * S * S;
                tg_aug a;
                OK(tg_aug_init(&a, ONLY_COL, 1, B));
                float *x = tu_rand(n, -1, 1);
                for (int it = 0; it < 10; it++) {
                    tg_aug_sample(&a, &r, B, S);
                    check_against_ref(&a, x, C, 0);
                    check_against_ref(&a, x, C, 1);
                }
                free(x);
                tg_aug_free(&a);
            }
}
END_TEST

/* ---------------------------------------------------------- all together */
/* RGBA: the color op leaves alpha bit for bit and treats R, G, B exactly as
 * a 3-channel image with the same draw (written against the library, not
 * the reference above, which follows the same rule) */
START_TEST(color_keeps_alpha)
{
    tg_rng r;
    tg_rng_seed(&r, 29);
    const int S = 9, B = 3;
    size_t SS = (size_t)S * S, n4 = (size_t)B * 4 * SS;
    tg_aug a;
    OK(tg_aug_init(&a, ONLY_COL, 1, B));
    float *x = tu_rand(n4, -1, 1), *y = zalloc(n4), *x3 = zalloc((size_t)B * 3 * SS),
          *y3 = zalloc((size_t)B * 3 * SS);
    for (int b = 0; b < B; b++)
        memcpy(x3 + b * 3 * SS, x + b * 4 * SS, 3 * SS * sizeof *x);
    for (int it = 0; it < 5; it++) {
        tg_aug_sample(&a, &r, B, S);
        for (int lin = 0; lin < 3; lin++) {
            if (lin == 0)
                tg_aug_apply(&a, y, x, 4), tg_aug_apply(&a, y3, x3, 3);
            else if (lin == 1)
                tg_aug_linear(&a, y, x, 4), tg_aug_linear(&a, y3, x3, 3);
            else
                tg_aug_adjoint(&a, y, x, 4), tg_aug_adjoint(&a, y3, x3, 3);
            for (int b = 0; b < B; b++) {
                ck_assert(memcmp(y + b * 4 * SS + 3 * SS, x + b * 4 * SS + 3 * SS,
                                 SS * sizeof *y) == 0);
                ck_assert(memcmp(y + b * 4 * SS, y3 + b * 3 * SS, 3 * SS * sizeof *y) == 0);
            }
        }
    }
    free(x), free(y), free(x3), free(y3);
    tg_aug_free(&a);
}
END_TEST

START_TEST(all_values)
{
    tg_rng r;
    tg_rng_seed(&r, 29);
    for (int order = 0; order < 2; order++)
        for (int si = 0; si < 2; si++)
            for (int ci = 0; ci < 3; ci++)
                for (int bi = 0; bi < 2; bi++) {
                    int S = SIZES[si];
                    int64_t C = CHANS[ci], B = BATCHES[bi];
                    size_t n = (size_t)B * C * S * S;
                    tg_aug a;
                    OK(tg_aug_init(&a, order ? PERMUTED : ALL3, 3, B));
                    float *x = tu_rand(n, -1, 1);
                    for (int it = 0; it < 10; it++) {
                        tg_aug_sample(&a, &r, B, S);
                        if (it & 1)
                            a.cut = 1; /* exercise holes on every other call */
                        check_against_ref(&a, x, C, 0);
                        check_against_ref(&a, x, C, 1);
                    }
                    free(x);
                    tg_aug_free(&a);
                }
}
END_TEST

/* ------------------------------------------- linearity, adjoint, gradient */
static const int *const OPSETS[4] = {ONLY_T, ONLY_CUT, ONLY_COL, ALL3};
static const int OPSET_N[4] = {1, 1, 1, 3};

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

static double norm2(const float *a, size_t n) { return sqrt(dot(a, a, n)); }

START_TEST(linearity_and_adjoint)
{
    tg_rng r;
    tg_rng_seed(&r, 31);
    for (int o = 0; o < 4; o++)
        for (int si = 0; si < 2; si++)
            for (int ci = 0; ci < 3; ci++)
                for (int bi = 0; bi < 2; bi++) {
                    int S = SIZES[si];
                    int64_t C = CHANS[ci], B = BATCHES[bi];
                    size_t n = (size_t)B * C * S * S;
                    tg_aug a;
                    OK(tg_aug_init(&a, OPSETS[o], OPSET_N[o], B));
                    float *x = tu_rand(n, -1, 1), *w = tu_rand(n, -1, 1), *zero = zalloc(n);
                    float *ax = zalloc(n), *a0 = zalloc(n), *lx = zalloc(n), *atw = zalloc(n);
                    for (int it = 0; it < 6; it++) {
                        tg_aug_sample(&a, &r, B, S);
                        if (it & 1)
                            a.cut = 1;
                        tg_aug_apply(&a, ax, x, C);
                        tg_aug_apply(&a, a0, zero, C);
                        tg_aug_linear(&a, lx, x, C);
                        for (size_t i = 0; i < n; i++)
                            ax[i] -= a0[i];
                        tu_assert_close(ax, lx, n, 2e-5, 1e-5);
                        /* <A x, w> == <x, A^T w>, relative to the Cauchy-Schwarz scale */
                        tg_aug_adjoint(&a, atw, w, C);
                        double l = dot(lx, w, n), rr = dot(x, atw, n);
                        double scale = norm2(lx, n) * norm2(w, n) + 1e-30;
                        ck_assert_msg(fabs(l - rr) <= 1e-5 * scale,
                                      "ops %d S %d C %lld B %lld: <Av,w> %.9g <v,A^T w> %.9g", o,
                                      S, (long long)C, (long long)B, l, rr);
                    }
                    free(x), free(w), free(zero), free(ax), free(a0), free(lx), free(atw);
                    tg_aug_free(&a);
                }
}
END_TEST

typedef struct { const tg_aug *a; float *x; int64_t C; } aug_ctx;
static void aug_f(void *p, float *y)
{
    aug_ctx *c = p;
    tg_aug_apply(c->a, y, c->x, c->C);
}

START_TEST(gradient)
{
    tg_rng r;
    tg_rng_seed(&r, 37);
    for (int o = 0; o < 4; o++)
        for (int si = 0; si < 2; si++)
            for (int ci = 0; ci < 3; ci++)
                for (int bi = 0; bi < 2; bi++) {
                    int S = SIZES[si];
                    int64_t C = CHANS[ci], B = BATCHES[bi];
                    size_t n = (size_t)B * C * S * S;
                    tg_aug a;
                    OK(tg_aug_init(&a, OPSETS[o], OPSET_N[o], B));
                    tg_aug_sample(&a, &r, B, S);
                    a.cut = 1; /* the hole's zero gradient must show up */
                    aug_ctx c = {&a, tu_rand(n, -1, 1), C};
                    float *rw = tu_rand(n, -1, 1), *g = zalloc(n);
                    tg_aug_adjoint(&a, g, rw, C);
                    tu_gradcheck("diffaug dx", aug_f, &c, c.x, n, rw, n, g, 300, 1e-2f, 1e-3,
                                 1e-3);
                    free(c.x), free(rw), free(g);
                    tg_aug_free(&a);
                }
}
END_TEST

/* ------------------------------------------------ draws and determinism */
START_TEST(determinism)
{
    tg_aug a1, a2;
    OK(tg_aug_init(&a1, ALL3, 3, 16));
    OK(tg_aug_init(&a2, ALL3, 3, 16));
    tg_rng r1, r2;
    tg_rng_seed(&r1, 1234);
    tg_rng_seed(&r2, 1234);
    for (int it = 0; it < 5; it++) {
        tg_aug_sample(&a1, &r1, 16, 9);
        tg_aug_sample(&a2, &r2, 16, 9);
        ck_assert_int_eq(a1.cut, a2.cut);
        ck_assert_mem_eq(a1.ty, a2.ty, 16 * 4);
        ck_assert_mem_eq(a1.tx, a2.tx, 16 * 4);
        ck_assert_mem_eq(a1.cy, a2.cy, 16 * 4);
        ck_assert_mem_eq(a1.cx, a2.cx, 16 * 4);
        ck_assert_mem_eq(a1.bright, a2.bright, 16 * 4);
        ck_assert_mem_eq(a1.sat, a2.sat, 16 * 4);
        ck_assert_mem_eq(a1.contr, a2.contr, 16 * 4);
        ck_assert_mem_eq(r1.s, r2.s, sizeof r1.s);
    }
    /* another seed: another draw (every parameter vector differs) */
    tg_rng_seed(&r1, 1234);
    tg_rng_seed(&r2, 1235);
    tg_aug_sample(&a1, &r1, 16, 9);
    tg_aug_sample(&a2, &r2, 16, 9);
    ck_assert(memcmp(a1.ty, a2.ty, 64) || memcmp(a1.tx, a2.tx, 64));
    ck_assert(memcmp(a1.cy, a2.cy, 64) || memcmp(a1.cx, a2.cx, 64));
    ck_assert(memcmp(a1.bright, a2.bright, 64) != 0);
    ck_assert(memcmp(a1.sat, a2.sat, 64) != 0);
    ck_assert(memcmp(a1.contr, a2.contr, 64) != 0);
    tg_aug_free(&a1);
    tg_aug_free(&a2);
}
END_TEST

/* The stream is the reference's: translation (ty, tx per image), cutout (flag,
 * then cy, cx per image), colour (B brightness, B saturation, B contrast),
 * whatever the order of application, and nothing for absent ops. */
static void expect_stream(const int *ops, int n_ops, int has_t, int has_c, int has_k)
{
    const int B = 6, S = 9, s = shift_max(S);
    tg_aug a;
    OK(tg_aug_init(&a, ops, n_ops, B));
    tg_rng r, m;
    tg_rng_seed(&r, 77);
    tg_rng_seed(&m, 77);
    tg_aug_sample(&a, &r, B, S);
    if (has_t)
        for (int b = 0; b < B; b++) {
            ck_assert_int_eq(a.ty[b], (int)tg_rng_below(&m, 2 * s + 1) - s);
            ck_assert_int_eq(a.tx[b], (int)tg_rng_below(&m, 2 * s + 1) - s);
        }
    if (has_c) {
        ck_assert_int_eq(a.cut != 0, tg_rng_uniform(&m) < 0.3);
        for (int b = 0; b < B; b++) {
            ck_assert_int_eq(a.cy[b], (int)tg_rng_below(&m, S + 1));
            ck_assert_int_eq(a.cx[b], (int)tg_rng_below(&m, S + 1));
        }
    }
    if (has_k) {
        for (int b = 0; b < B; b++)
            ck_assert_float_eq_tol(a.bright[b], tg_rng_uniform(&m) - 0.5, 1e-7);
        for (int b = 0; b < B; b++)
            ck_assert_float_eq_tol(a.sat[b], tg_rng_uniform(&m) * 2, 2e-7);
        for (int b = 0; b < B; b++)
            ck_assert_float_eq_tol(a.contr[b], tg_rng_uniform(&m) + 0.5, 2e-7);
    }
    ck_assert_mem_eq(r.s, m.s, sizeof r.s); /* nothing more was drawn */
    tg_aug_free(&a);
}

START_TEST(draw_order)
{
    expect_stream(ALL3, 3, 1, 1, 1);
    expect_stream(PERMUTED, 3, 1, 1, 1);
    expect_stream(ONLY_T, 1, 1, 0, 0);
    expect_stream(ONLY_CUT, 1, 0, 1, 0);
    expect_stream(ONLY_COL, 1, 0, 0, 1);
    expect_stream(NULL, 0, 0, 0, 0);
}
END_TEST

/* training.diffaug_p < 1: the same parameter draws as at p = 1, then one
 * uniform per image and op present (fixed order translation, cutout,
 * colour) deciding u < p; a skipped op is the identity, so apply, the linear
 * part and the adjoint still agree with the reference and with each other,
 * and p = 0 leaves every image as it is. */
START_TEST(partial_probability)
{
    const int B = 16, S = 9;
    const int64_t C = 3;
    size_t n = (size_t)B * C * S * S;
    const int *sets[2] = {ALL3, PERMUTED};
    const double ps[3] = {0.0, 0.5, 0.8};
    for (int o = 0; o < 2; o++)
        for (int pi = 0; pi < 3; pi++) {
            tg_aug a, full;
            OK(tg_aug_init(&a, sets[o], 3, B));
            OK(tg_aug_init(&full, sets[o], 3, B));
            ck_assert(a.p == 1.0); /* the default: every op on every image */
            a.p = ps[pi];
            tg_rng r, m;
            tg_rng_seed(&r, 4242 + pi);
            tg_rng_seed(&m, 4242 + pi);
            tg_aug_sample(&a, &r, B, S);
            tg_aug_sample(&full, &m, B, S);
            ck_assert_mem_eq(a.ty, full.ty, B * 4);
            ck_assert_mem_eq(a.cy, full.cy, B * 4);
            ck_assert_mem_eq(a.contr, full.contr, B * 4);
            ck_assert_int_eq(a.cut, full.cut);
            int on = 0;
            for (int b = 0; b < B; b++) {
                ck_assert_uint_eq(full.on[b], 7u);
                for (int op = 0; op < 3; op++) {
                    int want = tg_rng_uniform(&m) < ps[pi];
                    ck_assert_int_eq((a.on[b] >> op) & 1, want);
                    on += want;
                }
            }
            ck_assert_mem_eq(r.s, m.s, sizeof r.s); /* nothing else was drawn */
            if (pi == 0)
                ck_assert_int_eq(on, 0);
            else /* 48 Bernoulli(p) draws of a fixed seed: a mix of both */
                ck_assert(on > 0 && on < 3 * B);
            a.cut = 1; /* the hole must show where cutout applies */
            float *x = tu_rand(n, -1, 1), *w = tu_rand(n, -1, 1), *y = zalloc(n),
                  *atw = zalloc(n);
            check_against_ref(&a, x, C, 0);
            check_against_ref(&a, x, C, 1);
            tg_aug_apply(&a, y, x, C);
            if (pi == 0)
                ck_assert_mem_eq(y, x, n * sizeof *x);
            tg_aug_linear(&a, y, x, C);
            tg_aug_adjoint(&a, atw, w, C);
            double l = dot(y, w, n), rr = dot(x, atw, n);
            ck_assert(fabs(l - rr) <= 1e-5 * (norm2(y, n) * norm2(w, n) + 1e-30));
            aug_ctx c = {&a, x, C};
            tu_gradcheck("diffaug_p dx", aug_f, &c, x, n, w, n, atw, 200, 1e-2f, 1e-3, 1e-3);
            free(x), free(w), free(y), free(atw);
            tg_aug_free(&a);
            tg_aug_free(&full);
        }
}
END_TEST

START_TEST(edges)
{
    tg_aug a;
    memset(&a, 0, sizeof a);
    tg_aug_free(&a); /* a zeroed struct */
    tg_aug_free(NULL);
    ck_assert_int_eq(tg_aug_init(&a, ALL3, 4, 8), TG_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(tg_aug_init(&a, (int[]){5}, 1, 8), TG_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(tg_aug_init(&a, ALL3, 3, -1), TG_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(tg_aug_init(&a, ALL3, 3, INT64_MAX), TG_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(a.ty); /* failures leave nothing to free */
    tg_aug_free(&a);
    /* no ops: aug is the identity and draws nothing */
    OK(tg_aug_init(&a, NULL, 0, 2));
    tg_rng r;
    tg_rng_seed(&r, 1);
    tg_rng keep = r;
    tg_aug_sample(&a, &r, 2, 7);
    ck_assert_mem_eq(r.s, keep.s, sizeof r.s);
    float *x = tu_rand(2 * 3 * 49, -1, 1), *y = zalloc(2 * 3 * 49);
    tg_aug_apply(&a, y, x, 3);
    ck_assert_mem_eq(y, x, 2 * 3 * 49 * sizeof *x);
    tg_aug_adjoint(&a, y, x, 3);
    ck_assert_mem_eq(y, x, 2 * 3 * 49 * sizeof *x);
    tg_aug_free(&a);
    /* an empty batch touches nothing */
    OK(tg_aug_init(&a, ALL3, 3, 2));
    tg_aug_sample(&a, &r, 0, 7);
    ck_assert_int_eq(a.B, 0);
    y[0] = 42;
    tg_aug_apply(&a, y, x, 3);
    ck_assert(y[0] == 42);
    tg_aug_free(&a);
    free(x), free(y);
}
END_TEST

/* a batch big enough for the parallel path agrees with image-by-image calls */
START_TEST(parallel_batch)
{
    const int B = 64, S = 9;
    const int64_t C = 3;
    size_t per = (size_t)C * S * S, n = B * per;
    tg_aug a, one;
    OK(tg_aug_init(&a, ALL3, 3, B));
    OK(tg_aug_init(&one, ALL3, 3, 1));
    tg_rng r;
    tg_rng_seed(&r, 41);
    tg_aug_sample(&a, &r, B, S);
    a.cut = 1;
    float *x = tu_rand(n, -1, 1), *y = zalloc(n), *g = zalloc(n), *y1 = zalloc(per),
          *g1 = zalloc(per);
    tg_aug_apply(&a, y, x, C);
    tg_aug_adjoint(&a, g, x, C);
    tg_aug_sample(&one, &r, 1, S);
    one.cut = 1;
    for (int b = 0; b < B; b++) {
        one.ty[0] = a.ty[b], one.tx[0] = a.tx[b], one.cy[0] = a.cy[b], one.cx[0] = a.cx[b];
        one.bright[0] = a.bright[b], one.sat[0] = a.sat[b], one.contr[0] = a.contr[b];
        tg_aug_apply(&one, y1, x + b * per, C);
        tg_aug_adjoint(&one, g1, x + b * per, C);
        ck_assert_mem_eq(y1, y + b * per, per * sizeof *y1);
        ck_assert_mem_eq(g1, g + b * per, per * sizeof *g1);
    }
    free(x), free(y), free(g), free(y1), free(g1);
    tg_aug_free(&a);
    tg_aug_free(&one);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("diffaug");
    TCase *tc = tcase_create("diffaug");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, translation_range);
    tcase_add_test(tc, translation_values);
    tcase_add_test(tc, translation_example);
    tcase_add_test(tc, cutout_probability);
    tcase_add_test(tc, cutout_hole);
    tcase_add_test(tc, color_ranges);
    tcase_add_test(tc, color_values);
    tcase_add_test(tc, color_keeps_alpha);
    tcase_add_test(tc, all_values);
    tcase_add_test(tc, linearity_and_adjoint);
    tcase_add_test(tc, gradient);
    tcase_add_test(tc, determinism);
    tcase_add_test(tc, draw_order);
    tcase_add_test(tc, edges);
    tcase_add_test(tc, partial_probability);
    tcase_add_test(tc, parallel_batch);
    suite_add_tcase(s, tc);
    return tu_run(s) ? 1 : 0;
}
