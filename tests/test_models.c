/* Backward passes of the whole generator and discriminator against central
 * finite differences (in the style of ggml's test-backend-ops), on small
 * models with odd sizes: every kind of tensor is probed. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "models/model.h"
#include "testutil.h"


static const char *desc_ln =
    "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":5,"
    "\"image\":{\"size\":8,\"channels\":3},"
    "\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,1],\"heads\":3,\"mlp_ratio\":2},"
    "\"discriminator\":{\"patch_size\":4,\"embed_dim\":12,\"depth\":2,\"heads\":3,\"mlp_ratio\":2},"
    "\"training\":{\"sr_aux_weight\":1}}";
static const char *desc_pn =
    "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":6,"
    "\"image\":{\"size\":6,\"channels\":1},"
    "\"generator\":{\"bottom_width\":3,\"embed_dim\":20,\"depths\":[1,1],\"heads\":5,\"mlp_ratio\":2,"
    "\"norm\":\"pixelnorm\",\"relative_position_bias\":true,\"output\":\"tanh\"},"
    "\"discriminator\":{\"patch_size\":3,\"embed_dim\":10,\"depth\":1,\"heads\":2,\"mlp_ratio\":2},"
    "\"training\":{\"locality\":{\"stages\":[1],\"schedule\":[[5,1]]}}}";

/* the convolutional discriminator (discriminator.kind "conv"): every form
 * of unit (residual and plain; down-sampling by pool and by stride; 1x1 and
 * identity shortcuts), sum and mean pooling, odd widths */
static const char *desc_cres =
    "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":5,"
    "\"image\":{\"size\":8,\"channels\":3},"
    "\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,1],\"heads\":3,\"mlp_ratio\":2},"
    "\"discriminator\":{\"kind\":\"conv\",\"widths\":[4,6],\"blocks\":[1,2]}}";
static const char *desc_cres_stride =
    "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":5,"
    "\"image\":{\"size\":8,\"channels\":1},"
    "\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,1],\"heads\":3,\"mlp_ratio\":2},"
    "\"discriminator\":{\"kind\":\"conv\",\"widths\":[5,5,3],\"blocks\":[1,1,1],"
    "\"down\":\"stride\",\"pool\":\"mean\"}}";
static const char *desc_cplain =
    "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":6,"
    "\"image\":{\"size\":6,\"channels\":1},"
    "\"generator\":{\"bottom_width\":3,\"embed_dim\":20,\"depths\":[1,1],\"heads\":5,\"mlp_ratio\":2},"
    "\"discriminator\":{\"kind\":\"conv\",\"widths\":[4,5],\"blocks\":[2,1],\"residual\":false}}";
static const char *desc_cplain_stride =
    "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":5,"
    "\"image\":{\"size\":8,\"channels\":4},"
    "\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,1],\"heads\":3,\"mlp_ratio\":2},"
    "\"discriminator\":{\"kind\":\"conv\",\"widths\":[4,6],\"blocks\":[1,1],\"down\":\"stride\","
    "\"residual\":false,\"pool\":\"mean\"}}";

/* Which side of every LeakyReLU kink a conv D's activations are on (0 for
 * the transformer D, which is smooth): differences across a kink are not
 * derivatives (tu_gradcheck_pl). */
static uint64_t disc_sig(const tg_disc *d, const tg_disc_acts *a)
{
    uint64_t h = 0;
    for (int u = 0; d->kind == TG_DISC_CONV && u < d->ncb; u++) {
        const tg_cblock *k = &d->cb[u];
        int64_t S1 = !k->residual && k->down == TG_DOWN_STRIDE + 1 ? k->S / 2 : k->S;
        h = tu_sign_hash(h, a->cba[u].u1, (size_t)(a->B * k->cout * S1 * S1));
        h = tu_sign_hash(h, a->cba[u].y, (size_t)(a->B * k->cout * k->So * k->So));
    }
    return h;
}

