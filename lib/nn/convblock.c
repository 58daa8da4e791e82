/* The convolutional discriminator's unit (residual or plain): forward and
 * tangent (one code path), backward (also the second-order reverse). */
#include <math.h>
#include <stdio.h>

#include "../core/desc.h"
#include "convblock.h"

#define DOWN_AVG (TG_DOWN_AVGPOOL + 1)
#define DOWN_STRIDE (TG_DOWN_STRIDE + 1)

static size_t add_conv(tg_params *t, const char *prefix, const char *name, int cout, int cin,
                       int k, double gain, size_t *b)
{
    char full[96];
    /* xavier uniform (fan_in = cin k k, fan_out = cout k k), as SNGAN's and
     * AutoGAN's discriminators start */
    double bound = gain * sqrt(6.0 / ((double)(cin + cout) * k * k));
    snprintf(full, sizeof full, "%s.%s.weight", prefix, name);
    size_t w = tg_params_add(t, full, 4, (int64_t[]){cout, cin, k, k}, TG_INIT_UNIFORM, bound);
    snprintf(full, sizeof full, "%s.%s.bias", prefix, name);
    *b = tg_params_add(t, full, 1, (int64_t[]){cout}, TG_INIT_ZERO, 0);
    return w;
}

void tg_cblock_define(tg_cblock *k, tg_params *t, const char *prefix, int cin, int cout, int S,
                      int residual, int first, int down)
{
    memset(k, 0, sizeof *k);
    k->cin = cin, k->cout = cout, k->S = S, k->So = down ? S / 2 : S;
    k->residual = residual, k->first = first, k->down = down;
    k->c1_w = k->c1_b = k->c2_w = k->c2_b = k->sc_w = k->sc_b = SIZE_MAX;
    int klast = down == DOWN_STRIDE ? 4 : 3; /* the unit's last conv */
    double g2 = sqrt(2.0);
    if (!residual) {
        k->c1_w = add_conv(t, prefix, "conv", cout, cin, klast, g2, &k->c1_b);
        return;
    }
    k->c1_w = add_conv(t, prefix, "conv1", cout, cin, 3, g2, &k->c1_b);
    k->c2_w = add_conv(t, prefix, "conv2", cout, cout, klast, g2, &k->c2_b);
    if (cin != cout || down)
        k->sc_w = add_conv(t, prefix, "shortcut", cout, cin, 1, 1.0, &k->sc_b);
}

/* the convolutions' shapes */
static tg_conv_shape shape_c1(const tg_cblock *k, int64_t B)
{
    int stride = !k->residual && k->down == DOWN_STRIDE;
    return (tg_conv_shape){B, k->cin, k->cout, k->S, stride ? 4 : 3, stride ? 2 : 1, 1};
}
static tg_conv_shape shape_c2(const tg_cblock *k, int64_t B)
{
    int stride = k->down == DOWN_STRIDE;
    return (tg_conv_shape){B, k->cout, k->cout, k->S, stride ? 4 : 3, stride ? 2 : 1, 1};
}
static tg_conv_shape shape_sc(const tg_cblock *k, int64_t B)
{
    return (tg_conv_shape){B, k->cin, k->cout, k->S, 1, 1, 0};
}

size_t tg_cblock_acts_floats(const tg_cblock *k, int64_t B)
{
    tg_conv_shape s1 = shape_c1(k, B);
    size_t S1 = (size_t)tg_conv_out(&s1), SS = (size_t)k->S * k->S, So = (size_t)k->So;
    size_t n = (size_t)k->cout * S1 * S1 + (size_t)k->cout * So * So; /* u1, y */
    if (k->residual)
        n += (k->first ? 0 : (size_t)k->cin * SS) + (size_t)k->cout * SS; /* a0, a1 */
    return n * (size_t)B;
}

