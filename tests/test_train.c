/* Training-step conformance with the PyTorch reference (float64 oracle), on
 * fixtures made by tests/fixtures/make_train_fixtures.py: with SGD, lr 1 and
 * no clipping, one call, the weight change of every tensor (its gradient,
 * including the gradient penalty's exact second-order term) must match within
 * 1e-3 relative L2; over several SGD calls (sgd-lr-schedule) each network's
 * change within 1e-3; with Adam, the total weight change within 1e-2. Also: the
 * step's statistics, determinism, resume = no interruption, and rollback of
 * a step that produces NaN. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "models/model.h"
#include "train/train.h"
#include "testutil.h"


static const char *fixtures[] = {"sgd-wgan-gp-eps", "sgd-wgan-gp", "sgd-hinge",
                                 "sgd-lsgan",       "sgd-mtct",    "sgd-locality",
                                 "sgd-gray-pixelnorm", "sgd-clip", "adam-recipe", "sgd-cond",
                                 "adam-clip", "sgd-conv-res", "sgd-conv-plain",
                                 "sgd-cond-conv", "sgd-cond-cls", "sgd-cond-conv-cls",
                                 "sgd-lr-schedule", "sgd-r1-conv", "sgd-r1-lsgan"};
#define NFIX (int)(sizeof fixtures / sizeof *fixtures)

static float *get(const tg_st_file *f, const char *name, size_t *n)
{
    const tg_st_tensor *t = tg_st_find(f, name);
    ck_assert_msg(t != NULL, "fixture lacks %s", name);
    float *x = malloc((t->nelem ? t->nelem : 1) * sizeof *x);
    tg_st_to_f32(t, x);
    if (n)
        *n = t->nelem;
    return x;
}

/* ||a - b|| and ||b|| over one tensor (double) */
static void acc(const float *a, const float *b, size_t n, double *num, double *den)
{
    for (size_t i = 0; i < n; i++) {
        *num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        *den += (double)b[i] * b[i];
    }
}

/* The library's weight change of every tensor of a network: w1 - w0, or,
 * with SGD at lr 1 after one call, minus the gradient the step applied (the
 * subtraction w1 - w0 in float32 would lose the small changes). Per tensor the
 * error is relative to max(|ref|, 1e-4 |ref of the whole network|): tensors
 * whose gradient is exactly zero in theory (e.g. D's norm.bias under plain
 * WGAN-GP) are held to the network's scale, not to their own rounding noise. */
static void check_net(const char *fx, const tg_params *P, const float *w0, const float *w1,
                      const float *grad, const tg_st_file *delta, int per_tensor, double tol,
                      double *tn, double *td)
{
    double net_num = 0, net_den = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < P->count; i++) {
            const tg_param *p = &P->p[i];
            size_t n;
            float *ref = get(delta, p->name, &n), *got = malloc(n * sizeof *got);
            ck_assert_uint_eq(n, p->n);
            for (size_t j = 0; j < n; j++)
                got[j] = grad ? -grad[p->off + j] : w1[p->off + j] - w0[p->off + j];
            double num = 0, den = 0;
            acc(got, ref, n, &num, &den);
            if (pass == 0) {
                net_num += num, net_den += den;
            } else if (per_tensor) {
                double e = sqrt(num) / fmax(sqrt(den), 1e-4 * sqrt(net_den));
                ck_assert_msg(e <= tol, "%s: %s: weight change rel L2 error %.3g (|ref| %.3g)",
                              fx, p->name, e, sqrt(den));
            }
            free(ref), free(got);
        }
    *tn += net_num, *td += net_den;
}