/* class-conditional (docs/SPECIFICATION.md "Class conditioning"): the
 * conditional norms over LayerNorm and PixelNorm, the class embedding of z,
 * the projection discriminator */
static const char *desc_ln_c =
    "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":5,\"num_classes\":3,"
    "\"image\":{\"size\":8,\"channels\":3},"
    "\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,1],\"heads\":3,\"mlp_ratio\":2},"
    "\"discriminator\":{\"patch_size\":4,\"embed_dim\":12,\"depth\":2,\"heads\":3,\"mlp_ratio\":2},"
    "\"training\":{\"sr_aux_weight\":1}}";
static const char *desc_pn_c =
    "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":6,\"num_classes\":4,"
    "\"image\":{\"size\":6,\"channels\":1},"
    "\"generator\":{\"bottom_width\":3,\"embed_dim\":20,\"depths\":[1,1],\"heads\":5,\"mlp_ratio\":2,"
    "\"norm\":\"pixelnorm\",\"relative_position_bias\":true,\"output\":\"tanh\"},"
    "\"discriminator\":{\"patch_size\":3,\"embed_dim\":10,\"depth\":1,\"heads\":2,\"mlp_ratio\":2}}";
/* the conv D's projection head: residual units pooled by sum, and plain
 * ones down by stride pooled by mean */
static const char *desc_cres_c =
    "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":5,\"num_classes\":3,"
    "\"image\":{\"size\":8,\"channels\":3},"
    "\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,1],\"heads\":3,\"mlp_ratio\":2},"
    "\"discriminator\":{\"kind\":\"conv\",\"widths\":[4,6],\"blocks\":[1,2]}}";
static const char *desc_cplain_stride_c =
    "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":5,\"num_classes\":3,"
    "\"image\":{\"size\":8,\"channels\":4},"
    "\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,1],\"heads\":3,\"mlp_ratio\":2},"
    "\"discriminator\":{\"kind\":\"conv\",\"widths\":[4,5],\"blocks\":[1,1],\"down\":\"stride\","
    "\"residual\":false,\"pool\":\"mean\"}}";
/* the batch's classes for conditional models (a repeated class: its table
 * rows collect the gradients of several images) */
static const int32_t labels[4] = {2, 0, 2, 1};

static const int32_t *labels_for(const tg_model *m)
{
    return m->desc.num_classes ? labels : NULL;
}

static tg_model *make(const char *json)
{
    tg_model *m;
    OK(tg_model_create(json, 3, &m));
    /* random weights everywhere (LayerNorm 1/0 and zero biases hide bugs) */
    tu_seed(11);
    tu_fill(m->gnet.w, m->gen.P.total, -0.4f, 0.4f);
    tu_fill(m->dnet.w, m->disc.P.total, -0.4f, 0.4f);
    return m;
}

/* ------------------------------------------------------------ discriminator */
typedef struct { tg_model *m; float *img; tg_disc_acts a; } dctx;
static void d_f(void *p, float *y)
{
    dctx *c = p;
    OK(tg_disc_fwd(c->m->dnn, &c->m->disc, c->m->dnet.w, c->img, y, &c->a));
}

static uint64_t d_sig(void *p)
{
    dctx *c = p;
    return disc_sig(&c->m->disc, &c->a);
}

