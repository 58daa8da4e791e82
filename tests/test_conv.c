/* The convolutional discriminator's ops and unit (ops/conv.c,
 * nn/convblock.c): the convolution against a direct loop, its backward
 * (data, weights, bias) against central differences, LeakyReLU and global
 * pooling, and each kind of unit's backward, tangent and second-order
 * reverse against differences. The whole network is checked in
 * test_models.c, a training step in test_train.c, the numbers against the
 * PyTorch oracle in test_conformance.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/desc.h"
#include "models/model.h"
#include "nn/convblock.h"
#include "ops/ops.h"
#include "testutil.h"

static tg_dnn *ctx;
static void setup(void)
{
    tu_seed(5);
    ck_assert_int_eq(tg_dnn_create(&ctx), TG_OK);
}
static void teardown(void)
{
    tu_assert_no_ref();
    tg_dnn_destroy(ctx);
}

/* y = conv(x, w) + b by the definition (zero padding), in double; x and y
 * channels-last (NHWC), w OIHW */
static void conv_direct(const tg_conv_shape *s, float *y, const float *x, const float *w,
                        const float *b)
{
    int64_t So = tg_conv_out(s);
    for (int64_t n = 0; n < s->B; n++)
        for (int64_t o = 0; o < s->cout; o++)
            for (int64_t i = 0; i < So; i++)
                for (int64_t j = 0; j < So; j++) {
                    double acc = b ? b[o] : 0;
                    for (int64_t c = 0; c < s->cin; c++)
                        for (int64_t u = 0; u < s->k; u++)
                            for (int64_t v = 0; v < s->k; v++) {
                                int64_t yy = i * s->stride - s->pad + u, xx = j * s->stride - s->pad + v;
                                if (yy < 0 || yy >= s->S || xx < 0 || xx >= s->S)
                                    continue;
                                acc += (double)x[((n * s->S + yy) * s->S + xx) * s->cin + c] *
                                       w[((o * s->cin + c) * s->k + u) * s->k + v];
                            }
                    y[((n * So + i) * So + j) * s->cout + o] = (float)acc;
                }
}

/* 3x3 pad 1, 4x4 stride 2 pad 1 (down-sampling), 1x1 (shortcut); odd sizes */
static const tg_conv_shape shapes[] = {
    {2, 3, 5, 6, 3, 1, 1}, {3, 2, 4, 8, 4, 2, 1}, {2, 5, 3, 4, 1, 1, 0}, {1, 1, 7, 5, 3, 1, 1}};

typedef struct {
    tg_conv_shape s;
    float *x, *w, *b;
} cctx;
static void conv_f(void *p, float *y)
{
    cctx *c = p;
    OK(tg_conv2d_fwd(ctx, &c->s, y, c->x, c->w, c->b));
}

START_TEST(conv_forward_matches_definition)
{
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        const tg_conv_shape *s = &shapes[t];
        int64_t So = tg_conv_out(s);
        size_t nx = (size_t)(s->B * s->cin * s->S * s->S), nw = (size_t)(s->cout * s->cin * s->k * s->k),
               ny = (size_t)(s->B * s->cout * So * So);
        float *x = tu_rand(nx, -1, 1), *w = tu_rand(nw, -1, 1), *b = tu_rand((size_t)s->cout, -1, 1);
        float *y = calloc(ny, 4), *ref = calloc(ny, 4);
        for (int bias = 0; bias < 2; bias++) {
            OK(tg_conv2d_fwd(ctx, s, y, x, w, bias ? b : NULL));
            conv_direct(s, ref, x, w, bias ? b : NULL);
            tu_assert_close(y, ref, ny, 1e-5, 1e-5);
        }
        free(x), free(w), free(b), free(y), free(ref);
    }
}
END_TEST

