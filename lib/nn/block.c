/* The transformer block, forward then backward. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../core/desc.h"
#include "block.h"

static size_t add(tg_params *t, const char *prefix, const char *name, int ndim, int64_t s0,
                  int64_t s1, int init, double bound)
{
    char full[96];
    snprintf(full, sizeof full, "%s.%s", prefix, name);
    int64_t shape[2] = {s0, s1};
    return tg_params_add(t, full, ndim, shape, init, bound);
}

/* a Linear's weight and bias with the network's initialisation */
static void add_linear(tg_params *t, const char *prefix, const char *name, int out, int in,
                       int bias, int d_init, size_t *w, size_t *b)
{
    char nm[64];
    double bound = 1.0 / sqrt((double)in);
    snprintf(nm, sizeof nm, "%s.weight", name);
    *w = add(t, prefix, nm, 2, out, in, d_init ? TG_INIT_TRUNC_NORMAL : TG_INIT_UNIFORM, bound);
    if (bias) {
        snprintf(nm, sizeof nm, "%s.bias", name);
        *b = add(t, prefix, nm, 1, out, 0, d_init ? TG_INIT_ZERO : TG_INIT_UNIFORM, bound);
    } else if (b) {
        *b = SIZE_MAX;
    }
}

tg_status tg_block_define(tg_block *b, tg_params *t, const char *prefix, int C, int H,
                          int mlp_ratio, int norm, int rel_w, int d_init)
{
    *b = (tg_block){.C = C, .H = H, .hid = C * mlp_ratio, .norm = norm, .rel_w = rel_w};
    b->n1_g = b->n1_b = b->n2_g = b->n2_b = b->rel = SIZE_MAX;
    b->n1_cg = b->n1_cb = b->n2_cg = b->n2_cb = SIZE_MAX;
    if (norm == TG_NORM_LAYERNORM) {
        b->n1_g = add(t, prefix, "norm1.weight", 1, C, 0, TG_INIT_ONE, 0);
        b->n1_b = add(t, prefix, "norm1.bias", 1, C, 0, TG_INIT_ZERO, 0);
    }
    add_linear(t, prefix, "attn.qkv", 3 * C, C, 0, d_init, &b->qkv_w, NULL);
    add_linear(t, prefix, "attn.proj", C, C, 1, d_init, &b->proj_w, &b->proj_b);
    if (rel_w)
        b->rel = add(t, prefix, "attn.rel_bias", 2, (2 * rel_w - 1) * (2 * rel_w - 1), H,
                     TG_INIT_TRUNC_NORMAL, 0);
    if (norm == TG_NORM_LAYERNORM) {
        b->n2_g = add(t, prefix, "norm2.weight", 1, C, 0, TG_INIT_ONE, 0);
        b->n2_b = add(t, prefix, "norm2.bias", 1, C, 0, TG_INIT_ZERO, 0);
    }
    add_linear(t, prefix, "mlp.fc1", b->hid, C, 1, d_init, &b->fc1_w, &b->fc1_b);
    add_linear(t, prefix, "mlp.fc2", C, b->hid, 1, d_init, &b->fc2_w, &b->fc2_b);
    return t->oom ? TG_ERR_OUT_OF_MEMORY : TG_OK;
}

tg_status tg_block_add_classes(tg_block *b, tg_params *t, const char *prefix, int ncls)
{
    b->ncls = ncls;
    b->n1_cg = add(t, prefix, "norm1.class_weight", 2, ncls, b->C, TG_INIT_ZERO, 0);
    b->n1_cb = add(t, prefix, "norm1.class_bias", 2, ncls, b->C, TG_INIT_ZERO, 0);
    b->n2_cg = add(t, prefix, "norm2.class_weight", 2, ncls, b->C, TG_INIT_ZERO, 0);
    b->n2_cb = add(t, prefix, "norm2.class_bias", 2, ncls, b->C, TG_INIT_ZERO, 0);
    return t->oom ? TG_ERR_OUT_OF_MEMORY : TG_OK;
}

