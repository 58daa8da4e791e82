/* Internal: the model handle and the two networks.
 *
 * Each network's parameters are one float array (tg_params names the
 * tensors); forward functions take the array, so the EMA generator is the
 * same code on another array. Workspaces are sized for a batch on first use
 * and reused; nothing is allocated in steady state. */
#ifndef TG_MODEL_H
#define TG_MODEL_H

#include "../core/desc.h"
#include "../nn/block.h"
#include "../nn/convblock.h"
#include "../core/rng.h"
#include "../core/params.h"
#include "state.h"

/* ------------------------------------------------------------- generator */
typedef struct tg_gen_stage {
    int res, dim, depth, N;
    size_t pos;          /* pos_embed offset */
    tg_block *blocks;
    int32_t *rel_idx;    /* [N*N] when relative bias is on */
} tg_gen_stage;

typedef struct tg_gen {
    tg_params P;
    int L, ch, S, nst, tanh_out, heads;
    size_t in_w, in_b, rgb_w, rgb_b, sr_w, sr_b; /* sr_*: SIZE_MAX when off */
    int ncls;            /* classes; 0: unconditional */
    size_t cls;          /* class_embed [ncls, L], added to z; SIZE_MAX when off */
    tg_gen_stage st[TG_MAX_STAGES];
} tg_gen;

/* What a training forward of G keeps for backward (batch B). */
typedef struct tg_gen_acts {
    int64_t B;
    int first;                     /* first stage run (1 for MT-CT) */
    const int32_t *labels;         /* [B] classes of a conditional generator,
                                      set by the caller before tg_gen_fwd */
    float *zc, *dzc;               /* z + class_embed[label] and its gradient
                                      [B, L] (conditional only) */
    tg_block_acts *blk;            /* all blocks of all stages, in order */
    float *x;                      /* running tokens [B, w0^2 * C0] */
    float *x_final;                /* input of to_rgb [B, N, C_last] */
    float *rgb;                    /* to_rgb output [B, N, ch] (after tanh) */
    float *img;                    /* [B, ch, S, S] */
    float *scratch;                /* block backward scratch and dx buffers */
    float *buf;                    /* the one allocation behind all of it */
    size_t floats;
} tg_gen_acts;

tg_status tg_gen_define(tg_gen *g, const tg_desc *d);
void tg_gen_free(tg_gen *g);

/* Inference: z [B, L] -> img [B, ch, S, S]. masks[s] may be NULL. `ws` holds
 * tg_gen_infer_floats(g, B) floats. */
size_t tg_gen_infer_floats(const tg_gen *g, int64_t B);
tg_status tg_gen_infer(tg_dnn *c, const tg_gen *g, const float *W, const float *z, int64_t B,
                       uint8_t *const *masks, float *img, float *ws);
/* The same for a conditional generator: labels [B] in [0, ncls) (checked
 * by the caller); NULL for an unconditional one. */
tg_status tg_gen_infer_labels(tg_dnn *c, const tg_gen *g, const float *W, const float *z,
                              const int32_t *labels, int64_t B, uint8_t *const *masks,
                              float *img, float *ws);

/* Training forward/backward. first = 0: from z [B, L]; first = 1 (MT-CT):
 * from low-resolution images [B, ch, w1, w1] through sr_embed. */
tg_status tg_gen_acts_alloc(const tg_gen *g, int64_t B, tg_gen_acts *a);
void tg_gen_acts_free(tg_gen_acts *a);
tg_status tg_gen_fwd(tg_dnn *c, const tg_gen *g, const float *W, const float *in, int first,
                     uint8_t *const *masks, tg_gen_acts *a);
/* dimg [B, ch, S, S] (consumed) -> parameter gradients added into G */
tg_status tg_gen_bwd(tg_dnn *c, const tg_gen *g, const float *W, float *G, const float *in,
                     uint8_t *const *masks, tg_gen_acts *a, const float *dimg);

