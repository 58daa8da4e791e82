/* The op layer: every forward against a plain C (double) reference, every
 * backward against central finite differences, on odd shapes, batch 1 and
 * batch > 1; and no primitive may run on a oneDNN reference kernel. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/block.h"
#include "ops/ops.h"
#include "testutil.h"

static tg_dnn *ctx;
static void setup(void)
{
    tu_seed(42);
    ck_assert_int_eq(tg_dnn_create(&ctx), TG_OK);
}
static void teardown(void)
{
    tu_assert_no_ref();
    tg_dnn_destroy(ctx);
    ctx = NULL;
}

/* ------------------------------------------------------------------ linear */
typedef struct { float *x, *w, *b; int64_t M, K, N; } lin_t;
static void lin_f(void *p, float *y)
{
    lin_t *a = p;
    OK(tg_linear_fwd(ctx, y, a->x, a->w, a->b, a->M, a->K, a->N));
}

/* ref[M,N] = y0 (NULL: 0) + x W^T + b (b may be NULL), summed in double */
static void linear_ref(float *ref, const float *y0, const float *x, const float *w,
                       const float *b, int64_t M, int64_t K, int64_t N)
{
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = (y0 ? y0[m * N + n] : 0.0) + (b ? b[n] : 0.0);
            for (int64_t k = 0; k < K; k++)
                s += (double)x[m * K + k] * w[n * K + k];
            ref[m * N + n] = (float)s;
        }
}

static void check_linear(int64_t M, int64_t K, int64_t N, int bias)
{
    lin_t a = {tu_rand(M * K, -1, 1), tu_rand(N * K, -1, 1), bias ? tu_rand(N, -1, 1) : NULL, M, K, N};
    float *y = calloc(M * N, 4), *ref = calloc(M * N, 4);
    lin_f(&a, y);
    linear_ref(ref, NULL, a.x, a.w, a.b, M, K, N);
    tu_assert_close(y, ref, M * N, 1e-5, 1e-5);
    float *r = tu_rand(M * N, -1, 1), *dx = calloc(M * K, 4), *dw = calloc(N * K, 4),
          *db = calloc(N, 4);
    /* parameter gradients accumulate: start from 1 and subtract it after */
    for (int64_t i = 0; i < N * K; i++)
        dw[i] = 1.0f;
    OK(tg_linear_bwd(ctx, dx, dw, bias ? db : NULL, r, a.x, a.w, M, K, N));
    for (int64_t i = 0; i < N * K; i++)
        dw[i] -= 1.0f;
    tu_gradcheck("linear dx", lin_f, &a, a.x, M * K, r, M * N, dx, 200, 1e-2f, 1e-3, 1e-3);
    tu_gradcheck("linear dw", lin_f, &a, a.w, N * K, r, M * N, dw, 200, 1e-2f, 1e-3, 1e-3);
    if (bias)
        tu_gradcheck("linear db", lin_f, &a, a.b, N, r, M * N, db, 200, 1e-2f, 1e-3, 1e-3);
    free(a.x), free(a.w), free(a.b), free(y), free(ref), free(r), free(dx), free(dw), free(db);
}

START_TEST(linear_shapes)
{
    check_linear(1, 13, 11, 1);
    check_linear(7, 13, 11, 1);
    check_linear(21, 5, 3, 0);
    check_linear(64, 48, 192, 1);
}
END_TEST

/* Narrow Linears (K, N <= 64 on few rows) in inference run on our
 * row-parallel kernel (gemv.c), not oneDNN: every vector count (N 1 to 64), short row blocks
 * (M not a multiple of 4), several tasks on both threads (M > 128,
 * M K N > 65536) and the fused sum; the rule's edges decided as documented. */
