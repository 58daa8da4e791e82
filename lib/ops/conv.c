/* 2-D convolution on oneDNN (forward, backward data, backward weights, side
 * by side), LeakyReLU and global pooling: what the convolutional
 * discriminator is made of (docs/SPECIFICATION.md "Convolutional
 * discriminator").
 *
 * Layouts are PyTorch's: activations NCHW, weights OIHW, both plain. With
 * them oneDNN 2.6 runs its gemm-based jit convolution (im2col + sgemm,
 * "gemm:jit") in all three directions on AVX2 and AVX-512 hosts; channels-
 * last activations with plain weights would fall to "ref:any", which the
 * strict context refuses. The primitives are built once per shape (batch
 * included) and cached in the model's context like every other op. */
#include "ops.h"

/* Cache-key op ids of this file, kept apart from dnn.h's list (which other
 * ops extend) by starting high. */
enum { OPK_CONV_FWD = 0x100, OPK_CONV_BWD_DATA, OPK_CONV_BWD_WEIGHTS };

static int conv_key(int64_t *key, int op, const tg_conv_shape *s, int bias)
{
    int n = 0;
    key[n++] = op;
    key[n++] = s->B, key[n++] = s->cin, key[n++] = s->cout, key[n++] = s->S;
    key[n++] = s->k, key[n++] = s->stride, key[n++] = s->pad, key[n++] = bias;
    return n;
}

typedef struct {
    dnnl_memory_desc_t src, w, b, dst;
    dnnl_dims_t strides, pad; /* oneDNN reads them as dnnl_dims_t */
} conv_mds;

static tg_status conv_mds_init(conv_mds *m, const tg_conv_shape *s)
{
    int64_t So = tg_conv_out(s);
    memset(m, 0, sizeof *m);
    TG_TRY(tg_md_plain(&m->src, 4, (int64_t[]){s->B, s->cin, s->S, s->S}));
    TG_TRY(tg_md_plain(&m->w, 4, (int64_t[]){s->cout, s->cin, s->k, s->k}));
    TG_TRY(tg_md_plain(&m->b, 1, (int64_t[]){s->cout}));
    TG_TRY(tg_md_plain(&m->dst, 4, (int64_t[]){s->B, s->cout, So, So}));
    m->strides[0] = m->strides[1] = s->stride;
    m->pad[0] = m->pad[1] = s->pad;
    return TG_OK;
}

/* The forward primitive (training: the backward ones take it as a hint). */
static tg_status fwd_prim(tg_dnn *c, const tg_conv_shape *s, int bias, tg_prim **out)
{
    int64_t key[TG_KEY_MAX];
    int n = conv_key(key, OPK_CONV_FWD, s, bias);
    if ((*out = tg_dnn_find(c, key, n)))
        return TG_OK;
    conv_mds m;
    TG_TRY(conv_mds_init(&m, s));
    dnnl_convolution_desc_t d;
    TG_DNN(dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, dnnl_convolution_direct,
                                              &m.src, &m.w, bias ? &m.b : NULL, &m.dst, m.strides,
                                              m.pad, m.pad));
    static const int args[] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS};
    return tg_dnn_build(c, key, n, &d, NULL, NULL, bias ? 4 : 3, args, out);
}

tg_status tg_conv2d_fwd(tg_dnn *c, const tg_conv_shape *s, float *y, const float *x,
                        const float *w, const float *b)
{
    tg_prim *p;
    TG_TRY(fwd_prim(c, s, b != NULL, &p));
    void *bufs[] = {(void *)x, (void *)w, y, (void *)b};
    return tg_prim_exec(c, p, bufs);
}