START_TEST(reference_train_step)
{
    /* the extra index: the first fixture again with every DiffAugment op at
     * training.diffaug_p 0, which must be exactly the fixture's step without
     * augmentation (each op skipped is the identity) */
    int p0 = _i >= NFIX;
    const char *fx = fixtures[p0 ? 0 : _i];
    int adam = strncmp(fx, "adam", 4) == 0;
    char path[256];
    tg_model *m;
    snprintf(path, sizeof path, "tests/fixtures/train/%s.init.safetensors", fx);
    OK(tg_model_load(path, &m));
    if (p0) { /* before the first step makes the trainer from the descriptor */
        m->desc.t.ndiffaug = 3;
        for (int k = 0; k < 3; k++)
            m->desc.t.diffaug[k] = k;
        m->desc.t.diffaug_p = 0;
    }
    tg_st_file io, delta, after;
    snprintf(path, sizeof path, "tests/fixtures/train/%s.io.safetensors", fx);
    OK(tg_st_read(path, &io));
    snprintf(path, sizeof path, "tests/fixtures/train/%s.delta.safetensors", fx);
    OK(tg_st_read(path, &delta));
    snprintf(path, sizeof path, "tests/fixtures/train/%s.after.safetensors", fx);
    OK(tg_st_read(path, &after));
    size_t nreal, K;
    float *real = get(&io, "real", &nreal), *zd = get(&io, "zd", NULL), *zg = get(&io, "zg", NULL),
          *alpha = get(&io, "alpha", NULL), *dl = get(&io, "stats.d_loss", &K),
          *gp = get(&io, "stats.gp", NULL), *gl = get(&io, "stats.g_loss", NULL);
    size_t G = m->gen.P.total, D = m->disc.P.total;
    float *g0 = malloc(G * 4), *d0 = malloc(D * 4);
    memcpy(g0, m->gnet.w, G * 4);
    memcpy(d0, m->dnet.w, D * 4);
    /* a conditional fixture's classes (float32 integers in the file) */
    int32_t *lab[3] = {NULL, NULL, NULL};
    static const char *const lab_names[3] = {"labels", "fake_d", "fake_g"};
    for (int i = 0; i < 3 && tg_st_find(&io, "labels"); i++) {
        size_t n;
        float *x = get(&io, lab_names[i], &n);
        lab[i] = malloc(n * sizeof *lab[i]);
        for (size_t j = 0; j < n; j++)
            lab[i][j] = (int32_t)x[j];
        free(x);
    }
    tg_train_labels tl = {.struct_size = sizeof tl, .real = lab[0], .fake_d = lab[1],
                          .fake_g = lab[2]};
    for (size_t k = 0; k < K; k++) {
        tg_train_stats st = {.struct_size = sizeof st};
        if (lab[0])
            OK(tg_train_step_labels(m, real, (size_t)m->desc.t.d_batch, &tl, zd, zg, alpha, &st));
        else
            OK(tg_train_step(m, real, (size_t)m->desc.t.d_batch, zd, zg, alpha, &st));
        ck_assert_msg(fabs(st.d_loss - dl[k]) <= 1e-4 * (1 + fabs(dl[k])), "%s call %zu: d_loss %.7g, reference %.7g", fx, k, st.d_loss, (double)dl[k]);
        ck_assert_msg(fabs(st.gp - gp[k]) <= 1e-4 * (1 + fabs(gp[k])), "%s call %zu: gp %.7g, reference %.7g", fx, k, st.gp, (double)gp[k]);
        ck_assert_int_eq(st.g_updated, !isnan(gl[k]));
        if (st.g_updated)
            ck_assert_msg(fabs(st.g_loss - gl[k]) <= 1e-4 * (1 + fabs(gl[k])), "%s call %zu: g_loss %.7g, reference %.7g", fx, k, st.g_loss, (double)gl[k]);
    }
    /* one SGD call at lr 1: the change is minus the gradient, checked per
     * tensor; otherwise (Adam, several calls) w1 - w0, whose float32
     * subtraction is exact only at the scale of the whole network */
    int by_grad = !adam && K == 1;
    const float *gg = by_grad ? m->gnet.grad : NULL, *dg = by_grad ? m->dnet.grad : NULL;
    double gn = 0, gd = 0, dn = 0, dd = 0; /* each network's error and reference, squared */
    check_net(fx, &m->gen.P, g0, m->gnet.w, gg, &delta, by_grad, 1e-3, &gn, &gd);
    check_net(fx, &m->disc.P, d0, m->dnet.w, dg, &delta, by_grad, 1e-3, &dn, &dd);
    if (!adam && !by_grad) /* each network on its own: G's change is the smaller */
        ck_assert_msg(sqrt(gn / gd) <= 1e-3 && sqrt(dn / dd) <= 1e-3,
                      "%s: weight change rel L2 error G %.3g, D %.3g", fx, sqrt(gn / gd),
                      sqrt(dn / dd));
    double tn = gn + dn, td = gd + dd;
    double total = sqrt(tn) / sqrt(td);
    fprintf(stderr, "%s: %zu call(s), total weight change rel L2 error %.2e\n", fx, K, total);
    ck_assert_msg(total <= (adam ? 1e-2 : 1e-3), "%s: total weight change rel L2 error %.3g", fx, total);
    if (m->gnet.ema) { /* the EMA after the calls */
        double num = 0, den = 0;
        char name[160];
        for (size_t i = 0; i < m->gen.P.count; i++) {
            const tg_param *p = &m->gen.P.p[i];
            snprintf(name, sizeof name, "ema.%s", p->name);
            float *ref = get(&after, name, NULL), *dref = malloc(p->n * 4), *dgot = malloc(p->n * 4);
            /* compare the EMA's change from the initial raw weights' EMA */
            for (size_t j = 0; j < p->n; j++) {
                dref[j] = ref[j];
                dgot[j] = m->gnet.ema[p->off + j];
            }
            acc(dgot, dref, p->n, &num, &den);
            free(ref), free(dref), free(dgot);
        }
        ck_assert_msg(sqrt(num) / sqrt(den) < 1e-5, "%s: EMA rel L2 error %.3g", fx, sqrt(num / den));
    }
    int64_t steps;
    OK(tg_model_info(m, TG_INFO_D_STEPS, &steps));
    ck_assert_int_eq(steps, (int64_t)K);
    free(real), free(zd), free(zg), free(alpha), free(dl), free(gp), free(gl), free(g0), free(d0);
    free(lab[0]), free(lab[1]), free(lab[2]);
    tg_st_free(&io), tg_st_free(&delta), tg_st_free(&after);
    tg_model_destroy(m);
    tu_assert_no_ref();
}
END_TEST

