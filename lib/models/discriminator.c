/* The patch discriminator: image -> p x p patches -> Linear -> [cls] + tokens
 * + pos_embed -> blocks -> LayerNorm of the cls token -> Linear -> score.
 * Definition, forward, backward. */
#include <math.h>
#include <stdio.h>

#include "model.h"

tg_status tg_disc_define(tg_disc *d, const tg_desc *desc)
{
    if (desc->d.kind == TG_DISC_CONV)
        return tg_cdisc_define(d, desc);
    memset(d, 0, sizeof *d);
    d->ch = desc->channels;
    d->S = desc->image_size;
    d->p = desc->d.patch_size;
    d->grid = d->S / d->p;
    d->T = d->grid * d->grid + 1;
    d->C = desc->d.embed_dim;
    d->F = d->ch * d->p * d->p;
    d->depth = desc->d.depth;
    tg_params *P = &d->P;
    /* patch_embed is the paper's Conv2d(k = stride = p): xavier uniform with
     * fan_out = C * p * p; its bias starts at 0 like every D Linear bias */
    double xb = sqrt(6.0 / (double)(d->F + d->C * d->p * d->p));
    d->pe_w = tg_params_add(P, "discriminator.patch_embed.weight", 2, (int64_t[]){d->C, d->F},
                            TG_INIT_UNIFORM, xb);
    d->pe_b = tg_params_add(P, "discriminator.patch_embed.bias", 1, (int64_t[]){d->C}, TG_INIT_ZERO, 0);
    d->cls = tg_params_add(P, "discriminator.cls_token", 3, (int64_t[]){1, 1, d->C},
                           TG_INIT_TRUNC_NORMAL, 0);
    d->pos = tg_params_add(P, "discriminator.pos_embed", 3, (int64_t[]){1, d->T, d->C},
                           TG_INIT_TRUNC_NORMAL, 0);
    d->blocks = tg_alloc(sizeof *d->blocks * (size_t)(d->depth ? d->depth : 1));
    if (!d->blocks)
        return TG_ERR_OUT_OF_MEMORY;
    for (int b = 0; b < d->depth; b++) {
        char name[64];
        snprintf(name, sizeof name, "discriminator.blocks.%d", b);
        TG_TRY(tg_block_define(&d->blocks[b], P, name, d->C, desc->d.heads, desc->d.mlp_ratio,
                               TG_NORM_LAYERNORM, 0, 1));
    }
    d->norm_g = tg_params_add(P, "discriminator.norm.weight", 1, (int64_t[]){d->C}, TG_INIT_ONE, 0);
    d->norm_b = tg_params_add(P, "discriminator.norm.bias", 1, (int64_t[]){d->C}, TG_INIT_ZERO, 0);
    d->head_w = tg_params_add(P, "discriminator.head.weight", 2, (int64_t[]){1, d->C},
                              TG_INIT_TRUNC_NORMAL, 0);
    d->head_b = tg_params_add(P, "discriminator.head.bias", 1, (int64_t[]){1}, TG_INIT_ZERO, 0);
    d->ncls = desc->num_classes;
    d->proj = SIZE_MAX;
    if (d->ncls) /* the projection discriminator's class embedding, initialised like the head */
        d->proj = tg_params_add(P, "discriminator.class_embed", 2, (int64_t[]){d->ncls, d->C},
                                TG_INIT_TRUNC_NORMAL, 0);
    return P->oom ? TG_ERR_OUT_OF_MEMORY : TG_OK;
}

/* The projection term (Miyato & Koyama 2018; docs/SPECIFICATION.md "Class
 * conditioning"): s[b] += <class_embed[y_b], h[b]>, h [B, C] the feature the
 * head sees (the transformer D's normed cls row, the conv D's pooled
 * features; or its tangent: the term is linear in h for fixed y). C is the
 * head's width; labels NULL: nothing. */
void tg_disc_proj_fwd(const tg_disc *d, const float *W, const int32_t *lab, const float *h,
                      float *s, int64_t B, int64_t C)
{
    for (int64_t b = 0; d->ncls && lab && b < B; b++) {
        const float *e = W + d->proj + (size_t)lab[b] * C;
        double acc = 0;
        for (int64_t i = 0; i < C; i++)
            acc += (double)e[i] * h[b * C + i];
        s[b] += (float)acc;
    }
}

