/* bf16 inference and training: the CPU check, f32 -> bf16 rounding, the
 * weight copies a context keeps, and the Linear layer on oneDNN's bf16
 * matmul (bf16 inputs, f32 accumulation and output), forward and backward.
 * Inference uses it in bf16 precision, training with training.precision
 * "bf16"; the tests' gradient checks stay f32 (tg_dnn_bf16_set is off). */
#include <cpuid.h>
#include <pthread.h>

#include <immintrin.h>

#include "bf16.h"
#include "ops.h"

/* ---------------------------------------------------------------- CPU */
static int g_bf16_ok;
static pthread_once_t g_bf16_once = PTHREAD_ONCE_INIT;

static void bf16_detect(void)
{
    /* oneDNN's view first: it honours ONEDNN_MAX_CPU_ISA and checks that the
     * OS saves the AVX-512 state; a cap below avx512_core_bf16 means f32 */
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if (((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) !=
        (unsigned)dnnl_cpu_isa_avx512_core_bf16)
        return;
    /* and our own kernels' instructions: CPUID.(EAX=7,ECX=1):EAX[5] */
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d))
        return;
    g_bf16_ok = (a >> 5) & 1u;
}

int tg_bf16_supported(void)
{
    pthread_once(&g_bf16_once, bf16_detect);
    return g_bf16_ok;
}

/* ---------------------------------------------------------- rounding */
/* In C (finite inputs: round half to even on the dropped bits): the tail
 * of the fast version, and CPUs without bf16. */
static void cvt_c(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = tg_bf16_round(src[i]);
}

/* vcvtneps2bf16: 16 floats per instruction, the same rounding; only called
 * when tg_bf16_supported() */
__attribute__((target("avx512f,avx512bf16"))) static void cvt_avx512bf16(uint16_t *dst,
                                                                        const float *src,
                                                                        size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)h);
    }
    cvt_c(dst + i, src + i, n - i);
}

void tg_bf16_from_f32(uint16_t *dst, const float *src, size_t n)
{
    const size_t chunk = 16384; /* 64 KiB of input per task */
    int fast = tg_bf16_supported();
    if (n <= chunk) {
        fast ? cvt_avx512bf16(dst, src, n) : cvt_c(dst, src, n);
        return;
    }
    size_t tasks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < tasks; t++) {
        size_t i = t * chunk, m = TG_MIN(chunk, n - i);
        fast ? cvt_avx512bf16(dst + i, src + i, m) : cvt_c(dst + i, src + i, m);
    }
}

/* ------------------------------------------------------ weight copies */
void tg_dnn_bf16_bind(tg_dnn *c, int slot, const float *src, size_t n, size_t keep_off,
                      size_t keep_n)
{
    tg_bf16_shadow *s = &tg_dnn_bf16_state(c)->s[slot];
    s->src = src;
    s->n = src ? n : 0;
    s->keep_lo = keep_off;
    s->keep_hi = keep_off + keep_n;
    s->stale = 1;
}

void tg_dnn_bf16_changed(tg_dnn *c, const float *src)
{
    tg_bf16_state *st = tg_dnn_bf16_state(c);
    for (int i = 0; i < TG_BF16_ARRAYS; i++)
        if (st->s[i].src == src)
            st->s[i].stale = 1;
}

void tg_dnn_bf16_train(tg_dnn *c, int on) { tg_dnn_bf16_state(c)->train = on; }

int tg_dnn_bf16_conv(tg_dnn *c, const float *w)
{
    tg_bf16_state *st = tg_dnn_bf16_state(c);
    if (!st->on || !st->train)
        return 0;
    uintptr_t p = (uintptr_t)w;
    for (int i = 0; i < TG_BF16_ARRAYS; i++) {
        const tg_bf16_shadow *s = &st->s[i];
        uintptr_t lo = (uintptr_t)s->src;
        if (!s->src || p < lo || p >= lo + s->n * sizeof(float))
            continue;
        size_t off = (p - lo) / sizeof(float);
        return !(off >= s->keep_lo && off < s->keep_hi);
    }
    return 0;
}