/* --------------------------------------------------------- discriminator */
typedef struct tg_disc {
    tg_params P;
    int ch, S, p, grid, T, C, F, depth;
    size_t pe_w, pe_b, cls, pos, norm_g, norm_b, head_w, head_b;
    int ncls;      /* classes; 0: unconditional */
    size_t proj;   /* the projection's class_embed [ncls, C]; SIZE_MAX when off */
    tg_block *blocks;
    /* kind "conv" (models/disc_conv.c): its units, the last one's width and
     * size, pooling; head_w/head_b are its Linear head */
    int kind;              /* enum tg_disc_kind */
    int ncb, cres, cpool;  /* units; residual; enum tg_pool_kind */
    int cC, cS;            /* width and size of the last unit's output */
    tg_cblock *cb;
} tg_disc;

typedef struct tg_disc_acts {
    int64_t B;
    /* [B] classes of the batch for the projection term of a conditional D,
     * set by the caller before tg_disc_fwd and read by every later pass
     * (bwd, jvp, bwd2) over the same activations; NULL: no projection term */
    const int32_t *labels;
    /* the class loss (tg_disc_cls_bwd) for the next tg_disc_bwd over these
     * activations: its weight (0: none; the caller sets it for one pass and
     * clears it) and, after that pass, its value */
    double cls_weight, cls_loss;
    tg_block_acts *blk;
    float *tok;      /* patches [B, T-1, F] */
    float *emb;      /* patch embeddings [B, T-1, C] */
    float *x;        /* tokens [B, T, C] */
    float *xc, *xn;  /* cls rows before and after the final norm [B, C] */
    float *mean, *var;
    float *scratch;
    float *buf;
    size_t floats;
    /* kind "conv": per unit activations; the input image, the head's
     * activation input h (= the last unit's output when plain) and pooled g */
    tg_cblock_acts *cba;
    float *cimg, *ch, *cg;
} tg_disc_acts;

tg_status tg_disc_define(tg_disc *d, const tg_desc *desc);
void tg_disc_free(tg_disc *d);
tg_status tg_disc_acts_alloc(const tg_disc *d, int64_t B, tg_disc_acts *a);
void tg_disc_acts_free(tg_disc_acts *a);
/* img [B, ch, S, S] -> scores [B], keeping what backward and the penalty's
 * passes need in a (a->labels: a conditional D's classes). */
tg_status tg_disc_fwd(tg_dnn *c, const tg_disc *d, const float *W, const float *img,
                      float *scores, tg_disc_acts *a);
/* Inference (tg_discriminate): img [B, ch, S, S] -> scores [B], the training
 * forward's result within float rounding, in `ws` of tg_disc_infer_floats(d, B)
 * floats (a few per cent of tg_disc_acts_alloc's for the transformer D, a
 * fraction of it for the conv D). labels [B]: a conditional D's classes (the
 * projection term), or NULL to leave it out. Either kind. */
size_t tg_disc_infer_floats(const tg_disc *d, int64_t B);
tg_status tg_disc_infer(tg_dnn *c, const tg_disc *d, const float *W, const float *img,
                        int64_t B, const int32_t *labels, float *scores, float *ws);
/* dscores [B] -> parameter gradients added into G (if not NULL: the
 * generator step and the penalty's first pass need only dimg) and the
 * image gradient written into dimg (if not NULL). */
tg_status tg_disc_bwd(tg_dnn *c, const tg_disc *d, const float *W, float *G, tg_disc_acts *a,
                      const float *dscores, float *dimg);

/* Second order (docs/SECOND_ORDER.md sections 2, 4 and 9).
 * Tangent of the scores along an image tangent imgd, at the primal
 * activations `a` of a training forward; tangent activations go to ta
 * (allocated like a). */
tg_status tg_disc_jvp(tg_dnn *c, const tg_disc *d, const float *W, const tg_disc_acts *a,
                      tg_disc_acts *ta, const float *imgd, float *scoresd);