START_TEST(conv_backward_by_differences)
{
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        cctx c = {shapes[t], NULL, NULL, NULL};
        const tg_conv_shape *s = &c.s;
        int64_t So = tg_conv_out(s);
        size_t nx = (size_t)(s->B * s->cin * s->S * s->S), nw = (size_t)(s->cout * s->cin * s->k * s->k),
               ny = (size_t)(s->B * s->cout * So * So);
        c.x = tu_rand(nx, -1, 1), c.w = tu_rand(nw, -1, 1), c.b = tu_rand((size_t)s->cout, -1, 1);
        float *r = tu_rand(ny, -1, 1), *dx = calloc(nx, 4), *dw = tu_rand(nw, -1, 1),
              *db = tu_rand((size_t)s->cout, -1, 1);
        /* the parameter gradients are added: start from something */
        float *dw0 = malloc(nw * 4), *db0 = malloc((size_t)s->cout * 4);
        memcpy(dw0, dw, nw * 4), memcpy(db0, db, (size_t)s->cout * 4);
        OK(tg_conv2d_bwd(ctx, s, dx, dw, db, r, c.x, c.w));
        for (size_t i = 0; i < nw; i++)
            dw[i] -= dw0[i];
        for (int64_t i = 0; i < s->cout; i++)
            db[i] -= db0[i];
        /* the function is linear in each argument: differences are exact
         * up to rounding */
        tu_gradcheck("conv dx", conv_f, &c, c.x, nx, r, ny, dx, 40, 1e-2f, 1e-3, 1e-3);
        tu_gradcheck("conv dw", conv_f, &c, c.w, nw, r, ny, dw, 40, 1e-2f, 1e-3, 1e-3);
        tu_gradcheck("conv db", conv_f, &c, c.b, (size_t)s->cout, r, ny, db, 40, 1e-2f, 1e-3, 1e-3);
        /* dx alone, dw alone: the same numbers */
        float *dx2 = calloc(nx, 4), *dw2 = calloc(nw, 4);
        OK(tg_conv2d_bwd(ctx, s, dx2, NULL, NULL, r, c.x, c.w));
        OK(tg_conv2d_bwd(ctx, s, NULL, dw2, NULL, r, c.x, c.w));
        tu_assert_close(dx2, dx, nx, 1e-6, 1e-6);
        tu_assert_close(dw2, dw, nw, 1e-5, 1e-5);
        free(c.x), free(c.w), free(c.b), free(r), free(dx), free(dw), free(db), free(dw0), free(db0);
        free(dx2), free(dw2);
    }
}
END_TEST

START_TEST(conv_primitives_are_reused)
{
    const tg_conv_shape *s = &shapes[0];
    size_t nx = (size_t)(s->B * s->cin * s->S * s->S), nw = (size_t)(s->cout * s->cin * 9);
    float *x = tu_rand(nx, -1, 1), *w = tu_rand(nw, -1, 1), *b = tu_rand((size_t)s->cout, -1, 1);
    float *y = calloc(nx * 4, 4), *dx = calloc(nx, 4), *dw = calloc(nw, 4), *db = calloc(8, 4);
    OK(tg_conv2d_fwd(ctx, s, y, x, w, b));
    OK(tg_conv2d_bwd(ctx, s, dx, dw, db, y, x, w));
    size_t n = tg_dnn_prim_count(ctx);
    long allocs = tg_alloc_count();
    for (int i = 0; i < 3; i++) {
        OK(tg_conv2d_fwd(ctx, s, y, x, w, b));
        OK(tg_conv2d_bwd(ctx, s, dx, dw, db, y, x, w));
    }
    ck_assert_uint_eq(tg_dnn_prim_count(ctx), n);
    ck_assert_int_eq(tg_alloc_count(), allocs);
    free(x), free(w), free(b), free(y), free(dx), free(dw), free(db);
}
END_TEST

