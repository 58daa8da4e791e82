/* Internal: the oneDNN layer. One engine for the process; per model a context
 * with a stream, a cache of primitives keyed by op and shape (built once,
 * reused), a user-mode scratchpad and a temporary-buffer arena. */
#ifndef TG_DNN_H
#define TG_DNN_H

#include <oneapi/dnnl/dnnl.h>

#include "../core/common.h"

typedef struct tg_dnn tg_dnn;

/* The first word of every primitive cache key. */
enum tg_op_id {
    TG_OPK_MATMUL = 1,
    TG_OPK_LN_FWD,
    TG_OPK_LN_BWD,
    TG_OPK_ELTWISE_FWD,
    TG_OPK_ELTWISE_BWD,
    TG_OPK_SOFTMAX_FWD,
    TG_OPK_MATMUL_BF16, /* bf16.c: Linear in bf16 */
    TG_OPK_CONV_FWD,    /* conv.c: forward, backward data, backward weights */
    TG_OPK_CONV_BWD_DATA,
    TG_OPK_CONV_BWD_WEIGHTS,
    TG_OPK_MATMUL_BF16_BWD_DATA,   /* bf16.c: bf16 training, dx = dy W */
    TG_OPK_MATMUL_BF16_BWD_WEIGHTS /* and dw += dy^T x */
};

/* A built primitive with one memory object per execution argument; the
 * memory objects are re-pointed at the caller's buffers on every execution,
 * so nothing is allocated in steady state. */
#define TG_PRIM_MAX_ARGS 10
#define TG_KEY_MAX 40
typedef struct tg_prim {
    int64_t key[TG_KEY_MAX];
    int nkey;
    int nthr;                 /* OpenMP threads it was built for */
    dnnl_primitive_desc_t pd; /* kept: backward pds take it as their hint */
    dnnl_primitive_t prim;
    int nargs;
    int arg_ids[TG_PRIM_MAX_ARGS];
    dnnl_memory_t mem[TG_PRIM_MAX_ARGS];
    dnnl_memory_t scratch_mem; /* NULL when the primitive needs none */
    size_t scratch_bytes;
} tg_prim;

tg_status tg_dnn_create(tg_dnn **out);
void tg_dnn_destroy(tg_dnn *ctx);

/* The cached primitive for `key` or NULL. */
tg_prim *tg_dnn_find(tg_dnn *ctx, const int64_t *key, int nkey);

/* Create a primitive from an op descriptor (hint: the forward pd for a
 * backward op, else NULL), record its arguments `arg_ids` (the order in which
 * tg_prim_exec takes buffers) and cache it under `key`. Fails with BACKEND
 * when oneDNN cannot, or when it would run a reference (`ref:`) kernel and
 * the context is strict (TG_ALLOW_REF unset: the default). */
tg_status tg_dnn_build(tg_dnn *ctx, const int64_t *key, int nkey, const_dnnl_op_desc_t desc,
                       const_dnnl_primitive_attr_t attr, const_dnnl_primitive_desc_t hint,
                       int nargs, const int *arg_ids, tg_prim **out);

/* Copy src (layout `from`) to dst (layout `to`) with a one-off oneDNN
 * reorder, refused like tg_dnn_build's primitives when it would be a
 * reference kernel. For data converted once (bf16.c's packed weights), not
 * for steady-state loops: it creates and destroys its primitive. */
tg_status tg_dnn_reorder(tg_dnn *ctx, const dnnl_memory_desc_t *from, const void *src,
                         const dnnl_memory_desc_t *to, void *dst);

/* Run a primitive on buffers given in the order of its arg_ids. */
tg_status tg_prim_exec(tg_dnn *ctx, tg_prim *p, void *const *bufs);

/* The context's temporary buffers, one slot per role, listed here so that
 * no two buffers an op holds at once share a slot. Contents are not kept
 * between ops. */
enum tg_tmp_slot {
    TG_TMP_ATT_P = 0,   /* attention: probabilities P; fused path: per-thread rows */
    TG_TMP_ATT_DP = 1,  /* backward dP; second order: the scores' tangent Sd */
    TG_TMP_ATT_DS = 2,  /* backward dS; second order: the probabilities' tangent Pd */
    TG_TMP_ATT_PDB = 3, /* second-order reverse: adjoint of Pd */
    TG_TMP_ATT_PB = 4,  /* second-order reverse: adjoint of P */
    TG_TMP_LN = 5,      /* LayerNorm backward: dgamma, dbeta before they are added */
    TG_TMP_BF16 = 6,    /* bf16 path: a Linear's (a convolution's) input rounded to bf16 */
    TG_TMP_CONV = 7,    /* convolution backward: db before it is added */
    TG_TMP_CONV_W = 8,  /* convolution: weights (their gradient) in oneDNN's layout */
    TG_TMP_BF16_DY = 9, /* bf16 training: a Linear's output gradient rounded to bf16 */
    TG_TMP_ATT_SPAN = 10, /* fused attention: each query row's span of unmasked keys */
    TG_TMP_SLOTS
};
/* A temporary buffer of at least `n` floats in `slot`; grows (the only
 * allocation) when a larger shape is first seen. NULL (with OUT_OF_MEMORY
 * recorded) on failure. */
float *tg_dnn_tmp(tg_dnn *ctx, enum tg_tmp_slot slot, size_t n);

/* A buffer of at least n ones (for bias gradients by matmul). */
const float *tg_dnn_ones(tg_dnn *ctx, size_t n);

/* Primitives in the context's cache (for tests: steady state builds none). */
size_t tg_dnn_prim_count(const tg_dnn *ctx);
/* The thread count of the last computing call (for the tests). */
int tg_dnn_last_threads(const tg_dnn *ctx);

/* How many primitives were created on a reference kernel, and the name of
 * the last one (for tests: any is a failure). Process-wide. */
long tg_dnn_ref_count(const char **last_impl);

/* Status of a oneDNN call as a tg_status with a message naming `what`. */
tg_status tg_dnn_check(dnnl_status_t s, const char *what);

/* Every computing entry point brackets its work with these: enter sets the
 * calling thread's OpenMP maximum to `fixed` (> 0) or keeps it (0), makes
 * that the count primitives are looked up and built for, and returns the
 * caller's maximum, which leave restores. */
int tg_dnn_threads_enter(tg_dnn *ctx, int fixed);
void tg_dnn_threads_leave(int caller);

/* Memory descriptor helpers: plain row-major, and strided views. */
tg_status tg_md_plain(dnnl_memory_desc_t *md, int ndims, const int64_t *dims);
tg_status tg_md_strided(dnnl_memory_desc_t *md, int ndims, const int64_t *dims,
                        const int64_t *strides);

#define TG_DNN(call) TG_TRY(tg_dnn_check((call), #call))

#endif