size_t tg_block_acts_floats(const tg_block *b, int64_t M)
{
    /* x_in ln1 att x_mid ln2: C each; qkv 3C; h1 g1: hid each; 4 stats */
    return (size_t)M * (5 * b->C + 3 * b->C + 2 * b->hid + 4);
}

size_t tg_block_acts_carve(const tg_block *b, int64_t M, float *p, tg_block_acts *a)
{
    float *p0 = p;
    size_t mc = (size_t)M * b->C;
    a->x_in = p, p += mc;
    a->ln1 = p, p += mc;
    a->att = p, p += mc;
    a->x_mid = p, p += mc;
    a->ln2 = p, p += mc;
    a->qkv = p, p += 3 * mc;
    a->h1 = p, p += (size_t)M * b->hid;
    a->g1 = p, p += (size_t)M * b->hid;
    a->mean1 = p, p += M;
    a->var1 = p, p += M;
    a->mean2 = p, p += M;
    a->var2 = p, p += M;
    return (size_t)(p - p0);
}

size_t tg_block_infer_floats(const tg_block *b, int64_t M)
{
    return (size_t)M * (size_t)(b->C + TG_MAX(4 * b->C, b->hid));
}

size_t tg_block_infer_carve(const tg_block *b, int64_t M, float *p, tg_block_acts *a)
{
    size_t mc = (size_t)M * b->C;
    *a = (tg_block_acts){0};
    a->ln1 = p;       /* norm1's output, read by the qkv matmul only */
    a->qkv = p + mc;  /* [M, 3C], read by attention only */
    a->att = p + 4 * mc;
    a->ln2 = a->ln1;  /* norm2 runs after the qkv matmul consumed ln1 */
    a->g1 = a->qkv;   /* fc1 runs after attention and proj consumed qkv and att */
    return tg_block_infer_floats(b, M);
}

size_t tg_block_grad_floats(const tg_block *b, int64_t M, int64_t N)
{
    /* dmid, dtmp: C; dqkv: 3C; dh1, dh2: hid; plus a [H, N, N] bias gradient */
    return (size_t)M * (2 * b->C + 3 * b->C + 2 * b->hid) + (size_t)(b->H * N * N);
}

/* which: 1 or 2, the block's norm; lab [M / N] the classes of the batch
 * (used when the block has class tables) */
static tg_status norm_fwd(tg_dnn *c, const tg_block *b, const float *W, int which, float *y,
                          float *mean, float *var, const float *x, int64_t M, int64_t N,
                          const int32_t *lab, int training)
{
    size_t g = which == 1 ? b->n1_g : b->n2_g, bb = which == 1 ? b->n1_b : b->n2_b;
    if (b->ncls) {
        size_t cg = which == 1 ? b->n1_cg : b->n2_cg, cb = which == 1 ? b->n1_cb : b->n2_cb;
        int pixel = b->norm == TG_NORM_PIXELNORM;
        if (!lab)
            return tg_fail(TG_ERR_INTERNAL, "a class-conditional block ran without labels");
        tg_cond_norm_fwd(y, training ? mean : NULL, training ? var : NULL, x,
                         pixel ? NULL : W + g, pixel ? NULL : W + bb, W + cg, W + cb, lab, M,
                         N, b->C, pixel);
        return TG_OK;
    }
    if (b->norm == TG_NORM_PIXELNORM) {
        tg_pixelnorm_fwd(y, x, M, b->C);
        return TG_OK;
    }
    return tg_layernorm_fwd(c, y, training ? mean : NULL, training ? var : NULL, x, W + g,
                            W + bb, M, b->C);
}