tg_status tg_conv2d_bwd(tg_dnn *c, const tg_conv_shape *s, float *dx, float *dw, float *db,
                        const float *dy, const float *x, const float *w)
{
    int64_t key[TG_KEY_MAX];
    if (dx) { /* dx = the transposed convolution of dy */
        int n = conv_key(key, OPK_CONV_BWD_DATA, s, 0);
        tg_prim *p = tg_dnn_find(c, key, n);
        if (!p) {
            tg_prim *fp;
            TG_TRY(fwd_prim(c, s, 0, &fp));
            conv_mds m;
            TG_TRY(conv_mds_init(&m, s));
            dnnl_convolution_desc_t d;
            TG_DNN(dnnl_convolution_backward_data_desc_init(&d, dnnl_convolution_direct, &m.src,
                                                            &m.w, &m.dst, m.strides, m.pad, m.pad));
            static const int args[] = {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC};
            TG_TRY(tg_dnn_build(c, key, n, &d, NULL, fp->pd, 3, args, &p));
        }
        void *bufs[] = {(void *)dy, (void *)w, dx};
        TG_TRY(tg_prim_exec(c, p, bufs));
    }
    if (!dw && !db)
        return TG_OK;
    /* oneDNN overwrites its weight gradient; ours is added (one buffer
     * collects a tensor's gradient over several passes), so it goes through
     * a temporary: [cout * cin * k * k | cout] */
    int bias = db != NULL;
    int n = conv_key(key, OPK_CONV_BWD_WEIGHTS, s, bias);
    tg_prim *p = tg_dnn_find(c, key, n);
    if (!p) {
        tg_prim *fp;
        TG_TRY(fwd_prim(c, s, bias, &fp));
        conv_mds m;
        TG_TRY(conv_mds_init(&m, s));
        dnnl_convolution_desc_t d;
        TG_DNN(dnnl_convolution_backward_weights_desc_init(&d, dnnl_convolution_direct, &m.src, &m.w,
                                                           bias ? &m.b : NULL, &m.dst, m.strides,
                                                           m.pad, m.pad));
        static const int args[] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS,
                                   DNNL_ARG_DIFF_BIAS};
        TG_TRY(tg_dnn_build(c, key, n, &d, NULL, fp->pd, bias ? 4 : 3, args, &p));
    }
    size_t nw = (size_t)(s->cout * s->cin * s->k * s->k), nb = (size_t)s->cout;
    float *tmp = tg_dnn_tmp(c, TG_TMP_CONV, nw + nb);
    if (!tmp)
        return TG_ERR_OUT_OF_MEMORY;
    void *bufs[] = {(void *)x, (void *)dy, tmp, tmp + nw};
    TG_TRY(tg_prim_exec(c, p, bufs));
    if (dw)
        tg_add_inplace(dw, tmp, nw);
    if (db)
        tg_add_inplace(db, tmp + nw, nb);
    return TG_OK;
}

/* ---- LeakyReLU: its derivative is 1 or slope, the sign of the input
 * deciding; its second derivative is 0 (almost everywhere) */

void tg_leaky_fwd(float *y, const float *x, size_t n, float slope)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0 ? x[i] : slope * x[i];
}

void tg_leaky_bwd(float *dx, const float *dy, const float *u, size_t n, float slope)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        dx[i] = u[i] > 0 ? dy[i] : slope * dy[i];
}

/* ---- global pooling over the S*S positions of each channel */

void tg_gpool_fwd(float *y, const float *x, int64_t B, int64_t C, int64_t SS, int mean)
{
    float k = mean ? 1.0f / (float)SS : 1.0f;
    for (int64_t bc = 0; bc < B * C; bc++) {
        float acc = 0;
        for (int64_t i = 0; i < SS; i++)
            acc += x[bc * SS + i];
        y[bc] = acc * k;
    }
}

void tg_gpool_bwd(float *dx, const float *dy, int64_t B, int64_t C, int64_t SS, int mean)
{
    float k = mean ? 1.0f / (float)SS : 1.0f;
    for (int64_t bc = 0; bc < B * C; bc++)
        for (int64_t i = 0; i < SS; i++)
            dx[bc * SS + i] = dy[bc] * k;
}
