/* The oneDNN context: engine, stream, primitive cache, scratchpad, arenas. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include <omp.h>

#include <oneapi/dnnl/dnnl_debug.h>

#include "bf16.h"
#include "cpushare.h"
#include "dnn.h"

struct tg_dnn {
    dnnl_stream_t stream;
    tg_prim **slots; /* open addressing; capacity is a power of two */
    size_t cap, used;
    void *scratch; /* user scratchpad shared by all primitives (one stream) */
    size_t scratch_bytes;
    float *tmp[TG_TMP_SLOTS];
    size_t tmp_n[TG_TMP_SLOTS];
    float *ones;
    size_t ones_n;
    int allow_ref;
    int nthr; /* threads of the current call: part of every primitive's key */
    int dynamic;       /* default thread count follows the free CPUs (cpushare.c) */
    tg_cpushare share; /* its view of the host */
    tg_bf16_state bf16; /* bf16 weight copies (bf16.c) */
};

tg_bf16_state *tg_dnn_bf16_state(tg_dnn *c) { return &c->bf16; }

/* One engine for the whole process: the primitive cache keys include it. */
static dnnl_engine_t g_engine;
static dnnl_status_t g_engine_status = dnnl_runtime_error;
static pthread_once_t g_engine_once = PTHREAD_ONCE_INIT;
static void engine_init(void) { g_engine_status = dnnl_engine_create(&g_engine, dnnl_cpu, 0); }

static atomic_long g_ref_count;
static _Atomic(const char *) g_ref_last;

long tg_dnn_ref_count(const char **last_impl)
{
    if (last_impl)
        *last_impl = atomic_load(&g_ref_last);
    return atomic_load(&g_ref_count);
}

tg_status tg_dnn_check(dnnl_status_t s, const char *what)
{
    if (s == dnnl_success)
        return TG_OK;
    if (s == dnnl_out_of_memory)
        return tg_fail(TG_ERR_OUT_OF_MEMORY, "oneDNN out of memory in %s", what);
    return tg_fail(TG_ERR_BACKEND, "oneDNN: %s failed: %s", what, dnnl_status2str(s));
}

tg_status tg_dnn_create(tg_dnn **out)
{
    *out = NULL;
    pthread_once(&g_engine_once, engine_init);
    TG_TRY(tg_dnn_check(g_engine_status, "engine creation"));
    tg_dnn *c = tg_alloc(sizeof *c);
    if (!c)
        return TG_ERR_OUT_OF_MEMORY;
    c->cap = 64;
    c->slots = tg_alloc(c->cap * sizeof *c->slots);
    if (!c->slots) {
        free(c);
        return TG_ERR_OUT_OF_MEMORY;
    }
    const char *env = getenv("TG_ALLOW_REF");
    c->allow_ref = env && *env && strcmp(env, "0") != 0;
    c->nthr = omp_get_max_threads();
    /* TG_DYNAMIC_THREADS=0 keeps the default count at the caller's OpenMP
     * maximum whatever the host does (as MKL_DYNAMIC=FALSE does for MKL): for
     * runs that must repeat bit for bit, since the float rounding of some
     * shapes depends on the thread count */
    env = getenv("TG_DYNAMIC_THREADS");
    c->dynamic = !(env && strcmp(env, "0") == 0);
    dnnl_status_t s = dnnl_stream_create(&c->stream, g_engine, dnnl_stream_default_flags);
    if (s != dnnl_success) {
        free(c->slots);
        free(c);
        return tg_dnn_check(s, "stream creation");
    }
    *out = c;
    return TG_OK;
}

static void prim_free(tg_prim *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nargs; i++)
        if (p->mem[i])
            dnnl_memory_destroy(p->mem[i]);
    if (p->scratch_mem)
        dnnl_memory_destroy(p->scratch_mem);
    if (p->prim)
        dnnl_primitive_destroy(p->prim);
    if (p->pd)
        dnnl_primitive_desc_destroy(p->pd);
    free(p);
}

