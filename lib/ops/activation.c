/* Element-wise activations on oneDNN eltwise: exact-erf GELU and tanh. */
#include <math.h>

#include "ops.h"

static tg_status elt_fwd_prim(tg_dnn *c, dnnl_alg_kind_t alg, int64_t n, tg_prim **out)
{
    int64_t key[] = {TG_OPK_ELTWISE_FWD, alg, n};
    *out = tg_dnn_find(c, key, 3);
    if (*out)
        return TG_OK;
    dnnl_memory_desc_t md;
    TG_TRY(tg_md_plain(&md, 1, &n));
    dnnl_eltwise_desc_t d;
    TG_DNN(dnnl_eltwise_forward_desc_init(&d, dnnl_forward_training, alg, &md, 0.f, 0.f));
    static const int args[] = {DNNL_ARG_SRC, DNNL_ARG_DST};
    return tg_dnn_build(c, key, 3, &d, NULL, NULL, 2, args, out);
}

static tg_status elt_fwd(tg_dnn *c, dnnl_alg_kind_t alg, float *y, const float *x, int64_t n)
{
    if (n == 0)
        return TG_OK;
    tg_prim *p;
    TG_TRY(elt_fwd_prim(c, alg, n, &p));
    void *bufs[] = {(void *)x, y};
    return tg_prim_exec(c, p, bufs);
}

/* `data` is the forward's src, or its dst for the *_use_dst_for_bwd kinds. */
static tg_status elt_bwd(tg_dnn *c, dnnl_alg_kind_t alg, int use_dst, float *dx,
                         const float *dy, const float *data, int64_t n)
{
    if (n == 0)
        return TG_OK;
    int64_t key[] = {TG_OPK_ELTWISE_BWD, alg, n};
    tg_prim *p = tg_dnn_find(c, key, 3);
    if (!p) {
        tg_prim *fp;
        TG_TRY(elt_fwd_prim(c, alg, n, &fp));
        dnnl_memory_desc_t md;
        TG_TRY(tg_md_plain(&md, 1, &n));
        dnnl_eltwise_desc_t d;
        TG_DNN(dnnl_eltwise_backward_desc_init(&d, alg, &md, &md, 0.f, 0.f));
        int args[] = {use_dst ? DNNL_ARG_DST : DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC};
        TG_TRY(tg_dnn_build(c, key, 3, &d, NULL, fp->pd, 3, args, &p));
    }
    void *bufs[] = {(void *)data, (void *)dy, dx};
    return tg_prim_exec(c, p, bufs);
}

tg_status tg_gelu_fwd(tg_dnn *c, float *y, const float *x, int64_t n)
{
    return elt_fwd(c, dnnl_eltwise_gelu_erf, y, x, n);
}

tg_status tg_gelu_bwd(tg_dnn *c, float *dx, const float *dy, const float *x, int64_t n)
{
    return elt_bwd(c, dnnl_eltwise_gelu_erf, 0, dx, dy, x, n);
}

tg_status tg_tanh_fwd(tg_dnn *c, float *y, const float *x, int64_t n)
{
    return elt_fwd(c, dnnl_eltwise_tanh_use_dst_for_bwd, y, x, n);
}

tg_status tg_tanh_bwd(tg_dnn *c, float *dx, const float *dy, const float *y, int64_t n)
{
    return elt_bwd(c, dnnl_eltwise_tanh_use_dst_for_bwd, 1, dx, dy, y, n);
}

/* GELU(x) = x Phi(x): GELU'' = phi(x) (2 - x^2), phi the normal density
 * (docs/SECOND_ORDER.md section 6). */
void tg_gelu_hvp(float *dx, const float *x, const float *xd, const float *dyd, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        double v = x[i], pdf = 0.3989422804014327 * exp(-0.5 * v * v);
        dx[i] += (float)(pdf * (2.0 - v * v) * xd[i] * dyd[i]);
    }
}