START_TEST(linear_narrow)
{
    static const int64_t shp[][3] = {{1024, 16, 48}, {1023, 64, 64}, {257, 16, 1}, {130, 33, 17},
                                     {5, 64, 64},    {1, 3, 2},      {300, 16, 16}};
    for (size_t t = 0; t < sizeof shp / sizeof shp[0]; t++)
        for (int post = 0; post <= TG_MM_SUM; post++) {
            int64_t M = shp[t][0], K = shp[t][1], N = shp[t][2];
            ck_assert(tg_linear_is_narrow(M, K, N, post | TG_MM_INFER));
            ck_assert(!tg_linear_is_narrow(M, K, N, post)); /* training: oneDNN's */
            float *x = tu_rand(M * K, -1, 1), *w = tu_rand(N * K, -1, 1), *b = tu_rand(N, -1, 1),
                  *y = tu_rand(M * N, -1, 1), *ref = malloc((size_t)(M * N) * 4);
            linear_ref(ref, post ? y : NULL, x, w, t % 2 ? NULL : b, M, K, N);
            OK(tg_linear_fwd_post(ctx, y, x, w, t % 2 ? NULL : b, M, K, N, post | TG_MM_INFER));
            tu_assert_close(y, ref, M * N, 1e-5, 1e-5);
            free(x), free(w), free(b), free(y), free(ref);
        }
    int inf = TG_MM_INFER;
    ck_assert(!tg_linear_is_narrow(1024, 16, 48, TG_MM_GELU | inf)); /* GELU: oneDNN's */
    ck_assert(!tg_linear_is_narrow(2048, 16, 48, inf));              /* batch 2 and up */
    ck_assert(!tg_linear_is_narrow(64, 48, 192, inf));
    ck_assert(!tg_linear_is_narrow(4, 65, 16, inf));
}
END_TEST

/* --------------------------------------------------------------- layernorm */
typedef struct { float *x, *g, *b, *mean, *var; int64_t M, C; int pixel; } ln_t;
static void ln_f(void *p, float *y)
{
    ln_t *a = p;
    if (a->pixel)
        tg_pixelnorm_fwd(y, a->x, a->M, a->C);
    else
        OK(tg_layernorm_fwd(ctx, y, a->mean, a->var, a->x, a->g, a->b, a->M, a->C));
}

static void check_norm(int64_t M, int64_t C, int pixel)
{
    ln_t a = {tu_rand(M * C, -2, 2), tu_rand(C, 0.5, 1.5), tu_rand(C, -1, 1), calloc(M, 4),
              calloc(M, 4), M, C, pixel};
    float *y = calloc(M * C, 4), *ref = calloc(M * C, 4), *y2 = calloc(M * C, 4);
    ln_f(&a, y);
    for (int64_t m = 0; m < M; m++) {
        double mu = 0, var = 0, ss = 0;
        for (int64_t c = 0; c < C; c++)
            mu += a.x[m * C + c], ss += (double)a.x[m * C + c] * a.x[m * C + c];
        mu /= C;
        for (int64_t c = 0; c < C; c++)
            var += (a.x[m * C + c] - mu) * (a.x[m * C + c] - mu);
        var /= C;
        for (int64_t c = 0; c < C; c++)
            ref[m * C + c] = pixel ? (float)(a.x[m * C + c] / sqrt(ss / C + 1e-8))
                                   : (float)((a.x[m * C + c] - mu) / sqrt(var + 1e-5) * a.g[c] + a.b[c]);
    }
    tu_assert_close(y, ref, M * C, 1e-5, 1e-4);
    if (!pixel) { /* inference mode agrees with training mode */
        OK(tg_layernorm_fwd(ctx, y2, NULL, NULL, a.x, a.g, a.b, M, C));
        tu_assert_close(y2, y, M * C, 1e-6, 1e-6);
    }
    float *r = tu_rand(M * C, -1, 1), *dx = calloc(M * C, 4), *dg = calloc(C, 4), *db = calloc(C, 4);
    if (pixel)
        tg_pixelnorm_bwd(dx, r, a.x, M, C);
    else
        OK(tg_layernorm_bwd(ctx, dx, dg, db, r, a.x, a.mean, a.var, a.g, a.b, M, C));
    tu_gradcheck("norm dx", ln_f, &a, a.x, M * C, r, M * C, dx, 200, 1e-2f, 2e-3, 1e-2);
    if (!pixel) {
        tu_gradcheck("layernorm dg", ln_f, &a, a.g, C, r, M * C, dg, 200, 1e-2f, 2e-3, 1e-2);
        tu_gradcheck("layernorm db", ln_f, &a, a.b, C, r, M * C, db, 200, 1e-2f, 2e-3, 1e-2);
    }
    free(a.x), free(a.g), free(a.b), free(a.mean), free(a.var), free(y), free(y2), free(ref);
    free(r), free(dx), free(dg), free(db);
}

