/* The training step (docs/SPECIFICATION.md "Training step"). One call: a
 * discriminator update (with the exact second-order gradient penalty), then
 * every n_critic-th call a generator update (with MT-CT when on) and the
 * EMA. A failed step restores the model from the backups taken at its start
 * (copy_state). The penalty's second-order pass is derived in
 * docs/SECOND_ORDER.md. The public call is api/train.c. */
#include <math.h>

#include "../ops/bf16.h"
#include "../ops/ops.h"
#include "optim.h"
#include "train.h"

void tg_trainer_free(tg_trainer *t)
{
    if (!t)
        return;
    tg_gen_acts_free(&t->ga);
    tg_disc_acts_free(&t->da);
    tg_disc_acts_free(&t->dta);
    tg_aug_free(&t->aug);
    tg_net_free(&t->bk_g);
    tg_net_free(&t->bk_d);
    float *bufs[] = {t->fake, t->xh, t->u,     t->du, t->gx, t->w,
                     t->lowres, t->z, t->alpha, t->s,  t->ds, t->gws};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    free(t->lab_d);
    free(t->lab_g);
    free(t);
}

static float *falloc(size_t n, int *oom)
{
    float *p = tg_alloc(n * sizeof(float));
    if (!p)
        *oom = 1;
    return p;
}

tg_status tg_trainer_make(tg_model *m)
{
    const tg_desc *d = &m->desc;
    tg_trainer *t = tg_alloc(sizeof *t);
    if (!t)
        return TG_ERR_OUT_OF_MEMORY;
    /* a replica of a data-parallel group computes its share of the batches */
    int world = m->dp_world;
    int64_t B = d->t.d_batch / world, Bg = d->t.g_batch / world, bmax = TG_MAX(B, Bg);
    size_t px = (size_t)d->channels * d->image_size * d->image_size;
    int oom = 0;
    t->rank = m->dp_rank, t->world = world;
    t->bd = B, t->bg = Bg;
    t->bmax = bmax;
    tg_status st = tg_gen_acts_alloc(&m->gen, bmax, &t->ga);
    if (st == TG_OK)
        st = tg_disc_acts_alloc(&m->disc, bmax, &t->da);
    if (st == TG_OK)
        st = tg_disc_acts_alloc(&m->disc, bmax, &t->dta);
    if (st == TG_OK)
        st = tg_aug_init(&t->aug, d->t.diffaug, d->t.ndiffaug, bmax * world); /* global draws */
    /* the networks' moments (unless a checkpoint brought them) and gradients,
     * then backups of everything a failed step restores */
    tg_net_state *live[2] = {&m->gnet, &m->dnet}, *bk[2] = {&t->bk_g, &t->bk_d};
    const tg_net_state before[2] = {m->gnet, m->dnet};
    for (int k = 0; k < 2 && st == TG_OK; k++) {
        st = tg_net_alloc(live[k], tg_model_state_groups(m, live[k]) &
                                       (TG_GROUP_OPTIMIZER | TG_GROUP_GRAD));
        if (st == TG_OK)
            st = tg_net_alloc_like(bk[k], live[k], TG_GROUPS_KEPT);
    }
    if (st != TG_OK)
        goto fail;
    t->fake = falloc((size_t)B * px, &oom), t->xh = falloc((size_t)B * px, &oom);
    t->u = falloc((size_t)bmax * px, &oom), t->du = falloc((size_t)bmax * px, &oom);
    t->gx = falloc((size_t)bmax * px, &oom), t->w = falloc((size_t)bmax * px, &oom);
    if (m->gen.sr_w != SIZE_MAX)
        t->lowres = falloc((size_t)B * d->channels * m->gen.st[1].N, &oom);
    t->z = falloc((size_t)bmax * d->latent_dim, &oom), t->alpha = falloc((size_t)B, &oom);
    t->s = falloc((size_t)bmax, &oom), t->ds = falloc((size_t)bmax, &oom);
    t->gws = falloc(tg_gen_infer_floats(&m->gen, B), &oom);
    if (d->num_classes) {
        t->lab_d = tg_alloc((size_t)bmax * sizeof *t->lab_d);
        t->lab_g = tg_alloc((size_t)bmax * sizeof *t->lab_g);
        oom |= !t->lab_d || !t->lab_g;
    }
    if (oom)
        st = TG_ERR_OUT_OF_MEMORY;
fail:
    if (st != TG_OK) { /* the model as before the call: no half pair of moments */
        for (int k = 0; k < 2; k++)
            tg_net_undo_alloc(live[k], &before[k]);
        tg_trainer_free(t);
        return st;
    }
    m->trainer = t;
    return TG_OK;
}

