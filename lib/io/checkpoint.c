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

/* The tensor `name` of the file if its shape is p's; else why not. */
static tg_status find(const tg_st_file *f, const char *name, const tg_param *p,
                      const tg_st_tensor **out)
{
    const tg_st_tensor *t = tg_st_find(f, name);
    *out = t;
    if (!t)
        return tg_fail(TG_ERR_MISSING, "checkpoint '%s' lacks tensor '%s'", f->name, name);
    int same = t->ndim == p->ndim;
    for (int i = 0; same && i < p->ndim; i++)
        same = t->shape[i] == p->shape[i];
    if (!same) {
        char a[128], b[128];
        shape_str(a, sizeof a, t->ndim, t->shape);
        shape_str(b, sizeof b, p->ndim, p->shape);
        return tg_fail(TG_ERR_SHAPE, "checkpoint '%s': tensor '%s' has shape %s, the model needs %s",
                       f->name, name, a, b);
    }
    return TG_OK;
}

/* tg_net_visit callbacks: check a tensor's presence and shape (nothing is
 * read), or read it into dst and check its values */
static tg_status check_cb(void *ctx, const char *name, const tg_param *p, float *dst)
{
    (void)dst;
    const tg_st_tensor *t;
    return find(ctx, name, p, &t);
}

static tg_status take_cb(void *ctx, const char *name, const tg_param *p, float *dst)
{
    const tg_st_file *f = ctx;
    const tg_st_tensor *t;
    TG_TRY(find(f, name, p, &t));
    TG_TRY(tg_st_load_f32(f, t, dst));
    for (size_t i = 0; i < p->n; i++)
        if (!isfinite(dst[i]))
            return tg_fail(TG_ERR_NONFINITE, "checkpoint '%s': tensor '%s' holds NaN or infinity "
                           "(element %zu)", f->name, name, i);
    return TG_OK;
}

static tg_status meta_u64(const tg_st_file *f, const char *key, uint64_t *out)
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
                       "(decimal digits, at most %lld)", f->name, key, v, (long long)INT64_MAX);
    *out = x;
    return TG_OK;
}

/* What a checkpoint gives a model, decided from the file's index and
 * metadata alone. */
typedef struct {
    unsigned read[2];   /* the groups of gnet and dnet to read */
    uint64_t d_steps, g_steps;
    tg_rng rng;         /* m's RNG, or the file's rng_state */
    double ada_p;       /* m's ADA state, or the file's ada_state */
    int64_t ada_sum, ada_n;
} plan_t;

/* Check the metadata and every tensor the load will read (names, shapes;
 * dtypes and offsets were checked by the reader) against m's parameter
 * tables, allocating nothing: a file that cannot load is refused before any
 * state exists. The first problem reported is the first in the order
 * weights, EMA, moments. */
static tg_status make_plan(const tg_model *m, const tg_st_file *f, plan_t *plan)
{
    const char *fmt = tg_st_meta(f, "format");
    if (fmt && strcmp(fmt, "transgan-checkpoint") != 0)
        return tg_fail(TG_ERR_FORMAT, "'%s' is a '%.60s' file, not a transgan-checkpoint", f->name,
                       fmt);
    TG_TRY(meta_u64(f, "d_steps", &plan->d_steps));
    TG_TRY(meta_u64(f, "g_steps", &plan->g_steps));
    plan->rng = m->rng;
    const char *rs = tg_st_meta(f, "rng_state");
    if (rs) { /* 4 x 16 hex digits: the training RNG, so a resumed run continues it */
        char word[17] = {0};
        int ok = strlen(rs) == 64;
        for (int i = 0; ok && i < 4; i++) {
            memcpy(word, rs + 16 * i, 16);
            char *end;
            plan->rng.s[i] = strtoull(word, &end, 16);
            ok = *end == '\0' && strspn(word, "0123456789abcdef") == 16;
        }
        if (!ok)
            return tg_fail(TG_ERR_FORMAT, "checkpoint '%s': metadata rng_state is malformed", f->name);
        /* xoshiro's one fixed point: from all zeros it returns 0 forever */
        if ((plan->rng.s[0] | plan->rng.s[1] | plan->rng.s[2] | plan->rng.s[3]) == 0)
            return tg_fail(TG_ERR_FORMAT, "checkpoint '%s': metadata rng_state is all zeros, "
                           "which no generator state can be", f->name);
    }
    /* ADA's probability (a C99 hex float, exact) and its sign tally */
    plan->ada_p = m->ada_p, plan->ada_sum = m->ada_sum, plan->ada_n = m->ada_n;
    const char *as = tg_st_meta(f, "ada_state");
    if (as) {
        char *end;
        double p = strtod(as, &end);
        long long sum = 0, cnt = -1;
        int used = 0;
        int ok = end != as && sscanf(end, " %lld %lld%n", &sum, &cnt, &used) == 2 &&
                 end[used] == '\0' && p >= 0 && p <= 1 && cnt >= 0 && (sum < 0 ? -sum : sum) <= cnt;
        if (!ok)
            return tg_fail(TG_ERR_FORMAT, "checkpoint '%s': metadata ada_state is malformed "
                           "(want \"P SUM COUNT\", 0 <= P <= 1, |SUM| <= COUNT)", f->name);
        plan->ada_p = p, plan->ada_sum = sum, plan->ada_n = cnt;
    }
    /* each network's groups: the weights always; each other group the model
     * has (EMA, Adam moments) when the file holds it, probed by its first
     * tensor (a group is all there or absent) */
    const tg_net_state *nets[2] = {&m->gnet, &m->dnet};
    for (int k = 0; k < 2; k++) {
        unsigned has = tg_model_state_groups(m, nets[k]) & TG_GROUPS_KEPT;
        if (m->sampling_only) /* the generator's EMA, if any: probed below */
            has = k == 0 && m->desc.t.ema != TG_EMA_NONE ? TG_GROUP_EMA : 0;
        plan->read[k] = m->sampling_only ? 0 : TG_GROUP_WEIGHTS;
        for (unsigned g = TG_GROUP_EMA; g & TG_GROUPS_KEPT; g <<= 1) {
            char probe[160];
            tg_net_probe_name(nets[k], g, probe, sizeof probe);
            if ((has & g) && tg_st_find(f, probe))
                plan->read[k] |= g;
        }
    }
    /* sampling only: the EMA generator where the file has it, else the raw one */
    if (m->sampling_only && !plan->read[0])
        plan->read[0] = TG_GROUP_WEIGHTS;
    for (unsigned g = TG_GROUP_WEIGHTS; g & TG_GROUPS_KEPT; g <<= 1)
        for (int k = 0; k < 2; k++)
            TG_TRY(tg_net_visit_names(nets[k]->P, plan->read[k] & g, check_cb, (void *)f));
    return TG_OK;
}

