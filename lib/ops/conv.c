/* 2-D convolution on oneDNN (forward, backward data, backward weights, side
 * by side), LeakyReLU and pooling: what the convolutional discriminator is
 * made of (docs/SPECIFICATION.md "Convolutional discriminator").
 *
 * Layouts. Activations are channels-last (NHWC) and the stored weights are
 * PyTorch's OIHW. With plain weights oneDNN 2.6 offers only its gemm-based
 * convolution (NCHW) or a reference kernel (NHWC), 3 to 7 times slower than
 * its direct jit kernels (brgconv / jit:avx512_core, jit:avx2, jit:sse41),
 * which want the weights in a blocked layout of their choosing. So the
 * primitives are created with the weights' format left to oneDNN ("any"),
 * and the weights are scattered into that layout on each call (and the
 * weight gradient gathered back) by a loop that reads the layout from the
 * memory descriptor: cheap beside the convolution (the weights are a small
 * fraction of its work). The primitives are built once per shape (batch
 * included) and cached in the model's context like every other op.
 *
 * bf16 training (bf16.h, tg_dnn_bf16_conv): the same three primitives with
 * bf16 operands and f32 results - forward bf16 x, w -> f32 y; backward data
 * bf16 dy, w -> f32 dx; backward weights bf16 x, dy -> f32 dw, db - the
 * operands rounded on the way in (the weights while they are scattered). */
#include "bf16.h"
#include "ops.h"

static int conv_key(int64_t *key, int op, const tg_conv_shape *s, int bias, int bf)
{
    int n = 0;
    key[n++] = op;
    key[n++] = bf;
    key[n++] = s->B, key[n++] = s->cin, key[n++] = s->cout, key[n++] = s->S;
    key[n++] = s->k, key[n++] = s->stride, key[n++] = s->pad, key[n++] = bias;
    return n;
}

typedef struct {
    dnnl_memory_desc_t src, w, b, dst;
    dnnl_dims_t strides, pad; /* oneDNN reads them as dnnl_dims_t */
} conv_mds;

/* The op's memory descriptors; bf: which of src, w, dst are bf16 (bits 1,
 * 2, 4; 0: all f32), the rest f32. */
enum { BF_SRC = 1, BF_W = 2, BF_DST = 4 };
static tg_status conv_mds_init(conv_mds *m, const tg_conv_shape *s, int bf)
{
    int64_t So = tg_conv_out(s);
    memset(m, 0, sizeof *m);
    dnnl_dims_t src = {s->B, s->cin, s->S, s->S}, w = {s->cout, s->cin, s->k, s->k},
                b = {s->cout}, dst = {s->B, s->cout, So, So};
    TG_DNN(dnnl_memory_desc_init_by_tag(&m->src, 4, src, bf & BF_SRC ? dnnl_bf16 : dnnl_f32,
                                        dnnl_nhwc));
    TG_DNN(dnnl_memory_desc_init_by_tag(&m->w, 4, w, bf & BF_W ? dnnl_bf16 : dnnl_f32,
                                        dnnl_format_tag_any));
    TG_DNN(dnnl_memory_desc_init_by_tag(&m->b, 1, b, dnnl_f32, dnnl_a));
    TG_DNN(dnnl_memory_desc_init_by_tag(&m->dst, 4, dst, bf & BF_DST ? dnnl_bf16 : dnnl_f32,
                                        dnnl_nhwc));
    m->strides[0] = m->strides[1] = s->stride;
    m->pad[0] = m->pad[1] = s->pad;
    return TG_OK;
}

/* ---- the weights between OIHW and the primitive's layout. A blocked
 * layout's offset is a sum of one term per dimension: the outer index
 * (index / the dimension's inner blocks) times its stride, plus each inner
 * block's digit times that block's stride (oneDNN's blocking descriptor). */
typedef struct {
    const dnnl_blocking_desc_t *bk;
    int64_t off0, blk[4];
} wlayout;

static tg_status wlayout_of(const dnnl_memory_desc_t *md, wlayout *L)
{
    if (md->format_kind != dnnl_blocked || md->ndims != 4)
        return tg_fail(TG_ERR_INTERNAL, "convolution weights in an unexpected layout");
    L->bk = &md->format_desc.blocking;
    L->off0 = md->offset0;
    for (int d = 0; d < 4; d++)
        L->blk[d] = 1;
    for (int k = 0; k < L->bk->inner_nblks; k++)
        L->blk[L->bk->inner_idxs[k]] *= L->bk->inner_blks[k];
    return TG_OK;
}