/* ---- state backup and restore around a step ---- */
/* Everything a failed step must leave as it was: the kept arrays and
 * counters of both networks (models/state.h) and the training RNG. */
static void copy_state(tg_model *m, int restore)
{
    tg_trainer *t = m->trainer;
    tg_net_state *live[2] = {&m->gnet, &m->dnet}, *bk[2] = {&t->bk_g, &t->bk_d};
    for (int k = 0; k < 2; k++) {
        if (restore)
            tg_net_copy(live[k], bk[k], TG_GROUPS_KEPT);
        else
            tg_net_copy(bk[k], live[k], TG_GROUPS_KEPT);
    }
    if (restore) {
        m->rng = t->bk_rng;
        m->ada_p = t->bk_ada_p, m->ada_sum = t->bk_ada_sum, m->ada_n = t->bk_ada_n;
    } else {
        t->bk_rng = m->rng;
        t->bk_ada_p = m->ada_p, t->bk_ada_sum = m->ada_sum, t->bk_ada_n = m->ada_n;
    }
}

/* ADA (docs/SPECIFICATION.md "DiffAugment"): after every ada.interval-th D
 * step, r = mean sign(D(aug(real))) over the real images since the last
 * adjustment, and p moves by sign(r - target) * images / (kimg * 1000),
 * kept in [0, 1]. */
static void ada_adjust(tg_model *m)
{
    const tg_desc *d = &m->desc;
    if (!d->t.ada_on || m->dnet.steps % (uint64_t)d->t.ada_interval != 0 || m->ada_n <= 0)
        return;
    double r = (double)m->ada_sum / (double)m->ada_n;
    double sgn = r > d->t.ada_target ? 1.0 : r < d->t.ada_target ? -1.0 : 0.0;
    double p = m->ada_p + sgn * (double)m->ada_n / (d->t.ada_kimg * 1000.0);
    m->ada_p = p < 0 ? 0 : p > 1 ? 1 : p;
    m->ada_sum = 0, m->ada_n = 0;
}

/* ---- data parallel (tg_model_set_data_parallel) ---- */
/* Every replica draws the parameters of the whole global batch from the same
 * RNG state, in one process's order, and keeps its own rows: the replicas'
 * union is exactly one process's draw, and their RNGs stay equal. */
static void aug_draw(tg_trainer *t, tg_rng *r, int64_t B, int S)
{
    tg_aug_sample(&t->aug, r, B * t->world, S);
    if (t->world > 1)
        tg_aug_keep(&t->aug, (int64_t)t->rank * B, B);
}

/* The global batch's B * world rows of `per` values each, drawn in order;
 * the replica's B rows go into dst. */
static void draw_rows(tg_trainer *t, tg_rng *r, float *dst, size_t B, size_t per, int normal)
{
    size_t lo = (size_t)t->rank * B * per, hi = lo + B * per, n = B * per * (size_t)t->world;
    for (size_t i = 0; i < n; i++) {
        float v = (float)(normal ? tg_rng_normal(r) : tg_rng_uniform(r));
        if (i >= lo && i < hi)
            dst[i - lo] = v;
    }
}