START_TEST(layernorm_shapes)
{
    check_norm(1, 19, 0);
    check_norm(15, 19, 0);
    check_norm(33, 48, 0);
}
END_TEST

START_TEST(pixelnorm_shapes)
{
    check_norm(1, 19, 1);
    check_norm(15, 19, 1);
}
END_TEST

/* ------------------------------------------------------------- activations */
typedef struct { float *x; int64_t n; int tanh_; } act_t;
static void act_f(void *p, float *y)
{
    act_t *a = p;
    OK(a->tanh_ ? tg_tanh_fwd(ctx, y, a->x, a->n) : tg_gelu_fwd(ctx, y, a->x, a->n));
}

static void check_act(int64_t n, int tanh_)
{
    act_t a = {tu_rand(n, -3, 3), n, tanh_};
    float *y = calloc(n, 4), *ref = calloc(n, 4), *r = tu_rand(n, -1, 1), *dx = calloc(n, 4);
    act_f(&a, y);
    for (int64_t i = 0; i < n; i++) {
        double v = a.x[i];
        ref[i] = (float)(tanh_ ? tanh(v) : 0.5 * v * (1 + erf(v / sqrt(2.0))));
    }
    tu_assert_close(y, ref, n, 1e-6, 1e-5);
    OK(tanh_ ? tg_tanh_bwd(ctx, dx, r, y, n) : tg_gelu_bwd(ctx, dx, r, a.x, n));
    tu_gradcheck(tanh_ ? "tanh" : "gelu", act_f, &a, a.x, n, r, n, dx, 300, 1e-3f, 2e-3, 1e-2);
    free(a.x), free(y), free(ref), free(r), free(dx);
}

START_TEST(gelu_tanh)
{
    check_act(1, 0);
    check_act(1001, 0);
    check_act(7, 1);
    check_act(1001, 1);
}
END_TEST

/* --------------------------------------------------------------- attention */
typedef struct { float *qkv, *bias; uint8_t *mask; int64_t B, N, C, H; } att_t;
static void att_f(void *p, float *y)
{
    att_t *a = p;
    OK(tg_attention_fwd(ctx, y, a->qkv, a->bias, a->mask, a->B, a->N, a->C, a->H));
}

static void att_ref(const att_t *a, float *out)
{
    int64_t B = a->B, N = a->N, C = a->C, H = a->H, dh = C / H;
    double *s = malloc(N * sizeof *s);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < N; i++) {
                double mx = -INFINITY, z = 0;
                for (int64_t j = 0; j < N; j++) {
                    double v = 0;
                    for (int64_t d = 0; d < dh; d++)
                        v += (double)a->qkv[(b * N + i) * 3 * C + h * dh + d] *
                             a->qkv[(b * N + j) * 3 * C + C + h * dh + d];
                    v /= sqrt((double)dh);
                    if (a->bias)
                        v += a->bias[(h * N + i) * N + j];
                    if (a->mask && !a->mask[i * N + j])
                        v = -INFINITY;
                    s[j] = v;
                    mx = v > mx ? v : mx;
                }
                for (int64_t j = 0; j < N; j++)
                    z += s[j] = exp(s[j] - mx);
                for (int64_t d = 0; d < dh; d++) {
                    double o = 0;
                    for (int64_t j = 0; j < N; j++)
                        o += s[j] / z * a->qkv[(b * N + j) * 3 * C + 2 * C + h * dh + d];
                    out[(b * N + i) * C + h * dh + d] = (float)o;
                }
            }
    free(s);
}