/* its reverse: dh[b] += ds[b] class_embed[y_b]; G's row y_b += ds[b] h[b] */
void tg_disc_proj_bwd(const tg_disc *d, const float *W, float *G, const int32_t *lab,
                      const float *h, const float *ds, float *dh, int64_t B, int64_t C)
{
    for (int64_t b = 0; d->ncls && lab && b < B; b++) {
        const float *e = W + d->proj + (size_t)lab[b] * C;
        for (int64_t i = 0; i < C; i++) {
            dh[b * C + i] += ds[b] * e[i];
            if (G)
                G[d->proj + (size_t)lab[b] * C + i] += ds[b] * h[b * C + i];
        }
    }
}

/* class k's logit of one image: <E[k], h>, summed in double like the
 * projection's */
static double cls_logit(const float *E, int64_t k, const float *h, int64_t C)
{
    double l = 0;
    for (int64_t i = 0; i < C; i++)
        l += (double)E[k * C + i] * h[i];
    return l;
}

/* The class loss. With p = softmax(l[b]), d loss / d l[b] = w / B (p -
 * onehot(y_b)), so dh[b] += E^T that and dE += it h[b]^T. Two passes over
 * the classes per image: the logsumexp (online: the running maximum
 * rescales the running sum), then the gradient, which recomputes each
 * logit rather than keeping K of them: K C multiply-adds per image are
 * little beside the D's forward, and the step allocates nothing. */
double tg_disc_cls_bwd(const tg_disc *d, const float *W, float *G, const int32_t *lab,
                       const float *h, float *dh, int64_t B, int64_t C, double w)
{
    if (!d->ncls || !lab || w == 0 || B <= 0)
        return 0;
    const float *E = W + d->proj;
    double loss = 0;
    for (int64_t b = 0; b < B; b++) {
        const float *hb = h + b * C;
        double mx = -INFINITY, sum = 0;
        for (int k = 0; k < d->ncls; k++) {
            double l = cls_logit(E, k, hb, C);
            if (l > mx)
                sum = sum * exp(mx - l) + 1, mx = l;
            else
                sum += exp(l - mx);
        }
        loss += mx + log(sum) - cls_logit(E, lab[b], hb, C);
        for (int k = 0; k < d->ncls; k++) {
            double p = exp(cls_logit(E, k, hb, C) - mx) / sum;
            float g = (float)(w / (double)B * (p - (k == lab[b])));
            for (int64_t i = 0; i < C; i++) {
                dh[b * C + i] += g * E[(size_t)k * C + i];
                if (G)
                    G[d->proj + (size_t)k * C + i] += g * hb[i];
            }
        }
    }
    return w * loss / (double)B;
}

void tg_disc_free(tg_disc *d)
{
    free(d->blocks);
    free(d->cb);
    tg_params_free(&d->P);
    memset(d, 0, sizeof *d);
}

tg_status tg_disc_acts_alloc(const tg_disc *d, int64_t B, tg_disc_acts *a)
{
    if (d->kind == TG_DISC_CONV)
        return tg_cdisc_acts_alloc(d, B, a);
    memset(a, 0, sizeof *a);
    size_t T1 = (size_t)(d->T - 1), M = (size_t)B * d->T, C = (size_t)d->C;
    size_t total = 0;
    for (int b = 0; b < d->depth; b++)
        total += tg_block_acts_floats(&d->blocks[b], (int64_t)M);
    /* tok, emb, x, xc, xn, mean, var; scratch: dx, demb(dtok), block grads */
    size_t grad = d->depth ? tg_block_grad_floats(&d->blocks[0], (int64_t)M, d->T) : 0;
    size_t tokf = (size_t)B * T1 * TG_MAX((size_t)d->F, C);
    /* scratch: dx, dxd (M C each), a token buffer, 2 x block scratch (bwd2) */
    total += 2 * tokf + M * C + 2 * (size_t)B * C + 2 * (size_t)B + 2 * M * C + tokf + 2 * grad +
             2 * C;
    a->blk = tg_alloc(sizeof *a->blk * (size_t)(d->depth ? d->depth : 1));
    a->buf = tg_alloc(total * sizeof(float));
    if (!a->blk || !a->buf) {
        tg_disc_acts_free(a);
        return TG_ERR_OUT_OF_MEMORY;
    }
    a->B = B;
    a->floats = total;
    float *p = a->buf;
    for (int b = 0; b < d->depth; b++)
        p += tg_block_acts_carve(&d->blocks[b], (int64_t)M, p, &a->blk[b]);
    a->tok = p, p += tokf;
    a->emb = p, p += tokf;
    a->x = p, p += M * C;
    a->xc = p, p += (size_t)B * C;
    a->xn = p, p += (size_t)B * C;
    a->mean = p, p += (size_t)B;
    a->var = p, p += (size_t)B;
    a->scratch = p;
    return TG_OK;
}