/* The user's all-reduce: buf[0 .. n) becomes the sum over the replicas. */
static tg_status allreduce_sum(tg_model *m, tg_allreduce_kind kind, float *buf, size_t n)
{
    int rc = m->dp_fn(m->dp_user, kind, buf, n);
    if (rc != 0)
        return tg_fail(TG_ERR_IO, "tg_train_step: the all-reduce callback failed (returned %d) "
                       "on a buffer of kind %d; this replica is unchanged", rc, (int)kind);
    return TG_OK;
}

/* The sum over the replicas divided by the world size: every loss is a mean
 * over the replica's rows and the replicas' batches are equal, so the mean
 * of their gradients and statistics is the global batch's. A no-op outside
 * data parallel. */
static tg_status allreduce_mean(tg_model *m, tg_allreduce_kind kind, float *buf, size_t n)
{
    tg_trainer *t = m->trainer;
    if (t->world <= 1)
        return TG_OK;
    TG_TRY(allreduce_sum(m, kind, buf, n));
    tg_scale(buf, n, 1.0f / (float)t->world);
    return TG_OK;
}

/* The step's statistics averaged over the replicas (they are batch means);
 * every replica then judges them alike. */
static tg_status reduce_stats(tg_model *m, double *const *v, int n)
{
    float buf[8];
    for (int i = 0; i < n; i++)
        buf[i] = (float)*v[i];
    TG_TRY(allreduce_mean(m, TG_ALLREDUCE_STATS, buf, (size_t)n));
    if (m->trainer->world > 1)
        for (int i = 0; i < n; i++)
            *v[i] = buf[i];
    return TG_OK;
}

/* The real-batch loss. Its drift term (wgan-gp-eps) is the square of the
 * mean score of the global batch, so replicas first sum their scores. */
static tg_status d_loss_real(tg_model *m, const float *s, int64_t B, float *ds, double *l)
{
    const tg_desc *d = &m->desc;
    tg_trainer *t = m->trainer;
    if (t->world > 1 && d->t.loss == TG_LOSS_WGAN_GP_EPS && d->t.drift_weight != 0) {
        double sum = 0;
        for (int64_t i = 0; i < B; i++)
            sum += s[i];
        float buf = (float)sum;
        TG_TRY(allreduce_sum(m, TG_ALLREDUCE_STATS, &buf, 1));
        /* the gradient is the replica's share: 1/B per row, averaged later */
        *l = tg_d_loss_real_at(d->t.loss, d->t.drift_weight, s, B, buf / ((double)B * t->world), ds);
        return TG_OK;
    }
    *l = tg_d_loss_real(d->t.loss, d->t.drift_weight, s, B, ds);
    return TG_OK;
}

/* aug(x) into out, or x itself when there is no augmentation */
static const float *augment(tg_trainer *t, tg_rng *r, const float *x, float *out, int64_t B,
                            int S, int64_t C)
{
    if (t->aug.n_ops == 0)
        return x;
    aug_draw(t, r, B, S);
    tg_aug_apply(&t->aug, out, x, C);
    return out;
}

static double mean_of(const float *s, int64_t B)
{
    double a = 0;
    for (int64_t i = 0; i < B; i++)
        a += s[i];
    return a / (double)B;
}

/* clip to the global norm, then one optimiser step (docs/SPECIFICATION.md
 * "Training step") */
static tg_status update(tg_model *m, tg_net_state *net, double lr, double *norm_out,
                        const char *name)
{
    float *w = net->w, *g = net->grad;
    size_t n = net->P->total;
    const tg_desc *d = &m->desc;
    double norm = tg_grad_norm(g, n);
    *norm_out = norm;
    if (!isfinite(norm))
        return tg_fail(TG_ERR_NONFINITE, "tg_train_step: the %s gradient is NaN or infinite; "
                       "the model is unchanged", name);
    if (d->t.grad_clip > 0) {
        double coef = d->t.grad_clip / (norm + 1e-6);
        if (coef < 1)
            tg_scale(g, n, (float)coef);
    }
    if (d->t.optimizer == TG_OPTIM_SGD)
        tg_sgd_step(w, g, n, lr);
    else
        tg_adam_step(w, net->adam_m, net->adam_v, g, n, lr, d->t.beta1, d->t.beta2,
                     d->t.adam_eps, net->steps);
    /* bf16 training: the rest of the step reads the new weights */
    tg_dnn_bf16_changed(m->dnn, w);
    if (!tg_all_finite(w, n))
        return tg_fail(TG_ERR_NONFINITE, "tg_train_step: the %s update made weights NaN or "
                       "infinite; the model is unchanged", name);
    return TG_OK;
}