size_t tg_cblock_acts_carve(const tg_cblock *k, int64_t B, float *base, tg_cblock_acts *a)
{
    memset(a, 0, sizeof *a);
    tg_conv_shape s1 = shape_c1(k, B);
    size_t S1 = (size_t)tg_conv_out(&s1), SS = (size_t)k->S * k->S, So = (size_t)k->So;
    float *p = base;
    a->u1 = p, p += (size_t)B * k->cout * S1 * S1;
    a->y = p, p += (size_t)B * k->cout * So * So;
    if (k->residual) {
        if (!k->first)
            a->a0 = p, p += (size_t)B * k->cin * SS;
        a->a1 = p, p += (size_t)B * k->cout * SS;
    }
    return (size_t)(p - base);
}

size_t tg_cblock_scratch_floats(const tg_cblock *k, int64_t B)
{
    /* at most five [B, max(cin, cout), S, S] buffers at once (backward) */
    return 5 * (size_t)B * (size_t)(k->cin > k->cout ? k->cin : k->cout) * k->S * k->S;
}

size_t tg_cblock_fwd_scratch_floats(const tg_cblock *k, int64_t B)
{
    /* run(): the pre-pool activation [B, cout, S, S], or the shortcut conv's
     * output (there too, after the main branch is pooled) and its pooled copy */
    return (size_t)B * k->cout * ((size_t)k->S * k->S + (size_t)k->So * k->So);
}

/* act(in) (primal: pu NULL) or its tangent act'(pu) * in, pu being the
 * primal input of the activation */
static void act(float *out, const float *in, const float *pu, size_t n)
{
    if (pu)
        tg_leaky_bwd(out, in, pu, n, TG_LEAKY_SLOPE);
    else
        tg_leaky_fwd(out, in, n, TG_LEAKY_SLOPE);
}

/* Forward (pa NULL) or tangent (pa: the primal activations, x_pr the primal
 * input): the tangent is the forward without biases and with each
 * activation replaced by its derivative at the primal point. */
static tg_status run(tg_dnn *c, const tg_cblock *k, const float *W, int64_t B, const float *x,
                     tg_cblock_acts *a, float *sc, const float *x_pr, const tg_cblock_acts *pa)
{
    int tan = pa != NULL;
    size_t SS = (size_t)k->S * k->S, So2 = (size_t)k->So * k->So;
    size_t nin = (size_t)B * k->cin * SS, nout = (size_t)B * k->cout * So2;
    tg_conv_shape s1 = shape_c1(k, B);
    size_t S1 = (size_t)tg_conv_out(&s1), n1 = (size_t)B * k->cout * S1 * S1;
    if (!k->residual) {
        TG_TRY(tg_conv2d_fwd(c, &s1, a->u1, x, W + k->c1_w, tan ? NULL : W + k->c1_b));
        if (k->down != DOWN_AVG) {
            act(a->y, a->u1, tan ? pa->u1 : NULL, n1);
            return TG_OK;
        }
        act(sc, a->u1, tan ? pa->u1 : NULL, n1);
        tg_avgpool2_nhwc_fwd(a->y, sc, B, k->S, k->cout);
        return TG_OK;
    }
    const float *a0 = x;
    if (!k->first) {
        act(a->a0, x, tan ? x_pr : NULL, nin);
        a0 = a->a0;
    }
    TG_TRY(tg_conv2d_fwd(c, &s1, a->u1, a0, W + k->c1_w, tan ? NULL : W + k->c1_b));
    act(a->a1, a->u1, tan ? pa->u1 : NULL, n1);
    tg_conv_shape s2 = shape_c2(k, B);
    float *u2 = k->down == DOWN_AVG ? sc : a->y;
    TG_TRY(tg_conv2d_fwd(c, &s2, u2, a->a1, W + k->c2_w, tan ? NULL : W + k->c2_b));
    if (k->down == DOWN_AVG)
        tg_avgpool2_nhwc_fwd(a->y, u2, B, k->S, k->cout);
    if (k->sc_w == SIZE_MAX) { /* identity shortcut: same width and size */
        tg_add_inplace(a->y, x, nout);
        return TG_OK;
    }
    tg_conv_shape ss = shape_sc(k, B);
    float *v = sc, *vp = sc + (size_t)B * k->cout * SS;
    TG_TRY(tg_conv2d_fwd(c, &ss, v, x, W + k->sc_w, tan ? NULL : W + k->sc_b));
    if (k->down) {
        tg_avgpool2_nhwc_fwd(vp, v, B, k->S, k->cout);
        v = vp;
    }
    tg_add_inplace(a->y, v, nout);
    return TG_OK;
}