static void check_disc(const char *json, int64_t B)
{
    dctx c = {make(json), NULL, {0}};
    tg_model *m = c.m;
    size_t npx = (size_t)B * m->disc.ch * m->disc.S * m->disc.S;
    c.img = tu_rand(npx, -1, 1);
    OK(tg_disc_acts_alloc(&m->disc, B, &c.a));
    c.a.labels = labels_for(m);
    float *r = tu_rand((size_t)B, -1, 1), *y = calloc(B, 4), *G = calloc(m->disc.P.total, 4),
          *dimg = calloc(npx, 4);
    d_f(&c, y);
    OK(tg_disc_bwd(m->dnn, &m->disc, m->dnet.w, G, &c.a, r, dimg));
    /* (the conv D is piecewise linear: a smaller step, fewer kinks crossed) */
    float eps = m->disc.kind == TG_DISC_CONV ? 1e-3f : 1e-2f;
    tu_gradcheck_pl("D d/dimage", d_f, d_sig, &c, c.img, npx, r, B, dimg, 150, eps, 2e-3, 2e-2);
    for (size_t i = 0; i < m->disc.P.count; i++) {
        const tg_param *p = &m->disc.P.p[i];
        tu_gradcheck_pl(p->name, d_f, d_sig, &c, m->dnet.w + p->off, p->n, r, B, G + p->off, 12, eps,
                        2e-3, 2e-2);
    }
    tg_disc_acts_free(&c.a);
    free(c.img), free(r), free(y), free(G), free(dimg);
    tg_model_destroy(m);
    tu_assert_no_ref();
}

START_TEST(disc_grad_b1) { check_disc(desc_ln, 1); }
END_TEST
START_TEST(disc_grad_b3) { check_disc(desc_ln, 3); check_disc(desc_pn, 2); }
END_TEST
START_TEST(conv_disc_grad)
{
    check_disc(desc_cres, 1);
    check_disc(desc_cres, 3);
    check_disc(desc_cres_stride, 2);
    check_disc(desc_cplain, 2);
    check_disc(desc_cplain_stride, 3);
}
END_TEST

/* ------------------------------------------- discriminator, second order */
typedef struct { tg_model *m; float *img, *imgd, *sd; tg_disc_acts a, ta; } d2ctx;
/* the tangent of the scores along imgd */
static void d2_f(void *p, float *y)
{
    d2ctx *c = p;
    float s[8];
    OK(tg_disc_fwd(c->m->dnn, &c->m->disc, c->m->dnet.w, c->img, s, &c->a));
    OK(tg_disc_jvp(c->m->dnn, &c->m->disc, c->m->dnet.w, &c->a, &c->ta, c->imgd, y));
}
/* the scores, for differences along imgd */
static void d0_f(void *p, float *y)
{
    d2ctx *c = p;
    OK(tg_disc_fwd(c->m->dnn, &c->m->disc, c->m->dnet.w, c->img, y, &c->a));
}

static uint64_t d2_sig(void *p)
{
    d2ctx *c = p;
    return disc_sig(&c->m->disc, &c->a);
}

static void check_disc2(const char *json, int64_t B)
{
    d2ctx c = {make(json), NULL, NULL, NULL, {0}, {0}};
    tg_model *m = c.m;
    size_t npx = (size_t)B * m->disc.ch * m->disc.S * m->disc.S;
    c.img = tu_rand(npx, -1, 1);
    c.imgd = tu_rand(npx, -1, 1);
    OK(tg_disc_acts_alloc(&m->disc, B, &c.a));
    OK(tg_disc_acts_alloc(&m->disc, B, &c.ta));
    c.a.labels = labels_for(m);
    float sd[8], sp[8], sm[8], num[8], *keep = malloc(npx * 4);
    int conv = m->disc.kind == TG_DISC_CONV;
    float eps = conv ? 1e-3f : 1e-2f;
    /* the tangent equals the directional derivative of the scores (for the
     * piecewise-linear conv D at a point with no kink within the step) */
    for (int tries = 0;; tries++) {
        ck_assert_msg(tries < 4, "every point drawn is near a kink");
        d2_f(&c, sd);
        uint64_t base = d2_sig(&c);
        memcpy(keep, c.img, npx * 4);
        for (size_t i = 0; i < npx; i++)
            c.img[i] = keep[i] + eps * c.imgd[i];
        d0_f(&c, sp);
        int kink = d2_sig(&c) != base;
        for (size_t i = 0; i < npx; i++)
            c.img[i] = keep[i] - eps * c.imgd[i];
        d0_f(&c, sm);
        kink |= d2_sig(&c) != base;
        memcpy(c.img, keep, npx * 4);
        if (!kink)
            break;
        tu_fill(c.img, npx, -1, 1);
    }
    for (int64_t i = 0; i < B; i++)
        num[i] = (sp[i] - sm[i]) / (2 * eps);
    tu_assert_close(sd, num, (size_t)B, 2e-3, 2e-2);
    /* the weight gradient of sum r * tangent, by differences in every tensor */
    float *r = tu_rand((size_t)B, -1, 1), *G = calloc(m->disc.P.total, 4);
    d2_f(&c, sd);
    OK(tg_disc_bwd2(m->dnn, &m->disc, m->dnet.w, G, &c.a, &c.ta, r));
    for (size_t i = 0; i < m->disc.P.count; i++) {
        const tg_param *p = &m->disc.P.p[i];
        tu_gradcheck_pl(p->name, d2_f, d2_sig, &c, m->dnet.w + p->off, p->n, r, (size_t)B,
                        G + p->off, 12, eps, 2e-3, 3e-2);
        if (conv && strstr(p->name, ".bias")) /* the tangent does not depend on biases */
            for (size_t j = 0; j < p->n; j++)
                ck_assert_msg(G[p->off + j] == 0.0f, "%s: a bias with a second-order gradient",
                              p->name);
    }
    tg_disc_acts_free(&c.a);
    tg_disc_acts_free(&c.ta);
    free(c.img), free(c.imgd), free(r), free(G), free(keep);
    tg_model_destroy(m);
    tu_assert_no_ref();
}

