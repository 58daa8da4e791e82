/* bf16 mixed-precision training (training.precision "bf16"; lib/ops/bf16.c,
 * lib/train/train.c): one step's weight update close to f32's, the penalty's
 * passes measured, a few hundred steps finite and tracking f32, steady state
 * without allocations or reference kernels, and the fallback to f32.
 *
 * On a CPU without AVX512-BF16 (or under `make isa-test`, which caps oneDNN
 * below it) every test asserts the fallback instead: the descriptor's bf16
 * gives f32 in effect (TG_INFO_TRAIN_PRECISION 0) and bit for bit the f32
 * step. The fallback is also asserted on this CPU whatever it has, by running
 * this program again with ONEDNN_MAX_CPU_ISA=AVX512_CORE. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/model.h"
#include "ops/bf16.h"
#include "ops/dnn.h"
#include "testutil.h"
#include "train/optim.h"
#include "train/train.h"
#include "transgan.h"


/* Linears wide enough (>= TG_BF16_MIN_OUT outputs) to run in bf16 in both
 * networks; the gradient penalty on (wgan-gp), SGD without clipping so that
 * a step's weight change is the gradient itself. %s: the precision. */
static const char *STEP_FMT =
    "{\"format\":\"transgan\",\"format_version\":1,\"image\":{\"size\":16,\"channels\":1},"
    "\"latent_dim\":16,\"generator\":{\"bottom_width\":4,\"embed_dim\":64,\"depths\":[1,1,1],"
    "\"heads\":2,\"mlp_ratio\":2},\"discriminator\":{\"patch_size\":4,\"embed_dim\":64,"
    "\"depth\":2,\"heads\":2,\"mlp_ratio\":2},\"training\":{\"loss\":\"wgan-gp\","
    "\"optimizer\":\"sgd\",\"g_lr\":0.01,\"d_lr\":0.01,\"grad_clip\":0,\"d_batch\":8,"
    "\"g_batch\":8,\"n_critic\":1,\"diffaug\":[\"translation\"],\"precision\":\"%s\"}}";
/* The same generator with the convolutional discriminator (its
 * convolutions in bf16 too); a smaller rate: its sum-pooled scores are
 * larger, and 20 steps at 0.01 diverge (in f32 as well). */
static const char *STEP_CONV_FMT =
    "{\"format\":\"transgan\",\"format_version\":1,\"image\":{\"size\":16,\"channels\":1},"
    "\"latent_dim\":16,\"generator\":{\"bottom_width\":4,\"embed_dim\":64,\"depths\":[1,1,1],"
    "\"heads\":2,\"mlp_ratio\":2},\"discriminator\":{\"kind\":\"conv\",\"widths\":[16,32,32],"
    "\"blocks\":[1,1,1]},\"training\":{\"loss\":\"wgan-gp\","
    "\"optimizer\":\"sgd\",\"g_lr\":0.001,\"d_lr\":0.001,\"grad_clip\":0,\"d_batch\":8,"
    "\"g_batch\":8,\"n_critic\":1,\"diffaug\":[\"translation\"],\"precision\":\"%s\"}}";
#define ST_PX 256
#define ST_L 16
#define ST_B 8

/* Smaller, Adam, the default loss, two augmentations: the trajectory. */
static const char *TRAJ_FMT =
    "{\"format\":\"transgan\",\"format_version\":1,\"image\":{\"size\":16,\"channels\":1},"
    "\"latent_dim\":8,\"generator\":{\"bottom_width\":4,\"embed_dim\":32,\"depths\":[1,1,1],"
    "\"heads\":2,\"mlp_ratio\":2},\"discriminator\":{\"patch_size\":4,\"embed_dim\":32,"
    "\"depth\":1,\"heads\":2,\"mlp_ratio\":2},\"training\":{\"g_lr\":0.0005,\"d_lr\":0.0005,"
    "\"d_batch\":8,\"g_batch\":8,\"n_critic\":1,\"diffaug\":[\"translation\",\"cutout\"],"
    "\"precision\":\"%s\"}}";

static tg_model *make(const char *fmt, const char *prec, uint64_t seed)
{
    char json[2048];
    snprintf(json, sizeof json, fmt, prec);
    tg_model *m = NULL;
    OK(tg_model_create(json, seed, &m));
    return m;
}

static int64_t train_precision(const tg_model *m)
{
    int64_t v = -1;
    OK(tg_model_info(m, TG_INFO_TRAIN_PRECISION, &v));
    return v;
}

/* ||a - b|| / ||b|| over n values */
static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

