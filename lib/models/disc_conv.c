/* The convolutional discriminator (discriminator.kind "conv";
 * docs/SPECIFICATION.md "Convolutional discriminator"):
 *   image (made channels-last) -> units (nn/convblock.c), level by level,
 *   every level but the last halving the size in its last unit -> [act]
 *   -> global sum / mean pool -> Linear -> score [+ <class_embed[y], pooled>
 *   for a conditional D, the projection term].
 * Definition, forward, backward, tangent and second-order reverse; the
 * tg_disc_* entry points (discriminator.c) dispatch here by kind.
 *
 * No normalisation layer: batch norm would couple the images of a batch,
 * which the gradient penalty (a per-image gradient norm) forbids; the
 * penalty is what keeps D Lipschitz. */
#include <math.h>
#include <stdio.h>

#include "model.h"

tg_status tg_cdisc_define(tg_disc *d, const tg_desc *desc)
{
    memset(d, 0, sizeof *d);
    d->kind = TG_DISC_CONV;
    d->ch = desc->channels;
    d->S = desc->image_size;
    d->cres = desc->d.residual;
    d->cpool = desc->d.pool;
    int n = 0;
    for (int l = 0; l < desc->d.nlevels; l++)
        n += desc->d.blocks[l];
    d->cb = tg_alloc(sizeof *d->cb * (size_t)n);
    if (!d->cb)
        return TG_ERR_OUT_OF_MEMORY;
    d->ncb = n;
    tg_params *P = &d->P;
    int cin = d->ch, S = d->S, u = 0;
    for (int l = 0; l < desc->d.nlevels; l++)
        for (int j = 0; j < desc->d.blocks[l]; j++, u++) {
            char name[64];
            snprintf(name, sizeof name, "discriminator.levels.%d.blocks.%d", l, j);
            int last = j == desc->d.blocks[l] - 1 && l < desc->d.nlevels - 1;
            tg_cblock_define(&d->cb[u], P, name, cin, desc->d.widths[l], S, d->cres, u == 0,
                             last ? desc->d.down + 1 : 0);
            cin = desc->d.widths[l];
            S = d->cb[u].So;
        }
    d->cC = cin, d->cS = S;
    /* the head: xavier uniform with gain 1, bias 0 (SNGAN's l5) */
    d->head_w = tg_params_add(P, "discriminator.head.weight", 2, (int64_t[]){1, cin},
                              TG_INIT_UNIFORM, sqrt(6.0 / (cin + 1.0)));
    d->head_b = tg_params_add(P, "discriminator.head.bias", 1, (int64_t[]){1}, TG_INIT_ZERO, 0);
    d->ncls = desc->num_classes;
    d->proj = SIZE_MAX;
    if (d->ncls) /* the projection's class embedding [K, C_last], initialised like the
                  * transformer D's (truncated normal, std 0.02) */
        d->proj = tg_params_add(P, "discriminator.class_embed", 2, (int64_t[]){d->ncls, cin},
                                TG_INIT_TRUNC_NORMAL, 0);
    return P->oom ? TG_ERR_OUT_OF_MEMORY : TG_OK;
}

/* the largest scratch any unit needs, and what the network adds: two
 * gradient buffers of the largest activation (ping-pong between units) */
static size_t scratch_floats(const tg_disc *d, int64_t B, size_t *act_max)
{
    size_t s = 0, m = (size_t)B * d->ch * d->S * d->S;
    for (int u = 0; u < d->ncb; u++) {
        const tg_cblock *k = &d->cb[u];
        size_t ss = tg_cblock_scratch_floats(k, B);
        s = ss > s ? ss : s;
        size_t o = (size_t)B * k->cout * k->So * k->So, i = (size_t)B * k->cin * k->S * k->S;
        m = TG_MAX(m, TG_MAX(o, i));
    }
    *act_max = m;
    return s + 2 * m + (size_t)B * d->cC;
}

tg_status tg_cdisc_acts_alloc(const tg_disc *d, int64_t B, tg_disc_acts *a)
{
    memset(a, 0, sizeof *a);
    size_t img = (size_t)B * d->ch * d->S * d->S, hsz = (size_t)B * d->cC * d->cS * d->cS;
    size_t total = img + (d->cres ? hsz : 0) + (size_t)B * d->cC, am;
    for (int u = 0; u < d->ncb; u++)
        total += tg_cblock_acts_floats(&d->cb[u], B);
    total += scratch_floats(d, B, &am);
    a->cba = tg_alloc(sizeof *a->cba * (size_t)d->ncb);
    a->buf = tg_alloc(total * sizeof(float));
    if (!a->cba || !a->buf) {
        tg_disc_acts_free(a);
        return TG_ERR_OUT_OF_MEMORY;
    }
    a->B = B;
    a->floats = total;
    float *p = a->buf;
    for (int u = 0; u < d->ncb; u++)
        p += tg_cblock_acts_carve(&d->cb[u], B, p, &a->cba[u]);
    a->cimg = p, p += img;
    a->ch = d->cres ? p : a->cba[d->ncb - 1].y;
    p += d->cres ? hsz : 0;
    a->cg = p, p += (size_t)B * d->cC;
    a->scratch = p;
    return TG_OK;
}