START_TEST(disc_second_order) { check_disc2(desc_ln, 1); check_disc2(desc_ln, 3); check_disc2(desc_pn, 2); }
END_TEST
START_TEST(conv_disc_second_order)
{
    check_disc2(desc_cres, 3);
    check_disc2(desc_cres_stride, 2);
    check_disc2(desc_cplain, 2);
    check_disc2(desc_cplain_stride, 1);
}
END_TEST

/* ---------------------------------------------------------------- generator */
typedef struct { tg_model *m; float *in; int first; tg_gen_acts a; } gctx;
static void g_f(void *p, float *y)
{
    gctx *c = p;
    OK(tg_gen_fwd(c->m->dnn, &c->m->gen, c->m->gnet.w, c->in, c->first,
                  tg_model_masks(c->m, c->m->gnet.steps), &c->a));
    memcpy(y, c->a.img, sizeof(float) * (size_t)c->a.B * c->m->gen.ch * c->m->gen.S * c->m->gen.S);
}

static void check_gen(const char *json, int64_t B, int first)
{
    gctx c = {make(json), NULL, first, {0}};
    tg_model *m = c.m;
    const tg_gen *g = &m->gen;
    size_t nin = first ? (size_t)B * g->ch * g->st[1].N : (size_t)B * g->L;
    c.in = tu_rand(nin, -1, 1);
    OK(tg_gen_acts_alloc(g, B, &c.a));
    c.a.labels = labels_for(m);
    size_t npx = (size_t)B * g->ch * g->S * g->S;
    float *r = tu_rand(npx, -1, 1), *y = calloc(npx, 4), *G = calloc(g->P.total, 4);
    g_f(&c, y);
    OK(tg_gen_bwd(m->dnn, g, m->gnet.w, G, c.in, tg_model_masks(m, m->gnet.steps), &c.a, r));
    for (size_t i = 0; i < g->P.count; i++) {
        const tg_param *p = &g->P.p[i];
        int unused = first ? (strstr(p->name, "input.") != NULL || strstr(p->name, "stages.0.") != NULL ||
                              strstr(p->name, "class_embed") != NULL)
                           : strstr(p->name, "sr_embed") != NULL;
        if (unused) /* its gradient must stay exactly zero */
            for (size_t j = 0; j < p->n; j++)
                ck_assert_msg(G[p->off + j] == 0.0f, "%s: gradient of an unused tensor", p->name);
        else
            tu_gradcheck(p->name, g_f, &c, m->gnet.w + p->off, p->n, r, npx, G + p->off, 12, 1e-2f,
                         2e-3, 2e-2);
    }
    tg_gen_acts_free(&c.a);
    free(c.in), free(r), free(y), free(G);
    tg_model_destroy(m);
    tu_assert_no_ref();
}