/* The generator's locality mask (tg_locality_mask) on the w x w grid, N =
 * w^2: token i sees token j when their Chebyshev distance is at most
 * radius. Each query row's unmasked keys are a span of about
 * (2 radius + 1) w, which the fused kernels visit alone. */
static uint8_t *grid_mask(int64_t N, int radius)
{
    int64_t w = (int64_t)lround(sqrt((double)N));
    ck_assert_int_eq(w * w, N);
    uint8_t *m = malloc(N * N);
    tg_locality_mask(m, (int)w, radius);
    return m;
}

/* mask: 0 none, 1 a band |i - j| <= 2, 3 a locality grid (grid_mask) */
static void check_attention(int64_t B, int64_t N, int64_t C, int64_t H, int bias, int mask,
                            int64_t chunk_floats)
{
    int64_t keep = tg_attention_chunk_floats;
    tg_attention_chunk_floats = chunk_floats;
    att_t a = {tu_rand(B * N * 3 * C, -1.5, 1.5), bias ? tu_rand(H * N * N, -1, 1) : NULL, NULL,
               B, N, C, H};
    if (mask == 3) /* locality on the sqrt(N) grid, radius 1 */
        a.mask = grid_mask(N, 1);
    else if (mask) { /* a band: token i sees j with |i - j| <= 2 */
        a.mask = malloc(N * N);
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = 0; j < N; j++)
                a.mask[i * N + j] = llabs(i - j) <= 2;
    }
    float *y = calloc(B * N * C, 4), *ref = calloc(B * N * C, 4);
    att_f(&a, y);
    att_ref(&a, ref);
    tu_assert_close(y, ref, B * N * C, 1e-5, 1e-4);
    float *r = tu_rand(B * N * C, -1, 1), *dqkv = tu_rand(B * N * 3 * C, 5, 6),
          *dbias = calloc(H * N * N, 4);
    OK(tg_attention_bwd(ctx, dqkv, bias ? dbias : NULL, r, a.qkv, a.bias, a.mask, B, N, C, H));
    tu_gradcheck("attention dqkv", att_f, &a, a.qkv, B * N * 3 * C, r, B * N * C, dqkv, 300,
                 1e-2f, 2e-3, 1e-2);
    if (bias)
        tu_gradcheck("attention dbias", att_f, &a, a.bias, H * N * N, r, B * N * C, dbias, 300,
                     1e-2f, 2e-3, 1e-2);
    tg_attention_chunk_floats = keep;
    free(a.qkv), free(a.bias), free(a.mask), free(y), free(ref), free(r), free(dqkv), free(dbias);
}

START_TEST(attention_plain)
{
    check_attention(1, 10, 12, 3, 0, 0, 1 << 22);
    check_attention(3, 10, 12, 3, 0, 0, 1 << 22);
    check_attention(2, 17, 8, 1, 0, 0, 1 << 22);
}
END_TEST

START_TEST(attention_bias_mask)
{
    check_attention(1, 9, 12, 3, 1, 0, 1 << 22);
    check_attention(3, 9, 12, 3, 1, 1, 1 << 22);
    check_attention(2, 16, 16, 4, 0, 1, 1 << 22);
}
END_TEST

/* the fused row-at-a-time kernels: the same reference and gradient checks,
 * and agreement with the matmul path within float32 rounding */
