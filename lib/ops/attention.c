/* Multi-head softmax attention on oneDNN matmul and softmax, forward and
 * backward. Heads are addressed through strided views of the [B, N, 3C] qkv
 * buffer, so no reorders are made. The [H, N, N] score matrices exist for a
 * chunk of images at a time (bounded memory); backward recomputes them. */
#include <math.h>

#include "attention_rows.h"
#include "ops.h"

/* Score floats per chunk: 4 Mi floats (16 MiB) per buffer; tests lower it to
 * exercise chunking. */
int64_t tg_attention_chunk_floats = (int64_t)1 << 22;
#define ATTN_CHUNK_FLOATS tg_attention_chunk_floats

static int64_t chunk_images(int64_t B, int64_t N, int64_t H)
{
    int64_t per = H * N * N;
    int64_t cb = ATTN_CHUNK_FLOATS / (per > 0 ? per : 1);
    return TG_MAX(1, TG_MIN(B, cb));
}

/* [cb, H, N, dh] view of one third of qkv (part 0 = q, 1 = k, 2 = v) */
static tg_view head_view(int64_t cb, int64_t H, int64_t N, int64_t dh, int64_t row)
{
    return (tg_view){.nd = 4, .dims = {cb, H, N, dh}, .strides = {N * row, dh, row, 1}};
}

/* its transpose [cb, H, dh, N] */
static tg_view head_view_t(int64_t cb, int64_t H, int64_t N, int64_t dh, int64_t row)
{
    return (tg_view){.nd = 4, .dims = {cb, H, dh, N}, .strides = {N * row, dh, 1, row}};
}

static tg_status softmax_prim(tg_dnn *c, int64_t rows, int64_t N, tg_prim **out)
{
    int64_t key[] = {TG_OPK_SOFTMAX_FWD, rows, N};
    *out = tg_dnn_find(c, key, 3);
    if (*out)
        return TG_OK;
    dnnl_memory_desc_t md;
    TG_TRY(tg_md_plain(&md, 2, (int64_t[]){rows, N}));
    dnnl_softmax_v2_desc_t d;
    TG_DNN(dnnl_softmax_v2_forward_desc_init(&d, dnnl_forward_training, dnnl_softmax_accurate,
                                             &md, &md, 1));
    static const int args[] = {DNNL_ARG_SRC, DNNL_ARG_DST};
    return tg_dnn_build(c, key, 3, &d, NULL, NULL, 2, args, out);
}

/* out = P o (x - rowsum(P o x)), row by row: the softmax's Jacobian applied to
 * x, which is both its backward (x = dP gives dS) and its tangent (x = Sd
 * gives Pd). Our own loop rather than oneDNN's softmax backward: oneDNN 2.6
 * has a jit kernel for it only on AVX-512 and falls back to its slow
 * reference kernel on AVX2 and older CPUs (docs/PERFORMANCE.md "Every
 * x86-64"). Two passes over each row, memory-bound; each row's sum is
 * computed by one thread, so the result does not depend on the thread count. */
static void softmax_jac(float *restrict out, const float *restrict P, const float *restrict x,
                        int64_t rows, int64_t N)
{
#pragma omp parallel for schedule(static) if (rows * N > 32768)
    for (int64_t r = 0; r < rows; r++) {
        const float *p = P + r * N, *g = x + r * N;
        float *o = out + r * N;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < N; j++)
            s += p[j] * g[j];
#pragma omp simd
        for (int64_t j = 0; j < N; j++)
            o[j] = p[j] * (g[j] - s);
    }
}

/* P = softmax(q k^T * scale + bias, masked) for images [b0, b0 + cb) */
static tg_status scores(tg_dnn *c, float *P, const float *qkv, const float *bias,
                        const uint8_t *mask, int64_t b0, int64_t cb, int64_t N, int64_t C,
                        int64_t H)
{
    int64_t dh = C / H, row = 3 * C;
    const float *base = qkv + b0 * N * row;
    tg_view vq = head_view(cb, H, N, dh, row);
    tg_view vkt = head_view_t(cb, H, N, dh, row);
    tg_view vs = tg_view_plain(4, (int64_t[]){cb, H, N, N});
    TG_TRY(tg_matmul(c, &vq, base, &vkt, base + C, &vs, P, NULL, 1.0f / sqrtf((float)dh), 0));
    if (bias || mask) {
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < cb * H * N; r++) {
            int64_t h = (r / N) % H, i = r % N;
            tg_att_bias_mask(P + r * N, bias ? bias + (h * N + i) * N : NULL, 1.0f,
                             mask ? mask + i * N : NULL, N);
        }
    }
    tg_prim *sp;
    TG_TRY(softmax_prim(c, cb * H * N, N, &sp));
    void *bufs[] = {P, P};
    return tg_prim_exec(c, sp, bufs);
}