static int64_t dim_off(const wlayout *L, int d, int64_t x)
{
    int64_t off = x / L->blk[d] * L->bk->strides[d], div = 1, stride = 1;
    for (int k = L->bk->inner_nblks - 1; k >= 0; k--) { /* innermost block first */
        if (L->bk->inner_idxs[k] == d) {
            off += x / div % L->bk->inner_blks[k] * stride;
            div *= L->bk->inner_blks[k];
        }
        stride *= L->bk->inner_blks[k];
    }
    return off;
}

/* dir 0: blk (zeroed first: oneDNN needs its padding 0) = w (OIHW), as
 * bf16 (rounded) when bf; dir 1: w (OIHW) += blk (f32) */
static void weights_move(const wlayout *L, float *blk, size_t blk_bytes, float *w,
                         const tg_conv_shape *s, int dir, int bf)
{
    uint16_t *blk16 = (uint16_t *)blk;
    int64_t K = s->k, I = s->cin;
    int64_t oh[8], ow[8]; /* k <= 8 (checked by the caller) */
    for (int64_t h = 0; h < K; h++)
        oh[h] = dim_off(L, 2, h), ow[h] = dim_off(L, 3, h);
    if (dir == 0)
        memset(blk, 0, blk_bytes);
#pragma omp parallel for schedule(static) if (s->cout * I * K * K > 65536)
    for (int64_t o = 0; o < s->cout; o++) {
        int64_t fo = L->off0 + dim_off(L, 0, o);
        for (int64_t i = 0; i < I; i++) {
            int64_t fi = fo + dim_off(L, 1, i);
            float *wp = w + (o * I + i) * K * K;
            for (int64_t h = 0; h < K; h++)
                for (int64_t x = 0; x < K; x++) {
                    if (dir == 0 && bf)
                        blk16[fi + oh[h] + ow[x]] = tg_bf16_round(wp[h * K + x]);
                    else if (dir == 0)
                        blk[fi + oh[h] + ow[x]] = wp[h * K + x];
                    else
                        wp[h * K + x] += blk[fi + oh[h] + ow[x]];
                }
        }
    }
}

/* The primitive's weights (arg) as a layout, with its size in bytes. */
static tg_status prim_weights(tg_prim *p, int arg, wlayout *L, size_t *bytes)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(p->pd, dnnl_query_exec_arg_md, arg);
    if (!md)
        return tg_fail(TG_ERR_INTERNAL, "convolution primitive without weights");
    *bytes = dnnl_memory_desc_get_size(md);
    return wlayout_of(md, L);
}

/* w (OIHW) in primitive p's layout (bf16 when bf), in the context's
 * TG_TMP_CONV_W slot */
static tg_status weights_in(tg_dnn *c, tg_prim *p, int arg, const tg_conv_shape *s,
                            const float *w, int bf, float **out)
{
    wlayout L;
    size_t bytes;
    TG_TRY(prim_weights(p, arg, &L, &bytes));
    float *blk = tg_dnn_tmp(c, TG_TMP_CONV_W, bytes / sizeof(float) + 1);
    if (!blk)
        return TG_ERR_OUT_OF_MEMORY;
    weights_move(&L, blk, bytes, (float *)w, s, 0, bf);
    *out = blk;
    return TG_OK;
}

/* x[n] rounded to bf16 in the context's `slot` */
static tg_status to_bf16(tg_dnn *c, enum tg_tmp_slot slot, const float *x, size_t n,
                         uint16_t **out)
{
    uint16_t *b = (uint16_t *)tg_dnn_tmp(c, slot, (n + 1) / 2);
    if (!b)
        return TG_ERR_OUT_OF_MEMORY;
    tg_bf16_from_f32(b, x, n);
    *out = b;
    return TG_OK;
}

static size_t in_floats(const tg_conv_shape *s) { return (size_t)(s->B * s->S * s->S * s->cin); }
static size_t out_floats(const tg_conv_shape *s)
{
    int64_t So = tg_conv_out(s);
    return (size_t)(s->B * So * So * s->cout);
}

/* The forward primitive (training: the backward ones take it as a hint);
 * bf: bf16 x and w (f32 y). */