void tg_dnn_bf16_release(tg_dnn *c)
{
    tg_bf16_state *st = tg_dnn_bf16_state(c);
    for (int i = 0; i < TG_BF16_ARRAYS; i++)
        free(st->s[i].bf);
    for (size_t i = 0; i < st->npk; i++)
        free(st->pk[i].buf);
    free(st->pk);
    memset(st, 0, sizeof *st);
}

int tg_dnn_bf16_set(tg_dnn *c, int on)
{
    tg_bf16_state *st = tg_dnn_bf16_state(c);
    int was = st->on;
    st->on = on && tg_bf16_supported(); /* never the instructions a CPU lacks */
    return was;
}

/* Forget the packed matrices taken from the copy bf[n] (being freed). */
static void packed_drop(tg_bf16_state *st, const uint16_t *bf, size_t n)
{
    for (size_t k = 0; k < st->npk;) {
        if (bf && st->pk[k].src >= bf && st->pk[k].src < bf + n) {
            free(st->pk[k].buf);
            st->pk[k] = st->pk[--st->npk];
        } else {
            k++;
        }
    }
}

/* *out = the weights wb (layout `plain`) in the layout md, packed at first
 * use and after every change of the copy. */
static tg_status packed_weights(tg_dnn *c, const uint16_t *wb, const dnnl_memory_desc_t *plain,
                                const dnnl_memory_desc_t *md, const void **out)
{
    tg_bf16_state *st = tg_dnn_bf16_state(c);
    tg_bf16_packed *e = NULL;
    for (size_t k = 0; k < st->npk && !e; k++)
        if (st->pk[k].src == wb && dnnl_memory_desc_equal(&st->pk[k].md, md))
            e = &st->pk[k];
    if (!e) {
        if (st->npk == st->cap_pk) {
            size_t ncap = st->cap_pk ? 2 * st->cap_pk : 16;
            tg_bf16_packed *pk = tg_alloc(ncap * sizeof *pk);
            if (!pk)
                return TG_ERR_OUT_OF_MEMORY;
            if (st->npk)
                memcpy(pk, st->pk, st->npk * sizeof *pk);
            free(st->pk);
            st->pk = pk;
            st->cap_pk = ncap;
        }
        void *buf = tg_alloc(dnnl_memory_desc_get_size(md));
        if (!buf)
            return TG_ERR_OUT_OF_MEMORY;
        e = &st->pk[st->npk++];
        *e = (tg_bf16_packed){.src = wb, .md = *md, .buf = buf, .stale = 1};
    }
    if (e->stale) { /* a failure leaves it stale: tried again next time */
        TG_TRY(tg_dnn_reorder(c, plain, wb, md, e->buf));
        e->stale = 0;
    }
    *out = e->buf;
    return TG_OK;
}

/* The copy of the weights at w; a layer in its array's keep range gets NULL
 * unless `kept` (tg_dnn_bf16_copy). */
static tg_status bf16_lookup(tg_dnn *c, const float *w, int kept, const uint16_t **out)
{
    *out = NULL;
    tg_bf16_state *st = tg_dnn_bf16_state(c);
    if (!st->on)
        return TG_OK;
    uintptr_t p = (uintptr_t)w;
    for (int i = 0; i < TG_BF16_ARRAYS; i++) {
        tg_bf16_shadow *s = &st->s[i];
        uintptr_t lo = (uintptr_t)s->src;
        if (!s->src || p < lo || p >= lo + s->n * sizeof(float))
            continue;
        size_t off = (p - lo) / sizeof(float);
        if (!kept && off >= s->keep_lo && off < s->keep_hi)
            return TG_OK; /* a layer that keeps f32 */
        if (s->n > s->cap) { /* first use: the copy is made (the only allocation) */
            size_t bytes;
            if (tg_mul_overflow(s->n, sizeof(uint16_t), &bytes))
                return tg_fail(TG_ERR_OUT_OF_MEMORY, "bf16 copy of %zu weights overflows", s->n);
            uint16_t *bf = tg_alloc(bytes);
            if (!bf)
                return TG_ERR_OUT_OF_MEMORY;
            packed_drop(st, s->bf, s->cap); /* they point into the old copy */
            free(s->bf);
            s->bf = bf;
            s->cap = s->n;
            s->stale = 1;
        }
        if (s->stale) { /* the weights changed since the copy: once per change */
            tg_bf16_from_f32(s->bf, s->src, s->n);
            s->stale = 0;
            for (size_t k = 0; k < st->npk; k++) /* repacked at their next use */
                if (st->pk[k].src >= s->bf && st->pk[k].src < s->bf + s->n)
                    st->pk[k].stale = 1;
        }
        *out = s->bf + off;
        return TG_OK;
    }
    return TG_OK;
}