tg_status tg_attention_fwd(tg_dnn *c, float *out, const float *qkv, const float *bias,
                           const uint8_t *mask, int64_t B, int64_t N, int64_t C, int64_t H)
{
    if (N >= tg_attention_fused_min_tokens)
        return tg_attention_fused_fwd(c, out, qkv, bias, mask, B, N, C, H);
    int64_t dh = C / H, row = 3 * C, cb = chunk_images(B, N, H);
    float *P = tg_dnn_tmp(c, TG_TMP_ATT_P, (size_t)(cb * H * N * N));
    if (!P)
        return TG_ERR_OUT_OF_MEMORY;
    for (int64_t b0 = 0; b0 < B; b0 += cb) {
        int64_t n = TG_MIN(cb, B - b0);
        TG_TRY(scores(c, P, qkv, bias, mask, b0, n, N, C, H));
        tg_view vp = tg_view_plain(4, (int64_t[]){n, H, N, N});
        tg_view vv = head_view(n, H, N, dh, row);
        tg_view vo = head_view(n, H, N, dh, C);
        TG_TRY(tg_matmul(c, &vp, P, &vv, qkv + b0 * N * row + 2 * C, &vo, out + b0 * N * C,
                         NULL, 1.0f, 0));
    }
    return TG_OK;
}

tg_status tg_attention_bwd(tg_dnn *c, float *dqkv, float *dbias, const float *dout,
                           const float *qkv, const float *bias, const uint8_t *mask, int64_t B,
                           int64_t N, int64_t C, int64_t H)
{
    if (N >= tg_attention_fused_min_tokens)
        return tg_attention_fused_bwd(c, dqkv, dbias, dout, qkv, bias, mask, B, N, C, H);
    int64_t dh = C / H, row = 3 * C, cb = chunk_images(B, N, H);
    size_t sz = (size_t)(cb * H * N * N);
    float *P = tg_dnn_tmp(c, TG_TMP_ATT_P, sz), *dP = tg_dnn_tmp(c, TG_TMP_ATT_DP, sz),
          *dS = tg_dnn_tmp(c, TG_TMP_ATT_DS, sz);
    if (!P || !dP || !dS)
        return TG_ERR_OUT_OF_MEMORY;
    float scale = 1.0f / sqrtf((float)dh);
    for (int64_t b0 = 0; b0 < B; b0 += cb) {
        int64_t n = TG_MIN(cb, B - b0);
        const float *q = qkv + b0 * N * row;
        float *dq = dqkv + b0 * N * row;
        const float *dO = dout + b0 * N * C;
        TG_TRY(scores(c, P, qkv, bias, mask, b0, n, N, C, H));
        tg_view vdo = head_view(n, H, N, dh, C);
        tg_view vs = tg_view_plain(4, (int64_t[]){n, H, N, N});
        tg_view vst = {.nd = 4, .dims = {n, H, N, N}, .strides = {H * N * N, N * N, 1, N}};
        tg_view vh = head_view(n, H, N, dh, row);
        tg_view vht = head_view_t(n, H, N, dh, row);
        /* dP = dO V^T ; dV = P^T dO */
        TG_TRY(tg_matmul(c, &vdo, dO, &vht, q + 2 * C, &vs, dP, NULL, 1.0f, 0));
        TG_TRY(tg_matmul(c, &vst, P, &vdo, dO, &vh, dq + 2 * C, NULL, 1.0f, 0));
        /* dS = softmax backward (the gradient of the logits) */
        softmax_jac(dS, P, dP, n * H * N, N);
        if (dbias) {
            int64_t hn = H * N * N;
#pragma omp parallel for schedule(static)
            for (int64_t e = 0; e < hn; e++) {
                float s = 0;
                for (int64_t b = 0; b < n; b++)
                    s += dS[b * hn + e];
                dbias[e] += s;
            }
        }
        /* dQ = scale dS K ; dK = scale dS^T Q */
        TG_TRY(tg_matmul(c, &vs, dS, &vh, q + C, &vh, dq, NULL, scale, 0));
        TG_TRY(tg_matmul(c, &vst, dS, &vh, q, &vh, dq + C, NULL, scale, 0));
    }
    return TG_OK;
}