START_TEST(gen_grad_b1) { check_gen(desc_ln, 1, 0); }
END_TEST
START_TEST(gen_grad_b3) { check_gen(desc_ln, 3, 0); }
END_TEST
START_TEST(gen_grad_relbias_mask) { check_gen(desc_pn, 2, 0); }
END_TEST
START_TEST(gen_grad_sr) { check_gen(desc_ln, 2, 1); }
END_TEST
START_TEST(cond_disc_grad) { check_disc(desc_ln_c, 3); check_disc(desc_pn_c, 4); }
END_TEST
START_TEST(cond_disc_second_order) { check_disc2(desc_ln_c, 3); check_disc2(desc_pn_c, 4); }
END_TEST
/* the conv D's projection term: input and weight gradients (class_embed
 * among them), and the penalty's weight gradient (W_head + E[y] per image) */
START_TEST(cond_conv_disc_grad)
{
    check_disc(desc_cres_c, 3);
    check_disc(desc_cplain_stride_c, 4);
}
END_TEST
START_TEST(cond_conv_disc_second_order)
{
    check_disc2(desc_cres_c, 4);
    check_disc2(desc_cplain_stride_c, 3);
}
END_TEST
START_TEST(cond_gen_grad) { check_gen(desc_ln_c, 3, 0); check_gen(desc_pn_c, 4, 0); }
END_TEST
START_TEST(cond_gen_grad_sr) { check_gen(desc_ln_c, 3, 1); }
END_TEST

/* The dual projection's class loss (tg_disc_cls_bwd, docs/SPECIFICATION.md
 * "Class conditioning"): the checked loss is sum_b r_b s_b + w CE(E h, y),
 * output B of the function below being the class loss, r_B = 1. Image and
 * every weight (class_embed gets both terms' gradients), both kinds of D. */
typedef struct { tg_model *m; float *img, *dh; double w; tg_disc_acts a; } clsctx;
static void cls_f(void *p, float *y)
{
    clsctx *c = p;
    const tg_disc *d = &c->m->disc;
    OK(tg_disc_fwd(c->m->dnn, d, c->m->dnet.w, c->img, y, &c->a));
    int conv = d->kind == TG_DISC_CONV;
    y[c->a.B] = (float)tg_disc_cls_bwd(d, c->m->dnet.w, NULL, c->a.labels, conv ? c->a.cg : c->a.xn,
                                       c->dh, c->a.B, conv ? d->cC : d->C, c->w);
}

static uint64_t cls_sig(void *p)
{
    clsctx *c = p;
    return disc_sig(&c->m->disc, &c->a);
}

static void check_disc_cls(const char *json, int64_t B, double w)
{
    clsctx c = {make(json), NULL, NULL, w, {0}};
    tg_model *m = c.m;
    size_t npx = (size_t)B * m->disc.ch * m->disc.S * m->disc.S;
    c.img = tu_rand(npx, -1, 1);
    int64_t hw = m->disc.kind == TG_DISC_CONV ? m->disc.cC : m->disc.C; /* the head's width */
    c.dh = calloc((size_t)(B * hw), 4); /* the loss value's throwaway gradient */
    OK(tg_disc_acts_alloc(&m->disc, B, &c.a));
    c.a.labels = labels_for(m);
    float *r = tu_rand((size_t)B + 1, -1, 1), *y = calloc((size_t)B + 1, 4),
          *G = calloc(m->disc.P.total, 4), *dimg = calloc(npx, 4);
    r[B] = 1;
    cls_f(&c, y);
    ck_assert_msg(y[B] > 0 && isfinite(y[B]), "class loss %g", y[B]);
    c.a.cls_weight = w;
    OK(tg_disc_bwd(m->dnn, &m->disc, m->dnet.w, G, &c.a, r, dimg));
    ck_assert_msg(fabs(c.a.cls_loss - y[B]) <= 1e-5 * y[B], "loss %g in bwd, %g alone",
                  c.a.cls_loss, y[B]);
    c.a.cls_weight = 0;
    float eps = m->disc.kind == TG_DISC_CONV ? 1e-3f : 1e-2f;
    tu_gradcheck_pl("D+cls d/dimage", cls_f, cls_sig, &c, c.img, npx, r, (size_t)B + 1, dimg, 150,
                    eps, 2e-3, 2e-2);
    for (size_t i = 0; i < m->disc.P.count; i++) {
        const tg_param *p = &m->disc.P.p[i];
        tu_gradcheck_pl(p->name, cls_f, cls_sig, &c, m->dnet.w + p->off, p->n, r, (size_t)B + 1,
                        G + p->off, 12, eps, 2e-3, 2e-2);
    }
    tg_disc_acts_free(&c.a);
    free(c.img), free(c.dh), free(r), free(y), free(G), free(dimg);
    tg_model_destroy(m);
    tu_assert_no_ref();
}