void tg_disc_acts_free(tg_disc_acts *a)
{
    free(a->blk);
    free(a->cba);
    free(a->buf);
    memset(a, 0, sizeof *a);
}

/* The forward's start, shared with tg_disc_infer: patches of img embedded,
 * [cls | patch tokens] plus the position embedding into x [B, T, C]; tok and
 * emb are scratch of B*T1*F and B*T1*C floats. */
static tg_status embed_tokens(tg_dnn *c, const tg_disc *d, const float *W, const float *img,
                              int64_t B, float *tok, float *emb, float *x)
{
    int64_t T = d->T, T1 = T - 1, C = d->C;
    tg_patches_fwd(tok, img, B, d->ch, d->S, d->p);
    TG_TRY(tg_linear_fwd(c, emb, tok, W + d->pe_w, W + d->pe_b, B * T1, d->F, C));
    for (int64_t b = 0; b < B; b++) { /* [cls | patch tokens] */
        memcpy(x + b * T * C, W + d->cls, (size_t)C * sizeof(float));
        memcpy(x + (b * T + 1) * C, emb + b * T1 * C, (size_t)(T1 * C) * sizeof(float));
    }
    tg_add_broadcast_fwd(x, W + d->pos, (size_t)B, (size_t)(T * C));
    return TG_OK;
}

/* Its end, shared likewise: the cls rows of x into xc, LayerNorm into xn
 * (mean, var kept when not NULL: backward reads them), the head, and a
 * conditional D's projection term (labels NULL: left out). */
static tg_status head_fwd(tg_dnn *c, const tg_disc *d, const float *W, const float *x, int64_t B,
                          float *xc, float *xn, float *mean, float *var, const int32_t *labels,
                          float *scores)
{
    int64_t T = d->T, C = d->C;
    for (int64_t b = 0; b < B; b++)
        memcpy(xc + b * C, x + b * T * C, (size_t)C * sizeof(float));
    TG_TRY(tg_layernorm_fwd(c, xn, mean, var, xc, W + d->norm_g, W + d->norm_b, B, C));
    TG_TRY(tg_linear_fwd(c, scores, xn, W + d->head_w, W + d->head_b, B, C, 1));
    tg_disc_proj_fwd(d, W, labels, xn, scores, B, C);
    return TG_OK;
}

tg_status tg_disc_fwd(tg_dnn *c, const tg_disc *d, const float *W, const float *img,
                      float *scores, tg_disc_acts *a)
{
    if (d->kind == TG_DISC_CONV)
        return tg_cdisc_fwd(c, d, W, img, scores, a);
    int64_t B = a->B, T = d->T;
    TG_TRY(embed_tokens(c, d, W, img, B, a->tok, a->emb, a->x));
    for (int b = 0; b < d->depth; b++)
        TG_TRY(tg_block_fwd(c, &d->blocks[b], W, a->x, B, T, NULL, NULL, &a->blk[b], 1));
    return head_fwd(c, d, W, a->x, B, a->xc, a->xn, a->mean, a->var, a->labels, scores);
}

/* ---- inference: what tg_discriminate runs. The training forward keeps
 * every block's activations for backward (~100 MiB per block at batch 64 for
 * TransGAN-S); here the tokens x are updated in place block after block and
 * one block's scratch (tg_block_infer_carve) serves them all. The patch
 * tokens and their embeddings live in that scratch before the first block,
 * the cls rows after the last. ---- */

size_t tg_disc_infer_floats(const tg_disc *d, int64_t B)
{
    if (d->kind == TG_DISC_CONV)
        return tg_cdisc_infer_floats(d, B);
    size_t T1 = (size_t)(d->T - 1), M = (size_t)B * d->T, C = (size_t)d->C;
    size_t blk = d->depth ? tg_block_infer_floats(&d->blocks[0], (int64_t)M) : 0;
    size_t embed = (size_t)B * T1 * ((size_t)d->F + C); /* tok, emb */
    size_t head = 2 * (size_t)B * C;                     /* xc, xn */
    return M * C + TG_MAX(blk, TG_MAX(embed, head));
}