START_TEST(leaky_and_global_pool)
{
    float x[] = {-2, -0.5f, 0.25f, 3}, y[4], dx[4], dy[] = {1, 2, 3, 4};
    tg_leaky_fwd(y, x, 4, 0.2f);
    float ye[] = {-0.4f, -0.1f, 0.25f, 3};
    tu_assert_close(y, ye, 4, 1e-7, 0);
    tg_leaky_bwd(dx, dy, x, 4, 0.2f);
    float dxe[] = {0.2f, 0.4f, 3, 4};
    tu_assert_close(dx, dxe, 4, 1e-7, 0);
    /* NHWC [B=1, SS=2, C=2] */
    float g[2], dg[] = {1, -2}, dp[4];
    tg_gpool_fwd(g, x, 1, 2, 2, 0);
    float ge[] = {-1.75f, 2.5f};
    tu_assert_close(g, ge, 2, 1e-6, 0);
    tg_gpool_fwd(g, x, 1, 2, 2, 1);
    float gm[] = {-0.875f, 1.25f};
    tu_assert_close(g, gm, 2, 1e-6, 0);
    tg_gpool_bwd(dp, dg, 1, 2, 2, 1);
    float dpe[] = {0.5f, -1, 0.5f, -1};
    tu_assert_close(dp, dpe, 4, 1e-7, 0);
    /* 2x2 average pool, NHWC [B=1, S=2, S=2, C=2] -> [1, 1, 1, 2] and back */
    float a[] = {1, 10, 2, 20, 3, 30, 4, 40}, ap[2], da[8], dap[] = {4, 8};
    tg_avgpool2_nhwc_fwd(ap, a, 1, 2, 2);
    float ape[] = {2.5f, 25};
    tu_assert_close(ap, ape, 2, 1e-6, 0);
    tg_avgpool2_nhwc_bwd(da, dap, 1, 2, 2);
    float dae[] = {1, 2, 1, 2, 1, 2, 1, 2};
    tu_assert_close(da, dae, 8, 1e-7, 0);
}
END_TEST

/* ---------------------------------------------------------------- units */
typedef struct {
    tg_cblock k;
    tg_params P;
    int64_t B;
    float *W, *x, *xd, *buf, *tbuf, *scr;
    tg_cblock_acts a, ta;
    int tangent; /* output: the tangent of y along xd (else y) */
} uctx;

static size_t ny_of(const uctx *u) { return (size_t)u->B * u->k.cout * u->k.So * u->k.So; }
static size_t nx_of(const uctx *u) { return (size_t)u->B * u->k.cin * u->k.S * u->k.S; }

static void unit_f(void *p, float *y)
{
    uctx *u = p;
    OK(tg_cblock_fwd(ctx, &u->k, u->W, u->B, u->x, &u->a, u->scr));
    if (u->tangent)
        OK(tg_cblock_jvp(ctx, &u->k, u->W, u->B, u->xd, &u->ta, u->x, &u->a, u->scr));
    memcpy(y, u->tangent ? u->ta.y : u->a.y, ny_of(u) * 4);
}

/* the signs of every activation's input: x (non-first residual units) and u1 */
static uint64_t unit_sig(void *p)
{
    uctx *u = p;
    uint64_t h = tu_sign_hash(0, u->a.u1, u->B * (size_t)u->k.cout * u->k.S * u->k.S /
                                              (!u->k.residual && u->k.down == TG_DOWN_STRIDE + 1 ? 4 : 1));
    return u->k.residual && !u->k.first ? tu_sign_hash(h, u->x, nx_of(u)) : h;
}