tg_status tg_dnn_bf16_weights(tg_dnn *c, const float *w, const uint16_t **out)
{
    return bf16_lookup(c, w, 0, out);
}

tg_status tg_dnn_bf16_copy(tg_dnn *c, const float *w, const uint16_t **out)
{
    return bf16_lookup(c, w, 1, out);
}

/* ------------------------------------------------------------- Linear */
tg_status tg_linear_bf16(tg_dnn *c, void *y, const void *x, const uint16_t *wb, const float *b,
                         int64_t M, int64_t K, int64_t N, int post)
{
    int ybf = !!(post & TG_LIN_Y_BF16);
    const uint16_t *xb = x;
    if (!(post & TG_LIN_X_BF16)) {
        size_t nx = (size_t)(M * K);
        uint16_t *t = (uint16_t *)tg_dnn_tmp(c, TG_TMP_BF16, (nx + 1) / 2);
        if (!t)
            return TG_ERR_OUT_OF_MEMORY;
        tg_bf16_from_f32(t, x, nx);
        xb = t;
    }
    post &= ~(TG_LIN_X_BF16 | TG_LIN_Y_BF16);
    int pack = M <= TG_BF16_PACK_ROWS_MAX;
    int64_t key[] = {TG_OPK_MATMUL_BF16, M, K, N, b != NULL, post, pack, ybf};
    int nkey = (int)(sizeof key / sizeof key[0]);
    tg_prim *p = tg_dnn_find(c, key, nkey);
    /* W [N, K] row-major read as W^T [K, N] */
    dnnl_dims_t dw = {K, N};
    dnnl_memory_desc_t plain;
    TG_DNN(dnnl_memory_desc_init_by_tag(&plain, 2, dw, dnnl_bf16, dnnl_ba));
    if (!p) {
        dnnl_memory_desc_t ms, mw, mb, md;
        dnnl_dims_t ds = {M, K}, db = {1, N}, dd = {M, N};
        TG_DNN(dnnl_memory_desc_init_by_tag(&ms, 2, ds, dnnl_bf16, dnnl_ab));
        /* packing: the layout the primitive chooses */
        TG_DNN(dnnl_memory_desc_init_by_tag(&mw, 2, dw, dnnl_bf16,
                                            pack ? dnnl_format_tag_any : dnnl_ba));
        TG_DNN(dnnl_memory_desc_init_by_tag(&mb, 2, db, dnnl_f32, dnnl_ab));
        TG_DNN(dnnl_memory_desc_init_by_tag(&md, 2, dd, ybf ? dnnl_bf16 : dnnl_f32, dnnl_ab));
        dnnl_matmul_desc_t d;
        TG_DNN(dnnl_matmul_desc_init(&d, &ms, &mw, b ? &mb : NULL, &md));
        dnnl_primitive_attr_t at;
        TG_TRY(tg_matmul_attr(&at, 1.0f, post));
        static const int args[] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS};
        tg_status st = tg_dnn_build(c, key, nkey, &d, at, NULL, b ? 4 : 3, args, &p);
        dnnl_primitive_attr_destroy(at);
        TG_TRY(st);
    }
    const void *w = wb;
    if (pack) {
        const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(p->pd, dnnl_query_weights_md, 0);
        if (!wmd)
            return tg_fail(TG_ERR_INTERNAL, "bf16 matmul without a weights layout");
        if (!dnnl_memory_desc_equal(wmd, &plain))
            TG_TRY(packed_weights(c, wb, &plain, wmd, &w));
    }
    void *bufs[4] = {(void *)xb, (void *)w, y, (void *)b};
    return tg_prim_exec(c, p, bufs);
}