/* ------------------------------------------------ determinism and resume */
static const char *desc_small =
    "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":7,"
    "\"image\":{\"size\":8,\"channels\":3},"
    "\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,1],\"heads\":3,\"mlp_ratio\":2},"
    "\"discriminator\":{\"patch_size\":4,\"embed_dim\":12,\"depth\":2,\"heads\":3,\"mlp_ratio\":2},"
    "\"training\":{\"d_batch\":3,\"g_batch\":4,\"n_critic\":2,\"g_lr\":0.001,\"d_lr\":0.001,"
    "\"sr_aux_weight\":5,\"locality\":{\"stages\":[1],\"schedule\":[[2,1]]},\"seed\":99}}";

/* Every kept state array (models/state.h), both counters and the RNG. */
static void assert_same_model(tg_model *a, tg_model *b)
{
    const tg_net_state *na[2] = {&a->gnet, &a->dnet}, *nb[2] = {&b->gnet, &b->dnet};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < TG_NET_NARRAYS; i++) {
            if (!(tg_net_arrays[i].group & TG_GROUPS_KEPT))
                continue;
            ck_assert_msg(!na[k]->arr[i] == !nb[k]->arr[i], "network %d: %s in one model only", k,
                          tg_net_arrays[i].field);
            if (na[k]->arr[i])
                ck_assert_mem_eq(na[k]->arr[i], nb[k]->arr[i], na[k]->P->total * 4);
        }
        ck_assert_uint_eq(na[k]->steps, nb[k]->steps);
    }
    ck_assert_mem_eq(&a->rng, &b->rng, sizeof a->rng);
    ck_assert(a->ada_p == b->ada_p); /* exactly */
    ck_assert_int_eq(a->ada_sum, b->ada_sum);
    ck_assert_int_eq(a->ada_n, b->ada_n);
}

static float *batch(int k)
{
    tu_seed(1000 + (uint64_t)k);
    return tu_rand(3 * 3 * 8 * 8, -1, 1);
}

static void steps(tg_model *m, int from, int to)
{
    for (int k = from; k < to; k++) {
        float *x = batch(k);
        tg_train_stats st = {.struct_size = sizeof st};
        OK(tg_train_step(m, x, 3, NULL, NULL, NULL, &st));
        ck_assert_uint_eq(st.d_steps, (uint64_t)k + 1);
        free(x);
    }
}

