#include "params.h"

#include <stdio.h>

size_t tg_params_add(tg_params *t, const char *name, int ndim, const int64_t *shape, int init,
                     double bound)
{
    if (t->count == t->cap) {
        size_t nc = t->cap ? 2 * t->cap : 64;
        tg_param *np = tg_realloc(t->p, nc * sizeof *np);
        if (!np) {
            t->oom = 1;
            tg_fail(TG_ERR_OUT_OF_MEMORY, "out of memory for the parameter table");
            return SIZE_MAX;
        }
        t->p = np;
        t->cap = nc;
    }
    tg_param *p = &t->p[t->count++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->n = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->n *= (size_t)shape[i];
    }
    p->init = init;
    p->bound = bound;
    p->off = t->total;
    /* keep every tensor 16-float aligned for vector loads */
    t->total += (p->n + 15) & ~(size_t)15;
    return p->off;
}

void tg_params_free(tg_params *t)
{
    free(t->p);
    memset(t, 0, sizeof *t);
}

const tg_param *tg_params_find(const tg_params *t, const char *name)
{
    for (size_t i = 0; i < t->count; i++)
        if (strcmp(t->p[i].name, name) == 0)
            return &t->p[i];
    return NULL;
}

void tg_params_init(const tg_params *t, float *w, tg_rng *rng)
{
    for (size_t i = 0; i < t->count; i++) {
        const tg_param *p = &t->p[i];
        float *x = w + p->off;
        for (size_t j = 0; j < p->n; j++) {
            switch (p->init) {
            case TG_INIT_ZERO: x[j] = 0.0f; break;
            case TG_INIT_ONE: x[j] = 1.0f; break;
            case TG_INIT_UNIFORM: x[j] = (float)((2.0 * tg_rng_uniform(rng) - 1.0) * p->bound); break;
            case TG_INIT_NORMAL: x[j] = (float)tg_rng_normal(rng); break;
            default: x[j] = (float)tg_rng_trunc_normal(rng, 0.02, -2.0, 2.0); break;
            }
        }
    }
}