static tg_status norm_bwd(tg_dnn *c, const tg_block *b, const float *W, float *G, int which,
                          float *dx, const float *dy, const float *x, const float *mean,
                          const float *var, int64_t M, int64_t N, const int32_t *lab)
{
    size_t g = which == 1 ? b->n1_g : b->n2_g, bb = which == 1 ? b->n1_b : b->n2_b;
    if (b->ncls) {
        size_t cg = which == 1 ? b->n1_cg : b->n2_cg, cb = which == 1 ? b->n1_cb : b->n2_cb;
        int pixel = b->norm == TG_NORM_PIXELNORM;
        tg_cond_norm_bwd(dx, pixel ? NULL : GRAD(G, g), pixel ? NULL : GRAD(G, bb), GRAD(G, cg),
                         GRAD(G, cb), dy, x, pixel ? NULL : W + g, W + cg, lab, M, N, b->C,
                         pixel);
        return TG_OK;
    }
    if (b->norm == TG_NORM_PIXELNORM) {
        tg_pixelnorm_bwd(dx, dy, x, M, b->C);
        return TG_OK;
    }
    return tg_layernorm_bwd(c, dx, GRAD(G, g), GRAD(G, bb), dy, x, mean, var, W + g, W + bb, M,
                            b->C);
}

tg_status tg_block_fwd(tg_dnn *c, const tg_block *b, const float *W, float *x, int64_t B,
                       int64_t N, const float *bias, const uint8_t *mask, tg_block_acts *a,
                       int training)
{
    int64_t M = B * N, C = b->C;
    if (training)
        memcpy(a->x_in, x, (size_t)(M * C) * sizeof *x);
    TG_TRY(norm_fwd(c, b, W, 1, a->ln1, a->mean1, a->var1, x, M, N, a->labels, training));
    TG_TRY(tg_linear_fwd_post(c, a->qkv, a->ln1, W + b->qkv_w, NULL, M, C, 3 * C,
                              training ? 0 : TG_MM_INFER));
    TG_TRY(tg_attention_fwd(c, a->att, a->qkv, bias, mask, B, N, C, b->H));
    if (!training) { /* residual adds and GELU fused into the matmuls: x is updated in place */
        TG_TRY(tg_linear_fwd_post(c, x, a->att, W + b->proj_w, W + b->proj_b, M, C, C,
                                  TG_MM_SUM | TG_MM_INFER));
        TG_TRY(norm_fwd(c, b, W, 2, a->ln2, NULL, NULL, x, M, N, a->labels, 0));
        return tg_mlp_fwd_infer(c, x, a->ln2, a->g1, W + b->fc1_w, W + b->fc1_b,
                                W + b->fc2_w, W + b->fc2_b, M, C, b->hid);
    }
    TG_TRY(tg_linear_fwd(c, a->x_mid, a->att, W + b->proj_w, W + b->proj_b, M, C, C));
    tg_add_inplace(a->x_mid, x, (size_t)(M * C));
    TG_TRY(norm_fwd(c, b, W, 2, a->ln2, a->mean2, a->var2, a->x_mid, M, N, a->labels, training));
    TG_TRY(tg_linear_fwd(c, a->h1, a->ln2, W + b->fc1_w, W + b->fc1_b, M, C, b->hid));
    TG_TRY(tg_gelu_fwd(c, a->g1, a->h1, M * b->hid));
    TG_TRY(tg_linear_fwd(c, x, a->g1, W + b->fc2_w, W + b->fc2_b, M, b->hid, C));
    tg_add_inplace(x, a->x_mid, (size_t)(M * C));
    return TG_OK;
}

