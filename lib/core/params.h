/* Internal: a network's parameters live in one contiguous float array (so the
 * optimiser, clipping and EMA are single loops); this table names each
 * tensor as the reference's PyTorch modules would and records how the
 * official recipe initialises it. */
#ifndef TG_PARAMS_H
#define TG_PARAMS_H

#include "common.h"
#include "rng.h"

enum tg_init {
    TG_INIT_ZERO,
    TG_INIT_ONE,
    TG_INIT_UNIFORM,     /* U(-bound, bound) */
    TG_INIT_TRUNC_NORMAL, /* N(0, 0.02) truncated to [-2, 2] */
    TG_INIT_NORMAL       /* N(0, 1): a class embedding (PyTorch's nn.Embedding) */
};

typedef struct tg_param {
    char name[96];
    size_t off, n;
    int ndim;
    int64_t shape[4]; /* up to 4 dims (conv weights: out, in, kh, kw) */
    int init;
    double bound;
} tg_param;

typedef struct tg_params {
    tg_param *p;
    size_t count, cap;
    size_t total; /* floats */
    int oom;      /* an add failed */
} tg_params;

/* Append a tensor; returns its offset, or SIZE_MAX on OOM (recorded). */
size_t tg_params_add(tg_params *t, const char *name, int ndim, const int64_t *shape, int init,
                     double bound);
void tg_params_free(tg_params *t);
const tg_param *tg_params_find(const tg_params *t, const char *name);
/* Fill w[total] per each tensor's init rule from rng. */
void tg_params_init(const tg_params *t, float *w, tg_rng *rng);

/* The gradient slot of the tensor at `off` in a gradient array G laid out
 * like the weights, or NULL when G is NULL (gradients not wanted). */
#define GRAD(G, off) ((G) ? (G) + (off) : NULL)

#endif