/* training.lr_schedule: the factor on g_lr and d_lr at D step s (1-based,
 * counting this call's D update; the G update of the same call uses the
 * same s), piecewise-linear between the points and constant outside them
 * (docs/SPECIFICATION.md "Training step"). Keyed on D steps, like
 * the EMA's warm-up, so a resumed run continues the curve where it was. */
static double lr_factor(const tg_desc *d, uint64_t s)
{
    int n = d->t.lrs_n;
    if (n == 0)
        return 1.0;
    const int64_t *x = d->t.lrs_step;
    const double *f = d->t.lrs_factor;
    if ((int64_t)s <= x[0])
        return f[0];
    for (int i = 0; i + 1 < n; i++)
        if ((int64_t)s < x[i + 1])
            return f[i] + (f[i + 1] - f[i]) * (double)((int64_t)s - x[i]) / (double)(x[i + 1] - x[i]);
    return f[n - 1];
}

static double ema_beta(const tg_desc *d, uint64_t d_steps)
{
    if (d->t.ema == TG_EMA_BETA)
        return d->t.ema_beta;
    double bs = d->t.d_batch;
    double nimg = fmin(d->t.ema_half_life_kimg * 1000.0, bs * (double)d_steps * d->t.ema_warmup);
    return pow(0.5, bs / fmax(nimg, 1e-8));
}

int tg_penalty_bf16 = TG_PENALTY_BF16_DEFAULT;

static tg_status penalty(tg_model *m, const float *xh, int64_t B, const tg_aug *aug, float *G,
                         int r1, double *gp_out, int on);

/* on: the call's bf16 setting (bf16 training), which the passes the
 * penalty keeps in f32 turn off for their duration */
static tg_status penalty_f32_first(tg_model *m, const float *xh, int64_t B, const tg_aug *aug,
                                   float *G, int r1, double *out)
{
    int on = tg_dnn_bf16_set(m->dnn, 0);
    tg_status st = penalty(m, xh, B, aug, G, r1, out, on);
    tg_dnn_bf16_set(m->dnn, on);
    return st;
}

tg_status tg_penalty(tg_model *m, const float *xh, int64_t B, const tg_aug *aug, float *G,
                     double *gp_out)
{
    return penalty_f32_first(m, xh, B, aug, G, 0, gp_out);
}

tg_status tg_penalty_r1(tg_model *m, const float *x, int64_t B, float *G, double *r1_out)
{
    return penalty_f32_first(m, x, B, NULL, G, 1, r1_out);
}

/* The two penalties differ only in the function of D's input gradient g
 * they take (per image: (|g| - 1)^2 or |g|^2, averaged over the batch), so
 * only in its derivative v = d penalty / d g and the weight on D's tangent;
 * the first- and second-order passes are the same. */