void tg_dnn_destroy(tg_dnn *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->cap; i++)
        prim_free(c->slots[i]);
    free(c->slots);
    for (int i = 0; i < TG_TMP_SLOTS; i++)
        free(c->tmp[i]);
    free(c->ones);
    tg_dnn_bf16_release(c);
    free(c->scratch);
    if (c->stream)
        dnnl_stream_destroy(c->stream);
    free(c);
}

static uint64_t key_hash(const int64_t *key, int n, int nthr)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)nthr;
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)key[i];
        h *= 1099511628211ull;
        h ^= h >> 29;
    }
    return h;
}

tg_prim *tg_dnn_find(tg_dnn *c, const int64_t *key, int nkey)
{
    size_t mask = c->cap - 1;
    for (size_t i = key_hash(key, nkey, c->nthr) & mask;; i = (i + 1) & mask) {
        tg_prim *p = c->slots[i];
        if (!p)
            return NULL;
        if (p->nkey == nkey && p->nthr == c->nthr && memcmp(p->key, key, (size_t)nkey * sizeof *key) == 0)
            return p;
    }
}

static tg_status insert(tg_dnn *c, tg_prim *p)
{
    if ((c->used + 1) * 2 > c->cap) { /* keep the load under one half */
        size_t ncap = c->cap * 2;
        tg_prim **ns = tg_alloc(ncap * sizeof *ns);
        if (!ns)
            return TG_ERR_OUT_OF_MEMORY;
        for (size_t i = 0; i < c->cap; i++) {
            tg_prim *q = c->slots[i];
            if (!q)
                continue;
            size_t j = key_hash(q->key, q->nkey, q->nthr) & (ncap - 1);
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = q;
        }
        free(c->slots);
        c->slots = ns;
        c->cap = ncap;
    }
    size_t j = key_hash(p->key, p->nkey, p->nthr) & (c->cap - 1);
    while (c->slots[j])
        j = (j + 1) & (c->cap - 1);
    c->slots[j] = p;
    c->used++;
    return TG_OK;
}

/* Counts a primitive descriptor on a reference kernel; refuses it (BACKEND)
 * unless the context allows them. op: the op id for the message (0:
 * reorder). */
static tg_status ref_check(tg_dnn *c, const_dnnl_primitive_desc_t pd, int64_t op)
{
    const char *impl = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if (strncmp(impl, "ref", 3) != 0)
        return TG_OK;
    atomic_fetch_add(&g_ref_count, 1);
    atomic_store(&g_ref_last, impl);
    if (c->allow_ref)
        return TG_OK;
    return tg_fail(TG_ERR_BACKEND,
                   "oneDNN offers only a slow reference kernel (%s) for op %lld; "
                   "set TG_ALLOW_REF=1 to accept it",
                   impl, (long long)op);
}

tg_status tg_dnn_reorder(tg_dnn *c, const dnnl_memory_desc_t *from, const void *src,
                         const dnnl_memory_desc_t *to, void *dst)
{
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t a = NULL, b = NULL;
    tg_status st = tg_dnn_check(dnnl_reorder_primitive_desc_create(&pd, from, g_engine, to,
                                                                   g_engine, NULL),
                                "reorder descriptor creation");
    if (st == TG_OK)
        st = ref_check(c, pd, 0);
    if (st == TG_OK)
        st = tg_dnn_check(dnnl_primitive_create(&prim, pd), "reorder creation");
    if (st == TG_OK)
        st = tg_dnn_check(dnnl_memory_create(&a, from, g_engine, (void *)src), "memory creation");
    if (st == TG_OK)
        st = tg_dnn_check(dnnl_memory_create(&b, to, g_engine, dst), "memory creation");
    if (st == TG_OK) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}};
        st = tg_dnn_check(dnnl_primitive_execute(prim, c->stream, 2, args), "reorder");
        if (st == TG_OK)
            st = tg_dnn_check(dnnl_stream_wait(c->stream), "stream wait");
    }
    if (a)
        dnnl_memory_destroy(a);
    if (b)
        dnnl_memory_destroy(b);
    if (prim)
        dnnl_primitive_destroy(prim);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return st;
}