/* Gradient with respect to the weights (added into G) of sum_i
 * dscoresd[i] * scoresd[i] from tg_disc_jvp: the reverse of forward mode,
 * the exact second-order gradient of the gradient penalty. Uses a's scratch. */
tg_status tg_disc_bwd2(tg_dnn *c, const tg_disc *d, const float *W, float *G, tg_disc_acts *a,
                       const tg_disc_acts *ta, const float *dscoresd);

/* A conditional D's projection term on the features h [B, C] its head sees
 * (or their tangent): s[b] += <class_embed[y_b], h[b]>, and its reverse
 * (dh += ds E[y], E's gradient rows in G if not NULL). Nothing when the D is
 * unconditional or lab is NULL (docs/SECOND_ORDER.md section 11). */
void tg_disc_proj_fwd(const tg_disc *d, const float *W, const int32_t *lab, const float *h,
                      float *s, int64_t B, int64_t C);
void tg_disc_proj_bwd(const tg_disc *d, const float *W, float *G, const int32_t *lab,
                      const float *h, const float *ds, float *dh, int64_t B, int64_t C);

/* The dual projection's class loss (Han et al., ICCV 2021, "P2GAN"; docs/
 * SPECIFICATION.md "Class conditioning"): the class embedding doubles as a
 * classifier of the features h [B, C], logits l[b] = E h[b]; the loss
 * w / B sum_b (logsumexp(l[b]) - l[b][y_b]) is returned and its gradient
 * added: dh into dh, E's into G if not NULL. Nothing (0) when the D is
 * unconditional, lab is NULL or w is 0. */
double tg_disc_cls_bwd(const tg_disc *d, const float *W, float *G, const int32_t *lab,
                       const float *h, float *dh, int64_t B, int64_t C, double w);

/* The convolutional discriminator (models/disc_conv.c): the same contract
 * as the tg_disc_* functions above, which dispatch to these by kind. */
tg_status tg_cdisc_define(tg_disc *d, const tg_desc *desc);
tg_status tg_cdisc_acts_alloc(const tg_disc *d, int64_t B, tg_disc_acts *a);
tg_status tg_cdisc_fwd(tg_dnn *c, const tg_disc *d, const float *W, const float *img,
                       float *scores, tg_disc_acts *a);
tg_status tg_cdisc_bwd(tg_dnn *c, const tg_disc *d, const float *W, float *G, tg_disc_acts *a,
                       const float *dscores, float *dimg);
size_t tg_cdisc_infer_floats(const tg_disc *d, int64_t B);
tg_status tg_cdisc_infer(tg_dnn *c, const tg_disc *d, const float *W, const float *img,
                         int64_t B, const int32_t *labels, float *scores, float *ws);
tg_status tg_cdisc_jvp(tg_dnn *c, const tg_disc *d, const float *W, const tg_disc_acts *a,
                       tg_disc_acts *ta, const float *imgd, float *scoresd);
tg_status tg_cdisc_bwd2(tg_dnn *c, const tg_disc *d, const float *W, float *G, tg_disc_acts *a,
                        const tg_disc_acts *ta, const float *dscoresd);