static tg_status fwd_prim(tg_dnn *c, const tg_conv_shape *s, int bias, int bf, tg_prim **out)
{
    int64_t key[TG_KEY_MAX];
    int n = conv_key(key, TG_OPK_CONV_FWD, s, bias, bf);
    if ((*out = tg_dnn_find(c, key, n)))
        return TG_OK;
    if (s->k > 8)
        return tg_fail(TG_ERR_INTERNAL, "convolution kernel %lld > 8", (long long)s->k);
    conv_mds m;
    TG_TRY(conv_mds_init(&m, s, bf ? BF_SRC | BF_W : 0));
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
    int bf = tg_dnn_bf16_conv(c, w);
    tg_prim *p;
    float *wb;
    TG_TRY(fwd_prim(c, s, b != NULL, bf, &p));
    TG_TRY(weights_in(c, p, DNNL_ARG_WEIGHTS, s, w, bf, &wb));
    const void *src = x;
    if (bf) {
        uint16_t *xb;
        TG_TRY(to_bf16(c, TG_TMP_BF16, x, in_floats(s), &xb));
        src = xb;
    }
    void *bufs[] = {(void *)src, wb, y, (void *)b};
    return tg_prim_exec(c, p, bufs);
}

tg_status tg_conv2d_bwd(tg_dnn *c, const tg_conv_shape *s, float *dx, float *dw, float *db,
                        const float *dy, const float *x, const float *w)
{
    int64_t key[TG_KEY_MAX];
    int bf = tg_dnn_bf16_conv(c, w);
    const void *dyo = dy; /* dy as the primitives read it */
    if (bf) { /* one rounding of dy serves both passes */
        uint16_t *dyb;
        TG_TRY(to_bf16(c, TG_TMP_BF16_DY, dy, out_floats(s), &dyb));
        dyo = dyb;
    }
    if (dx) { /* dx = the transposed convolution of dy */
        int n = conv_key(key, TG_OPK_CONV_BWD_DATA, s, 0, bf);
        tg_prim *p = tg_dnn_find(c, key, n);
        if (!p) {
            tg_prim *fp;
            TG_TRY(fwd_prim(c, s, 0, bf, &fp));
            conv_mds m;
            TG_TRY(conv_mds_init(&m, s, bf ? BF_W | BF_DST : 0));
            dnnl_convolution_desc_t d;
            TG_DNN(dnnl_convolution_backward_data_desc_init(&d, dnnl_convolution_direct, &m.src,
                                                            &m.w, &m.dst, m.strides, m.pad, m.pad));
            static const int args[] = {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC};
            TG_TRY(tg_dnn_build(c, key, n, &d, NULL, fp->pd, 3, args, &p));
        }
        float *wb;
        TG_TRY(weights_in(c, p, DNNL_ARG_WEIGHTS, s, w, bf, &wb));
        void *bufs[] = {(void *)dyo, wb, dx};
        TG_TRY(tg_prim_exec(c, p, bufs));
    }
    if (!dw && !db)
        return TG_OK;
    /* oneDNN writes its weight gradient (in its layout) and bias gradient;
     * ours are added (one buffer collects a tensor's gradient over several
     * passes): through temporaries */
    int bias = db != NULL;
    int n = conv_key(key, TG_OPK_CONV_BWD_WEIGHTS, s, bias, bf);
    tg_prim *p = tg_dnn_find(c, key, n);
    if (!p) {
        tg_prim *fp;
        TG_TRY(fwd_prim(c, s, bias, bf, &fp));
        conv_mds m;
        TG_TRY(conv_mds_init(&m, s, bf ? BF_SRC | BF_DST : 0));
        dnnl_convolution_desc_t d;
        TG_DNN(dnnl_convolution_backward_weights_desc_init(&d, dnnl_convolution_direct, &m.src, &m.w,
                                                           bias ? &m.b : NULL, &m.dst, m.strides,
                                                           m.pad, m.pad));
        static const int args[] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS,
                                   DNNL_ARG_DIFF_BIAS};
        TG_TRY(tg_dnn_build(c, key, n, &d, NULL, fp->pd, bias ? 4 : 3, args, &p));
    }
    wlayout L;
    size_t bytes;
    TG_TRY(prim_weights(p, DNNL_ARG_DIFF_WEIGHTS, &L, &bytes));
    float *dwb = tg_dnn_tmp(c, TG_TMP_CONV_W, bytes / sizeof(float) + 1);
    float *dbt = tg_dnn_tmp(c, TG_TMP_CONV, (size_t)s->cout);
    if (!dwb || !dbt)
        return TG_ERR_OUT_OF_MEMORY;
    const void *src = x;
    if (bf) {
        uint16_t *xb;
        TG_TRY(to_bf16(c, TG_TMP_BF16, x, in_floats(s), &xb));
        src = xb;
    }
    void *bufs[] = {(void *)src, (void *)dyo, dwb, dbt};
    TG_TRY(tg_prim_exec(c, p, bufs));
    if (dw)
        weights_move(&L, dwb, bytes, dw, s, 1, 0);
    if (db)
        tg_add_inplace(db, dbt, (size_t)s->cout);
    return TG_OK;
}