static tg_status penalty(tg_model *m, const float *xh, int64_t B, const tg_aug *aug, float *G,
                         int r1, double *gp_out, int on)
{
    const tg_desc *d = &m->desc;
    tg_trainer *t = m->trainer;
    tg_dnn *c = m->dnn;
    int64_t C = d->channels;
    size_t px = (size_t)C * d->image_size * d->image_size;
    const float *u = xh;
    if (aug) {
        tg_aug_apply(aug, t->u, xh, C);
        u = t->u;
    }
    t->da.B = B;
    tg_dnn_bf16_set(c, on && (tg_penalty_bf16 & 1));
    TG_TRY(tg_disc_fwd(c, &m->disc, m->dnet.w, u, t->s, &t->da));
    for (int64_t b = 0; b < B; b++)
        t->ds[b] = 1.0f;
    TG_TRY(tg_disc_bwd(c, &m->disc, m->dnet.w, NULL, &t->da, t->ds, t->du));
    float *g = t->du; /* d D(aug(xh)) / d xh = A^T (d D / d u) */
    if (aug) {
        tg_aug_adjoint(aug, t->gx, t->du, C);
        g = t->gx;
    }
    /* v = dGP/dg = (2/B)(|g|-1) g/|g| (R1: d|g|^2/dg = (2/B) g): the
     * derivative of D along A v is what the penalty's weight gradient
     * differentiates (reverse over forward; docs/SECOND_ORDER.md sections
     * 1-2, R1 section 12) */
    double gp = 0;
    for (int64_t b = 0; b < B; b++) {
        double nn = 0;
        for (size_t i = 0; i < px; i++)
            nn += (double)g[b * px + i] * g[b * px + i];
        double k;
        if (r1) {
            gp += nn / (double)B;
            k = 2.0 / (double)B;
        } else {
            nn = sqrt(nn);
            gp += (nn - 1) * (nn - 1) / (double)B;
            k = nn > 0 ? 2.0 / (double)B * (nn - 1) / nn : 0.0;
        }
        for (size_t i = 0; i < px; i++)
            g[b * px + i] = (float)(k * g[b * px + i]);
    }
    *gp_out = gp;
    if (!G)
        return TG_OK;
    const float *dir = g;
    if (aug) {
        tg_aug_linear(aug, t->w, g, C);
        dir = t->w;
    }
    tg_dnn_bf16_set(c, on && (tg_penalty_bf16 & 2));
    TG_TRY(tg_disc_jvp(c, &m->disc, m->dnet.w, &t->da, &t->dta, dir, t->s));
    float wgt = (float)tg_penalty_weight(d, r1);
    for (int64_t b = 0; b < B; b++)
        t->ds[b] = wgt;
    return tg_disc_bwd2(c, &m->disc, m->dnet.w, G, &t->da, &t->dta, t->ds);
}

/* The classes of a conditional step's fakes: the caller's, or drawn
 * uniformly from the model's RNG into buf. NULL on an unconditional model. */
static const int32_t *fake_labels(tg_model *m, const int32_t *given, int32_t *buf, int64_t B)
{
    int K = m->desc.num_classes;
    if (!K || given)
        return given;
    /* data parallel: the global batch's classes are drawn on every replica,
     * which keeps its B rows (as draw_rows does for the noise) */
    tg_trainer *t = m->trainer;
    int64_t lo = (int64_t)t->rank * B, n = B * t->world;
    for (int64_t b = 0; b < n; b++) {
        int64_t k = (int64_t)(tg_rng_uniform(&m->rng) * K);
        if (b >= lo && b < lo + B)
            buf[b - lo] = (int32_t)(k < K ? k : K - 1);
    }
    return buf;
}

/* tg_disc_bwd over t->da with the class loss of training.class_loss_weight
 * (a conditional model's dual projection) for this pass only: not for the
 * fakes' pass of D's update nor for the penalty's. Its value into *cls. */
static tg_status disc_bwd_cls(tg_model *m, float *G, float *dimg, double *cls)
{
    tg_trainer *t = m->trainer;
    t->da.cls_weight = m->desc.t.class_loss_weight;
    tg_status st = tg_disc_bwd(m->dnn, &m->disc, m->dnet.w, G, &t->da, t->ds, dimg);
    t->da.cls_weight = 0;
    *cls = st == TG_OK ? t->da.cls_loss : 0;
    return st;
}