/* Forward (pa NULL) or tangent (pa: the primal activations): the head's
 * activation is replaced by its derivative at the primal point, biases
 * dropped. The projection term (labels from the primal's activations) is
 * linear in the pooled features, so the tangent takes it as it is. */
static tg_status run(tg_dnn *c, const tg_disc *d, const float *W, const float *img,
                     float *scores, tg_disc_acts *a, const tg_disc_acts *pa)
{
    int64_t B = a->B;
    /* the image (NCHW, the API's) channels-last, as the units run */
    tg_transpose_fwd(a->cimg, img, B, d->ch, (int64_t)d->S * d->S);
    const float *x = a->cimg;
    for (int u = 0; u < d->ncb; u++) {
        if (pa)
            TG_TRY(tg_cblock_jvp(c, &d->cb[u], W, B, x, &a->cba[u], u ? pa->cba[u - 1].y : pa->cimg,
                                 &pa->cba[u], a->scratch));
        else
            TG_TRY(tg_cblock_fwd(c, &d->cb[u], W, B, x, &a->cba[u], a->scratch));
        x = a->cba[u].y;
    }
    size_t hsz = (size_t)B * d->cC * d->cS * d->cS;
    if (d->cres) { /* pre-activation units end without one */
        if (pa)
            tg_leaky_bwd(a->ch, x, pa->cba[d->ncb - 1].y, hsz, TG_LEAKY_SLOPE);
        else
            tg_leaky_fwd(a->ch, x, hsz, TG_LEAKY_SLOPE);
    }
    tg_gpool_fwd(a->cg, a->ch, B, d->cC, (int64_t)d->cS * d->cS, d->cpool == TG_POOL_MEAN);
    TG_TRY(tg_linear_fwd(c, scores, a->cg, W + d->head_w, pa ? NULL : W + d->head_b, B, d->cC, 1));
    tg_disc_proj_fwd(d, W, pa ? pa->labels : a->labels, a->cg, scores, B, d->cC);
    return TG_OK;
}

tg_status tg_cdisc_fwd(tg_dnn *c, const tg_disc *d, const float *W, const float *img,
                       float *scores, tg_disc_acts *a)
{
    return run(c, d, W, img, scores, a, NULL);
}

/* ---- inference (tg_discriminate): unit after unit, each one's activations
 * carved in turn from one of two regions (unit u's input is unit u-1's
 * output, in the other region), with the forward-only scratch; nothing is
 * kept for backward. Workspace: the channels-last image, two regions of
 * the largest unit's activations, the largest forward scratch, the pooled
 * features. ---- */

static size_t infer_parts(const tg_disc *d, int64_t B, size_t *region, size_t *scratch)
{
    size_t r = 0, s = 0;
    for (int u = 0; u < d->ncb; u++) {
        r = TG_MAX(r, tg_cblock_acts_floats(&d->cb[u], B));
        s = TG_MAX(s, tg_cblock_fwd_scratch_floats(&d->cb[u], B));
    }
    *region = r, *scratch = s;
    return (size_t)B * d->ch * d->S * d->S + 2 * r + s + (size_t)B * d->cC;
}

size_t tg_cdisc_infer_floats(const tg_disc *d, int64_t B)
{
    size_t r, s;
    return infer_parts(d, B, &r, &s);
}

tg_status tg_cdisc_infer(tg_dnn *c, const tg_disc *d, const float *W, const float *img,
                         int64_t B, const int32_t *labels, float *scores, float *ws)
{
    size_t rf, sf;
    infer_parts(d, B, &rf, &sf);
    float *x0 = ws, *region[2] = {x0 + (size_t)B * d->ch * d->S * d->S, NULL};
    region[1] = region[0] + rf;
    float *sc = region[1] + rf, *g = sc + sf;
    tg_transpose_fwd(x0, img, B, d->ch, (int64_t)d->S * d->S);
    const float *x = x0;
    tg_cblock_acts a = {0};
    for (int u = 0; u < d->ncb; u++) {
        tg_cblock_acts_carve(&d->cb[u], B, region[u & 1], &a);
        TG_TRY(tg_cblock_fwd(c, &d->cb[u], W, B, x, &a, sc));
        x = a.y;
    }
    size_t hsz = (size_t)B * d->cC * d->cS * d->cS;
    if (d->cres) /* in place: the last unit's output is not needed after */
        tg_leaky_fwd(a.y, a.y, hsz, TG_LEAKY_SLOPE);
    tg_gpool_fwd(g, a.y, B, d->cC, (int64_t)d->cS * d->cS, d->cpool == TG_POOL_MEAN);
    TG_TRY(tg_linear_fwd(c, scores, g, W + d->head_w, W + d->head_b, B, d->cC, 1));
    tg_disc_proj_fwd(d, W, labels, g, scores, B, d->cC);
    return TG_OK;
}