static void check_fused(int64_t B, int64_t N, int64_t C, int64_t H, int bias, int mask)
{
    int64_t keep = tg_attention_fused_min_tokens;
    tg_attention_fused_min_tokens = 1;
    check_attention(B, N, C, H, bias, mask, 1 << 22);
    float *qkv = tu_rand(B * N * 3 * C, -1.5, 1.5), *bs = bias ? tu_rand(H * N * N, -1, 1) : NULL;
    uint8_t *mk = NULL;
    if (mask == 3) {
        mk = grid_mask(N, 2);
    } else if (mask) {
        mk = malloc(N * N);
        for (int64_t i = 0; i < N * N; i++)
            mk[i] = (i % 3) != 1 || i / N == i % N;
    }
    float *y1 = calloc(B * N * C, 4), *y2 = calloc(B * N * C, 4), *r = tu_rand(B * N * C, -1, 1);
    float *g1 = calloc(B * N * 3 * C, 4), *g2 = calloc(B * N * 3 * C, 4);
    float *db1 = calloc(H * N * N, 4), *db2 = calloc(H * N * N, 4);
    OK(tg_attention_fwd(ctx, y1, qkv, bs, mk, B, N, C, H));
    OK(tg_attention_bwd(ctx, g1, bias ? db1 : NULL, r, qkv, bs, mk, B, N, C, H));
    tg_attention_fused_min_tokens = 1 << 30;
    OK(tg_attention_fwd(ctx, y2, qkv, bs, mk, B, N, C, H));
    OK(tg_attention_bwd(ctx, g2, bias ? db2 : NULL, r, qkv, bs, mk, B, N, C, H));
    tu_assert_close(y1, y2, B * N * C, 1e-6, 1e-5);
    tu_assert_close(g1, g2, B * N * 3 * C, 1e-6, 1e-5);
    if (bias)
        tu_assert_close(db1, db2, H * N * N, 1e-6, 1e-5);
    tg_attention_fused_min_tokens = keep;
    free(qkv), free(bs), free(mk), free(y1), free(y2), free(r), free(g1), free(g2), free(db1), free(db2);
}

START_TEST(attention_fused)
{
    check_fused(1, 10, 12, 3, 0, 0);  /* head width 4: a specialised kernel */
    check_fused(3, 9, 24, 3, 1, 1);   /* width 8 */
    check_fused(2, 17, 48, 3, 1, 0);  /* width 16 */
    check_fused(2, 11, 20, 4, 0, 1);  /* width 5 -> 8 */
    check_fused(1, 7, 96, 3, 0, 0);   /* width 32 */
    /* the blocked forward pads widths (6 -> 8, 24 -> 32, 40 -> 64), keys to
     * a multiple of 16 and the last block of rows: odd N checks all tails */
    check_fused(2, 37, 24, 4, 0, 0);  /* width 6 -> 8, 2 rows per block, N % 16 = 5 */
    check_fused(1, 33, 72, 3, 1, 1);  /* width 24 */
    check_fused(1, 19, 80, 2, 0, 1);  /* width 40 -> 48 */
    check_fused(1, 21, 112, 2, 1, 0); /* width 56 -> 64 */
    check_fused(1, 23, 12, 4, 1, 0);  /* width 3 */
    check_fused(1, 18, 160, 2, 0, 0); /* width 80: the wide kernel */
    /* the blocked backward (widths <= 8 without bias, on AVX-512): keys not a
     * multiple of 16, a short last block of rows (4 rows at width 4, 2 at 8) */
    check_fused(2, 37, 12, 3, 0, 0);  /* width 4, N % 4 = 1 */
    check_fused(1, 35, 14, 2, 0, 0);  /* width 7 -> 8, N % 2 = 1 */
    /* the key-major blocked backward (widths 9 to 16, 4 rows per block),
     * AVX-512 too; elsewhere, and in the one-ISA builds, the row kernel */
    check_fused(2, 37, 32, 2, 0, 0);  /* width 16, N % 4 = 1, N % 16 = 5 */
    check_fused(1, 30, 36, 3, 0, 1);  /* width 12 -> 16, a mask, N % 4 = 2 */
    check_fused(2, 19, 27, 3, 0, 0);  /* width 9 -> 16, N % 4 = 3 */
    /* locality masks: each block of rows visits only its span of keys
     * (the blocked backward too), spans not multiples of 16 */
    check_fused(2, 64, 12, 3, 0, 3);  /* width 4, grid 8 x 8 */
    check_fused(1, 100, 16, 2, 0, 3); /* width 8, grid 10 x 10 */
    check_fused(1, 81, 18, 3, 0, 3);  /* width 6 -> 8, grid 9 x 9, short last block */
    check_fused(1, 49, 32, 2, 1, 3);  /* width 16 with a bias: forward only blocked */
    check_fused(2, 121, 64, 4, 0, 3); /* width 16, grid 11 x 11: the key-major backward */
}
END_TEST

