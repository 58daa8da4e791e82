/* Matmul on strided views and the Linear layer built on it (forward and
 * backward side by side). oneDNN 2.6 has no matmul backward: gradients are
 * more matmuls over transposed views, always writing row-major results
 * (a transposed destination would fall back to a reference kernel). */
#include "bf16.h"
#include "ops.h"

tg_view tg_view_plain(int nd, const int64_t *dims)
{
    tg_view v = {.nd = nd};
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        v.dims[i] = dims[i];
        v.strides[i] = s;
        s *= dims[i];
    }
    return v;
}

static tg_status view_md(dnnl_memory_desc_t *md, const tg_view *v)
{
    return tg_md_strided(md, v->nd, v->dims, v->strides);
}

static int key_view(int64_t *key, int n, const tg_view *v)
{
    key[n++] = v->nd;
    for (int i = 0; i < v->nd; i++) {
        key[n++] = v->dims[i];
        key[n++] = v->strides[i];
    }
    return n;
}

tg_status tg_matmul_attr(dnnl_primitive_attr_t *out, float scale, int post)
{
    dnnl_primitive_attr_t at;
    TG_DNN(dnnl_primitive_attr_create(&at));
    dnnl_post_ops_t po = NULL;
    tg_status st = TG_OK;
    if (scale != 1.0f)
        st = tg_dnn_check(dnnl_primitive_attr_set_output_scales(at, 1, 0, &scale), "scales");
    if (st == TG_OK && post) {
        st = tg_dnn_check(dnnl_post_ops_create(&po), "post-ops");
        if (st == TG_OK && (post & TG_MM_GELU))
            st = tg_dnn_check(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf,
                                                           0.0f, 0.0f),
                              "GELU post-op");
        if (st == TG_OK && (post & TG_MM_SUM))
            st = tg_dnn_check(dnnl_post_ops_append_sum(po, 1.0f), "sum post-op");
        if (st == TG_OK)
            st = tg_dnn_check(dnnl_primitive_attr_set_post_ops(at, po), "set post-ops");
    }
    if (po)
        dnnl_post_ops_destroy(po);
    if (st != TG_OK) {
        dnnl_primitive_attr_destroy(at);
        return st;
    }
    *out = at;
    return TG_OK;
}

tg_status tg_matmul(tg_dnn *c, const tg_view *va, const float *a, const tg_view *vb,
                    const float *b, const tg_view *vc, float *out, const float *bias,
                    float scale, int post)
{
    int64_t key[TG_KEY_MAX];
    int n = 0;
    key[n++] = TG_OPK_MATMUL;
    n = key_view(key, n, va);
    n = key_view(key, n, vb);
    n = key_view(key, n, vc);
    union { float f; int32_t i; } sc = {.f = scale};
    key[n++] = sc.i;
    key[n++] = (bias != NULL) | (post << 1);
    tg_prim *p = tg_dnn_find(c, key, n);
    if (!p) {
        dnnl_memory_desc_t ma, mb, mc, mbias;
        TG_TRY(view_md(&ma, va));
        TG_TRY(view_md(&mb, vb));
        TG_TRY(view_md(&mc, vc));
        if (bias) {
            int64_t bd[4] = {1, 1, 1, 1};
            bd[vc->nd - 1] = vc->dims[vc->nd - 1];
            TG_TRY(tg_md_plain(&mbias, vc->nd, bd));
        }
        dnnl_matmul_desc_t d;
        TG_DNN(dnnl_matmul_desc_init(&d, &ma, &mb, bias ? &mbias : NULL, &mc));
        dnnl_primitive_attr_t at;
        TG_TRY(tg_matmul_attr(&at, scale, post));
        static const int args_b[] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS};
        tg_status st = tg_dnn_build(c, key, n, &d, at, NULL, bias ? 4 : 3, args_b, &p);
        dnnl_primitive_attr_destroy(at);
        TG_TRY(st);
    }
    void *bufs[4] = {(void *)a, (void *)b, out, (void *)bias};
    return tg_prim_exec(c, p, bufs);
}

/* The bf16 copy of a Linear's weights w [N, K] when the layer runs in bf16
 * (a model in bf16, bf16.h), else NULL: output layers (a few outputs:
 * to_rgb, the discriminator's head) keep f32 for accuracy and would gain
 * nothing. */
static tg_status bf16_weights(tg_dnn *c, const float *w, int64_t N, const uint16_t **wb)
{
    *wb = NULL;
    return N >= TG_BF16_MIN_OUT ? tg_dnn_bf16_weights(c, w, wb) : TG_OK;
}

/* The Linear with its weights' bf16 copy wb already looked up: bf16 (with
 * tg_linear_bf16's operand formats in post) when there is one, else f32
 * (post without them). */