tg_status tg_cdisc_jvp(tg_dnn *c, const tg_disc *d, const float *W, const tg_disc_acts *a,
                       tg_disc_acts *ta, const float *imgd, float *scoresd)
{
    ta->B = a->B;
    return run(c, d, W, imgd, scoresd, ta, a);
}

/* Reverse from the scores' gradient, weight gradients formed with the
 * activations `in` (a itself, or the tangent ones), signs from a. */
static tg_status reverse(tg_dnn *c, const tg_disc *d, const float *W, float *G, int bias,
                         tg_disc_acts *a, const tg_disc_acts *in, const float *ds, float *dimg)
{
    int64_t B = a->B;
    size_t am, sf = scratch_floats(d, B, &am);
    float *g0 = a->scratch + (sf - 2 * am - (size_t)B * d->cC), *g1 = g0 + am, *dg = g1 + am;
    float *blk = a->scratch;
    TG_TRY(tg_linear_bwd(c, dg, G ? G + d->head_w : NULL, G && bias ? G + d->head_b : NULL, ds,
                         in->cg, W + d->head_w, B, d->cC, 1));
    /* the projection: a second head whose row E[y_b] is picked per image;
     * E's gradient, like the head's, formed with `in` */
    tg_disc_proj_bwd(d, W, G, a->labels, in->cg, ds, dg, B, d->cC);
    if (in == a) /* the class loss is first-order only: not in the penalty's bwd2 */
        a->cls_loss = tg_disc_cls_bwd(d, W, G, a->labels, a->cg, dg, B, d->cC, a->cls_weight);
    tg_gpool_bwd(g0, dg, B, d->cC, (int64_t)d->cS * d->cS, d->cpool == TG_POOL_MEAN);
    if (d->cres)
        tg_leaky_bwd(g0, g0, a->cba[d->ncb - 1].y, (size_t)B * d->cC * d->cS * d->cS,
                     TG_LEAKY_SLOPE);
    for (int u = d->ncb - 1; u >= 0; u--) {
        /* unit 0's input gradient is the image's: wanted only with dimg */
        float *dx = u || dimg ? g1 : NULL;
        const float *xin = u ? in->cba[u - 1].y : in->cimg, *xpr = u ? a->cba[u - 1].y : a->cimg;
        TG_TRY(tg_cblock_bwd(c, &d->cb[u], W, G, bias, B, xin, &in->cba[u], xpr, &a->cba[u], g0,
                             dx, blk));
        float *t = g0;
        g0 = g1, g1 = t;
    }
    if (dimg) /* back to NCHW */
        tg_transpose_fwd(dimg, g0, B, (int64_t)d->S * d->S, d->ch);
    return TG_OK;
}

tg_status tg_cdisc_bwd(tg_dnn *c, const tg_disc *d, const float *W, float *G, tg_disc_acts *a,
                       const float *dscores, float *dimg)
{
    if (!G && !dimg) {
        a->cls_loss = 0; /* nothing asked for: not even the class loss */
        return TG_OK;
    }
    return reverse(c, d, W, G, 1, a, a, dscores, dimg);
}

/* The penalty's weight gradient: conv is linear in its input and weights
 * and LeakyReLU's second derivative is zero, so the scores' tangent is a
 * linear network of the image tangent with the primal's activation
 * signs frozen, and the reverse of (scores, tangent) from the adjoints
 * (0, dscoresd) is the ordinary reverse through that network, its weight
 * gradients formed with the tangent activations; no bias has a gradient
 * (docs/SECOND_ORDER.md, "Convolutional discriminator"). The projection
 * term makes the head's row per image (W_head + E[y_b]): E[y_b] gets
 * dscoresd[b] times the pooled tangent, like the head (section 11). */
tg_status tg_cdisc_bwd2(tg_dnn *c, const tg_disc *d, const float *W, float *G, tg_disc_acts *a,
                        const tg_disc_acts *ta, const float *dscoresd)
{
    return reverse(c, d, W, G, 0, a, ta, dscoresd, NULL);
}