START_TEST(cond_disc_cls_grad)
{
    check_disc_cls(desc_ln_c, 3, 1.0);
    check_disc_cls(desc_pn_c, 4, 0.7);
    check_disc_cls(desc_cres_c, 4, 1.0);
    check_disc_cls(desc_cplain_stride_c, 3, 2.0);
}
END_TEST

/* ------------------------------------------------------------- inference */
/* The lean inference forwards (tg_disc_infer, tg_gen_infer: scratch reused
 * block to block, residuals fused into the matmuls) against the training
 * forwards, which keep every activation: equal within float rounding. The
 * workspaces start as NaN, so a buffer read before it is written (a wrong
 * overlap in tg_block_infer_carve) shows. */
static const char *desc_r4 = /* mlp_ratio 4: hid = 4C, the carve's tight case */
    "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":7,"
    "\"image\":{\"size\":8,\"channels\":3},"
    "\"generator\":{\"bottom_width\":2,\"embed_dim\":64,\"depths\":[2,1,1],\"heads\":2,\"mlp_ratio\":4},"
    "\"discriminator\":{\"patch_size\":2,\"embed_dim\":16,\"depth\":3,\"heads\":2,\"mlp_ratio\":4}}";
static const char *desc_r1 = /* mlp_ratio 1: hid < 4C */
    "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":4,"
    "\"image\":{\"size\":8,\"channels\":1},"
    "\"generator\":{\"bottom_width\":4,\"embed_dim\":16,\"depths\":[1,2],\"heads\":2,\"mlp_ratio\":1},"
    "\"discriminator\":{\"patch_size\":4,\"embed_dim\":8,\"depth\":2,\"heads\":2,\"mlp_ratio\":1}}";