static tg_status d_update(tg_model *m, const float *real, const tg_step_labels *lab,
                          const float *zd, const float *alpha, uint8_t *const *masks,
                          tg_train_stats *o)
{
    const tg_desc *d = &m->desc;
    tg_trainer *t = m->trainer;
    tg_dnn *c = m->dnn;
    int64_t B = t->bd, C = d->channels, S = d->image_size;
    size_t px = (size_t)C * S * S;
    /* conditional: real images with their classes, fakes with theirs; the
     * penalty's interpolates with the real ones (docs/SPECIFICATION.md
     * "Class conditioning") */
    const int32_t *yr = lab->real, *yf = fake_labels(m, lab->fake_d, t->lab_d, B);
    TG_TRY(tg_gen_infer_labels(c, &m->gen, m->gnet.w, zd, yf, B, masks, t->fake, t->gws));
    memset(m->dnet.grad, 0, m->disc.P.total * sizeof(float));
    t->da.B = B;
    /* real, then fake: each forward and backward in turn (one activation set) */
    const float *u = augment(t, &m->rng, real, t->u, B, (int)S, C);
    t->da.labels = yr;
    TG_TRY(tg_disc_fwd(c, &m->disc, m->dnet.w, u, t->s, &t->da));
    double l_real;
    TG_TRY(d_loss_real(m, t->s, B, t->ds, &l_real));
    o->d_real = mean_of(t->s, B);
    if (d->t.ada_on) { /* ADA's overfitting measure: sign(D(aug(real))) */
        float tally = 0; /* an integer <= the global batch: exact in a float */
        for (int64_t b = 0; b < B; b++)
            tally += (float)((t->s[b] > 0) - (t->s[b] < 0));
        /* replicas sum their tallies, so p moves alike on all of them */
        if (t->world > 1)
            TG_TRY(allreduce_sum(m, TG_ALLREDUCE_STATS, &tally, 1));
        m->ada_sum += (int64_t)tally;
        m->ada_n += B * t->world;
    }
    /* the class loss on the real batch: D learns to classify them with
     * its class embedding */
    double cls;
    TG_TRY(disc_bwd_cls(m, m->dnet.grad, NULL, &cls));
    l_real += cls;
    /* R1 at the same augmented reals (t->u, which the fakes' pass then
     * overwrites), on D steps 1, r1_interval + 1, ... */
    int r1 = d->t.r1_gamma > 0;
    o->gp = 0;
    if (r1 && m->dnet.steps % d->t.r1_interval == 0)
        TG_TRY(tg_penalty_r1(m, u, B, m->dnet.grad, &o->gp));
    u = augment(t, &m->rng, t->fake, t->u, B, (int)S, C);
    t->da.labels = yf;
    TG_TRY(tg_disc_fwd(c, &m->disc, m->dnet.w, u, t->s, &t->da));
    double l_fake = tg_d_loss_fake(d->t.loss, t->s, B, t->ds);
    o->d_fake = mean_of(t->s, B);
    TG_TRY(tg_disc_bwd(c, &m->disc, m->dnet.w, m->dnet.grad, &t->da, t->ds, NULL));
    if (tg_loss_has_gp(d->t.loss)) {
        for (int64_t b = 0; b < B; b++)
            for (size_t i = 0; i < px; i++)
                t->xh[b * px + i] = alpha[b] * real[b * px + i] + (1 - alpha[b]) * t->fake[b * px + i];
        if (t->aug.n_ops)
            aug_draw(t, &m->rng, B, (int)S);
        t->da.labels = yr;
        TG_TRY(tg_penalty(m, t->xh, B, t->aug.n_ops ? &t->aug : NULL, m->dnet.grad, &o->gp));
    }
    /* gp is R1 or GP, never both (the descriptor refuses R1 with GP's
     * losses), and 0 on a call that takes neither */
    o->d_loss = l_real + l_fake + tg_penalty_weight(d, r1) * o->gp;
    TG_TRY(allreduce_mean(m, TG_ALLREDUCE_D_GRAD, m->dnet.grad, m->disc.P.total));
    TG_TRY(reduce_stats(m, (double *const[]){&o->d_loss, &o->gp, &o->d_real, &o->d_fake}, 4));
    if (!isfinite(o->d_loss))
        return tg_fail(TG_ERR_NONFINITE, "tg_train_step: the discriminator loss is NaN or "
                       "infinite; the model is unchanged");
    m->dnet.steps++;
    return update(m, &m->dnet, d->t.d_lr * lr_factor(d, m->dnet.steps), &o->d_grad_norm,
                  "discriminator");
}