static void check_unit(int cin, int cout, int S, int residual, int first, int down, int64_t B)
{
    uctx u = {.B = B};
    tg_cblock_define(&u.k, &u.P, "u", cin, cout, S, residual, first, down);
    ck_assert(!u.P.oom);
    u.W = tu_rand(u.P.total, -0.5f, 0.5f);
    size_t nx = nx_of(&u), ny = ny_of(&u), na = tg_cblock_acts_floats(&u.k, B);
    u.x = tu_rand(nx, -1, 1), u.xd = tu_rand(nx, -1, 1);
    u.buf = calloc(na, 4), u.tbuf = calloc(na, 4);
    u.scr = calloc(tg_cblock_scratch_floats(&u.k, B), 4);
    ck_assert_uint_eq(tg_cblock_acts_carve(&u.k, B, u.buf, &u.a), na);
    tg_cblock_acts_carve(&u.k, B, u.tbuf, &u.ta);
    float *r = tu_rand(ny, -1, 1), *y = calloc(ny, 4), *dx = calloc(nx, 4),
          *G = calloc(u.P.total, 4);
    /* backward: input and every tensor */
    unit_f(&u, y);
    OK(tg_cblock_bwd(ctx, &u.k, u.W, G, 1, B, u.x, &u.a, u.x, &u.a, r, dx, u.scr));
    tu_gradcheck_pl("unit dx", unit_f, unit_sig, &u, u.x, nx, r, ny, dx, 60, 1e-3f, 2e-3, 2e-2);
    for (size_t i = 0; i < u.P.count; i++)
        tu_gradcheck_pl(u.P.p[i].name, unit_f, unit_sig, &u, u.W + u.P.p[i].off, u.P.p[i].n, r, ny,
                     G + u.P.p[i].off, 20, 1e-3f, 2e-3, 2e-2);
    /* the tangent is the directional derivative, at a point with no kink
     * (LeakyReLU's) within the step */
    float *yd = calloc(ny, 4), *yp = calloc(ny, 4), *ym = calloc(ny, 4), *keep = malloc(nx * 4);
    const float h = 1e-3f;
    for (int tries = 0;; tries++) {
        ck_assert_msg(tries < 4, "every point drawn is near a kink");
        u.tangent = 1;
        unit_f(&u, yd);
        uint64_t base = unit_sig(&u);
        u.tangent = 0;
        memcpy(keep, u.x, nx * 4);
        for (size_t i = 0; i < nx; i++)
            u.x[i] = keep[i] + h * u.xd[i];
        unit_f(&u, yp);
        int kink = unit_sig(&u) != base;
        for (size_t i = 0; i < nx; i++)
            u.x[i] = keep[i] - h * u.xd[i];
        unit_f(&u, ym);
        kink |= unit_sig(&u) != base;
        memcpy(u.x, keep, nx * 4);
        if (!kink)
            break;
        tu_fill(u.x, nx, -1, 1);
    }
    for (size_t i = 0; i < ny; i++)
        yp[i] = (yp[i] - ym[i]) / (2 * h);
    tu_assert_close(yd, yp, ny, 2e-3, 2e-2);
    /* second-order reverse: the weight gradient of sum r * tangent (biases
     * have none) and the tangent input's gradient */
    u.tangent = 1;
    unit_f(&u, yd);
    memset(G, 0, u.P.total * 4);
    OK(tg_cblock_bwd(ctx, &u.k, u.W, G, 0, B, u.xd, &u.ta, u.x, &u.a, r, dx, u.scr));
    for (size_t i = 0; i < u.P.count; i++)
        tu_gradcheck_pl(u.P.p[i].name, unit_f, unit_sig, &u, u.W + u.P.p[i].off, u.P.p[i].n, r, ny,
                     G + u.P.p[i].off, 20, 1e-3f, 2e-3, 2e-2);
    tu_gradcheck_pl("unit dxd", unit_f, unit_sig, &u, u.xd, nx, r, ny, dx, 60, 1e-3f, 2e-3, 2e-2);
    free(u.W), free(u.x), free(u.xd), free(u.buf), free(u.tbuf), free(u.scr);
    free(r), free(y), free(dx), free(G), free(yd), free(yp), free(ym), free(keep);
    tg_params_free(&u.P);
}

#define AVG (TG_DOWN_AVGPOOL + 1)
#define STRIDE (TG_DOWN_STRIDE + 1)
START_TEST(residual_units)
{
    check_unit(3, 4, 6, 1, 1, AVG, 2);    /* first unit: no act on x, down by pool */
    check_unit(4, 4, 5, 1, 0, 0, 2);      /* identity shortcut, odd size */
    check_unit(3, 5, 4, 1, 0, 0, 1);      /* 1x1 shortcut (width changes) */
    check_unit(4, 3, 8, 1, 0, STRIDE, 2); /* down by a stride-2 4x4 conv */
}
END_TEST
START_TEST(plain_units)
{
    check_unit(2, 4, 6, 0, 1, 0, 2);
    check_unit(3, 5, 6, 0, 0, AVG, 2);
    check_unit(4, 3, 8, 0, 0, STRIDE, 3);
}
END_TEST

