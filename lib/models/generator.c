/* The generator: z -> Linear -> w0 x w0 tokens -> stages of blocks, with
 * PixelShuffle between stages -> to_rgb Linear per token (-> tanh).
 * Definition, inference, training forward and backward, in that order. */
#include <math.h>
#include <stdio.h>

#include "model.h"

static size_t add_t(tg_params *t, const char *name, int ndim, int64_t a, int64_t b, int64_t c,
                    int init, double bound)
{
    int64_t shape[3] = {a, b, c};
    return tg_params_add(t, name, ndim, shape, init, bound);
}

tg_status tg_gen_define(tg_gen *g, const tg_desc *d)
{
    memset(g, 0, sizeof *g);
    int w0 = d->g.bottom_width, C0 = d->g.embed_dim;
    g->L = d->latent_dim;
    g->ch = d->channels;
    g->S = d->image_size;
    g->nst = d->g.nstages;
    g->heads = d->g.heads;
    g->tanh_out = d->g.output == TG_OUTPUT_TANH;
    tg_params *P = &g->P;
    double bl = 1.0 / sqrt((double)g->L);
    g->in_w = add_t(P, "generator.input.weight", 2, (int64_t)w0 * w0 * C0, g->L, 0, TG_INIT_UNIFORM, bl);
    g->in_b = add_t(P, "generator.input.bias", 1, (int64_t)w0 * w0 * C0, 0, 0, TG_INIT_UNIFORM, bl);
    g->ncls = d->num_classes;
    g->cls = SIZE_MAX;
    if (g->ncls) /* a class embedding added to z (docs/SPECIFICATION.md "Class conditioning") */
        g->cls = add_t(P, "generator.class_embed", 2, g->ncls, g->L, 0, TG_INIT_NORMAL, 0);
    for (int s = 0; s < g->nst; s++) {
        tg_gen_stage *st = &g->st[s];
        st->res = tg_desc_stage_res(d, s);
        st->dim = tg_desc_stage_dim(d, s);
        st->depth = d->g.depths[s];
        st->N = st->res * st->res;
        char name[96];
        snprintf(name, sizeof name, "generator.stages.%d.pos_embed", s);
        st->pos = add_t(P, name, 3, 1, st->N, st->dim, TG_INIT_TRUNC_NORMAL, 0);
        st->blocks = tg_alloc(sizeof *st->blocks * (size_t)st->depth);
        if (!st->blocks)
            return TG_ERR_OUT_OF_MEMORY;
        for (int b = 0; b < st->depth; b++) {
            snprintf(name, sizeof name, "generator.stages.%d.blocks.%d", s, b);
            TG_TRY(tg_block_define(&st->blocks[b], P, name, st->dim, d->g.heads, d->g.mlp_ratio,
                                   d->g.norm, d->g.rel_bias ? st->res : 0, 0));
            if (g->ncls)
                TG_TRY(tg_block_add_classes(&st->blocks[b], P, name, g->ncls));
        }
        if (d->g.rel_bias) {
            st->rel_idx = tg_alloc(sizeof(int32_t) * (size_t)st->N * (size_t)st->N);
            if (!st->rel_idx)
                return TG_ERR_OUT_OF_MEMORY;
            tg_relbias_index(st->rel_idx, st->res);
        }
    }
    int Cl = g->st[g->nst - 1].dim;
    double br = 1.0 / sqrt((double)Cl);
    g->rgb_w = add_t(P, "generator.to_rgb.weight", 2, g->ch, Cl, 0, TG_INIT_UNIFORM, br);
    g->rgb_b = add_t(P, "generator.to_rgb.bias", 1, g->ch, 0, 0, TG_INIT_UNIFORM, br);
    g->sr_w = g->sr_b = SIZE_MAX;
    if (d->t.sr_aux_weight > 0 && g->nst > 1) {
        double bs = 1.0 / sqrt((double)g->ch);
        g->sr_w = add_t(P, "generator.sr_embed.weight", 2, g->st[1].dim, g->ch, 0, TG_INIT_UNIFORM, bs);
        g->sr_b = add_t(P, "generator.sr_embed.bias", 1, g->st[1].dim, 0, 0, TG_INIT_UNIFORM, bs);
    }
    return P->oom ? TG_ERR_OUT_OF_MEMORY : TG_OK;
}

void tg_gen_free(tg_gen *g)
{
    for (int s = 0; s < g->nst; s++) {
        free(g->st[s].blocks);
        free(g->st[s].rel_idx);
    }
    tg_params_free(&g->P);
    memset(g, 0, sizeof *g);
}

/* floats of one stage's tokens: the same at every stage (N * C is constant) */
static size_t tokens_floats(const tg_gen *g, int64_t B)
{
    return (size_t)B * (size_t)g->st[0].N * (size_t)g->st[0].dim;
}