tg_status tg_dnn_build(tg_dnn *c, const int64_t *key, int nkey, const_dnnl_op_desc_t desc,
                       const_dnnl_primitive_attr_t attr, const_dnnl_primitive_desc_t hint,
                       int nargs, const int *arg_ids, tg_prim **out)
{
    *out = NULL;
    if (nkey > TG_KEY_MAX || nargs > TG_PRIM_MAX_ARGS)
        return tg_fail(TG_ERR_INTERNAL, "primitive key or argument list too long");
    tg_prim *p = tg_alloc(sizeof *p);
    if (!p)
        return TG_ERR_OUT_OF_MEMORY;
    memcpy(p->key, key, (size_t)nkey * sizeof *key);
    p->nkey = nkey;
    p->nthr = c->nthr;
    tg_status st = TG_OK;
    dnnl_primitive_attr_t at = NULL;
    /* user scratchpad: a model may move between threads, which the library
     * mode's thread-local scratchpad does not allow (oneDNN #1385) */
    if (attr)
        st = tg_dnn_check(dnnl_primitive_attr_clone(&at, attr), "attr clone");
    else
        st = tg_dnn_check(dnnl_primitive_attr_create(&at), "attr create");
    if (st == TG_OK)
        st = tg_dnn_check(dnnl_primitive_attr_set_scratchpad_mode(at, dnnl_scratchpad_mode_user),
                          "scratchpad mode");
    if (st == TG_OK)
        st = tg_dnn_check(dnnl_primitive_desc_create(&p->pd, desc, at, g_engine, hint),
                          "primitive descriptor creation");
    if (at)
        dnnl_primitive_attr_destroy(at);
    if (st == TG_OK)
        st = ref_check(c, p->pd, key[0]);
    if (st == TG_OK)
        st = tg_dnn_check(dnnl_primitive_create(&p->prim, p->pd), "primitive creation");
    for (int i = 0; st == TG_OK && i < nargs; i++) {
        const dnnl_memory_desc_t *md =
            dnnl_primitive_desc_query_md(p->pd, dnnl_query_exec_arg_md, arg_ids[i]);
        if (!md) {
            st = tg_fail(TG_ERR_INTERNAL, "primitive has no argument %d", arg_ids[i]);
            break;
        }
        p->arg_ids[i] = arg_ids[i];
        p->nargs = i + 1;
        st = tg_dnn_check(dnnl_memory_create(&p->mem[i], md, g_engine, DNNL_MEMORY_NONE),
                          "memory creation");
    }
    if (st == TG_OK) {
        const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(p->pd, dnnl_query_scratchpad_md, 0);
        p->scratch_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
        if (p->scratch_bytes) {
            st = tg_dnn_check(dnnl_memory_create(&p->scratch_mem, smd, g_engine, DNNL_MEMORY_NONE),
                              "scratchpad memory");
            /* the bigger scratchpad first: the cached primitives run on the
             * old one until it is replaced, so a failure here leaves them a
             * valid (big enough for them) buffer */
            if (st == TG_OK && p->scratch_bytes > c->scratch_bytes) {
                void *bigger = tg_alloc(p->scratch_bytes);
                if (bigger) {
                    free(c->scratch);
                    c->scratch = bigger;
                    c->scratch_bytes = p->scratch_bytes;
                } else {
                    st = TG_ERR_OUT_OF_MEMORY;
                }
            }
        }
    }
    if (st == TG_OK)
        st = insert(c, p);
    if (st != TG_OK) {
        prim_free(p);
        return st;
    }
    *out = p;
    return TG_OK;
}