tg_status tg_cblock_fwd(tg_dnn *c, const tg_cblock *k, const float *W, int64_t B, const float *x,
                        tg_cblock_acts *a, float *scratch)
{
    return run(c, k, W, B, x, a, scratch, NULL, NULL);
}

tg_status tg_cblock_jvp(tg_dnn *c, const tg_cblock *k, const float *W, int64_t B,
                        const float *xd, tg_cblock_acts *ta, const float *x,
                        const tg_cblock_acts *a, float *scratch)
{
    return run(c, k, W, B, xd, ta, scratch, x, a);
}

tg_status tg_cblock_bwd(tg_dnn *c, const tg_cblock *k, const float *W, float *G, int bias,
                        int64_t B, const float *xin, const tg_cblock_acts *in, const float *x,
                        const tg_cblock_acts *a, const float *dy, float *dx, float *sc)
{
    float *Gb = bias ? G : NULL; /* where bias gradients go (none: NULL) */
    size_t SS = (size_t)k->S * k->S, So2 = (size_t)k->So * k->So;
    size_t nin = (size_t)B * k->cin * SS, ncs = (size_t)B * k->cout * SS;
    tg_conv_shape s1 = shape_c1(k, B);
    size_t S1 = (size_t)tg_conv_out(&s1), n1 = (size_t)B * k->cout * S1 * S1;
    if (!k->residual) {
        const float *da = dy;
        if (k->down == DOWN_AVG) {
            tg_avgpool2_nhwc_bwd(sc, dy, B, k->S, k->cout);
            da = sc;
        }
        float *du = sc + ncs;
        tg_leaky_bwd(du, da, a->u1, n1, TG_LEAKY_SLOPE);
        return tg_conv2d_bwd(c, &s1, dx, GRAD(G, k->c1_w), GRAD(Gb, k->c1_b), du, xin,
                             W + k->c1_w);
    }
    /* main branch: [pool] <- conv2 <- act <- conv1 <- act */
    float *b0 = sc, *b1 = sc + ncs, *b2 = sc + 2 * ncs, *b3 = sc + 2 * ncs + nin;
    const float *du2 = dy;
    if (k->down == DOWN_AVG) {
        tg_avgpool2_nhwc_bwd(b0, dy, B, k->S, k->cout);
        du2 = b0;
    }
    tg_conv_shape s2 = shape_c2(k, B);
    TG_TRY(tg_conv2d_bwd(c, &s2, b1, GRAD(G, k->c2_w), GRAD(Gb, k->c2_b), du2, in->a1,
                         W + k->c2_w));
    tg_leaky_bwd(b1, b1, a->u1, ncs, TG_LEAKY_SLOPE);
    float *da0 = dx ? b2 : NULL;
    TG_TRY(tg_conv2d_bwd(c, &s1, da0, GRAD(G, k->c1_w), GRAD(Gb, k->c1_b), b1,
                         k->first ? xin : in->a0, W + k->c1_w));
    if (dx) {
        if (k->first)
            memcpy(dx, da0, nin * sizeof *dx);
        else
            tg_leaky_bwd(dx, da0, x, nin, TG_LEAKY_SLOPE);
    }
    /* shortcut */
    if (k->sc_w == SIZE_MAX) {
        if (dx)
            tg_add_inplace(dx, dy, (size_t)B * k->cout * So2);
        return TG_OK;
    }
    /* pooled back: the main branch left exactly this in b0 when it pools
     * too (DOWN_AVG); a strided main branch did not */
    const float *dv = k->down ? b0 : dy;
    if (k->down == DOWN_STRIDE)
        tg_avgpool2_nhwc_bwd(b0, dy, B, k->S, k->cout);
    tg_conv_shape ss = shape_sc(k, B);
    TG_TRY(tg_conv2d_bwd(c, &ss, dx ? b3 : NULL, GRAD(G, k->sc_w), GRAD(Gb, k->sc_b), dv, xin,
                         W + k->sc_w));
    if (dx)
        tg_add_inplace(dx, b3, nin);
    return TG_OK;
}