static tg_status g_update(tg_model *m, const float *real, const tg_step_labels *lab,
                          const float *zg, uint8_t *const *masks, tg_train_stats *o)
{
    const tg_desc *d = &m->desc;
    tg_trainer *t = m->trainer;
    tg_dnn *c = m->dnn;
    int64_t Bg = t->bg, B = t->bd, C = d->channels, S = d->image_size;
    memset(m->gnet.grad, 0, m->gen.P.total * sizeof(float));
    t->ga.B = Bg;
    const int32_t *yg = fake_labels(m, lab->fake_g, t->lab_g, Bg);
    t->ga.labels = yg;
    TG_TRY(tg_gen_fwd(c, &m->gen, m->gnet.w, zg, 0, masks, &t->ga));
    const float *u = augment(t, &m->rng, t->ga.img, t->u, Bg, (int)S, C);
    t->da.B = Bg;
    t->da.labels = yg;
    TG_TRY(tg_disc_fwd(c, &m->disc, m->dnet.w, u, t->s, &t->da));
    double gl = tg_g_loss(d->t.loss, t->s, Bg, t->ds);
    /* the class loss on the fakes: G learns to make D's classifier see
     * the classes it was asked for */
    double cls;
    TG_TRY(disc_bwd_cls(m, NULL, t->du, &cls));
    gl += cls;
    const float *dimg = t->du;
    if (t->aug.n_ops) {
        tg_aug_adjoint(&t->aug, t->gx, t->du, C);
        dimg = t->gx;
    }
    TG_TRY(tg_gen_bwd(c, &m->gen, m->gnet.w, m->gnet.grad, zg, masks, &t->ga, dimg));
    o->sr_loss = 0;
    if (m->gen.sr_w != SIZE_MAX) { /* MT-CT: stage 1 from the pooled real batch */
        size_t n = (size_t)B * C * S * S;
        tg_avgpool_fwd(t->lowres, real, B, C, S, S / m->gen.st[1].res);
        t->ga.B = B;
        t->ga.labels = lab->real; /* the real images' classes */
        TG_TRY(tg_gen_fwd(c, &m->gen, m->gnet.w, t->lowres, 1, masks, &t->ga));
        o->sr_loss = tg_mse_fwd(t->ga.img, real, n);
        tg_mse_bwd(t->gx, t->ga.img, real, n, (float)d->t.sr_aux_weight);
        TG_TRY(tg_gen_bwd(c, &m->gen, m->gnet.w, m->gnet.grad, t->lowres, masks, &t->ga, t->gx));
        gl += d->t.sr_aux_weight * o->sr_loss;
    }
    o->g_loss = gl;
    TG_TRY(allreduce_mean(m, TG_ALLREDUCE_G_GRAD, m->gnet.grad, m->gen.P.total));
    TG_TRY(reduce_stats(m, (double *const[]){&o->g_loss, &o->sr_loss}, 2));
    if (!isfinite(o->g_loss))
        return tg_fail(TG_ERR_NONFINITE, "tg_train_step: the generator loss is NaN or infinite; "
                       "the model is unchanged");
    m->gnet.steps++;
    TG_TRY(update(m, &m->gnet, d->t.g_lr * lr_factor(d, m->dnet.steps), &o->g_grad_norm,
                  "generator"));
    if (m->gnet.ema)
        tg_ema_update(m->gnet.ema, m->gnet.w, m->gen.P.total, ema_beta(d, m->dnet.steps));
    o->g_updated = 1;
    return TG_OK;
}