/* ---- second order (no bias, no mask: the discriminator's attention;
 * docs/SECOND_ORDER.md section 8) ----
 * Per head: S = sc Q K^T, P = softmax(S), O = P V. Tangents:
 *   Sd = sc (Qd K^T + Q Kd^T), Pd = P o (Sd - rowsum(P o Sd)), Od = Pd V + P Vd. */

/* P, Sd, Pd of images [b0, b0 + n) */
static tg_status tangent_scores(tg_dnn *c, float *P, float *Sd, float *Pd, const float *qkv,
                                const float *qkvd, int64_t b0, int64_t n, int64_t N, int64_t C,
                                int64_t H)
{
    int64_t dh = C / H, row = 3 * C;
    float sc = 1.0f / sqrtf((float)dh);
    const float *q = qkv + b0 * N * row, *qd = qkvd + b0 * N * row;
    TG_TRY(scores(c, P, qkv, NULL, NULL, b0, n, N, C, H));
    tg_view vq = head_view(n, H, N, dh, row), vkt = head_view_t(n, H, N, dh, row);
    tg_view vs = tg_view_plain(4, (int64_t[]){n, H, N, N});
    TG_TRY(tg_matmul(c, &vq, qd, &vkt, q + C, &vs, Sd, NULL, sc, 0));
    TG_TRY(tg_matmul(c, &vq, q, &vkt, qd + C, &vs, Sd, NULL, sc, TG_MM_SUM));
    softmax_jac(Pd, P, Sd, n * H * N, N);
    return TG_OK;
}

tg_status tg_attention_jvp(tg_dnn *c, float *outd, const float *qkv, const float *qkvd,
                           int64_t B, int64_t N, int64_t C, int64_t H)
{
    int64_t dh = C / H, row = 3 * C, cb = chunk_images(B, N, H);
    size_t sz = (size_t)(cb * H * N * N);
    float *P = tg_dnn_tmp(c, TG_TMP_ATT_P, sz), *Sd = tg_dnn_tmp(c, TG_TMP_ATT_DP, sz),
          *Pd = tg_dnn_tmp(c, TG_TMP_ATT_DS, sz);
    if (!P || !Sd || !Pd)
        return TG_ERR_OUT_OF_MEMORY;
    for (int64_t b0 = 0; b0 < B; b0 += cb) {
        int64_t n = TG_MIN(cb, B - b0);
        TG_TRY(tangent_scores(c, P, Sd, Pd, qkv, qkvd, b0, n, N, C, H));
        tg_view vp = tg_view_plain(4, (int64_t[]){n, H, N, N});
        tg_view vv = head_view(n, H, N, dh, row), vo = head_view(n, H, N, dh, C);
        const float *v = qkv + b0 * N * row + 2 * C, *vd = qkvd + b0 * N * row + 2 * C;
        TG_TRY(tg_matmul(c, &vp, Pd, &vv, v, &vo, outd + b0 * N * C, NULL, 1.0f, 0));
        TG_TRY(tg_matmul(c, &vp, P, &vv, vd, &vo, outd + b0 * N * C, NULL, 1.0f, TG_MM_SUM));
    }
    return TG_OK;
}