/* bf16 x bf16 -> f32 matmul of plain 2-D operands, a [M,K] and b [K,N] in
 * the given tags (dnnl_ab, or dnnl_ba for a transposed view), c [M,N] f32
 * row-major, written or (sum) added to; built once per shape under `op`. */
static tg_status mm_bf16(tg_dnn *c, int op, float *y, const uint16_t *a, dnnl_format_tag_t ta,
                         const uint16_t *b, dnnl_format_tag_t tb, int64_t M, int64_t K,
                         int64_t N, int sum)
{
    int64_t key[] = {op, M, K, N, ta, tb, sum};
    int nkey = (int)(sizeof key / sizeof key[0]);
    tg_prim *p = tg_dnn_find(c, key, nkey);
    if (!p) {
        dnnl_memory_desc_t ma, mb, md;
        dnnl_dims_t da = {M, K}, db = {K, N}, dd = {M, N};
        TG_DNN(dnnl_memory_desc_init_by_tag(&ma, 2, da, dnnl_bf16, ta));
        TG_DNN(dnnl_memory_desc_init_by_tag(&mb, 2, db, dnnl_bf16, tb));
        TG_DNN(dnnl_memory_desc_init_by_tag(&md, 2, dd, dnnl_f32, dnnl_ab));
        dnnl_matmul_desc_t d;
        TG_DNN(dnnl_matmul_desc_init(&d, &ma, &mb, NULL, &md));
        dnnl_primitive_attr_t at;
        TG_TRY(tg_matmul_attr(&at, 1.0f, sum ? TG_MM_SUM : 0));
        static const int args[] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
        tg_status st = tg_dnn_build(c, key, nkey, &d, at, NULL, 3, args, &p);
        dnnl_primitive_attr_destroy(at);
        TG_TRY(st);
    }
    void *bufs[3] = {(void *)a, (void *)b, y};
    return tg_prim_exec(c, p, bufs);
}

tg_status tg_linear_bf16_bwd(tg_dnn *c, float *dx, float *dw, const float *dy, const float *x,
                             const uint16_t *wb, int64_t M, int64_t K, int64_t N)
{
    size_t ny = (size_t)(M * N), nx = (size_t)(M * K);
    uint16_t *dyb = (uint16_t *)tg_dnn_tmp(c, TG_TMP_BF16_DY, (ny + 1) / 2);
    if (!dyb)
        return TG_ERR_OUT_OF_MEMORY;
    /* one rounding of dy serves both products */
    tg_bf16_from_f32(dyb, dy, ny);
    if (dx) /* dx[M,K] = dy[M,N] W[N,K] */
        TG_TRY(mm_bf16(c, TG_OPK_MATMUL_BF16_BWD_DATA, dx, dyb, dnnl_ab, wb, dnnl_ab, M, N, K, 0));
    if (dw) { /* dw[N,K] += dy^T[N,M] x[M,K]: dy read transposed (tag ba) */
        uint16_t *xb = (uint16_t *)tg_dnn_tmp(c, TG_TMP_BF16, (nx + 1) / 2);
        if (!xb)
            return TG_ERR_OUT_OF_MEMORY;
        tg_bf16_from_f32(xb, x, nx);
        TG_TRY(mm_bf16(c, TG_OPK_MATMUL_BF16_BWD_WEIGHTS, dw, dyb, dnnl_ba, xb, dnnl_ab, N, M, K,
                       1));
    }
    return TG_OK;
}
