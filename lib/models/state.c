/* A network's state arrays: the one place that lists what a network owns
 * (through TG_NET_ARRAYS). */
#include <stdio.h>

#include "state.h"

#define TG_STATE_INFO_(field, prefix, group) {#field, prefix, group},
const tg_net_array_info tg_net_arrays[TG_NET_NARRAYS] = {TG_NET_ARRAYS(TG_STATE_INFO_)};

/* the union's two views must coincide */
_Static_assert(sizeof(((tg_net_state *)0)->arr) ==
                   TG_NET_NARRAYS * sizeof(float *),
               "tg_net_state: one pointer per array");

static size_t bytes_of(const tg_net_state *s) { return s->P->total * sizeof(float); }

tg_status tg_net_alloc(tg_net_state *s, unsigned groups)
{
    for (int i = 0; i < TG_NET_NARRAYS; i++)
        if ((tg_net_arrays[i].group & groups) && !s->arr[i]) {
            s->arr[i] = tg_alloc(bytes_of(s));
            if (!s->arr[i])
                return TG_ERR_OUT_OF_MEMORY;
        }
    return TG_OK;
}

tg_status tg_net_alloc_like(tg_net_state *dst, const tg_net_state *src, unsigned groups)
{
    dst->P = src->P;
    for (int i = 0; i < TG_NET_NARRAYS; i++)
        if ((tg_net_arrays[i].group & groups) && src->arr[i] && !dst->arr[i]) {
            dst->arr[i] = tg_alloc(bytes_of(dst));
            if (!dst->arr[i])
                return TG_ERR_OUT_OF_MEMORY;
        }
    return TG_OK;
}

unsigned tg_net_groups(const tg_net_state *s)
{
    unsigned g = 0;
    for (int i = 0; i < TG_NET_NARRAYS; i++)
        if (s->arr[i])
            g |= tg_net_arrays[i].group;
    return g;
}

void tg_net_undo_alloc(tg_net_state *s, const tg_net_state *before)
{
    for (int i = 0; i < TG_NET_NARRAYS; i++)
        if (s->arr[i] && !before->arr[i]) {
            free(s->arr[i]);
            s->arr[i] = NULL;
        }
}

void tg_net_free(tg_net_state *s)
{
    for (int i = 0; i < TG_NET_NARRAYS; i++) {
        free(s->arr[i]);
        s->arr[i] = NULL;
    }
}

void tg_net_copy(tg_net_state *dst, const tg_net_state *src, unsigned groups)
{
    for (int i = 0; i < TG_NET_NARRAYS; i++)
        if ((tg_net_arrays[i].group & groups) && dst->arr[i] && src->arr[i])
            memcpy(dst->arr[i], src->arr[i], bytes_of(src));
    dst->steps = src->steps;
}

void tg_net_reset(tg_net_state *s, int i)
{
    if (!s->arr[i])
        return;
    if (tg_net_arrays[i].group == TG_GROUP_EMA && s->w)
        memcpy(s->arr[i], s->w, bytes_of(s));
    else
        memset(s->arr[i], 0, bytes_of(s));
}

/* Every tensor of the arrays of `groups` that are present (s set), or of
 * all of them (s NULL: data is then NULL). */
static tg_status visit(const tg_params *P, const tg_net_state *s, unsigned groups,
                       tg_net_visit_fn fn, void *ctx)
{
    char name[160];
    for (int i = 0; i < TG_NET_NARRAYS; i++) {
        if (!(tg_net_arrays[i].group & groups) || (s && !s->arr[i]))
            continue;
        for (size_t k = 0; k < P->count; k++) {
            const tg_param *p = &P->p[k];
            snprintf(name, sizeof name, "%s%s", tg_net_arrays[i].prefix, p->name);
            TG_TRY(fn(ctx, name, p, s ? s->arr[i] + p->off : NULL));
        }
    }
    return TG_OK;
}

tg_status tg_net_visit(const tg_net_state *s, unsigned groups, tg_net_visit_fn fn, void *ctx)
{
    return visit(s->P, s, groups, fn, ctx);
}

tg_status tg_net_visit_names(const tg_params *P, unsigned groups, tg_net_visit_fn fn, void *ctx)
{
    return visit(P, NULL, groups, fn, ctx);
}

void tg_net_probe_name(const tg_net_state *s, unsigned group, char *buf, size_t n)
{
    buf[0] = '\0';
    for (int i = 0; i < TG_NET_NARRAYS; i++)
        if (tg_net_arrays[i].group & group) {
            snprintf(buf, n, "%s%s", tg_net_arrays[i].prefix, s->P->count ? s->P->p[0].name : "");
            return;
        }
}