START_TEST(attention_chunked)
{
    /* scores of two images at a time: chunks of 2, 2 and a tail of 1 */
    check_attention(5, 9, 12, 3, 1, 1, 2 * 3 * 9 * 9);
    check_attention(3, 9, 12, 3, 0, 0, 1);
}
END_TEST

/* ------------------------------------------------------------ data movement */
typedef struct { float *x; int64_t B, a1, a2, a3; int kind; } mv_t;
enum { MV_SHUFFLE, MV_PATCH, MV_POOL, MV_BCAST };
static void mv_f(void *p, float *y)
{
    mv_t *a = p;
    switch (a->kind) {
    case MV_SHUFFLE: tg_pixel_shuffle_fwd(y, a->x, a->B, a->a1, a->a2); break;
    case MV_PATCH: tg_patches_fwd(y, a->x, a->B, a->a1, a->a2, a->a3); break;
    case MV_POOL: tg_avgpool_fwd(y, a->x, a->B, a->a1, a->a2, a->a3); break;
    case MV_BCAST: memset(y, 0, a->B * a->a1 * 4); tg_add_broadcast_fwd(y, a->x, a->B, a->a1); break;
    }
}

START_TEST(pixel_shuffle)
{
    for (int64_t B = 1; B <= 3; B += 2) {
        int64_t w = 3, C = 8, C4 = 2, W = 6;
        mv_t a = {tu_rand(B * w * w * C, -1, 1), B, w, C, 0, MV_SHUFFLE};
        float *y = calloc(B * 4 * w * w * C4, 4), *ref = calloc(B * 4 * w * w * C4, 4);
        mv_f(&a, y);
        /* SPEC: tokens -> [C, w, w] image -> out[c, 2h+i, 2v+j] = in[4c+2i+j, h, v] -> tokens */
        for (int64_t b = 0; b < B; b++)
            for (int64_t c = 0; c < C4; c++)
                for (int64_t Y = 0; Y < W; Y++)
                    for (int64_t X = 0; X < W; X++) {
                        int64_t ic = 4 * c + 2 * (Y % 2) + X % 2, h = Y / 2, v = X / 2;
                        ref[(b * W * W + Y * W + X) * C4 + c] = a.x[(b * w * w + h * w + v) * C + ic];
                    }
        tu_assert_close(y, ref, B * W * W * C4, 0, 0);
        float *r = tu_rand(B * W * W * C4, -1, 1), *dx = calloc(B * w * w * C, 4);
        tg_pixel_shuffle_bwd(dx, r, B, w, C);
        tu_gradcheck("shuffle", mv_f, &a, a.x, B * w * w * C, r, B * W * W * C4, dx, 500, 1e-2f,
                     1e-4, 1e-3);
        free(a.x), free(y), free(ref), free(r), free(dx);
    }
}
END_TEST