/* ------------------------------------------------------ the public API */
#define CONV_JSON(disc)                                                                        \
    "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":6,"                          \
    "\"image\":{\"size\":8,\"channels\":3},"                                                   \
    "\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,1],\"heads\":3,"         \
    "\"mlp_ratio\":2},\"discriminator\":" disc ","                                              \
    "\"training\":{\"d_batch\":4,\"g_batch\":3,\"n_critic\":1}}"
static const char *api_json = CONV_JSON("{\"kind\":\"conv\",\"widths\":[4,6],\"blocks\":[1,2]}");

/* train, sample, score, save and load (full and sampling-only) with the conv
 * kind; the steady state allocates nothing and builds no primitive */
START_TEST(conv_model_through_the_api)
{
    enum { PX = 3 * 8 * 8 };
    tg_model *m, *m2, *m3;
    OK(tg_model_create(api_json, 4, &m));
    int64_t v;
    OK(tg_model_info(m, TG_INFO_D_KIND, &v));
    ck_assert_int_eq(v, 1);
    OK(tg_model_info(m, TG_INFO_D_PARAMS, &v));
    /* 3->4 (conv1 3x3, conv2 3x3, 1x1 shortcut), 4->6 (same), 6->6 (no
     * shortcut), head 6 + 1 */
    ck_assert_int_eq(v, (4 * 3 * 9 + 4) + (4 * 4 * 9 + 4) + (4 * 3 + 4) + (6 * 4 * 9 + 6) +
                            (6 * 6 * 9 + 6) + (6 * 4 + 6) + 2 * (6 * 6 * 9 + 6) + 6 + 1);
    float real[4 * PX], img[5 * PX], sc[5], sc2[5];
    tu_fill(real, 4 * PX, -1, 1);
    for (int i = 0; i < 2; i++) {
        tg_train_stats st = {.struct_size = sizeof st};
        OK(tg_train_step(m, real, 4, NULL, NULL, NULL, &st));
        ck_assert(isfinite(st.d_loss) && st.gp > 0 && isfinite(st.g_loss));
    }
    float z[5 * 6];
    OK(tg_latent_sample(m, 1, 5, z, 5 * 6));
    OK(tg_generate(m, z, 5, 0, img, 5 * PX));
    OK(tg_discriminate(m, img, 5, sc, 5));
    long allocs = tg_alloc_count();
    size_t prims = tg_dnn_prim_count(m->dnn);
    for (int i = 0; i < 2; i++) {
        OK(tg_train_step(m, real, 4, NULL, NULL, NULL, NULL));
        OK(tg_discriminate(m, img, 5, sc2, 5));
    }
    ck_assert_int_eq(tg_alloc_count(), allocs);
    ck_assert_uint_eq(tg_dnn_prim_count(m->dnn), prims);
    OK(tg_discriminate(m, img, 5, sc, 5));
    const char *dir = tu_scratch_make("tg_conv");
    (void)dir;
    OK(tg_model_save(m, tu_path("c.safetensors"), 0));
    OK(tg_model_load(tu_path("c.safetensors"), &m2));
    OK(tg_model_info(m2, TG_INFO_D_KIND, &v));
    ck_assert_int_eq(v, 1);
    ck_assert_str_eq(tg_model_descriptor(m2), tg_model_descriptor(m));
    OK(tg_discriminate(m2, img, 5, sc2, 5));
    ck_assert_mem_eq(sc, sc2, sizeof sc);
    /* training resumes identically */
    OK(tg_train_step(m, real, 4, NULL, NULL, NULL, NULL));
    OK(tg_train_step(m2, real, 4, NULL, NULL, NULL, NULL));
    OK(tg_discriminate(m, img, 5, sc, 5));
    OK(tg_discriminate(m2, img, 5, sc2, 5));
    ck_assert_mem_eq(sc, sc2, sizeof sc);
    /* sampling only: no discriminator arrays, the same samples */
    OK(tg_model_save(m, tu_path("c.safetensors"), 0));
    OK(tg_model_load_ex(tu_path("c.safetensors"), TG_LOAD_SAMPLING_ONLY, &m3));
    OK(tg_model_info(m3, TG_INFO_D_KIND, &v));
    ck_assert_int_eq(v, 1);
    float a[5 * PX], b[5 * PX];
    OK(tg_generate(m, z, 5, 0, a, 5 * PX));
    OK(tg_generate(m3, z, 5, 0, b, 5 * PX));
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert_int_ne(tg_discriminate(m3, img, 5, sc, 5), TG_OK);
    tg_model_destroy(m3);
    /* a checkpoint of the other kind does not load into this model */
    tg_model *t;
    OK(tg_model_create(CONV_JSON("{\"patch_size\":4,\"embed_dim\":12,\"depth\":1,"
                                 "\"heads\":3,\"mlp_ratio\":2}"), 1, &t));
    OK(tg_model_save(t, tu_path("t.safetensors"), 0));
    tg_status st = tg_model_load_weights(m2, tu_path("t.safetensors"));
    ck_assert_int_ne(st, TG_OK);
    ck_assert_msg(strstr(tg_last_error(), "discriminator.") != NULL, "%s", tg_last_error());
    OK(tg_model_info(t, TG_INFO_D_KIND, &v));
    ck_assert_int_eq(v, 0);
    tg_model_destroy(t);
    tg_model_destroy(m2);
    tg_model_destroy(m);
    tu_scratch_remove();
}
END_TEST