static size_t max_bias_floats(const tg_gen *g)
{
    size_t m = 0;
    for (int s = 0; s < g->nst; s++)
        if (g->st[s].rel_idx)
            m = TG_MAX(m, (size_t)g->heads * g->st[s].N * g->st[s].N);
    return m;
}

static size_t last_px(const tg_gen *g, int64_t B) { return (size_t)B * g->S * g->S * g->ch; }

size_t tg_gen_infer_floats(const tg_gen *g, int64_t B)
{
    size_t acts = 0;
    for (int s = 0; s < g->nst; s++)
        if (g->st[s].depth)
            acts = TG_MAX(acts, tg_block_infer_floats(&g->st[s].blocks[0], B * g->st[s].N));
    return 2 * tokens_floats(g, B) + acts + max_bias_floats(g) + last_px(g, B) +
           (g->ncls ? (size_t)B * g->L : 0);
}

/* zc = z + class_embed[labels] [B, L] */
static void class_latent(const tg_gen *g, const float *W, float *zc, const float *z,
                         const int32_t *labels, int64_t B)
{
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < g->L; i++)
            zc[b * g->L + i] = z[b * g->L + i] + W[g->cls + (size_t)labels[b] * g->L + i];
}

/* Add pos_embed and run stage s's blocks on x (in place). */
static tg_status run_stage(tg_dnn *c, const tg_gen *g, const float *W, int s, float *x,
                           int64_t B, const uint8_t *mask, float *bias, tg_block_acts *acts,
                           const int32_t *labels, int training)
{
    const tg_gen_stage *st = &g->st[s];
    tg_add_broadcast_fwd(x, W + st->pos, (size_t)B, (size_t)st->N * st->dim);
    for (int b = 0; b < st->depth; b++) {
        const tg_block *blk = &st->blocks[b];
        (training ? &acts[b] : acts)->labels = labels;
        if (blk->rel_w)
            tg_relbias_gather(bias, W + blk->rel, st->rel_idx, st->N, blk->H);
        TG_TRY(tg_block_fwd(c, blk, W, x, B, st->N, blk->rel_w ? bias : NULL, mask,
                            training ? &acts[b] : acts, training));
    }
    return TG_OK;
}

/* tokens [B, N, C_last] -> rgb [B, N, ch] (-> tanh) -> img [B, ch, S, S] */
static tg_status to_image(tg_dnn *c, const tg_gen *g, const float *W, const float *x, int64_t B,
                          float *rgb, float *img)
{
    int64_t N = (int64_t)g->S * g->S, Cl = g->st[g->nst - 1].dim;
    TG_TRY(tg_linear_fwd(c, rgb, x, W + g->rgb_w, W + g->rgb_b, B * N, Cl, g->ch));
    if (g->tanh_out)
        TG_TRY(tg_tanh_fwd(c, rgb, rgb, B * N * g->ch));
    tg_transpose_fwd(img, rgb, B, N, g->ch);
    return TG_OK;
}

tg_status tg_gen_infer(tg_dnn *c, const tg_gen *g, const float *W, const float *z, int64_t B,
                       uint8_t *const *masks, float *img, float *ws)
{
    return tg_gen_infer_labels(c, g, W, z, NULL, B, masks, img, ws);
}

tg_status tg_gen_infer_labels(tg_dnn *c, const tg_gen *g, const float *W, const float *z,
                              const int32_t *labels, int64_t B, uint8_t *const *masks,
                              float *img, float *ws)
{
    size_t tf = tokens_floats(g, B);
    float *xa = ws, *xb = xa + tf, *bias = xb + tf, *rgb = bias + max_bias_floats(g),
          *zc = rgb + last_px(g, B), *acts_buf = zc + (g->ncls ? (size_t)B * g->L : 0);
    const tg_gen_stage *s0 = &g->st[0];
    if (g->ncls) {
        if (!labels)
            return tg_fail(TG_ERR_INTERNAL, "a conditional generator ran without labels");
        class_latent(g, W, zc, z, labels, B);
        z = zc;
    }
    if (B <= TG_LINEAR_ROWS_MAX) /* a weight-bound GEMV: see ops/gemv.c */
        TG_TRY(tg_linear_rows_fwd(c, xa, z, W + g->in_w, W + g->in_b, B, g->L,
                                  (int64_t)s0->N * s0->dim));
    else
        TG_TRY(tg_linear_fwd(c, xa, z, W + g->in_w, W + g->in_b, B, g->L,
                             (int64_t)s0->N * s0->dim));
    for (int s = 0; s < g->nst; s++) {
        if (s > 0) {
            tg_pixel_shuffle_fwd(xb, xa, B, g->st[s - 1].res, g->st[s - 1].dim);
            float *t = xa;
            xa = xb, xb = t;
        }
        tg_block_acts acts;
        if (g->st[s].depth)
            tg_block_infer_carve(&g->st[s].blocks[0], B * g->st[s].N, acts_buf, &acts);
        TG_TRY(run_stage(c, g, W, s, xa, B, masks ? masks[s] : NULL, bias, &acts, labels, 0));
    }
    return to_image(c, g, W, xa, B, rgb, img);
}