static int finite_or_null(const float *x, size_t n) { return !x || tg_all_finite(x, n); }

static tg_status step(tg_model *m, const float *real, size_t n, const tg_step_labels *lab,
                      const float *z_d, const float *z_g, const float *alpha,
                      tg_train_stats *stats)
{
    tg_error_clear();
    if (!m || !real)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_train_step: %s is NULL", !m ? "model" : "real");
    const tg_desc *d = &m->desc;
    if (stats && stats->struct_size < 2 * sizeof(uint32_t))
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_train_step: stats->struct_size is not set "
                       "(set it to sizeof(tg_train_stats))");
    int world = m->dp_world;
    size_t n_g = (size_t)(d->t.g_batch / world);
    if (n != (size_t)(d->t.d_batch / world)) {
        if (world > 1)
            return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_train_step: the real batch has %zu images; "
                           "a replica of %d takes training.d_batch / %d = %d", n, world, world,
                           d->t.d_batch / world);
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_train_step: the real batch has %zu images; "
                       "training.d_batch is %d", n, d->t.d_batch);
    }
    size_t px = (size_t)d->channels * d->image_size * d->image_size, L = (size_t)d->latent_dim;
    if (!tg_all_finite(real, n * px))
        return tg_fail(TG_ERR_NONFINITE, "tg_train_step: the real batch contains NaN or infinity");
    if (!finite_or_null(z_d, n * L) || !finite_or_null(z_g, n_g * L) ||
        !finite_or_null(alpha, n))
        return tg_fail(TG_ERR_NONFINITE, "tg_train_step: z_d, z_g or alpha contains NaN or infinity");
    if (!m->trainer)
        TG_TRY(tg_trainer_make(m));
    tg_trainer *t = m->trainer;
    tg_train_stats o = {0};
    o.g_loss = o.g_grad_norm = NAN;
    copy_state(m, 0);
    uint8_t *const *masks = tg_model_masks(m, m->gnet.steps);
    /* noise the caller did not give comes from the model's RNG, in this order
     * (a replica's rows of the global batch's draw) */
    if (!z_d) {
        draw_rows(t, &m->rng, t->z, n, L, 1);
        z_d = t->z;
    }
    if (!alpha) {
        draw_rows(t, &m->rng, t->alpha, n, 1, 0);
        alpha = t->alpha;
    }
    /* this call's DiffAugment probability: ADA's current value or the fixed one */
    t->aug.p = d->t.ada_on ? m->ada_p : d->t.diffaug_p;
    tg_status st = d_update(m, real, lab, z_d, alpha, masks, &o);
    if (st == TG_OK && (m->dnet.steps - 1) % (uint64_t)d->t.n_critic == 0) {
        if (!z_g) {
            float *zg = t->z; /* z_d is no longer needed */
            draw_rows(t, &m->rng, zg, n_g, L, 1);
            z_g = zg;
        }
        st = g_update(m, real, lab, z_g, masks, &o);
    }
    if (st != TG_OK) {
        copy_state(m, 1);
        return st;
    }
    ada_adjust(m);
    o.d_steps = m->dnet.steps;
    o.g_steps = m->gnet.steps;
    if (stats) {
        size_t sz = TG_MIN((size_t)stats->struct_size, sizeof o);
        o.struct_size = stats->struct_size;
        memcpy(stats, &o, sz);
    }
    return TG_OK;
}

tg_status tg_train_run(tg_model *m, const float *real, size_t n, const tg_step_labels *labels,
                       const float *z_d, const float *z_g, const float *alpha,
                       tg_train_stats *stats)
{
    static const tg_step_labels none = {0};
    tg_status st = step(m, real, n, labels ? labels : &none, z_d, z_g, alpha, stats);
    if (m && m->trainer) /* no pointer to the caller's labels stays behind */
        m->trainer->da.labels = m->trainer->dta.labels = m->trainer->ga.labels = NULL;
    return st;
}