START_TEST(patches)
{
    int64_t B = 2, ch = 3, S = 12, p = 4, g = 3, F = ch * p * p;
    mv_t a = {tu_rand(B * ch * S * S, -1, 1), B, ch, S, p, MV_PATCH};
    float *y = calloc(B * g * g * F, 4), *ref = calloc(B * g * g * F, 4);
    mv_f(&a, y);
    /* SPEC: image reshaped [B, ch, g, p, g, p] -> permute (0,2,4,1,3,5) */
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < ch; c++)
            for (int64_t py = 0; py < g; py++)
                for (int64_t r = 0; r < p; r++)
                    for (int64_t px = 0; px < g; px++)
                        for (int64_t q = 0; q < p; q++)
                            ref[((b * g + py) * g + px) * F + (c * p + r) * p + q] =
                                a.x[((b * ch + c) * S + py * p + r) * S + px * p + q];
    tu_assert_close(y, ref, B * g * g * F, 0, 0);
    float *r = tu_rand(B * g * g * F, -1, 1), *dx = calloc(B * ch * S * S, 4);
    tg_patches_bwd(dx, r, B, ch, S, p);
    tu_gradcheck("patches", mv_f, &a, a.x, B * ch * S * S, r, B * g * g * F, dx, 500, 1e-2f, 1e-4, 1e-3);
    free(a.x), free(y), free(ref), free(r), free(dx);
}
END_TEST

START_TEST(avgpool_broadcast_transpose)
{
    int64_t B = 3, ch = 2, S = 12, k = 3, s = 4;
    mv_t a = {tu_rand(B * ch * S * S, -1, 1), B, ch, S, k, MV_POOL};
    float *y = calloc(B * ch * s * s, 4), *ref = calloc(B * ch * s * s, 4);
    mv_f(&a, y);
    for (int64_t bc = 0; bc < B * ch; bc++)
        for (int64_t i = 0; i < s; i++)
            for (int64_t j = 0; j < s; j++) {
                double acc = 0;
                for (int64_t u = 0; u < k; u++)
                    for (int64_t v = 0; v < k; v++)
                        acc += a.x[(bc * S + i * k + u) * S + j * k + v];
                ref[(bc * s + i) * s + j] = (float)(acc / (k * k));
            }
    tu_assert_close(y, ref, B * ch * s * s, 1e-6, 1e-5);
    float *r = tu_rand(B * ch * s * s, -1, 1), *dx = calloc(B * ch * S * S, 4);
    tg_avgpool_bwd(dx, r, B, ch, S, k);
    tu_gradcheck("avgpool", mv_f, &a, a.x, B * ch * S * S, r, B * ch * s * s, dx, 500, 1e-2f, 1e-4, 1e-3);

    mv_t bc = {tu_rand(7, -1, 1), 5, 7, 0, 0, MV_BCAST};
    float *yb = calloc(35, 4), *rb = tu_rand(35, -1, 1), *dp = calloc(7, 4);
    tg_add_broadcast_bwd(dp, rb, 5, 7);
    tu_gradcheck("broadcast", mv_f, &bc, bc.x, 7, rb, 35, dp, 10, 1e-2f, 1e-4, 1e-3);

    float t_in[2 * 3 * 5], t_out[2 * 3 * 5], t_back[2 * 3 * 5];
    tu_fill(t_in, 30, -1, 1);
    tg_transpose_fwd(t_out, t_in, 2, 3, 5);
    ck_assert_float_eq(t_out[(1 * 5 + 4) * 3 + 2], t_in[(1 * 3 + 2) * 5 + 4]);
    tg_transpose_fwd(t_back, t_out, 2, 5, 3);
    tu_assert_close(t_back, t_in, 30, 0, 0);
    free(a.x), free(y), free(ref), free(r), free(dx), free(bc.x), free(yb), free(rb), free(dp);
}
END_TEST

