/* Checkpoints (docs/SPECIFICATION.md "Checkpoint"): a model's state to and
 * from safetensors, with the reference's tensor names. Loading validates
 * everything into staging buffers first, so a bad file never changes a
 * model. The public calls are api/checkpoint.c. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "checkpoint.h"

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}

/* Copy tensor `name` into dst after checking shape and values. */
static tg_status take(const tg_st_file *f, const char *path, const char *name, const tg_param *p,
                      float *dst)
{
    const tg_st_tensor *t = tg_st_find(f, name);
    if (!t)
        return tg_fail(TG_ERR_MISSING, "checkpoint '%s' lacks tensor '%s'", path, name);
    int same = t->ndim == p->ndim;
    for (int i = 0; same && i < p->ndim; i++)
        same = t->shape[i] == p->shape[i];
    if (!same) {
        char a[128], b[128];
        shape_str(a, sizeof a, t->ndim, t->shape);
        shape_str(b, sizeof b, p->ndim, p->shape);
        return tg_fail(TG_ERR_SHAPE, "checkpoint '%s': tensor '%s' has shape %s, the model needs %s",
                       path, name, a, b);
    }
    tg_st_to_f32(t, dst);
    for (size_t i = 0; i < p->n; i++)
        if (!isfinite(dst[i]))
            return tg_fail(TG_ERR_NONFINITE, "checkpoint '%s': tensor '%s' holds NaN or infinity "
                           "(element %zu)", path, name, i);
    return TG_OK;
}

static tg_status take_all(const tg_st_file *f, const char *path, const tg_params *P,
                          const char *prefix, float *dst)
{
    char name[128];
    for (size_t i = 0; i < P->count; i++) {
        snprintf(name, sizeof name, "%s%s", prefix, P->p[i].name);
        TG_TRY(take(f, path, name, &P->p[i], dst + P->p[i].off));
    }
    return TG_OK;
}

static tg_status meta_u64(const tg_st_file *f, const char *path, const char *key, uint64_t *out)
{
    *out = 0;
    const char *v = tg_st_meta(f, key);
    if (!v)
        return TG_OK;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-')
        return tg_fail(TG_ERR_FORMAT, "checkpoint '%s': metadata %s = '%.40s' is not a step count",
                       path, key, v);
    *out = x;
    return TG_OK;
}

/* Load f into m; m is changed only when everything is valid. */
tg_status tg_checkpoint_load(tg_model *m, const tg_st_file *f, const char *path)
{
    const char *fmt = tg_st_meta(f, "format");
    if (fmt && strcmp(fmt, "transgan-checkpoint") != 0)
        return tg_fail(TG_ERR_FORMAT, "'%s' is a '%.60s' file, not a transgan-checkpoint", path, fmt);
    uint64_t d_steps, g_steps;
    TG_TRY(meta_u64(f, path, "d_steps", &d_steps));
    TG_TRY(meta_u64(f, path, "g_steps", &g_steps));
    tg_rng rng = m->rng;
    const char *rs = tg_st_meta(f, "rng_state");
    if (rs) { /* 4 x 16 hex digits: the training RNG, so a resumed run continues it */
        char word[17] = {0};
        int ok = strlen(rs) == 64;
        for (int i = 0; ok && i < 4; i++) {
            memcpy(word, rs + 16 * i, 16);
            char *end;
            rng.s[i] = strtoull(word, &end, 16);
            ok = *end == '\0' && strspn(word, "0123456789abcdef") == 16;
        }
        if (!ok)
            return tg_fail(TG_ERR_FORMAT, "checkpoint '%s': metadata rng_state is malformed", path);
    }
    size_t gn = m->gen.P.total, dn = m->disc.P.total;
    float *gw = tg_alloc(gn * sizeof(float)), *dw = tg_alloc(dn * sizeof(float));
    float *ema = m->ema ? tg_alloc(gn * sizeof(float)) : NULL;
    float *mom[4] = {NULL, NULL, NULL, NULL}; /* gm gv dm dv */
    tg_status st = (!gw || !dw || (m->ema && !ema)) ? TG_ERR_OUT_OF_MEMORY : TG_OK;
    if (st == TG_OK)
        st = take_all(f, path, &m->gen.P, "", gw);
    if (st == TG_OK)
        st = take_all(f, path, &m->disc.P, "", dw);
    if (st == TG_OK && ema) {
        /* an EMA is all there or absent (then it starts as the weights) */
        char first[128];
        snprintf(first, sizeof first, "ema.%s", m->gen.P.p[0].name);
        if (tg_st_find(f, first))
            st = take_all(f, path, &m->gen.P, "ema.", ema);
        else
            memcpy(ema, gw, gn * sizeof(float));
    }
    /* Adam moments, per network: all there or absent (then they start at 0) */
    const tg_params *nets[2] = {&m->gen.P, &m->disc.P};
    for (int k = 0; st == TG_OK && k < 2 && m->desc.t.optimizer == TG_OPTIM_ADAM; k++) {
        char first[128];
        snprintf(first, sizeof first, "adam.m.%s", nets[k]->p[0].name);
        if (!tg_st_find(f, first))
            continue;
        mom[2 * k] = tg_alloc(nets[k]->total * sizeof(float));
        mom[2 * k + 1] = tg_alloc(nets[k]->total * sizeof(float));
        if (!mom[2 * k] || !mom[2 * k + 1])
            st = TG_ERR_OUT_OF_MEMORY;
        if (st == TG_OK)
            st = take_all(f, path, nets[k], "adam.m.", mom[2 * k]);
        if (st == TG_OK)
            st = take_all(f, path, nets[k], "adam.v.", mom[2 * k + 1]);
    }
    if (st != TG_OK) {
        free(gw), free(dw), free(ema);
        for (int k = 0; k < 4; k++)
            free(mom[k]);
        return st;
    }
    free(m->gw), free(m->dw), free(m->ema);
    m->gw = gw, m->dw = dw, m->ema = ema;
    float **live[4] = {&m->gm, &m->gv, &m->dm, &m->dv};
    for (int k = 0; k < 4; k++) {
        if (mom[k]) {
            free(*live[k]);
            *live[k] = mom[k];
        } else if (*live[k]) { /* the file has none: fresh moments */
            memset(*live[k], 0, nets[k / 2]->total * sizeof(float));
        }
    }
    m->d_steps = d_steps, m->g_steps = g_steps;
    m->rng = rng;
    return TG_OK;
}