tg_status tg_prim_exec(tg_dnn *c, tg_prim *p, void *const *bufs)
{
    dnnl_exec_arg_t args[TG_PRIM_MAX_ARGS + 1];
    int n = 0;
    for (int i = 0; i < p->nargs; i++) {
        TG_DNN(dnnl_memory_set_data_handle(p->mem[i], bufs[i]));
        args[n].arg = p->arg_ids[i];
        args[n].memory = p->mem[i];
        n++;
    }
    if (p->scratch_mem) {
        TG_DNN(dnnl_memory_set_data_handle(p->scratch_mem, c->scratch));
        args[n].arg = DNNL_ARG_SCRATCHPAD;
        args[n].memory = p->scratch_mem;
        n++;
    }
    TG_DNN(dnnl_primitive_execute(p->prim, c->stream, n, args));
    return TG_OK;
}

float *tg_dnn_tmp(tg_dnn *c, enum tg_tmp_slot slot, size_t n)
{
    if (n > c->tmp_n[slot]) {
        free(c->tmp[slot]);
        c->tmp_n[slot] = 0;
        size_t bytes;
        if (tg_mul_overflow(n, sizeof(float), &bytes)) {
            tg_fail(TG_ERR_OUT_OF_MEMORY, "temporary buffer of %zu floats overflows", n);
            c->tmp[slot] = NULL;
            return NULL;
        }
        c->tmp[slot] = tg_alloc(bytes);
        if (c->tmp[slot])
            c->tmp_n[slot] = n;
    }
    return c->tmp[slot];
}

const float *tg_dnn_ones(tg_dnn *c, size_t n)
{
    if (n > c->ones_n) {
        free(c->ones);
        c->ones_n = 0;
        c->ones = tg_alloc(n * sizeof(float));
        if (!c->ones)
            return NULL;
        for (size_t i = 0; i < n; i++)
            c->ones[i] = 1.0f;
        c->ones_n = n;
    }
    return c->ones;
}

tg_status tg_md_plain(dnnl_memory_desc_t *md, int ndims, const int64_t *dims)
{
    static const dnnl_format_tag_t tags[] = {dnnl_format_tag_undef, dnnl_a, dnnl_ab, dnnl_abc,
                                             dnnl_abcd, dnnl_abcde};
    if (ndims < 1 || ndims > 5)
        return tg_fail(TG_ERR_INTERNAL, "plain md with %d dims", ndims);
    TG_DNN(dnnl_memory_desc_init_by_tag(md, ndims, dims, dnnl_f32, tags[ndims]));
    return TG_OK;
}

tg_status tg_md_strided(dnnl_memory_desc_t *md, int ndims, const int64_t *dims,
                        const int64_t *strides)
{
    TG_DNN(dnnl_memory_desc_init_by_strides(md, ndims, dims, dnnl_f32, strides));
    return TG_OK;
}

/* oneDNN sizes a primitive's work split by the OpenMP maximum when it is
 * created and must run with the same count (oneDNN #1201): the count is part
 * of the cache key, and the calling thread's maximum is set for the call.
 * The count is the model's fixed one, or by default the caller's maximum
 * lowered to the CPUs free right now (cpushare.c says why), so a call on a
 * busy host runs on fewer threads instead of stalling at barriers; a count
 * met for the first time builds its primitives once. */
int tg_dnn_threads_enter(tg_dnn *c, int fixed)
{
    int caller = omp_get_max_threads();
    int n = fixed > 0    ? fixed
            : c->dynamic ? tg_cpushare_threads(&c->share, caller)
                         : caller;
    if (n != caller)
        omp_set_num_threads(n);
    c->nthr = n;
    return caller;
}

void tg_dnn_threads_leave(int caller)
{
    if (omp_get_max_threads() != caller)
        omp_set_num_threads(caller);
}

size_t tg_dnn_prim_count(const tg_dnn *c) { return c->used; }

int tg_dnn_last_threads(const tg_dnn *c) { return c->nthr; }