tg_status tg_disc_infer(tg_dnn *c, const tg_disc *d, const float *W, const float *img,
                        int64_t B, const int32_t *labels, float *scores, float *ws)
{
    if (d->kind == TG_DISC_CONV)
        return tg_cdisc_infer(c, d, W, img, B, labels, scores, ws);
    int64_t T = d->T, T1 = T - 1, C = d->C;
    float *x = ws, *s = ws + B * T * C;
    TG_TRY(embed_tokens(c, d, W, img, B, s, s + B * T1 * d->F, x));
    tg_block_acts a;
    if (d->depth)
        tg_block_infer_carve(&d->blocks[0], B * T, s, &a);
    for (int b = 0; b < d->depth; b++)
        TG_TRY(tg_block_fwd(c, &d->blocks[b], W, x, B, T, NULL, NULL, &a, 0));
    return head_fwd(c, d, W, x, B, s, s + B * C, NULL, NULL, labels, scores);
}

tg_status tg_disc_bwd(tg_dnn *c, const tg_disc *d, const float *W, float *G, tg_disc_acts *a,
                      const float *dscores, float *dimg)
{
    if (d->kind == TG_DISC_CONV)
        return tg_cdisc_bwd(c, d, W, G, a, dscores, dimg);
    int64_t B = a->B, T = d->T, T1 = T - 1, C = d->C, M = B * T;
    float *dx = a->scratch, *dtok = dx + M * C, *blk = dtok + (size_t)B * T1 * TG_MAX(d->F, C);
    float *dxn = blk, *dxc = blk + B * C; /* used before the blocks need blk */
    TG_TRY(tg_linear_bwd(c, dxn, GRAD(G, d->head_w), GRAD(G, d->head_b), dscores, a->xn, W + d->head_w, B, C, 1));
    tg_disc_proj_bwd(d, W, G, a->labels, a->xn, dscores, dxn, B, C);
    a->cls_loss = tg_disc_cls_bwd(d, W, G, a->labels, a->xn, dxn, B, C, a->cls_weight);
    TG_TRY(tg_layernorm_bwd(c, dxc, GRAD(G, d->norm_g), GRAD(G, d->norm_b), dxn, a->xc, a->mean, a->var,
                            W + d->norm_g, W + d->norm_b, B, C));
    memset(dx, 0, (size_t)(M * C) * sizeof *dx);
    for (int64_t b = 0; b < B; b++)
        memcpy(dx + b * T * C, dxc + b * C, (size_t)C * sizeof *dx);
    for (int b = d->depth - 1; b >= 0; b--)
        TG_TRY(tg_block_bwd(c, &d->blocks[b], W, G, dx, B, T, NULL, NULL, NULL, &a->blk[b], blk));
    if (G) {
        tg_add_broadcast_bwd(G + d->pos, dx, (size_t)B, (size_t)(T * C));
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < C; i++)
                G[d->cls + i] += dx[b * T * C + i];
    }
    if (!G && !dimg)
        return TG_OK;
    /* the patch tokens' gradient, made contiguous for the Linear's backward */
    float *demb = a->emb; /* the forward's embeddings are no longer needed */
    for (int64_t b = 0; b < B; b++)
        memcpy(demb + b * T1 * C, dx + (b * T + 1) * C, (size_t)(T1 * C) * sizeof *dx);
    TG_TRY(tg_linear_bwd(c, dimg ? dtok : NULL, GRAD(G, d->pe_w), GRAD(G, d->pe_b), demb, a->tok,
                         W + d->pe_w, B * T1, d->F, C));
    if (dimg)
        tg_patches_bwd(dimg, dtok, B, d->ch, d->S, d->p);
    return TG_OK;
}

/* ---- second order: the tangent of the scores along an image tangent, and
 * the reverse of that tangent (the gradient penalty's weight gradient;
 * docs/SECOND_ORDER.md sections 4 and 9) ---- */