/* entries for every tensor of P under prefix, with names kept in `names` */
static void add_entries(tg_st_entry *e, size_t *k, char (*names)[128], const tg_params *P,
                        const char *prefix, const float *w)
{
    for (size_t i = 0; i < P->count; i++) {
        const tg_param *p = &P->p[i];
        snprintf(names[*k], 128, "%s%s", prefix, p->name);
        e[*k].name = names[*k];
        e[*k].ndim = p->ndim;
        for (int j = 0; j < p->ndim; j++)
            e[*k].shape[j] = p->shape[j];
        e[*k].data = w + p->off;
        (*k)++;
    }
}

tg_status tg_checkpoint_save(const tg_model *m, const char *path, uint32_t flags)
{
    int with_ema = m->ema && !(flags & TG_SAVE_WEIGHTS_ONLY);
    int state = !(flags & (TG_SAVE_WEIGHTS_ONLY | TG_SAVE_NO_OPTIMIZER));
    /* moments exist once a network has been updated (as in the reference) */
    int with_gm = state && m->gm && m->g_steps > 0, with_dm = state && m->dm && m->d_steps > 0;
    size_t n = m->gen.P.count * (1 + (size_t)with_ema + 2 * (size_t)with_gm) +
               m->disc.P.count * (1 + 2 * (size_t)with_dm);
    tg_st_entry *e = tg_alloc(n * sizeof *e);
    char(*names)[128] = tg_alloc(n * sizeof *names);
    if (!e || !names) {
        free(e), free(names);
        return TG_ERR_OUT_OF_MEMORY;
    }
    size_t k = 0;
    add_entries(e, &k, names, &m->gen.P, "", m->gw);
    add_entries(e, &k, names, &m->disc.P, "", m->dw);
    if (with_ema)
        add_entries(e, &k, names, &m->gen.P, "ema.", m->ema);
    if (with_gm) {
        add_entries(e, &k, names, &m->gen.P, "adam.m.", m->gm);
        add_entries(e, &k, names, &m->gen.P, "adam.v.", m->gv);
    }
    if (with_dm) {
        add_entries(e, &k, names, &m->disc.P, "adam.m.", m->dm);
        add_entries(e, &k, names, &m->disc.P, "adam.v.", m->dv);
    }
    char ds[24], gs[24], rs[65];
    snprintf(ds, sizeof ds, "%" PRIu64, m->d_steps);
    snprintf(gs, sizeof gs, "%" PRIu64, m->g_steps);
    for (int i = 0; i < 4; i++)
        snprintf(rs + 16 * i, 17, "%016" PRIx64, m->rng.s[i]);
    const char *keys[] = {"format", "descriptor", "d_steps", "g_steps", "rng_state"};
    const char *vals[] = {"transgan-checkpoint", m->desc_json, ds, gs, rs};
    tg_status st = tg_st_write(path, e, k, keys, vals, state ? 5 : 4);
    free(e), free(names);
    return st;
}