static float *nan_buf(size_t n)
{
    float *p = malloc(n * sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    return p;
}

static void check_disc_infer(const char *json, int64_t B)
{
    tg_model *m = make(json);
    size_t npx = (size_t)B * m->disc.ch * m->disc.S * m->disc.S;
    float *img = tu_rand(npx, -1, 1), *ref = calloc((size_t)B, 4), *got = nan_buf((size_t)B),
          *api = nan_buf((size_t)B), *ws = nan_buf(tg_disc_infer_floats(&m->disc, B));
    /* a conditional model: classes i % K (the projection term) */
    int32_t *lab = NULL;
    if (m->desc.num_classes) {
        lab = malloc((size_t)B * sizeof *lab);
        for (int64_t i = 0; i < B; i++)
            lab[i] = (int32_t)(i % m->desc.num_classes);
    }
    tg_disc_acts a;
    OK(tg_disc_acts_alloc(&m->disc, B, &a));
    a.labels = lab;
    OK(tg_disc_fwd(m->dnn, &m->disc, m->dnet.w, img, ref, &a));
    OK(tg_disc_infer(m->dnn, &m->disc, m->dnet.w, img, B, lab, got, ws));
    tu_assert_close(got, ref, (size_t)B, 1e-5, 1e-5);
    /* the public call, in slices of at most 64 images when B > 64 */
    OK(tg_discriminate_labels(m, img, lab, (size_t)B, api, (size_t)B));
    tu_assert_close(api, ref, (size_t)B, 1e-5, 1e-5);
    /* the lean workspace is a small part of the training one */
    ck_assert_uint_lt(tg_disc_infer_floats(&m->disc, B), a.floats / 2);
    tg_disc_acts_free(&a);
    free(img), free(ref), free(got), free(api), free(ws), free(lab);
    tg_model_destroy(m);
    tu_assert_no_ref();
}

START_TEST(disc_infer_matches_training)
{
    check_disc_infer(desc_ln, 1);
    check_disc_infer(desc_ln, 5);
    check_disc_infer(desc_pn, 3);
    check_disc_infer(desc_r4, 4);
    check_disc_infer(desc_r1, 2);
    check_disc_infer(desc_r4, 70); /* two slices: 64 + 6 */
    check_disc_infer(desc_ln_c, 5); /* the projection term */
    check_disc_infer(desc_pn_c, 70);
}
END_TEST

/* The conv D's lean inference (tg_disc_infer: units in two alternating
 * regions, forward-only scratch; the workspace starts as NaN) and the public
 * call (tg_discriminate_labels, slice by slice) against the training forward
 * with the same classes; labels NULL leaves the projection term out. */
static void check_conv_discriminate(const char *json, int64_t B)
{
    tg_model *m = make(json);
    int K = m->desc.num_classes;
    size_t npx = (size_t)B * m->disc.ch * m->disc.S * m->disc.S;
    float *img = tu_rand(npx, -1, 1), *ref = calloc((size_t)B, 4), *ref0 = calloc((size_t)B, 4),
          *api = nan_buf((size_t)B), *ws = nan_buf(tg_disc_infer_floats(&m->disc, B));
    int32_t *lab = NULL;
    if (K) {
        lab = malloc((size_t)B * sizeof *lab);
        for (int64_t i = 0; i < B; i++)
            lab[i] = (int32_t)((i * 7 + 1) % K);
    }
    tg_disc_acts a;
    OK(tg_disc_acts_alloc(&m->disc, B, &a));
    a.labels = lab;
    OK(tg_disc_fwd(m->dnn, &m->disc, m->dnet.w, img, ref, &a));
    a.labels = NULL;
    OK(tg_disc_fwd(m->dnn, &m->disc, m->dnet.w, img, ref0, &a));
    OK(tg_disc_infer(m->dnn, &m->disc, m->dnet.w, img, B, lab, api, ws));
    tu_assert_close(api, ref, (size_t)B, 1e-5, 1e-5);
    /* the lean workspace is a part of the training one */
    ck_assert_uint_lt(tg_disc_infer_floats(&m->disc, B), a.floats * 3 / 4);
    for (int64_t i = 0; i < B; i++)
        api[i] = NAN;
    OK(tg_discriminate_labels(m, img, lab, (size_t)B, api, (size_t)B));
    tu_assert_close(api, ref, (size_t)B, 1e-5, 1e-5);
    OK(tg_discriminate(m, img, (size_t)B, api, (size_t)B));
    tu_assert_close(api, ref0, (size_t)B, 1e-5, 1e-5);
    if (K) {
        /* the term is there: per image, the scores with and without it differ */
        for (int64_t i = 0; i < B; i++)
            ck_assert_msg(fabsf(ref[i] - ref0[i]) > 1e-6f, "image %d: no projection term", (int)i);
        /* a class out of range is refused */
        lab[B - 1] = K;
        ck_assert_int_eq(tg_discriminate_labels(m, img, lab, (size_t)B, api, (size_t)B),
                         TG_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_nonnull(strstr(tg_last_error(), "labels"));
    }
    tg_disc_acts_free(&a);
    free(img), free(ref), free(ref0), free(api), free(lab), free(ws);
    tg_model_destroy(m);
    tu_assert_no_ref();
}

START_TEST(conv_discriminate_labels)
{
    check_conv_discriminate(desc_cres_c, 5);
    check_conv_discriminate(desc_cplain_stride_c, 70); /* two slices: 64 + 6 */
    check_conv_discriminate(desc_cres, 3);             /* unconditional, every unit form */
    check_conv_discriminate(desc_cres_stride, 2);
    check_conv_discriminate(desc_cplain, 4);
}
END_TEST

static void check_gen_infer(const char *json, int64_t B)
{
    tg_model *m = make(json);
    const tg_gen *g = &m->gen;
    uint8_t *const *masks = tg_model_masks(m, m->gnet.steps);
    size_t npx = (size_t)B * g->ch * g->S * g->S;
    float *z = tu_rand((size_t)B * g->L, -1, 1), *got = nan_buf(npx),
          *ws = nan_buf(tg_gen_infer_floats(g, B));
    int32_t *lab = NULL; /* a conditional model: classes i % K */
    if (m->desc.num_classes) {
        lab = malloc((size_t)B * sizeof *lab);
        for (int64_t i = 0; i < B; i++)
            lab[i] = (int32_t)(i % m->desc.num_classes);
    }
    tg_gen_acts a;
    OK(tg_gen_acts_alloc(g, B, &a));
    a.labels = lab;
    OK(tg_gen_fwd(m->dnn, g, m->gnet.w, z, 0, masks, &a));
    OK(tg_gen_infer_labels(m->dnn, g, m->gnet.w, z, lab, B, masks, got, ws));
    tu_assert_close(got, a.img, npx, 1e-5, 1e-5);
    tg_gen_acts_free(&a);
    free(z), free(got), free(ws), free(lab);
    tg_model_destroy(m);
    tu_assert_no_ref();
}

START_TEST(gen_infer_matches_training)
{
    /* B = 1, 2: the input layer is ops/gemv.c's; B = 3, 5: oneDNN's */
    for (int64_t B = 1; B <= 3; B++) {
        check_gen_infer(desc_ln, B);
        check_gen_infer(desc_pn, B);
        check_gen_infer(desc_r4, B);
        check_gen_infer(desc_r1, B);
        check_gen_infer(desc_ln_c, B); /* class embedding and conditional norms */
        check_gen_infer(desc_pn_c, B);
    }
    check_gen_infer(desc_r4, 5);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("models");
    TCase *tc = tcase_create("gradients");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, disc_grad_b1);
    tcase_add_test(tc, disc_grad_b3);
    tcase_add_test(tc, disc_second_order);
    tcase_add_test(tc, gen_grad_b1);
    tcase_add_test(tc, gen_grad_b3);
    tcase_add_test(tc, gen_grad_relbias_mask);
    tcase_add_test(tc, gen_grad_sr);
    tcase_add_test(tc, cond_disc_grad);
    tcase_add_test(tc, cond_disc_second_order);
    tcase_add_test(tc, cond_disc_cls_grad);
    tcase_add_test(tc, cond_gen_grad);
    tcase_add_test(tc, cond_gen_grad_sr);
    tcase_add_test(tc, disc_infer_matches_training);
    tcase_add_test(tc, gen_infer_matches_training);
    suite_add_tcase(s, tc);
    /* the conv D: five networks (and two conditional ones), two passes each, at a smaller step (more
     * probes straddle no kink); its own, longer timeout for sanitizer builds */
    TCase *tv = tcase_create("conv");
    tcase_set_timeout(tv, 900);
    tcase_add_test(tv, conv_disc_grad);
    tcase_add_test(tv, conv_disc_second_order);
    tcase_add_test(tv, cond_conv_disc_grad);
    tcase_add_test(tv, cond_conv_disc_second_order);
    tcase_add_test(tv, conv_discriminate_labels);
    suite_add_tcase(s, tv);
    return tu_run(s) ? 1 : 0;
}