tg_status tg_disc_jvp(tg_dnn *c, const tg_disc *d, const float *W, const tg_disc_acts *a,
                      tg_disc_acts *ta, const float *imgd, float *scoresd)
{
    if (d->kind == TG_DISC_CONV)
        return tg_cdisc_jvp(c, d, W, a, ta, imgd, scoresd);
    int64_t B = a->B, T = d->T, T1 = T - 1, C = d->C;
    ta->B = B;
    tg_patches_fwd(ta->tok, imgd, B, d->ch, d->S, d->p);
    TG_TRY(tg_linear_fwd(c, ta->emb, ta->tok, W + d->pe_w, NULL, B * T1, d->F, C));
    for (int64_t b = 0; b < B; b++) { /* cls token and positions are constants */
        memset(ta->x + b * T * C, 0, (size_t)C * sizeof(float));
        memcpy(ta->x + (b * T + 1) * C, ta->emb + b * T1 * C, (size_t)(T1 * C) * sizeof(float));
    }
    for (int b = 0; b < d->depth; b++)
        TG_TRY(tg_block_jvp(c, &d->blocks[b], W, ta->x, B, T, &a->blk[b], &ta->blk[b]));
    for (int64_t b = 0; b < B; b++)
        memcpy(ta->xc + b * C, ta->x + b * T * C, (size_t)C * sizeof(float));
    tg_layernorm_jvp(ta->xn, ta->xc, a->xc, a->mean, a->var, W + d->norm_g, B, C);
    TG_TRY(tg_linear_fwd(c, scoresd, ta->xn, W + d->head_w, NULL, B, C, 1));
    tg_disc_proj_fwd(d, W, a->labels, ta->xn, scoresd, B, C);
    return TG_OK;
}

tg_status tg_disc_bwd2(tg_dnn *c, const tg_disc *d, const float *W, float *G, tg_disc_acts *a,
                       const tg_disc_acts *ta, const float *dscoresd)
{
    if (d->kind == TG_DISC_CONV)
        return tg_cdisc_bwd2(c, d, W, G, a, ta, dscoresd);
    int64_t B = a->B, T = d->T, T1 = T - 1, C = d->C, M = B * T;
    size_t tokf = (size_t)B * T1 * TG_MAX(d->F, C);
    float *dx = a->scratch, *dxd = dx + M * C, *tmp = dxd + M * C, *blk = tmp + tokf;
    /* small [B, C] buffers, consumed before the blocks need blk */
    float *zero = blk, *dxnd = blk + B * C, *dxc = blk + 2 * B * C, *dxcd = blk + 3 * B * C;
    /* the scores themselves have no adjoint (the penalty sees only their
     * tangent), so the head's primal path contributes nothing */
    memset(zero, 0, (size_t)(B * C) * sizeof(float));
    TG_TRY(tg_linear_bwd(c, dxnd, G + d->head_w, NULL, dscoresd, ta->xn, W + d->head_w, B, C, 1));
    /* linear in the tangent feature too: the same reverse on ta->xn */
    tg_disc_proj_bwd(d, W, G, a->labels, ta->xn, dscoresd, dxnd, B, C);
    tg_layernorm_bwd2(dxc, dxcd, G + d->norm_g, G + d->norm_b, zero, dxnd, a->xc, ta->xc, a->mean,
                      a->var, W + d->norm_g, B, C);
    memset(dx, 0, (size_t)(2 * M * C) * sizeof(float));
    for (int64_t b = 0; b < B; b++) {
        memcpy(dx + b * T * C, dxc + b * C, (size_t)C * sizeof(float));
        memcpy(dxd + b * T * C, dxcd + b * C, (size_t)C * sizeof(float));
    }
    for (int b = d->depth - 1; b >= 0; b--)
        TG_TRY(tg_block_bwd2(c, &d->blocks[b], W, G, dx, dxd, B, T, &a->blk[b], &ta->blk[b], blk));
    tg_add_broadcast_bwd(G + d->pos, dx, (size_t)B, (size_t)(T * C));
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < C; i++)
            G[d->cls + i] += dx[b * T * C + i];
    float *demb = tmp, *dembd = blk; /* patch-token rows, made contiguous */
    for (int64_t b = 0; b < B; b++) {
        memcpy(demb + b * T1 * C, dx + (b * T + 1) * C, (size_t)(T1 * C) * sizeof(float));
        memcpy(dembd + b * T1 * C, dxd + (b * T + 1) * C, (size_t)(T1 * C) * sizeof(float));
    }
    TG_TRY(tg_linear_bwd(c, NULL, G + d->pe_w, G + d->pe_b, demb, a->tok, W + d->pe_w, B * T1, d->F, C));
    return tg_linear_bwd(c, NULL, G + d->pe_w, NULL, dembd, ta->tok, W + d->pe_w, B * T1, d->F, C);
}