/* Images with structure (a blob per image, its place and size drawn) rather
 * than noise, so the discriminator has something to learn. */
static void blobs(float *x, int n, int S, uint64_t seed)
{
    tu_seed(seed);
    for (int b = 0; b < n; b++) {
        float cx = tu_uniform(4, (float)S - 4), cy = tu_uniform(4, (float)S - 4);
        float r = tu_uniform(2, 5);
        for (int i = 0; i < S; i++)
            for (int j = 0; j < S; j++) {
                float d = sqrtf((i - cy) * (i - cy) + (j - cx) * (j - cx));
                x[(size_t)b * S * S + i * S + j] = d < r ? 1.0f : -1.0f;
            }
    }
}

typedef struct {
    double d, g;     /* relative error of D's and G's weight change */
    double gp;       /* relative error of the penalty's value */
} step_err;

/* One training step (a D update with the penalty, then a G update) of an
 * f32 and a bf16 model from the same weights and draws: the relative errors
 * of the bf16 step's weight changes against f32's. */
static step_err one_step(const char *fmt, int penalty_bf16)
{
    int keep = tg_penalty_bf16;
    tg_penalty_bf16 = penalty_bf16;
    tg_model *f = make(fmt, "f32", 5), *h = make(fmt, "bf16", 5);
    size_t ng = f->gen.P.total, nd = f->disc.P.total;
    float *g0 = malloc(ng * sizeof *g0), *d0 = malloc(nd * sizeof *d0);
    float *dgf = malloc(ng * sizeof *dgf), *dgh = malloc(ng * sizeof *dgh);
    float *ddf = malloc(nd * sizeof *ddf), *ddh = malloc(nd * sizeof *ddh);
    memcpy(g0, f->gnet.w, ng * sizeof *g0);
    memcpy(d0, f->dnet.w, nd * sizeof *d0);
    float real[ST_B * ST_PX], zd[ST_B * ST_L], zg[ST_B * ST_L], al[ST_B];
    blobs(real, ST_B, 16, 3);
    tu_seed(4);
    tu_fill(zd, ST_B * ST_L, -2, 2);
    tu_fill(zg, ST_B * ST_L, -2, 2);
    tu_fill(al, ST_B, 0, 1);
    tg_train_stats sf = {.struct_size = sizeof sf}, sh = {.struct_size = sizeof sh};
    OK(tg_train_step(f, real, ST_B, zd, zg, al, &sf));
    OK(tg_train_step(h, real, ST_B, zd, zg, al, &sh));
    ck_assert(sf.g_updated && sh.g_updated);
    for (size_t i = 0; i < ng; i++)
        dgf[i] = f->gnet.w[i] - g0[i], dgh[i] = h->gnet.w[i] - g0[i];
    for (size_t i = 0; i < nd; i++)
        ddf[i] = f->dnet.w[i] - d0[i], ddh[i] = h->dnet.w[i] - d0[i];
    step_err e = {rel_err(ddh, ddf, nd), rel_err(dgh, dgf, ng), fabs(sh.gp - sf.gp) / sf.gp};
    if (train_precision(h) == TG_PRECISION_F32) { /* the fallback: f32 bit for bit */
        ck_assert_int_eq(memcmp(f->gnet.w, h->gnet.w, ng * sizeof *g0), 0);
        ck_assert_int_eq(memcmp(f->dnet.w, h->dnet.w, nd * sizeof *d0), 0);
        ck_assert(sf.d_loss == sh.d_loss && sf.g_loss == sh.g_loss);
    }
    free(g0), free(d0), free(dgf), free(dgh), free(ddf), free(ddh);
    tg_model_destroy(f);
    tg_model_destroy(h);
    tg_penalty_bf16 = keep;
    return e;
}

START_TEST(precision_key_and_info)
{
    tg_model *f = make(STEP_FMT, "f32", 1), *h = make(STEP_FMT, "bf16", 1);
    ck_assert_int_eq(train_precision(f), TG_PRECISION_F32);
    ck_assert_int_eq(train_precision(h),
                     tg_bf16_supported() ? TG_PRECISION_BF16 : TG_PRECISION_F32);
    /* the descriptor keeps what was asked for, whatever the CPU */
    ck_assert_ptr_nonnull(strstr(tg_model_descriptor(h), "\"precision\":\"bf16\""));
    ck_assert_ptr_nonnull(strstr(tg_model_descriptor(f), "\"precision\":\"f32\""));
    /* the inference precision is another setting: unchanged by the key */
    int64_t p = -1;
    OK(tg_model_info(h, TG_INFO_PRECISION, &p));
    ck_assert_int_eq(p, TG_PRECISION_F32);
    tg_model_destroy(f);
    tg_model_destroy(h);
    char json[2048];
    snprintf(json, sizeof json, STEP_FMT, "fp16");
    tg_model *m = NULL;
    ck_assert_int_eq(tg_model_create(json, 1, &m), TG_ERR_DESCRIPTOR);
    ck_assert_msg(strstr(tg_last_error(), "training.precision"), "%s", tg_last_error());
}
END_TEST