static tg_status linear_wb(tg_dnn *c, void *y, const void *x, const float *w,
                           const uint16_t *wb, const float *b, int64_t M, int64_t K, int64_t N,
                           int post)
{
    if (wb)
        return tg_linear_bf16(c, y, x, wb, b, M, K, N, post);
    tg_view vx = tg_view_plain(2, (int64_t[]){M, K});
    tg_view vwt = {.nd = 2, .dims = {K, N}, .strides = {1, K}}; /* W^T as a view */
    tg_view vy = tg_view_plain(2, (int64_t[]){M, N});
    return tg_matmul(c, &vx, x, &vwt, w, &vy, y, b, 1.0f, post);
}

tg_status tg_linear_fwd_post(tg_dnn *c, float *y, const float *x, const float *w,
                             const float *b, int64_t M, int64_t K, int64_t N, int post)
{
    if (tg_linear_is_narrow(M, K, N, post)) {
        tg_linear_narrow_fwd(y, x, w, b, M, K, N, post);
        return TG_OK;
    }
    post &= ~TG_MM_INFER;
    const uint16_t *wb;
    TG_TRY(bf16_weights(c, w, N, &wb));
    return linear_wb(c, y, x, w, wb, b, M, K, N, post);
}

tg_status tg_mlp_fwd_infer(tg_dnn *c, float *y, const float *x, float *h, const float *w1,
                           const float *b1, const float *w2, const float *b2, int64_t M,
                           int64_t C, int64_t H)
{
    const uint16_t *wb1, *wb2 = NULL;
    int narrow2 = tg_linear_is_narrow(M, H, C, TG_MM_SUM | TG_MM_INFER); /* as _fwd_post */
    TG_TRY(bf16_weights(c, w1, H, &wb1));
    if (!narrow2)
        TG_TRY(bf16_weights(c, w2, C, &wb2));
    int hbf = wb1 && wb2; /* h in bf16: fc2 would round it to that anyway */
    TG_TRY(linear_wb(c, h, x, w1, wb1, b1, M, C, H, TG_MM_GELU | (hbf ? TG_LIN_Y_BF16 : 0)));
    if (narrow2) /* the one dispatch of tg_linear_fwd_post; h is f32 then */
        return tg_linear_fwd_post(c, y, h, w2, b2, M, H, C, TG_MM_SUM | TG_MM_INFER);
    return linear_wb(c, y, h, w2, wb2, b2, M, H, C, TG_MM_SUM | (hbf ? TG_LIN_X_BF16 : 0));
}

tg_status tg_linear_fwd(tg_dnn *c, float *y, const float *x, const float *w, const float *b,
                        int64_t M, int64_t K, int64_t N)
{
    return tg_linear_fwd_post(c, y, x, w, b, M, K, N, 0);
}

tg_status tg_linear_bwd(tg_dnn *c, float *dx, float *dw, float *db, const float *dy,
                        const float *x, const float *w, int64_t M, int64_t K, int64_t N)
{
    /* bf16 training (bf16.h): dx and dw from the weights' bf16 copy, the
     * layers the forward ran in bf16 (the output layers keep f32); db, a
     * sum of dy, stays f32 below */
    if ((dx || dw) && N >= TG_BF16_MIN_OUT) {
        const uint16_t *wb;
        TG_TRY(tg_dnn_bf16_weights(c, w, &wb));
        if (wb) {
            TG_TRY(tg_linear_bf16_bwd(c, dx, dw, dy, x, wb, M, K, N));
            dx = dw = NULL;
        }
    }
    tg_view vdy = tg_view_plain(2, (int64_t[]){M, N});
    if (dx) { /* dx[M,K] = dy[M,N] W[N,K] */
        tg_view vw = tg_view_plain(2, (int64_t[]){N, K});
        tg_view vdx = tg_view_plain(2, (int64_t[]){M, K});
        TG_TRY(tg_matmul(c, &vdy, dy, &vw, w, &vdx, dx, NULL, 1.0f, 0));
    }
    if (dw) { /* dw[N,K] += dy^T[N,M] x[M,K] */
        tg_view vdyt = {.nd = 2, .dims = {N, M}, .strides = {1, N}};
        tg_view vx = tg_view_plain(2, (int64_t[]){M, K});
        tg_view vdw = tg_view_plain(2, (int64_t[]){N, K});
        TG_TRY(tg_matmul(c, &vdyt, dy, &vx, x, &vdw, dw, NULL, 1.0f, TG_MM_SUM));
    }
    if (db) { /* db[1,N] += ones[1,M] dy[M,N]: a reduction primitive would be ref:any */
        const float *ones = tg_dnn_ones(c, (size_t)M);
        if (!ones)
            return TG_ERR_OUT_OF_MEMORY;
        tg_view v1 = tg_view_plain(2, (int64_t[]){1, M});
        tg_view vdb = tg_view_plain(2, (int64_t[]){1, N});
        TG_TRY(tg_matmul(c, &v1, ones, &vdy, dy, &vdb, db, NULL, 1.0f, TG_MM_SUM));
    }
    return TG_OK;
}