tg_status tg_attention_bwd2(tg_dnn *c, float *dqkv, float *dqkvd, const float *dout,
                            const float *doutd, const float *qkv, const float *qkvd, int64_t B,
                            int64_t N, int64_t C, int64_t H)
{
    int64_t dh = C / H, row = 3 * C, cb = chunk_images(B, N, H);
    size_t sz = (size_t)(cb * H * N * N);
    float *P = tg_dnn_tmp(c, TG_TMP_ATT_P, sz), *Sd = tg_dnn_tmp(c, TG_TMP_ATT_DP, sz),
          *Pd = tg_dnn_tmp(c, TG_TMP_ATT_DS, sz), *Pdb = tg_dnn_tmp(c, TG_TMP_ATT_PDB, sz),
          *Pb = tg_dnn_tmp(c, TG_TMP_ATT_PB, sz);
    if (!P || !Sd || !Pd || !Pdb || !Pb)
        return TG_ERR_OUT_OF_MEMORY;
    float sc = 1.0f / sqrtf((float)dh);
    for (int64_t b0 = 0; b0 < B; b0 += cb) {
        int64_t n = TG_MIN(cb, B - b0);
        const float *q = qkv + b0 * N * row, *qd = qkvd + b0 * N * row;
        const float *dO = dout + b0 * N * C, *dOd = doutd + b0 * N * C;
        float *g = dqkv + b0 * N * row, *gd = dqkvd + b0 * N * row;
        TG_TRY(tangent_scores(c, P, Sd, Pd, qkv, qkvd, b0, n, N, C, H));
        tg_view vo = head_view(n, H, N, dh, C), vh = head_view(n, H, N, dh, row),
                vht = head_view_t(n, H, N, dh, row);
        tg_view vs = tg_view_plain(4, (int64_t[]){n, H, N, N});
        tg_view vst = {.nd = 4, .dims = {n, H, N, N}, .strides = {H * N * N, N * N, 1, N}};
        /* Od = Pd V + P Vd ; O = P V */
        TG_TRY(tg_matmul(c, &vo, dOd, &vht, q + 2 * C, &vs, Pdb, NULL, 1.0f, 0)); /* Pd_bar */
        TG_TRY(tg_matmul(c, &vo, dOd, &vht, qd + 2 * C, &vs, Pb, NULL, 1.0f, 0)); /* P_bar */
        TG_TRY(tg_matmul(c, &vo, dO, &vht, q + 2 * C, &vs, Pb, NULL, 1.0f, TG_MM_SUM));
        TG_TRY(tg_matmul(c, &vst, Pd, &vo, dOd, &vh, g + 2 * C, NULL, 1.0f, 0)); /* V_bar */
        TG_TRY(tg_matmul(c, &vst, P, &vo, dO, &vh, g + 2 * C, NULL, 1.0f, TG_MM_SUM));
        TG_TRY(tg_matmul(c, &vst, P, &vo, dOd, &vh, gd + 2 * C, NULL, 1.0f, 0)); /* Vd_bar */
        /* Pd = P o (Sd - r): P_bar += Pdb o (Sd - r) - Sd rowsum(Pdb o P) */
#pragma omp parallel for schedule(static)
        for (int64_t rr = 0; rr < n * H * N; rr++) {
            const float *p = P + rr * N, *sd = Sd + rr * N, *pdb = Pdb + rr * N;
            float *pb = Pb + rr * N;
            double r = 0, r2 = 0;
            for (int64_t j = 0; j < N; j++) {
                r += (double)p[j] * sd[j];
                r2 += (double)pdb[j] * p[j];
            }
            for (int64_t j = 0; j < N; j++)
                pb[j] += (float)(pdb[j] * (sd[j] - r) - sd[j] * r2);
        }
        float *Sdb = Sd, *Sb = Pd; /* Sd and Pd are no longer needed */
        softmax_jac(Sdb, P, Pdb, n * H * N, N);
        softmax_jac(Sb, P, Pb, n * H * N, N);
        /* S = sc Q K^T, Sd = sc (Qd K^T + Q Kd^T) */
        TG_TRY(tg_matmul(c, &vs, Sb, &vh, q + C, &vh, g, NULL, sc, 0));           /* Q_bar */
        TG_TRY(tg_matmul(c, &vs, Sdb, &vh, qd + C, &vh, g, NULL, sc, TG_MM_SUM));
        TG_TRY(tg_matmul(c, &vst, Sb, &vh, q, &vh, g + C, NULL, sc, 0));          /* K_bar */
        TG_TRY(tg_matmul(c, &vst, Sdb, &vh, qd, &vh, g + C, NULL, sc, TG_MM_SUM));
        TG_TRY(tg_matmul(c, &vs, Sdb, &vh, q + C, &vh, gd, NULL, sc, 0));         /* Qd_bar */
        TG_TRY(tg_matmul(c, &vst, Sdb, &vh, q, &vh, gd + C, NULL, sc, 0));        /* Kd_bar */
    }
    return TG_OK;
}