/* The bound: a bf16 matmul rounds both inputs to 8 significant bits
 * (relative error <= 2^-9 each, ~2^-8 per product); the weight change of a
 * step is a gradient through ~10 such products in a row (forward, backward,
 * and the penalty's two passes), whose errors add mostly at random. 2^-8
 * times 10 is 0.04: the bound for D and G. f32's own rounding is ~1e-7. */
START_TEST(step_close_to_f32)
{
    const char *fmt = _i ? STEP_CONV_FMT : STEP_FMT;
    step_err e = one_step(fmt, tg_penalty_bf16);
    printf("one step, %s D, bf16 against f32 (penalty passes in bf16: mask %d): relative error "
           "of D's update %.4f, G's update %.4f, GP %.2e\n", _i ? "conv" : "transformer",
           tg_penalty_bf16, e.d, e.g, e.gp);
    if (!tg_bf16_supported()) { /* one_step asserted f32 bit for bit */
        ck_assert(e.d == 0 && e.g == 0);
        return;
    }
    ck_assert_msg(e.d > 0 && e.g > 0, "bf16 training changed nothing: is it on?");
    ck_assert_msg(e.d < 0.04 && e.g < 0.04, "D %.4f G %.4f (bound 0.04)", e.d, e.g);
    ck_assert_msg(e.gp < 0.04, "GP %.4f (bound 0.04)", e.gp);
}
END_TEST

/* The measurement behind TG_PENALTY_BF16_DEFAULT: each choice of passes in
 * bf16 against f32, (a) in a whole step's weight changes, (b) in the
 * penalty alone (its value and its weight gradient, on the same weights,
 * after 20 bf16 steps so that D's input gradient is no longer ~0).
 * Asserts what the default's choice rests on: the default's penalty
 * gradient within the step bound, and bf16 in the pass the default keeps in
 * f32 (the first-order one) worse for D's step than the default (else f32
 * there would buy nothing). _i 1: the conv D. */
START_TEST(penalty_passes_measured)
{
    if (!tg_bf16_supported())
        return; /* step_close_to_f32 asserts the fallback */
    const char *fmt = _i ? STEP_CONV_FMT : STEP_FMT, *dn = _i ? "conv" : "transformer";
    static const char *what[4] = {"none", "first order", "second order", "both"};
    step_err e[4];
    for (int k = 0; k < 4; k++) {
        e[k] = one_step(fmt, k);
        printf("%s D, one step, penalty passes in bf16 %d (%s): D's update %.4f, G's %.4f, "
               "GP %.2e\n", dn, k, what[k], e[k].d, e[k].g, e[k].gp);
    }
    tg_model *h = make(fmt, "bf16", 6);
    float real[ST_B * ST_PX], xh[ST_B * ST_PX];
    blobs(real, ST_B, 16, 8);
    for (int i = 0; i < 20; i++)
        OK(tg_train_step(h, real, ST_B, NULL, NULL, NULL, NULL));
    tu_seed(9);
    for (size_t i = 0; i < ST_B * ST_PX; i++) /* interpolates: the blobs, blurred by noise */
        xh[i] = 0.7f * real[i] + tu_uniform(-0.3f, 0.3f);
    size_t nd = h->disc.P.total;
    float *G[5];
    double gp[5];
    int keep = tg_penalty_bf16;
    for (int k = 0; k < 5; k++) { /* k < 4: bf16 with mask k; 4: f32 */
        G[k] = calloc(nd, sizeof(float));
        tg_penalty_bf16 = k & 3;
        tg_model_train_begin(h);
        if (k == 4)
            tg_model_force_f32(h, 1);
        tg_status st = tg_penalty(h, xh, ST_B, NULL, G[k], &gp[k]);
        tg_model_train_end(h);
        OK(st);
    }
    tg_penalty_bf16 = keep;
    double eg[4];
    for (int k = 0; k < 4; k++) {
        eg[k] = rel_err(G[k], G[4], nd);
        printf("%s D, the penalty alone, passes in bf16 %d (%s): GP %.6f (f32 %.6f, error "
               "%.2e), its weight gradient's error %.4f\n", dn, k, what[k], gp[k], gp[4],
               fabs(gp[k] - gp[4]) / gp[4], eg[k]);
    }
    ck_assert_msg(eg[0] < 1e-5, "all-f32 penalty differs from f32: %g", eg[0]);
    /* the first-order pass, in f32 by default, gives the penalty's value */
    ck_assert(!(TG_PENALTY_BF16_DEFAULT & 1) && gp[TG_PENALTY_BF16_DEFAULT] == gp[4]);
    ck_assert_msg(eg[TG_PENALTY_BF16_DEFAULT] < 0.04, "default's penalty gradient error %.4f",
                  eg[TG_PENALTY_BF16_DEFAULT]);
    ck_assert_msg(e[3].d > e[TG_PENALTY_BF16_DEFAULT].d, "all-bf16 %.4f <= default %.4f",
                  e[3].d, e[TG_PENALTY_BF16_DEFAULT].d);
    for (int k = 0; k < 5; k++)
        free(G[k]);
    tg_model_destroy(h);
}
END_TEST