START_TEST(deterministic_and_resumable)
{
    tu_scratch_make("tg_train");
    char p1[512], p2[512], p3[512];
    snprintf(p1, sizeof p1, "%s", tu_path("a.safetensors"));
    snprintf(p2, sizeof p2, "%s", tu_path("b.safetensors"));
    snprintf(p3, sizeof p3, "%s", tu_path("mid.safetensors"));
    tg_model *a, *b, *c;
    OK(tg_model_create(desc_small, TG_SEED_FROM_DESCRIPTOR, &a));
    OK(tg_model_create(desc_small, TG_SEED_FROM_DESCRIPTOR, &b));
    steps(a, 0, 5); /* same seed, data and threads: identical models and files */
    steps(b, 0, 2);
    OK(tg_model_save(b, p3, 0)); /* interrupted after 2 calls ... */
    tg_model_destroy(b);
    OK(tg_model_load(p3, &c)); /* ... and resumed */
    steps(c, 2, 5);
    assert_same_model(a, c);
    OK(tg_model_save(c, p2, 0));
    OK(tg_model_save(a, p1, 0));
    unsigned char *fa, *fb;
    size_t na, nb;
    fa = tu_read_file(p1, &na), fb = tu_read_file(p2, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_mem_eq(fa, fb, na);
    int64_t g;
    OK(tg_model_info(a, TG_INFO_G_STEPS, &g));
    ck_assert_int_eq(g, 3); /* calls 1, 3, 5 at n_critic 2 */
    /* a file for sharing: weights and EMA, no moments, no RNG state */
    OK(tg_model_save(a, p1, TG_SAVE_NO_OPTIMIZER));
    tg_st_file f;
    OK(tg_st_read(p1, &f));
    ck_assert_ptr_nonnull(tg_st_find(&f, "ema.generator.input.weight"));
    ck_assert_ptr_null(tg_st_find(&f, "adam.m.generator.input.weight"));
    ck_assert_ptr_null(tg_st_meta(&f, "rng_state"));
    ck_assert_str_eq(tg_st_meta(&f, "g_steps"), "3");
    tg_st_free(&f);
    tg_model *s;
    OK(tg_model_load(p1, &s));
    ck_assert_mem_eq(s->gnet.ema, a->gnet.ema, a->gen.P.total * 4);
    tg_model_destroy(s);
    free(fa), free(fb);
    tg_model_destroy(a);
    tg_model_destroy(c);
    tu_scratch_remove();
}
END_TEST

/* training.ada: the probability moves by +-(images / (kimg * 1000)) at the
 * end of every interval, stays in [0, 1], is kept in checkpoints with the
 * pending sign tally (so resuming mid-interval is exact), and a failed step
 * leaves it as it was. */
static const char *desc_ada =
    "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":7,"
    "\"image\":{\"size\":8,\"channels\":3},"
    "\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,1],\"heads\":3,\"mlp_ratio\":2},"
    "\"discriminator\":{\"patch_size\":4,\"embed_dim\":12,\"depth\":2,\"heads\":3,\"mlp_ratio\":2},"
    "\"training\":{\"d_batch\":3,\"g_batch\":4,\"n_critic\":2,\"g_lr\":0.001,\"d_lr\":0.001,"
    "\"diffaug_p\":0.5,\"ada\":{\"target\":0.6,\"interval\":2,\"kimg\":0.03},\"seed\":7}}";

START_TEST(ada_adapts_and_resumes)
{
    tu_scratch_make("tg_train_ada");
    char p1[512];
    snprintf(p1, sizeof p1, "%s", tu_path("mid.safetensors"));
    tg_model *a, *b, *c;
    OK(tg_model_create(desc_ada, TG_SEED_FROM_DESCRIPTOR, &a));
    OK(tg_model_create(desc_ada, TG_SEED_FROM_DESCRIPTOR, &b));
    ck_assert(a->ada_p == 0.5);
    double prev = a->ada_p;
    int moved = 0;
    for (int k = 0; k < 8; k++) {
        steps(a, k, k + 1);
        if (k % 2 == 0) { /* mid-interval: the tally grows, p waits */
            ck_assert_int_eq(a->ada_n, 3);
            ck_assert(llabs((long long)a->ada_sum) <= 3);
            ck_assert(a->ada_p == prev);
        } else { /* adjusted by 6 images / 30: 0.2 up or down (or 0 at the target) */
            ck_assert_int_eq(a->ada_n, 0);
            ck_assert_int_eq(a->ada_sum, 0);
            double dp = a->ada_p - prev;
            ck_assert_msg(fabs(dp) < 1e-12 || fabs(fabs(dp) - 0.2) < 1e-12 || a->ada_p == 0 ||
                              a->ada_p == 1, "p %.17g -> %.17g", prev, a->ada_p);
            moved += a->ada_p != prev;
            prev = a->ada_p;
        }
        ck_assert(a->ada_p >= 0 && a->ada_p <= 1);
    }
    ck_assert(moved > 0);
    /* interrupted mid-interval (3 calls), saved, resumed: the same model */
    steps(b, 0, 3);
    OK(tg_model_save(b, p1, 0));
    tg_st_file f;
    OK(tg_st_read(p1, &f));
    ck_assert_ptr_nonnull(tg_st_meta(&f, "ada_state"));
    tg_st_free(&f);
    OK(tg_model_load(p1, &c));
    ck_assert(c->ada_p == b->ada_p && c->ada_sum == b->ada_sum && c->ada_n == 3);
    steps(c, 3, 8);
    assert_same_model(a, c);
    /* a failed step changes nothing, ADA's state included */
    float *x = batch(9);
    for (int i = 0; i < 3 * 3 * 8 * 8; i++)
        x[i] = 3e38f;
    steps(b, 3, 4); /* mid-interval again: a tally to lose */
    tg_model *d;
    OK(tg_model_save(b, p1, 0));
    OK(tg_model_load(p1, &d));
    tg_train_stats st = {.struct_size = sizeof st};
    ck_assert_int_eq(tg_train_step(b, x, 3, NULL, NULL, NULL, &st), TG_ERR_NONFINITE);
    assert_same_model(b, d);
    free(x);
    tg_model_destroy(a), tg_model_destroy(b), tg_model_destroy(c), tg_model_destroy(d);
    tu_scratch_remove();
}
END_TEST

START_TEST(nonfinite_step_changes_nothing)
{
    tg_model *a, *b;
    OK(tg_model_create(desc_small, 5, &a));
    OK(tg_model_create(desc_small, 5, &b));
    steps(a, 0, 1);
    steps(b, 0, 1);
    /* finite but huge pixels overflow inside the discriminator */
    float *x = batch(1);
    for (int i = 0; i < 3 * 3 * 8 * 8; i++)
        x[i] = 3e38f;
    tg_train_stats st = {.struct_size = sizeof st};
    tg_status s = tg_train_step(a, x, 3, NULL, NULL, NULL, &st);
    ck_assert_int_eq(s, TG_ERR_NONFINITE);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "unchanged"));
    assert_same_model(a, b);
    /* and training goes on as if the failed call never happened */
    steps(a, 1, 3);
    steps(b, 1, 3);
    assert_same_model(a, b);
    /* bad arguments */
    ck_assert_int_eq(tg_train_step(a, x, 2, NULL, NULL, NULL, NULL), TG_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(tg_train_step(NULL, x, 3, NULL, NULL, NULL, NULL), TG_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(tg_train_step(a, NULL, 3, NULL, NULL, NULL, NULL), TG_ERR_INVALID_ARGUMENT);
    tg_train_stats bad = {0};
    x[0] = NAN;
    ck_assert_int_eq(tg_train_step(a, x, 3, NULL, NULL, NULL, &bad), TG_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(tg_train_step(a, x, 3, NULL, NULL, NULL, NULL), TG_ERR_NONFINITE);
    assert_same_model(a, b);
    free(x);
    tg_model_destroy(a);
    tg_model_destroy(b);
}
END_TEST

/* ------------------------------------- the penalty's gradient, with DiffAugment */
typedef struct { tg_model *m; float *xh; tg_aug *aug; int r1; } gp_ctx;
/* the penalty's loss term: gp_weight * GP, or R1's (r1_gamma / 2) *
 * r1_interval * R1 (taken at xh as D's input, so without augmentation) */
static tg_status penalty_of(gp_ctx *c, float *G, double *v)
{
    return c->r1 ? tg_penalty_r1(c->m, c->xh, 3, G, v) : tg_penalty(c->m, c->xh, 3, c->aug, G, v);
}
static void gp_f(void *p, float *y)
{
    gp_ctx *c = p;
    double gp;
    OK(penalty_of(c, NULL, &gp));
    y[0] = (float)(tg_penalty_weight(&c->m->desc, c->r1) * gp);
}

static const char *desc_small_conv =
    "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":7,"
    "\"image\":{\"size\":8,\"channels\":3},"
    "\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,1],\"heads\":3,\"mlp_ratio\":2},"
    "\"discriminator\":{\"kind\":\"conv\",\"widths\":[4,5],\"blocks\":[1,2]},"
    "\"training\":{\"d_batch\":3,\"g_batch\":4,\"n_critic\":2,\"g_lr\":0.001,\"d_lr\":0.001,"
    "\"seed\":99}}";

/* the side of every LeakyReLU kink of the conv D at the penalty's points:
 * the penalty (a norm of the input gradient) jumps where one flips */
static uint64_t gp_sig(void *p)
{
    gp_ctx *c = p;
    const tg_disc *d = &c->m->disc;
    const tg_disc_acts *a = &c->m->trainer->da;
    uint64_t h = 0;
    for (int u = 0; d->kind == TG_DISC_CONV && u < d->ncb; u++) {
        const tg_cblock *k = &d->cb[u];
        h = tu_sign_hash(h, a->cba[u].u1, (size_t)(a->B * k->cout * k->S * k->S));
        h = tu_sign_hash(h, a->cba[u].y, (size_t)(a->B * k->cout * k->So * k->So));
    }
    return h;
}

/* the exact second-order gradient of gp_weight * GP(aug(xh)) against
 * central differences in every D tensor, for one draw of all three ops */
/* p 1: every op on every image; 0.5 (training.diffaug_p): a draw in which
 * some images skip some ops */
static void check_penalty(const char *desc, float eps, double p, int r1)
{
    tg_model *m;
    OK(tg_model_create(desc, 3, &m));
    OK(tg_trainer_make(m));
    tu_seed(5);
    tu_fill(m->dnet.w, m->disc.P.total, -0.3f, 0.3f);
    tg_aug aug;
    int ops[3] = {0, 1, 2};
    OK(tg_aug_init(&aug, ops, 3, 3));
    aug.p = p;
    tg_rng r;
    for (uint64_t seed = 1;; seed++) { /* a draw with a cutout (and a mix of skips) */
        tg_rng_seed(&r, seed);
        tg_aug_sample(&aug, &r, 3, 8);
        int mixed = p == 1.0 || ((aug.on[0] | aug.on[1] | aug.on[2]) == 7 &&
                                 (aug.on[0] & aug.on[1] & aug.on[2]) != 7);
        if (aug.cut && mixed && (aug.on[0] & aug.on[1] & aug.on[2] & 2))
            break;
    }
    gp_ctx c = {m, tu_rand(3 * 3 * 8 * 8, -1, 1), &aug, r1};
    double gp;
    if (r1) { /* every 2nd step, gamma such that the term (gamma / 2) 2 R1 is 1
               * here: R1 of these random weights is tiny (1e-7 for the
               * transformer D), below the check's absolute tolerance */
        m->desc.t.r1_interval = 2;
        OK(penalty_of(&c, NULL, &gp));
        ck_assert(gp > 0);
        m->desc.t.r1_gamma = 1 / gp;
    }
    float *G = calloc(m->disc.P.total, 4), one = 1.0f;
    OK(penalty_of(&c, G, &gp));
    ck_assert(gp > 0);
    for (size_t i = 0; i < m->disc.P.count; i++) {
        const tg_param *p = &m->disc.P.p[i];
        tu_gradcheck_pl(p->name, gp_f, gp_sig, &c, m->dnet.w + p->off, p->n, &one, 1, G + p->off, 10,
                        eps, 2e-3, 3e-2);
    }
    tg_aug_free(&aug);
    free(c.xh), free(G);
    tg_model_destroy(m);
}

START_TEST(penalty_gradient_with_diffaug) { check_penalty(desc_small, 1e-2f, _i ? 0.5 : 1.0, 0); }
END_TEST
START_TEST(penalty_gradient_conv) { check_penalty(desc_small_conv, 3e-4f, _i ? 0.5 : 1.0, 0); }
END_TEST
/* R1 (training.r1_gamma): the same passes with |g|^2 in place of (|g| - 1)^2 */
START_TEST(r1_gradient) { check_penalty(_i ? desc_small_conv : desc_small, _i ? 3e-4f : 1e-2f, 1.0, 1); }
END_TEST

int main(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, reference_train_step, 0, NFIX + 1);
    suite_add_tcase(s, tc);
    TCase *td = tcase_create("state");
    tcase_set_timeout(td, 120);
    tcase_add_test(td, deterministic_and_resumable);
    tcase_add_test(td, nonfinite_step_changes_nothing);
    tcase_add_loop_test(td, penalty_gradient_with_diffaug, 0, 2);
    tcase_add_loop_test(td, penalty_gradient_conv, 0, 2);
    tcase_add_loop_test(td, r1_gradient, 0, 2);
    tcase_add_test(td, ada_adapts_and_resumes);
    suite_add_tcase(s, td);
    return tu_run(s) ? 1 : 0;
}