/* ---------------------------------------------------------------- training */

static size_t grad_scratch(const tg_gen *g, int64_t B)
{
    size_t m = 0;
    for (int s = 0; s < g->nst; s++)
        if (g->st[s].depth)
            m = TG_MAX(m, tg_block_grad_floats(&g->st[s].blocks[0], B * g->st[s].N, g->st[s].N));
    return m;
}

tg_status tg_gen_acts_alloc(const tg_gen *g, int64_t B, tg_gen_acts *a)
{
    memset(a, 0, sizeof *a);
    int nblk = 0;
    for (int s = 0; s < g->nst; s++)
        nblk += g->st[s].depth;
    size_t tf = tokens_floats(g, B), total = 0;
    for (int s = 0; s < g->nst; s++)
        for (int b = 0; b < g->st[s].depth; b++)
            total += tg_block_acts_floats(&g->st[s].blocks[b], B * g->st[s].N);
    size_t lr = g->nst > 1 ? (size_t)B * g->st[1].N * g->ch : 0;
    /* x, x_final, 2 dx, rgb, drgb, img, lowres tokens, bias, dbias, scratch */
    total += 4 * tf + 3 * last_px(g, B) + lr + 2 * max_bias_floats(g) + grad_scratch(g, B);
    size_t zcf = g->ncls ? (size_t)B * g->L : 0;
    total += 2 * zcf;
    a->blk = tg_alloc(sizeof *a->blk * (size_t)(nblk ? nblk : 1));
    a->buf = tg_alloc(total * sizeof(float));
    if (!a->blk || !a->buf) {
        tg_gen_acts_free(a);
        return TG_ERR_OUT_OF_MEMORY;
    }
    a->B = B;
    a->floats = total;
    float *p = a->buf;
    int k = 0;
    for (int s = 0; s < g->nst; s++)
        for (int b = 0; b < g->st[s].depth; b++)
            p += tg_block_acts_carve(&g->st[s].blocks[b], B * g->st[s].N, p, &a->blk[k++]);
    a->x = p, p += tf;
    a->x_final = p, p += tf;
    a->rgb = p, p += last_px(g, B);
    a->img = p, p += last_px(g, B);
    a->zc = zcf ? p : NULL, p += zcf;
    a->dzc = zcf ? p : NULL, p += zcf;
    a->scratch = p; /* 2 dx, drgb, lowres tokens, bias, dbias, block scratch */
    return TG_OK;
}

void tg_gen_acts_free(tg_gen_acts *a)
{
    free(a->blk);
    free(a->buf);
    memset(a, 0, sizeof *a);
}

/* the scratch region, carved the same way by forward and backward */
typedef struct { float *dx, *dx2, *drgb, *lr_tok, *bias, *dbias, *blk; } gen_scr;
static gen_scr carve_scr(const tg_gen *g, const tg_gen_acts *a)
{
    size_t tf = tokens_floats(g, a->B), lr = g->nst > 1 ? (size_t)a->B * g->st[1].N * g->ch : 0;
    gen_scr s;
    s.dx = a->scratch;
    s.dx2 = s.dx + tf;
    s.drgb = s.dx2 + tf;
    s.lr_tok = s.drgb + last_px(g, a->B);
    s.bias = s.lr_tok + lr;
    s.dbias = s.bias + max_bias_floats(g);
    s.blk = s.dbias + max_bias_floats(g);
    return s;
}

static int first_block(const tg_gen *g, int s)
{
    int k = 0;
    for (int i = 0; i < s; i++)
        k += g->st[i].depth;
    return k;
}

