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

/* tg_net_visit callback: every tensor of the staging arrays from the file */
typedef struct {
    const tg_st_file *f;
    const char *path;
} take_ctx;

static tg_status take_cb(void *ctx, const char *name, const tg_param *p, float *dst)
{
    const take_ctx *c = ctx;
    return take(c->f, c->path, name, p, dst);
}

static tg_status meta_u64(const tg_st_file *f, const char *path, const char *key, uint64_t *out)
{
    *out = 0;
    const char *v = tg_st_meta(f, key);
    if (!v)
        return TG_OK;
    /* digits only: strtoull alone takes blanks and a sign (" -1" wraps to
     * 2^64 - 1); and at most 2^63 - 1, so a counter never wraps (a wrapped
     * counter made every later step fail) */
    char *end;
    errno = 0;
    unsigned long long x = v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, 10) : 0;
    if (!(v[0] >= '0' && v[0] <= '9') || errno || *end || x > (unsigned long long)INT64_MAX)
        return tg_fail(TG_ERR_FORMAT, "checkpoint '%s': metadata %s = '%.40s' is not a step count "
                       "(decimal digits, at most %lld)", path, key, v, (long long)INT64_MAX);
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
        /* xoshiro's one fixed point: from all zeros it returns 0 forever */
        if ((rng.s[0] | rng.s[1] | rng.s[2] | rng.s[3]) == 0)
            return tg_fail(TG_ERR_FORMAT, "checkpoint '%s': metadata rng_state is all zeros, "
                           "which no generator state can be", path);
    }
    /* Stage each network's arrays: the weights always; each other group
     * the model has (EMA, Adam moments) when the file holds it, probed by its
     * first tensor (a group is all there or absent). */
    tg_net_state *live[2] = {&m->gnet, &m->dnet};
    tg_net_state stage[2] = {{.P = m->gnet.P}, {.P = m->dnet.P}};
    take_ctx ctx = {f, path};
    unsigned read[2];
    tg_status st = TG_OK;
    for (int k = 0; k < 2 && st == TG_OK; k++) {
        unsigned has = tg_model_state_groups(m, live[k]) & TG_GROUPS_KEPT;
        read[k] = TG_GROUP_WEIGHTS;
        for (unsigned g = TG_GROUP_EMA; g & TG_GROUPS_KEPT; g <<= 1) {
            char probe[160];
            tg_net_probe_name(&stage[k], g, probe, sizeof probe);
            if ((has & g) && tg_st_find(f, probe))
                read[k] |= g;
        }
        st = tg_net_alloc(&stage[k], read[k]);
    }
    /* group by group, so the first problem reported is the first in the
     * order weights, EMA, moments */
    for (unsigned g = TG_GROUP_WEIGHTS; st == TG_OK && (g & TG_GROUPS_KEPT); g <<= 1)
        for (int k = 0; k < 2 && st == TG_OK; k++)
            st = tg_net_visit(&stage[k], read[k] & g, take_cb, &ctx);
    if (st != TG_OK) {
        tg_net_free(&stage[0]);
        tg_net_free(&stage[1]);
        return st;
    }
    /* commit: staged arrays replace the live ones; a live array the file
     * lacks restarts (the EMA at the new weights, moments at zero) */
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < TG_NET_NARRAYS; i++) {
            if (!(tg_net_arrays[i].group & TG_GROUPS_KEPT))
                continue;
            if (stage[k].arr[i]) {
                free(live[k]->arr[i]);
                live[k]->arr[i] = stage[k].arr[i];
            } else {
                tg_net_reset(live[k], i);
            }
        }
    m->dnet.steps = d_steps, m->gnet.steps = g_steps;
    m->rng = rng;
    return TG_OK;
}

/* tg_net_visit callback: one safetensors entry per tensor */
typedef struct {
    tg_st_entry *e;
    char (*names)[160];
    size_t k;
} entries_ctx;

static tg_status add_entry(void *ctx, const char *name, const tg_param *p, float *data)
{
    entries_ctx *c = ctx;
    tg_st_entry *e = &c->e[c->k];
    snprintf(c->names[c->k], sizeof c->names[c->k], "%s", name);
    e->name = c->names[c->k];
    e->ndim = p->ndim;
    for (int j = 0; j < p->ndim; j++)
        e->shape[j] = p->shape[j];
    e->data = data;
    c->k++;
    return TG_OK;
}

tg_status tg_checkpoint_save(const tg_model *m, const char *path, uint32_t flags)
{
    int state = !(flags & (TG_SAVE_WEIGHTS_ONLY | TG_SAVE_NO_OPTIMIZER));
    const tg_net_state *nets[2] = {&m->gnet, &m->dnet};
    unsigned groups[2];
    size_t n = 0;
    for (int k = 0; k < 2; k++) {
        groups[k] = TG_GROUP_WEIGHTS;
        if (!(flags & TG_SAVE_WEIGHTS_ONLY))
            groups[k] |= TG_GROUP_EMA;
        /* moments exist once a network has been updated (as in the reference) */
        if (state && nets[k]->steps > 0)
            groups[k] |= TG_GROUP_OPTIMIZER;
        n += nets[k]->P->count * TG_NET_NARRAYS; /* at most */
    }
    entries_ctx c = {tg_alloc(n * sizeof *c.e), tg_alloc(n * sizeof *c.names), 0};
    if (!c.e || !c.names) {
        free(c.e), free(c.names);
        return TG_ERR_OUT_OF_MEMORY;
    }
    for (int k = 0; k < 2; k++)
        tg_net_visit(nets[k], groups[k], add_entry, &c);
    char ds[24], gs[24], rs[65];
    snprintf(ds, sizeof ds, "%" PRIu64, m->dnet.steps);
    snprintf(gs, sizeof gs, "%" PRIu64, m->gnet.steps);
    for (int i = 0; i < 4; i++)
        snprintf(rs + 16 * i, 17, "%016" PRIx64, m->rng.s[i]);
    const char *keys[] = {"format", "descriptor", "d_steps", "g_steps", "rng_state"};
    const char *vals[] = {"transgan-checkpoint", m->desc_json, ds, gs, rs};
    tg_status st = tg_st_write(path, c.e, c.k, keys, vals, state ? 5 : 4);
    free(c.e), free(c.names);
    return st;
}