/* 300 steps (a D and a G update each) on a tiny model: finite throughout,
 * and the loss trajectory tracks f32's. The runs start alike and then part
 * (a GAN's steps amplify any difference, f32's own thread-count rounding
 * too), so the comparison is of means over windows of 50 steps, against
 * f32's own spread: |mean_bf16 - mean_f32| <= 0.5 std_f32 + 0.05 |mean_f32|
 * + 0.05 per window, for D's and G's loss. Without AVX512-BF16 both runs
 * are f32 and must be equal: 50 steps show it (isa-test's slower kernels). */
START_TEST(trajectory_tracks_f32)
{
    enum { MAXSTEPS = 300, W = 50, B = 8, PX = 256 };
    const int STEPS = tg_bf16_supported() ? MAXSTEPS : W;
    tg_model *m[2] = {make(TRAJ_FMT, "f32", 9), make(TRAJ_FMT, "bf16", 9)};
    /* one thread: 600 steps of a model this small are over in seconds on one
     * core, but two OpenMP threads on cores another process keeps busy wait
     * at every barrier (measured: > 600 s instead of 5 s on this project's
     * 2-core machine beside a training run) */
    for (int k = 0; k < 2; k++)
        OK(tg_model_set_threads(m[k], 1));
    float real[4 * B * PX];
    blobs(real, 4 * B, 16, 11);
    static double dl[2][MAXSTEPS], gl[2][MAXSTEPS];
    for (int s = 0; s < STEPS; s++)
        for (int k = 0; k < 2; k++) {
            tg_train_stats st = {.struct_size = sizeof st};
            OK(tg_train_step(m[k], real + (size_t)(s % 4) * B * PX, B, NULL, NULL, NULL, &st));
            ck_assert_msg(isfinite(st.d_loss) && isfinite(st.g_loss) && isfinite(st.gp),
                          "step %d (%s): not finite", s, k ? "bf16" : "f32");
            dl[k][s] = st.d_loss, gl[k][s] = st.g_loss;
        }
    for (int k = 0; k < 2; k++) {
        ck_assert(tg_all_finite(m[k]->gnet.w, m[k]->gen.P.total));
        ck_assert(tg_all_finite(m[k]->dnet.w, m[k]->disc.P.total));
    }
    for (int w = 0; w < STEPS / W; w++)
        for (int q = 0; q < 2; q++) {
            double *v[2] = {q ? gl[0] + w * W : dl[0] + w * W, q ? gl[1] + w * W : dl[1] + w * W};
            double mean[2] = {0, 0}, var = 0;
            for (int k = 0; k < 2; k++) {
                for (int i = 0; i < W; i++)
                    mean[k] += v[k][i] / W;
            }
            for (int i = 0; i < W; i++)
                var += (v[0][i] - mean[0]) * (v[0][i] - mean[0]) / W;
            double tol = 0.5 * sqrt(var) + 0.05 * fabs(mean[0]) + 0.05;
            printf("steps %3d-%3d %s loss: f32 %8.4f bf16 %8.4f (std f32 %.4f, tolerance %.4f)\n",
                   w * W, w * W + W - 1, q ? "G" : "D", mean[0], mean[1], sqrt(var), tol);
            ck_assert_msg(fabs(mean[1] - mean[0]) <= tol, "window %d, %s loss: %g vs %g", w,
                          q ? "G" : "D", mean[1], mean[0]);
        }
    if (!tg_bf16_supported()) /* the fallback: the same run */
        ck_assert_int_eq(memcmp(m[0]->gnet.w, m[1]->gnet.w, m[0]->gen.P.total * sizeof(float)), 0);
    tg_model_destroy(m[0]);
    tg_model_destroy(m[1]);
}
END_TEST