/* ---- 2x2 average pooling on NHWC: [B, S, S, C] -> [B, S/2, S/2, C] */

void tg_avgpool2_nhwc_fwd(float *y, const float *x, int64_t B, int64_t S, int64_t C)
{
    int64_t s = S / 2;
#pragma omp parallel for schedule(static) if (B * S * S * C > 65536)
    for (int64_t bi = 0; bi < B * s; bi++) {
        int64_t b = bi / s, i = bi % s;
        for (int64_t j = 0; j < s; j++) {
            const float *p = x + ((b * S + 2 * i) * S + 2 * j) * C;
            float *q = y + ((b * s + i) * s + j) * C;
            for (int64_t c = 0; c < C; c++)
                q[c] = 0.25f * (p[c] + p[C + c] + p[S * C + c] + p[S * C + C + c]);
        }
    }
}

void tg_avgpool2_nhwc_bwd(float *dx, const float *dy, int64_t B, int64_t S, int64_t C)
{
    int64_t s = S / 2;
#pragma omp parallel for schedule(static) if (B * S * S * C > 65536)
    for (int64_t by = 0; by < B * S; by++) {
        int64_t b = by / S, yy = by % S;
        for (int64_t xx = 0; xx < S; xx++) {
            const float *g = dy + ((b * s + yy / 2) * s + xx / 2) * C;
            float *q = dx + ((b * S + yy) * S + xx) * C;
            for (int64_t c = 0; c < C; c++)
                q[c] = 0.25f * g[c];
        }
    }
}

/* ---- LeakyReLU: its derivative is 1 or slope, the sign of the input
 * deciding; its second derivative is 0 (almost everywhere) */

/* The factor (1 or slope) is picked by a bit mask: written as `x > 0 ? x :
 * slope * x`, or as a select between the two constants, GCC at -O2 keeps a
 * branch (no if-conversion), mispredicted on half of the random-signed
 * inputs, which made these two loops 14 % of a conv-D training step; the
 * masked form vectorises. Results as before: x * 1 is x, NaN stays NaN. */
static inline float leaky_factor(float v, uint32_t one, uint32_t sl)
{
    uint32_t m = (uint32_t)0 - (uint32_t)(v > 0), kb = (one & m) | (sl & ~m);
    float k;
    memcpy(&k, &kb, sizeof k);
    return k;
}

void tg_leaky_fwd(float *y, const float *x, size_t n, float slope)
{
    uint32_t one = 0x3f800000u, sl;
    memcpy(&sl, &slope, sizeof sl);
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * leaky_factor(x[i], one, sl);
}

void tg_leaky_bwd(float *dx, const float *dy, const float *u, size_t n, float slope)
{
    uint32_t one = 0x3f800000u, sl;
    memcpy(&sl, &slope, sizeof sl);
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * leaky_factor(u[i], one, sl);
}

/* ---- global pooling over the SS positions of NHWC [B, SS, C] */

void tg_gpool_fwd(float *y, const float *x, int64_t B, int64_t C, int64_t SS, int mean)
{
    float k = mean ? 1.0f / (float)SS : 1.0f;
    for (int64_t b = 0; b < B; b++) {
        float *q = y + b * C;
        for (int64_t c = 0; c < C; c++)
            q[c] = 0;
        for (int64_t i = 0; i < SS; i++)
            for (int64_t c = 0; c < C; c++)
                q[c] += x[(b * SS + i) * C + c];
        for (int64_t c = 0; c < C; c++)
            q[c] *= k;
    }
}

void tg_gpool_bwd(float *dx, const float *dy, int64_t B, int64_t C, int64_t SS, int mean)
{
    float k = mean ? 1.0f / (float)SS : 1.0f;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < SS; i++)
            for (int64_t c = 0; c < C; c++)
                dx[(b * SS + i) * C + c] = dy[b * C + c] * k;
}
