/* Internal: the state of one network - every float array laid out like its
 * parameter table (weights, EMA, optimiser moments, gradient) and its update
 * counter - in one struct, with the four operations every user of model
 * state goes through: allocate, free, copy (a failed training step's
 * rollback) and visit by tensor name (checkpoint save and load).
 *
 * The arrays are listed once, in TG_NET_ARRAYS: adding a state array is one
 * line there (its field, its checkpoint prefix and its group); the struct,
 * the table below, destroy, rollback, save and load follow from it. */
#ifndef TG_STATE_H
#define TG_STATE_H

#include "../core/params.h"

/* What a group of arrays means to the model's life cycle. */
enum tg_state_group {
    TG_GROUP_WEIGHTS = 1u << 0,   /* always there; a checkpoint must hold them */
    TG_GROUP_EMA = 1u << 1,       /* the generator's moving average, when the
                                     descriptor asks for one; a checkpoint
                                     without it starts it at the weights */
    TG_GROUP_OPTIMIZER = 1u << 2, /* Adam's moments, made by the first step or a
                                     checkpoint; one without them starts at 0 */
    TG_GROUP_GRAD = 1u << 3       /* one training step's scratch: never saved,
                                     never rolled back */
};
/* The groups that are the model's state: what a checkpoint can hold and a
 * failed step restores. */
#define TG_GROUPS_KEPT (TG_GROUP_WEIGHTS | TG_GROUP_EMA | TG_GROUP_OPTIMIZER)

/* X(field, checkpoint prefix, group), in the order save and load visit them
 * (load relies on w coming before the arrays that restart from it). */
#define TG_NET_ARRAYS(X)                                                         \
    X(w, "", TG_GROUP_WEIGHTS)              /* the weights */                    \
    X(ema, "ema.", TG_GROUP_EMA)            /* EMA of the weights (generator) */ \
    X(adam_m, "adam.m.", TG_GROUP_OPTIMIZER) /* Adam's first moments */          \
    X(adam_v, "adam.v.", TG_GROUP_OPTIMIZER) /* Adam's second moments */         \
    X(grad, "", TG_GROUP_GRAD)              /* the step's gradient, one flat buffer */

#define TG_STATE_ENUM_(field, prefix, group) TG_ARR_##field,
#define TG_STATE_FIELD_(field, prefix, group) float *field;
enum { TG_NET_ARRAYS(TG_STATE_ENUM_) TG_NET_NARRAYS };

typedef struct tg_net_state {
    const tg_params *P; /* names, shapes, offsets: P->total floats per array */
    union {             /* each array by name, or all of them by index */
        struct { TG_NET_ARRAYS(TG_STATE_FIELD_) };
        float *arr[TG_NET_NARRAYS]; /* NULL: absent */
    };
    uint64_t steps;     /* updates applied to this network */
} tg_net_state;

/* The table the macro makes: field name, checkpoint prefix, group. */
typedef struct tg_net_array_info {
    const char *field, *prefix;
    unsigned group;
} tg_net_array_info;
extern const tg_net_array_info tg_net_arrays[TG_NET_NARRAYS];

/* Allocate (zeroed) every array of `groups` not there yet. On failure the
 * arrays made so far stay (tg_net_free frees them). */
tg_status tg_net_alloc(tg_net_state *s, unsigned groups);
/* Make dst (laid out by src->P) have every array of `groups` that src has. */
tg_status tg_net_alloc_like(tg_net_state *dst, const tg_net_state *src, unsigned groups);
/* The groups of which s has at least one array. */
unsigned tg_net_groups(const tg_net_state *s);
/* Undo allocations after a failure: free every array s has that `before`
 * (a copy of s taken earlier) did not, so s is as it was (a failed first
 * step must not leave half of Adam's pair of moments behind). */
void tg_net_undo_alloc(tg_net_state *s, const tg_net_state *before);
/* Free every array; the table pointer stays. */
void tg_net_free(tg_net_state *s);
/* Copy the arrays of `groups` present in both, and the counter. */
void tg_net_copy(tg_net_state *dst, const tg_net_state *src, unsigned groups);
/* Restart array i as if a checkpoint lacked it: the EMA at the weights,
 * anything else at zero. */
void tg_net_reset(tg_net_state *s, int i);

/* fn for every tensor of every present array of `groups`, arrays in
 * TG_NET_ARRAYS order: name = prefix + tensor name, data = its floats.
 * Stops at, and returns, the first status other than TG_OK. */
typedef tg_status (*tg_net_visit_fn)(void *ctx, const char *name, const tg_param *p,
                                     float *data);
tg_status tg_net_visit(const tg_net_state *s, unsigned groups, tg_net_visit_fn fn, void *ctx);
/* The same over the arrays of `groups` a network with table P would have,
 * none allocated (data = NULL): what a checkpoint must hold, by name. */
tg_status tg_net_visit_names(const tg_params *P, unsigned groups, tg_net_visit_fn fn, void *ctx);
/* The first tensor name of the first array of `group` (what a checkpoint is
 * probed for), into buf[n]. */
void tg_net_probe_name(const tg_net_state *s, unsigned group, char *buf, size_t n);

#endif
