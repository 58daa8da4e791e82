/* Second-order ops (for the exact gradient penalty): each tangent (jvp)
 * against central differences of the forward along the tangent, and each
 * reverse-of-tangent (bwd2) against central differences of the scalar
 * sum(r1 * y) + sum(r2 * yd) with respect to the input, its tangent and the
 * parameters. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "testutil.h"

static tg_dnn *ctx;
static void setup(void)
{
    tu_seed(7);
    ck_assert_int_eq(tg_dnn_create(&ctx), TG_OK);
}
static void teardown(void)
{
    tu_assert_no_ref();
    tg_dnn_destroy(ctx);
}

/* A pair op: (x, xd) -> (y, yd) written as one output vector [y | yd]. */
typedef struct {
    int kind; /* 0 layernorm, 1 gelu, 2 attention */
    float *x, *xd, *g, *b, *mean, *var;
    int64_t M, C, B, N, H, nx, ny;
} pair_t;

static void pair_f(void *p, float *out)
{
    pair_t *a = p;
    float *y = out, *yd = out + a->ny;
    switch (a->kind) {
    case 0:
        OK(tg_layernorm_fwd(ctx, y, a->mean, a->var, a->x, a->g, a->b, a->M, a->C));
        tg_layernorm_jvp(yd, a->xd, a->x, a->mean, a->var, a->g, a->M, a->C);
        break;
    case 1:
        OK(tg_gelu_fwd(ctx, y, a->x, a->nx));
        OK(tg_gelu_bwd(ctx, yd, a->xd, a->x, a->nx)); /* the tangent: GELU'(x) xd */
        break;
    default:
        OK(tg_attention_fwd(ctx, y, a->x, NULL, NULL, a->B, a->N, a->C, a->H));
        OK(tg_attention_jvp(ctx, yd, a->x, a->xd, a->B, a->N, a->C, a->H));
    }
}

/* y only, for checking the tangent by differences along xd */
static void check_jvp(pair_t *a)
{
    float *out = calloc(2 * a->ny, 4), *yp = calloc(2 * a->ny, 4), *ym = calloc(2 * a->ny, 4),
          *keep = malloc(a->nx * 4), *num = calloc(a->ny, 4);
    pair_f(a, out);
    memcpy(keep, a->x, a->nx * 4);
    const float eps = 1e-2f;
    for (int64_t i = 0; i < a->nx; i++)
        a->x[i] = keep[i] + eps * a->xd[i];
    pair_f(a, yp);
    for (int64_t i = 0; i < a->nx; i++)
        a->x[i] = keep[i] - eps * a->xd[i];
    pair_f(a, ym);
    memcpy(a->x, keep, a->nx * 4);
    for (int64_t i = 0; i < a->ny; i++)
        num[i] = (yp[i] - ym[i]) / (2 * eps);
    tu_assert_close(out + a->ny, num, a->ny, 3e-3, 3e-2);
    free(out), free(yp), free(ym), free(keep), free(num);
}

static void check_bwd2(pair_t *a)
{
    float *r = tu_rand(2 * a->ny, -1, 1), *dx = calloc(a->nx, 4), *dxd = calloc(a->nx, 4);
    float *dg = calloc(a->C, 4), *db = calloc(a->C, 4), *out = calloc(2 * a->ny, 4);
    pair_f(a, out); /* fills mean/var */
    const float *dy = r, *dyd = r + a->ny;
    switch (a->kind) {
    case 0:
        tg_layernorm_bwd2(dx, dxd, dg, db, dy, dyd, a->x, a->xd, a->mean, a->var, a->g, a->M, a->C);
        break;
    case 1:
        OK(tg_gelu_bwd(ctx, dxd, dyd, a->x, a->nx));
        OK(tg_gelu_bwd(ctx, dx, dy, a->x, a->nx));
        tg_gelu_hvp(dx, a->x, a->xd, dyd, a->nx);
        break;
    default:
        OK(tg_attention_bwd2(ctx, dx, dxd, dy, dyd, a->x, a->xd, a->B, a->N, a->C, a->H));
    }
    tu_gradcheck("bwd2 dx", pair_f, a, a->x, a->nx, r, 2 * a->ny, dx, 300, 1e-2f, 3e-3, 3e-2);
    tu_gradcheck("bwd2 dxd", pair_f, a, a->xd, a->nx, r, 2 * a->ny, dxd, 300, 1e-2f, 3e-3, 3e-2);
    if (a->kind == 0) {
        tu_gradcheck("bwd2 dg", pair_f, a, a->g, a->C, r, 2 * a->ny, dg, 300, 1e-2f, 3e-3, 3e-2);
        tu_gradcheck("bwd2 db", pair_f, a, a->b, a->C, r, 2 * a->ny, db, 300, 1e-2f, 3e-3, 3e-2);
    }
    free(r), free(dx), free(dxd), free(dg), free(db), free(out);
}

START_TEST(layernorm2)
{
    int64_t shapes[][2] = {{1, 13}, {6, 19}};
    for (int k = 0; k < 2; k++) {
        int64_t M = shapes[k][0], C = shapes[k][1];
        pair_t a = {0, tu_rand(M * C, -2, 2), tu_rand(M * C, -1, 1), tu_rand(C, 0.5, 1.5),
                    tu_rand(C, -1, 1), calloc(M, 4), calloc(M, 4), M, C, 0, 0, 0, M * C, M * C};
        check_jvp(&a);
        check_bwd2(&a);
        free(a.x), free(a.xd), free(a.g), free(a.b), free(a.mean), free(a.var);
    }
}
END_TEST

START_TEST(gelu2)
{
    int64_t n = 501;
    pair_t a = {1, tu_rand(n, -3, 3), tu_rand(n, -1, 1), NULL, NULL, NULL, NULL, n, 1, 0, 0, 0, n, n};
    check_jvp(&a);
    check_bwd2(&a);
    free(a.x), free(a.xd);
}
END_TEST

static void check_attn2(int64_t B, int64_t N, int64_t C, int64_t H, int64_t chunk)
{
    int64_t keep = tg_attention_chunk_floats;
    tg_attention_chunk_floats = chunk;
    pair_t a = {2, tu_rand(B * N * 3 * C, -1.5, 1.5), tu_rand(B * N * 3 * C, -1, 1), NULL, NULL,
                NULL, NULL, 0, C, B, N, H, B * N * 3 * C, B * N * C};
    check_jvp(&a);
    check_bwd2(&a);
    free(a.x), free(a.xd);
    tg_attention_chunk_floats = keep;
}

START_TEST(attention2)
{
    check_attn2(1, 9, 12, 3, 1 << 22);
    check_attn2(3, 7, 8, 2, 1 << 22);
    check_attn2(3, 7, 8, 2, 2 * 7 * 7 * 2); /* chunks of two images */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops2");
    TCase *tc = tcase_create("second-order");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, layernorm2);
    tcase_add_test(tc, gelu2);
    tcase_add_test(tc, attention2);
    suite_add_tcase(s, tc);
    return tu_run(s) ? 1 : 0;
}