/* After a warm-up, bf16 training steps allocate nothing and build no
 * primitive, none on a reference kernel; sampling between steps (in the
 * inference precision, bf16 or f32) keeps it so. */
START_TEST(steady_state_and_no_ref)
{
    tg_model *m = make(STEP_FMT, "bf16", 2);
    OK(tg_model_set_precision(m, TG_PRECISION_BF16));
    float real[ST_B * ST_PX], z[ST_B * ST_L], img[ST_B * ST_PX];
    blobs(real, ST_B, 16, 5);
    OK(tg_latent_sample(m, 1, ST_B, z, ST_B * ST_L));
    for (int i = 0; i < 2; i++) {
        OK(tg_train_step(m, real, ST_B, NULL, NULL, NULL, NULL));
        OK(tg_generate(m, z, ST_B, 0, img, ST_B * ST_PX));
    }
    long allocs = tg_alloc_count();
    size_t prims = tg_dnn_prim_count(m->dnn);
    for (int i = 0; i < 3; i++) {
        OK(tg_train_step(m, real, ST_B, NULL, NULL, NULL, NULL));
        OK(tg_generate(m, z, ST_B, 0, img, ST_B * ST_PX));
    }
    ck_assert_msg(tg_alloc_count() == allocs, "steady state allocated %ld times",
                  tg_alloc_count() - allocs);
    ck_assert_uint_eq(tg_dnn_prim_count(m->dnn), prims);
    tu_assert_no_ref();
    tg_model_destroy(m);
}
END_TEST

/* The fallback on this machine, whatever its CPU: this program again, with
 * oneDNN capped at AVX512_CORE (below AVX512_CORE_BF16). */
START_TEST(capped_cpu_falls_back_to_f32)
{
    tu_assert_capped_child_passes("AVX512_CORE");
}
END_TEST

/* The capped child: bf16 asked for, f32 in effect, the f32 step bit for bit. */
static int capped_child(void)
{
    if (tg_bf16_supported()) {
        fprintf(stderr, "capped child: oneDNN at AVX512_CORE still reports bf16\n");
        return 1;
    }
    char jf[2048], jh[2048];
    snprintf(jf, sizeof jf, STEP_FMT, "f32");
    snprintf(jh, sizeof jh, STEP_FMT, "bf16");
    tg_model *f = NULL, *h = NULL;
    if (tg_model_create(jf, 3, &f) != TG_OK || tg_model_create(jh, 3, &h) != TG_OK)
        return 2;
    float real[ST_B * ST_PX];
    blobs(real, ST_B, 16, 5);
    int64_t p = -1;
    int bad = tg_model_info(h, TG_INFO_TRAIN_PRECISION, &p) != TG_OK || p != TG_PRECISION_F32 ||
              tg_train_step(f, real, ST_B, NULL, NULL, NULL, NULL) != TG_OK ||
              tg_train_step(h, real, ST_B, NULL, NULL, NULL, NULL) != TG_OK ||
              memcmp(f->gnet.w, h->gnet.w, f->gen.P.total * sizeof(float)) != 0 ||
              memcmp(f->dnet.w, h->dnet.w, f->disc.P.total * sizeof(float)) != 0;
    tg_model_destroy(f);
    tg_model_destroy(h);
    if (bad)
        fprintf(stderr, "capped child: train precision %lld, last error '%s'\n", (long long)p,
                tg_last_error());
    else
        printf("capped child: bf16 training asked for, f32 in effect, the f32 step bit for bit\n");
    return bad ? 3 : 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--capped-child") == 0)
        return capped_child();
    printf("AVX512-BF16 (as oneDNN sees it): %s\n", tg_bf16_supported() ? "yes" : "no: fallback asserted");
    Suite *s = suite_create("bf16_train");
    TCase *tc = tcase_create("bf16_train");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, precision_key_and_info);
    tcase_add_loop_test(tc, step_close_to_f32, 0, 2);
    tcase_add_loop_test(tc, penalty_passes_measured, 0, 2);
    tcase_add_test(tc, trajectory_tracks_f32);
    tcase_add_test(tc, steady_state_and_no_ref);
    tcase_add_test(tc, capped_cpu_falls_back_to_f32);
    suite_add_tcase(s, tc);
    return tu_run(s) ? 1 : 0;
}