tg_status tg_block_bwd(tg_dnn *c, const tg_block *b, const float *W, float *G, float *dx,
                       int64_t B, int64_t N, const float *bias, const uint8_t *mask, float *dbias,
                       const tg_block_acts *a, float *scratch)
{
    int64_t M = B * N, C = b->C, hid = b->hid;
    size_t mc = (size_t)(M * C);
    float *dmid = scratch, *dtmp = dmid + mc, *dqkv = dtmp + mc, *dh1 = dqkv + 3 * mc,
          *dh2 = dh1 + (size_t)M * hid;
    /* MLP branch: x_out = x_mid + fc2(gelu(fc1(norm2(x_mid)))) */
    TG_TRY(tg_linear_bwd(c, dh1, GRAD(G, b->fc2_w), GRAD(G, b->fc2_b), dx, a->g1, W + b->fc2_w, M, hid, C));
    TG_TRY(tg_gelu_bwd(c, dh2, dh1, a->h1, M * hid));
    TG_TRY(tg_linear_bwd(c, dtmp, GRAD(G, b->fc1_w), GRAD(G, b->fc1_b), dh2, a->ln2, W + b->fc1_w, M, C, hid));
    TG_TRY(norm_bwd(c, b, W, G, 2, dmid, dtmp, a->x_mid, a->mean2, a->var2, M, N, a->labels));
    tg_add_inplace(dmid, dx, mc);
    /* attention branch: x_mid = x_in + proj(attn(qkv(norm1(x_in)))) */
    TG_TRY(tg_linear_bwd(c, dtmp, GRAD(G, b->proj_w), GRAD(G, b->proj_b), dmid, a->att, W + b->proj_w, M, C, C));
    TG_TRY(tg_attention_bwd(c, dqkv, dbias, dtmp, a->qkv, bias, mask, B, N, C, b->H));
    TG_TRY(tg_linear_bwd(c, dtmp, GRAD(G, b->qkv_w), NULL, dqkv, a->ln1, W + b->qkv_w, M, C, 3 * C));
    TG_TRY(norm_bwd(c, b, W, G, 1, dx, dtmp, a->x_in, a->mean1, a->var1, M, N, a->labels));
    tg_add_inplace(dx, dmid, mc);
    return TG_OK;
}

void tg_relbias_index(int32_t *idx, int w)
{
    int N = w * w;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            idx[i * N + j] = (i / w - j / w + w - 1) * (2 * w - 1) + (i % w - j % w + w - 1);
}

void tg_relbias_gather(float *bias, const float *table, const int32_t *idx, int64_t N, int64_t H)
{
#pragma omp parallel for schedule(static)
    for (int64_t h = 0; h < H; h++)
        for (int64_t e = 0; e < N * N; e++)
            bias[h * N * N + e] = table[(int64_t)idx[e] * H + h];
}

void tg_relbias_scatter(float *dtable, const float *dbias, const int32_t *idx, int64_t N,
                        int64_t H)
{
    /* serial over entries: several (i, j) share a table row */
    for (int64_t e = 0; e < N * N; e++)
        for (int64_t h = 0; h < H; h++)
            dtable[(int64_t)idx[e] * H + h] += dbias[h * N * N + e];
}

void tg_locality_mask(uint8_t *mask, int w, int radius)
{
    int N = w * w;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            int dy = abs(i / w - j / w), dx = abs(i % w - j % w);
            mask[i * N + j] = (dy > dx ? dy : dx) <= radius;
        }
}

/* ---- second order: tangent forward and its reverse (see ops.h) ---- */

tg_status tg_block_jvp(tg_dnn *c, const tg_block *b, const float *W, float *xd, int64_t B,
                       int64_t N, const tg_block_acts *a, tg_block_acts *ta)
{
    int64_t M = B * N, C = b->C;
    if (b->norm != TG_NORM_LAYERNORM || b->rel_w || b->ncls)
        return tg_fail(TG_ERR_INTERNAL, "second order is implemented for layernorm blocks without "
                       "bias or class tables");
    /* a Linear's tangent is the Linear without its bias */
    memcpy(ta->x_in, xd, (size_t)(M * C) * sizeof *xd);
    tg_layernorm_jvp(ta->ln1, xd, a->x_in, a->mean1, a->var1, W + b->n1_g, M, C);
    TG_TRY(tg_linear_fwd(c, ta->qkv, ta->ln1, W + b->qkv_w, NULL, M, C, 3 * C));
    TG_TRY(tg_attention_jvp(c, ta->att, a->qkv, ta->qkv, B, N, C, b->H));
    TG_TRY(tg_linear_fwd(c, ta->x_mid, ta->att, W + b->proj_w, NULL, M, C, C));
    tg_add_inplace(ta->x_mid, xd, (size_t)(M * C));
    tg_layernorm_jvp(ta->ln2, ta->x_mid, a->x_mid, a->mean2, a->var2, W + b->n2_g, M, C);
    TG_TRY(tg_linear_fwd(c, ta->h1, ta->ln2, W + b->fc1_w, NULL, M, C, b->hid));
    TG_TRY(tg_gelu_bwd(c, ta->g1, ta->h1, a->h1, M * b->hid)); /* GELU'(h1) h1d */
    TG_TRY(tg_linear_fwd(c, xd, ta->g1, W + b->fc2_w, NULL, M, b->hid, C));
    tg_add_inplace(xd, ta->x_mid, (size_t)(M * C));
    return TG_OK;
}