/* every loss with the conv D, and DiffAugment in front: a few steps, finite */
START_TEST(conv_losses)
{
    static const char *losses[] = {"wgan-gp-eps", "wgan-gp", "hinge", "lsgan"};
    char json[1024];
    for (int l = 0; l < 4; l++) {
        snprintf(json, sizeof json,
                 "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":6,"
                 "\"image\":{\"size\":8,\"channels\":1},\"generator\":{\"bottom_width\":4,"
                 "\"embed_dim\":24,\"depths\":[1,1],\"heads\":3,\"mlp_ratio\":2},"
                 "\"discriminator\":{\"kind\":\"conv\",\"widths\":[3,5],\"blocks\":[1,1],"
                 "\"down\":\"stride\",\"residual\":false,\"pool\":\"mean\"},"
                 "\"training\":{\"loss\":\"%s\",\"d_batch\":3,\"g_batch\":2,\"n_critic\":1,"
                 "\"diffaug\":[\"translation\",\"cutout\",\"color\"]}}",
                 losses[l]);
        tg_model *m;
        OK(tg_model_create(json, 9, &m));
        float real[3 * 64];
        tu_fill(real, 3 * 64, -1, 1);
        for (int i = 0; i < 3; i++) {
            tg_train_stats st = {.struct_size = sizeof st};
            OK(tg_train_step(m, real, 3, NULL, NULL, NULL, &st));
            ck_assert_msg(isfinite(st.d_loss) && isfinite(st.g_loss), "%s", losses[l]);
            ck_assert(l < 2 ? st.gp > 0 : st.gp == 0);
        }
        tg_model_destroy(m);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("conv");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, conv_forward_matches_definition);
    tcase_add_test(tc, conv_backward_by_differences);
    tcase_add_test(tc, conv_primitives_are_reused);
    tcase_add_test(tc, leaky_and_global_pool);
    tcase_add_test(tc, residual_units);
    tcase_add_test(tc, plain_units);
    suite_add_tcase(s, tc);
    TCase *ta = tcase_create("model");
    tcase_set_timeout(ta, 300);
    tcase_add_test(ta, conv_model_through_the_api);
    tcase_add_test(ta, conv_losses);
    suite_add_tcase(s, ta);
    return tu_run(s) ? 1 : 0;
}