tg_status tg_gen_fwd(tg_dnn *c, const tg_gen *g, const float *W, const float *in, int first,
                     uint8_t *const *masks, tg_gen_acts *a)
{
    int64_t B = a->B;
    gen_scr sc = carve_scr(g, a);
    a->first = first;
    float *x = a->x, *y = sc.dx2; /* dx2 doubles as the shuffle target in forward */
    if (g->ncls && !a->labels)
        return tg_fail(TG_ERR_INTERNAL, "a conditional generator ran without labels");
    if (first == 0) {
        const tg_gen_stage *s0 = &g->st[0];
        if (g->ncls) {
            class_latent(g, W, a->zc, in, a->labels, B);
            in = a->zc;
        }
        TG_TRY(tg_linear_fwd(c, x, in, W + g->in_w, W + g->in_b, B, g->L, (int64_t)s0->N * s0->dim));
    } else {
        if (g->sr_w == SIZE_MAX)
            return tg_fail(TG_ERR_STATE, "this generator has no sr_embed (sr_aux_weight is 0)");
        const tg_gen_stage *s1 = &g->st[1];
        tg_transpose_fwd(sc.lr_tok, in, B, g->ch, s1->N); /* [B,ch,N] -> [B,N,ch] */
        TG_TRY(tg_linear_fwd(c, x, sc.lr_tok, W + g->sr_w, W + g->sr_b, B * s1->N, g->ch, s1->dim));
    }
    for (int s = first; s < g->nst; s++) {
        if (s > first) {
            tg_pixel_shuffle_fwd(y, x, B, g->st[s - 1].res, g->st[s - 1].dim);
            memcpy(x, y, tokens_floats(g, B) * sizeof *x);
        }
        TG_TRY(run_stage(c, g, W, s, x, B, masks ? masks[s] : NULL, sc.bias,
                         &a->blk[first_block(g, s)], a->labels, 1));
    }
    memcpy(a->x_final, x, tokens_floats(g, B) * sizeof *x);
    return to_image(c, g, W, a->x_final, B, a->rgb, a->img);
}

tg_status tg_gen_bwd(tg_dnn *c, const tg_gen *g, const float *W, float *G, const float *in,
                     uint8_t *const *masks, tg_gen_acts *a, const float *dimg)
{
    int64_t B = a->B, N = (int64_t)g->S * g->S, Cl = g->st[g->nst - 1].dim;
    gen_scr sc = carve_scr(g, a);
    tg_transpose_fwd(sc.drgb, dimg, B, g->ch, N); /* [B,ch,N] -> [B,N,ch] */
    if (g->tanh_out)
        TG_TRY(tg_tanh_bwd(c, sc.drgb, sc.drgb, a->rgb, B * N * g->ch));
    float *dx = sc.dx, *dx2 = sc.dx2;
    TG_TRY(tg_linear_bwd(c, dx, G + g->rgb_w, G + g->rgb_b, sc.drgb, a->x_final, W + g->rgb_w,
                         B * N, Cl, g->ch));
    for (int s = g->nst - 1; s >= a->first; s--) {
        const tg_gen_stage *st = &g->st[s];
        int k0 = first_block(g, s);
        for (int b = st->depth - 1; b >= 0; b--) {
            const tg_block *blk = &st->blocks[b];
            float *bias = NULL, *dbias = NULL;
            if (blk->rel_w) {
                bias = sc.bias, dbias = sc.dbias;
                tg_relbias_gather(bias, W + blk->rel, st->rel_idx, st->N, blk->H);
                memset(dbias, 0, sizeof(float) * (size_t)(blk->H * st->N * st->N));
            }
            TG_TRY(tg_block_bwd(c, blk, W, G, dx, B, st->N, bias, masks ? masks[s] : NULL, dbias,
                                &a->blk[k0 + b], sc.blk));
            if (dbias)
                tg_relbias_scatter(G + blk->rel, dbias, st->rel_idx, st->N, blk->H);
        }
        tg_add_broadcast_bwd(G + st->pos, dx, (size_t)B, (size_t)st->N * st->dim);
        if (s > a->first) {
            tg_pixel_shuffle_bwd(dx2, dx, B, g->st[s - 1].res, g->st[s - 1].dim);
            float *t = dx;
            dx = dx2, dx2 = t;
        }
    }
    if (a->first == 0) {
        const tg_gen_stage *s0 = &g->st[0];
        if (!g->ncls)
            return tg_linear_bwd(c, NULL, G + g->in_w, G + g->in_b, dx, in, W + g->in_w, B,
                                 g->L, (int64_t)s0->N * s0->dim);
        /* z + class_embed[label]: the embedding row gets the latent's gradient */
        TG_TRY(tg_linear_bwd(c, a->dzc, G + g->in_w, G + g->in_b, dx, a->zc, W + g->in_w, B,
                             g->L, (int64_t)s0->N * s0->dim));
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < g->L; i++)
                G[g->cls + (size_t)a->labels[b] * g->L + i] += a->dzc[b * g->L + i];
        return TG_OK;
    }
    const tg_gen_stage *s1 = &g->st[1];
    return tg_linear_bwd(c, NULL, G + g->sr_w, G + g->sr_b, dx, sc.lr_tok, W + g->sr_w,
                         B * s1->N, g->ch, s1->dim);
}