/* ------------------------------------------------------------------ model */
struct tg_model {
    tg_desc desc;
    char *desc_json;
    tg_dnn *dnn;
    tg_gen gen;
    tg_disc disc;
    /* each network's state arrays and update counter (models/state.h);
     * with rng, everything a checkpoint holds and a failed step restores */
    tg_net_state gnet, dnet;
    tg_rng rng;
    /* adaptive DiffAugment (training.ada): the current probability, and the
     * sum of sign(D(aug(real))) over the ada_n real images since the last
     * adjustment; checkpoints keep all three (metadata ada_state) */
    double ada_p;
    int64_t ada_sum, ada_n;
    /* loaded with TG_LOAD_SAMPLING_ONLY: gnet holds one array, the EMA (when
     * the file had it) or the weights; dnet holds none; no trainer, ever */
    int sampling_only;
    struct tg_trainer *trainer; /* training buffers, made by the first step */
    int threads;      /* tg_model_set_threads: 0 = the caller's OpenMP maximum */
    /* locality masks for the stages that use them, at mask_radius[s] */
    uint8_t *masks[TG_MAX_STAGES];
    int mask_radius[TG_MAX_STAGES];
    /* inference workspaces, grown on demand */
    float *g_ws;
    float *px_ws;     /* float images behind tg_generate_pixels */
    size_t px_ws_floats;
    size_t g_ws_floats;
    float *d_ws;      /* tg_disc_infer's workspace */
    size_t d_ws_floats;
    /* inference precision in effect (tg_precision): TG_PRECISION_BF16 only
     * where the CPU has AVX512-BF16; the copies live in dnn (ops/bf16.h) */
    int precision;
    /* tg_model_set_data_parallel: this replica's rank of dp_world (<= 1:
     * off) and the all-reduce train/ calls before each update */
    int dp_rank, dp_world;
    tg_allreduce_fn dp_fn;
    void *dp_user;
};

/* Build an empty model (weights zero) for a parsed descriptor and its JSON
 * text (io/'s tg_desc_to_json; NULL counts as out of memory); takes
 * ownership of both (*desc cleared) on success and on failure. It is
 * tg_model_define then tg_model_alloc of the weights and the EMA. */
tg_status tg_model_build(tg_desc *desc, char *desc_json, tg_model **out);
/* The first half: the handle and the two networks' parameter tables (a few
 * KiB), so a checkpoint can be checked against the model before its state
 * is allocated; no oneDNN context, no state arrays. Ownership as above. */
tg_status tg_model_define(tg_desc *desc, char *desc_json, int sampling_only, tg_model **out);
/* The second half: the oneDNN context, the locality masks and the state
 * arrays of the given groups (zeroed). On failure free the model. */
tg_status tg_model_alloc(tg_model *m, unsigned g_groups, unsigned d_groups);
/* Free everything the model owns but its trainer (train/ frees that first). */
void tg_model_free(tg_model *m);
/* The state groups (enum tg_state_group) network `net` (&m->gnet or
 * &m->dnet) has in this model, now or once training has started. */
unsigned tg_model_state_groups(const tg_model *m, const tg_net_state *net);
/* Fill the weights with the official initialisation from seed; EMA = copy. */
void tg_model_init_weights(tg_model *m, uint64_t seed);
/* Inference precision: TG_PRECISION_BF16 turns the bf16 path on, with bf16
 * copies of the weight arrays inference reads (generator weights and EMA,
 * discriminator weights) made at the first call that reads each; it falls
 * back to f32 (m->precision 0) when tg_bf16_supported() says no. Cannot
 * fail. */
tg_status tg_model_precision_set(tg_model *m, int precision);
/* After anything that changes or replaces weight arrays (a training step, a
 * load): the bf16 copies follow (converted again at their next use). */
void tg_model_weights_changed(tg_model *m);
/* Run the calls that follow in f32 whatever the precision (training: 1), or
 * in the model's precision again (0). */
void tg_model_force_f32(tg_model *m, int on);

/* The training precision in effect: TG_PRECISION_BF16 when the descriptor's
 * training.precision asks for it and tg_bf16_supported(), else f32. */
int tg_model_train_precision(const tg_model *m);
/* Around a training call: begin runs the calls that follow in the training
 * precision (bf16: the Linears of both networks, forward and backward, on
 * bf16 copies of the weights being trained, every Linear but the output
 * layers; the conv D's convolutions; ops/bf16.h); end returns to the
 * inference precision, its copies following the weights. */
void tg_model_train_begin(tg_model *m);
void tg_model_train_end(tg_model *m);

/* The masks for the current g_steps (NULL entries: none); recomputes them
 * when the schedule moves. */
uint8_t *const *tg_model_masks(tg_model *m, uint64_t g_steps);

#endif