/* Read the planned groups into nets[k] (their arrays allocated), group by
 * group in the order of make_plan; values are checked as they come. */
static tg_status read_plan(const tg_st_file *f, const plan_t *plan, tg_net_state *nets)
{
    for (unsigned g = TG_GROUP_WEIGHTS; g & TG_GROUPS_KEPT; g <<= 1)
        for (int k = 0; k < 2; k++)
            TG_TRY(tg_net_visit(&nets[k], plan->read[k] & g, take_cb, (void *)f));
    return TG_OK;
}

/* the plan's step counters, RNG and ADA state into the model (the last step
 * of a load, once nothing can fail) */
static void apply_counters(tg_model *m, const plan_t *plan)
{
    m->dnet.steps = plan->d_steps, m->gnet.steps = plan->g_steps;
    m->rng = plan->rng;
    m->ada_p = plan->ada_p, m->ada_sum = plan->ada_sum, m->ada_n = plan->ada_n;
}

/* Load f into an existing model; m changes only when everything is valid:
 * the file is read into staging arrays, which then replace the live ones. */
tg_status tg_checkpoint_load(tg_model *m, const tg_st_file *f)
{
    plan_t plan;
    TG_TRY(make_plan(m, f, &plan));
    tg_net_state *live[2] = {&m->gnet, &m->dnet};
    tg_net_state stage[2] = {{.P = m->gnet.P}, {.P = m->dnet.P}};
    tg_status st = TG_OK;
    for (int k = 0; k < 2 && st == TG_OK; k++)
        st = tg_net_alloc(&stage[k], plan.read[k]);
    if (st == TG_OK)
        st = read_plan(f, &plan, stage);
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
    apply_counters(m, &plan);
    return TG_OK;
}

tg_status tg_checkpoint_load_new(tg_model *m, const tg_st_file *f)
{
    plan_t plan;
    TG_TRY(make_plan(m, f, &plan));
    /* a new model reads straight into its own arrays (on failure it is
     * destroyed, so nothing needs staging): the largest allocation of a
     * load is the model itself */
    unsigned alloc[2] = {plan.read[0], plan.read[1]};
    if (!m->sampling_only) /* the weights and the EMA exist even when the file lacks the EMA */
        alloc[0] |= tg_model_state_groups(m, &m->gnet) & (TG_GROUP_WEIGHTS | TG_GROUP_EMA);
    TG_TRY(tg_model_alloc(m, alloc[0], alloc[1]));
    tg_net_state nets[2] = {m->gnet, m->dnet};
    TG_TRY(read_plan(f, &plan, nets));
    if (!(plan.read[0] & TG_GROUP_EMA))
        tg_net_reset(&m->gnet, TG_ARR_ema); /* only when the model keeps one */
    apply_counters(m, &plan);
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
    /* ADA's state with the RNG's (training state): only when ADA is on, so
     * other models' files are as before */
    char as[80];
    snprintf(as, sizeof as, "%a %lld %lld", m->ada_p, (long long)m->ada_sum, (long long)m->ada_n);
    const char *keys[] = {"format", "descriptor", "d_steps", "g_steps", "rng_state", "ada_state"};
    const char *vals[] = {"transgan-checkpoint", m->desc_json, ds, gs, rs, as};
    tg_status st = tg_st_write(path, c.e, c.k, keys, vals,
                               state ? (m->desc.t.ada_on ? 6 : 5) : 4);
    free(c.e), free(c.names);
    return st;
}