/* reverse of a Linear for (y, yd): the primal and tangent parts share W */
static tg_status linear_bwd2(tg_dnn *c, float *dx, float *dxd, float *dw, float *db,
                             const float *dy, const float *dyd, const float *x, const float *xd,
                             const float *w, int64_t M, int64_t K, int64_t N)
{
    TG_TRY(tg_linear_bwd(c, dx, dw, db, dy, x, w, M, K, N));
    return tg_linear_bwd(c, dxd, dw, NULL, dyd, xd, w, M, K, N);
}

tg_status tg_block_bwd2(tg_dnn *c, const tg_block *b, const float *W, float *G, float *dx,
                        float *dxd, int64_t B, int64_t N, const tg_block_acts *a,
                        const tg_block_acts *ta, float *scratch)
{
    int64_t M = B * N, C = b->C, hid = b->hid;
    size_t mc = (size_t)(M * C), mh = (size_t)M * hid;
    float *m1 = scratch, *m1d = m1 + mc, *t1 = m1d + mc, *t1d = t1 + mc, *q = t1d + mc,
          *qd = q + 3 * mc, *h1 = qd + 3 * mc, *h1d = h1 + mh, *h2 = h1d + mh, *h2d = h2 + mh;
    /* MLP branch */
    TG_TRY(linear_bwd2(c, h1, h1d, G + b->fc2_w, G + b->fc2_b, dx, dxd, a->g1, ta->g1,
                       W + b->fc2_w, M, hid, C));
    TG_TRY(tg_gelu_bwd(c, h2, h1, a->h1, M * hid));
    tg_gelu_hvp(h2, a->h1, ta->h1, h1d, M * hid);
    TG_TRY(tg_gelu_bwd(c, h2d, h1d, a->h1, M * hid));
    TG_TRY(linear_bwd2(c, t1, t1d, G + b->fc1_w, G + b->fc1_b, h2, h2d, a->ln2, ta->ln2,
                       W + b->fc1_w, M, C, hid));
    tg_layernorm_bwd2(m1, m1d, G + b->n2_g, G + b->n2_b, t1, t1d, a->x_mid, ta->x_mid, a->mean2,
                      a->var2, W + b->n2_g, M, C);
    tg_add_inplace(m1, dx, mc);
    tg_add_inplace(m1d, dxd, mc);
    /* attention branch */
    TG_TRY(linear_bwd2(c, t1, t1d, G + b->proj_w, G + b->proj_b, m1, m1d, a->att, ta->att,
                       W + b->proj_w, M, C, C));
    TG_TRY(tg_attention_bwd2(c, q, qd, t1, t1d, a->qkv, ta->qkv, B, N, C, b->H));
    TG_TRY(linear_bwd2(c, t1, t1d, G + b->qkv_w, NULL, q, qd, a->ln1, ta->ln1, W + b->qkv_w, M,
                       C, 3 * C));
    tg_layernorm_bwd2(dx, dxd, G + b->n1_g, G + b->n1_b, t1, t1d, a->x_in, ta->x_in, a->mean1,
                      a->var1, W + b->n1_g, M, C);
    tg_add_inplace(dx, m1, mc);
    tg_add_inplace(dxd, m1d, mc);
    return TG_OK;
}