START_TEST(mse)
{
    float a[13], b[13], da[13];
    tu_fill(a, 13, -1, 1);
    tu_fill(b, 13, -1, 1);
    double ref = 0;
    for (int i = 0; i < 13; i++)
        ref += ((double)a[i] - b[i]) * ((double)a[i] - b[i]) / 13;
    ck_assert_double_eq_tol(tg_mse_fwd(a, b, 13), ref, 1e-12);
    tg_mse_bwd(da, a, b, 13, 0.5f);
    for (int i = 0; i < 13; i++) {
        float keep = a[i];
        a[i] = keep + 1e-3f;
        double lp = tg_mse_fwd(a, b, 13);
        a[i] = keep - 1e-3f;
        double lm = tg_mse_fwd(a, b, 13);
        a[i] = keep;
        ck_assert_double_eq_tol(da[i], 0.5 * (lp - lm) / 2e-3, 1e-4);
    }
}
END_TEST

/* A context made while TG_ALLOW_REF is `value` (a context reads the
 * variable when it is created); the caller's environment is put back. */
static tg_dnn *context_with_allow_ref(const char *value)
{
    const char *was = getenv("TG_ALLOW_REF");
    char keep[64] = "";
    if (was)
        snprintf(keep, sizeof keep, "%s", was);
    ck_assert_int_eq(setenv("TG_ALLOW_REF", value, 1), 0);
    tg_dnn *c = NULL;
    ck_assert_int_eq(tg_dnn_create(&c), TG_OK);
    if (was)
        setenv("TG_ALLOW_REF", keep, 1);
    else
        unsetenv("TG_ALLOW_REF");
    return c;
}

START_TEST(strict_ref_guard)
{
    /* A transposed matmul destination has only a reference kernel in
     * oneDNN 2.6. A strict context refuses it with BACKEND and a message; one
     * made with TG_ALLOW_REF=1 runs it. Both contexts are made here, so the
     * test means the same whatever TG_ALLOW_REF the tests run under. */
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 0, 1, 1, 1}, c[4] = {0};
    const float want[4] = {4, 10, 5, 11}; /* a b = [[4, 5], [10, 11]], column-major */
    tg_view va = tg_view_plain(2, (int64_t[]){2, 3}), vb = tg_view_plain(2, (int64_t[]){3, 2});
    tg_view vct = {.nd = 2, .dims = {2, 2}, .strides = {1, 2}};

    tg_dnn *strict = context_with_allow_ref("0");
    long before = tg_dnn_ref_count(NULL);
    tg_status s = tg_matmul(strict, &va, a, &vb, b, &vct, c, NULL, 1.0f, 0);
    const char *impl = NULL;
    long after = tg_dnn_ref_count(&impl);
    ck_assert_msg(after == before + 1, "oneDNN built no reference kernel for the transposed "
                  "matmul (status %d): this test needs another op that has only one", (int)s);
    ck_assert_ptr_nonnull(impl);
    ck_assert_ptr_nonnull(strstr(impl, "ref"));
    ck_assert_int_eq(s, TG_ERR_BACKEND);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "reference kernel"));
    tg_dnn_destroy(strict);

    tg_dnn *lenient = context_with_allow_ref("1");
    OK(tg_matmul(lenient, &va, a, &vb, b, &vct, c, NULL, 1.0f, 0));
    ck_assert_int_eq(tg_dnn_ref_count(NULL), after + 1);
    tu_assert_close(c, want, 4, 0.0, 0.0);
    tg_dnn_destroy(lenient);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, linear_shapes);
    tcase_add_test(tc, linear_narrow);
    tcase_add_test(tc, layernorm_shapes);
    tcase_add_test(tc, pixelnorm_shapes);
    tcase_add_test(tc, gelu_tanh);
    tcase_add_test(tc, attention_plain);
    tcase_add_test(tc, attention_bias_mask);
    tcase_add_test(tc, attention_chunked);
    tcase_add_test(tc, attention_fused);
    tcase_add_test(tc, pixel_shuffle);
    tcase_add_test(tc, patches);
    tcase_add_test(tc, avgpool_broadcast_transpose);
    tcase_add_test(tc, mse);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("ref-guard"); /* its own fixture: it provokes a ref kernel */
    tcase_add_test(tr, strict_ref_guard);
    suite_add_tcase(s, tr);
    return tu_run(s) ? 1 : 0;
}
