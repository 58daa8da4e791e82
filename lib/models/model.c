/* The model handle: built from a descriptor, initialised, freed; and the
 * locality masks the generator's schedule asks for. The public calls over it
 * are in api/. */
#include "../ops/bf16.h"
#include "model.h"

/* Everything the model owns except the trainer (train/'s, freed by
 * tg_model_destroy before this). */
void tg_model_free(tg_model *m)
{
    if (!m)
        return;
    tg_gen_free(&m->gen);
    tg_disc_free(&m->disc);
    free(m->d_ws);
    for (int s = 0; s < TG_MAX_STAGES; s++)
        free(m->masks[s]);
    tg_net_free(&m->gnet);
    tg_net_free(&m->dnet);
    free(m->g_ws);
    free(m->px_ws);
    free(m->desc_json);
    tg_desc_free(&m->desc);
    tg_dnn_destroy(m->dnn);
    free(m);
}

tg_status tg_model_define(tg_desc *desc, char *desc_json, int sampling_only, tg_model **out)
{
    *out = NULL;
    tg_model *m = tg_alloc(sizeof *m);
    if (!m) {
        tg_desc_free(desc);
        free(desc_json);
        return TG_ERR_OUT_OF_MEMORY;
    }
    m->desc = *desc;
    memset(desc, 0, sizeof *desc);
    m->desc_json = desc_json;
    m->sampling_only = sampling_only;
    m->dp_world = 1; /* not data parallel until tg_model_set_data_parallel */
    tg_status st = TG_OK;
    if (!m->desc_json)
        st = tg_fail(TG_ERR_OUT_OF_MEMORY, "out of memory writing the descriptor");
    if (st == TG_OK)
        st = tg_gen_define(&m->gen, &m->desc);
    if (st == TG_OK)
        st = tg_disc_define(&m->disc, &m->desc);
    m->gnet.P = &m->gen.P;
    m->dnet.P = &m->disc.P;
    if (st != TG_OK) {
        tg_model_free(m);
        return st;
    }
    tg_rng_seed(&m->rng, m->desc.t.seed);
    m->ada_p = m->desc.t.diffaug_p; /* ADA starts from the fixed probability */
    *out = m;
    return TG_OK;
}

tg_status tg_model_alloc(tg_model *m, unsigned g_groups, unsigned d_groups)
{
    tg_status st = tg_dnn_create(&m->dnn);
    if (st == TG_OK)
        st = tg_net_alloc(&m->gnet, g_groups);
    if (st == TG_OK)
        st = tg_net_alloc(&m->dnet, d_groups);
    if (st == TG_OK && m->desc.t.loc_on) {
        for (int i = 0; i < m->desc.t.loc_nstages && st == TG_OK; i++) {
            int s = m->desc.t.loc_stages[i];
            size_t N = (size_t)m->gen.st[s].N;
            m->masks[s] = tg_alloc(N * N);
            m->mask_radius[s] = -1;
            if (!m->masks[s])
                st = TG_ERR_OUT_OF_MEMORY;
        }
    }
    return st;
}

tg_status tg_model_build(tg_desc *desc, char *desc_json, tg_model **out)
{
    tg_model *m;
    TG_TRY(tg_model_define(desc, desc_json, 0, &m));
    /* weights and EMA now; moments and gradients with the first step */
    const unsigned now = TG_GROUP_WEIGHTS | TG_GROUP_EMA;
    tg_status st = tg_model_alloc(m, tg_model_state_groups(m, &m->gnet) & now,
                                  tg_model_state_groups(m, &m->dnet) & now);
    if (st != TG_OK) {
        tg_model_free(m);
        return st;
    }
    *out = m;
    return TG_OK;
}

unsigned tg_model_state_groups(const tg_model *m, const tg_net_state *net)
{
    if (m->sampling_only) /* what the checkpoint gave it, and never more */
        return tg_net_groups(net);
    unsigned g = TG_GROUP_WEIGHTS | TG_GROUP_GRAD;
    if (net == &m->gnet && m->desc.t.ema != TG_EMA_NONE)
        g |= TG_GROUP_EMA;
    if (m->desc.t.optimizer == TG_OPTIM_ADAM)
        g |= TG_GROUP_OPTIMIZER;
    return g;
}

void tg_model_init_weights(tg_model *m, uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed);
    tg_params_init(&m->gen.P, m->gnet.w, &r);
    tg_params_init(&m->disc.P, m->dnet.w, &r);
    tg_net_reset(&m->gnet, TG_ARR_ema); /* the EMA starts at the weights */
}

uint8_t *const *tg_model_masks(tg_model *m, uint64_t g_steps)
{
    static uint8_t *const none[TG_MAX_STAGES];
    if (!m->desc.t.loc_on)
        return none;
    int radius = -1; /* the first schedule row that still holds */
    for (int i = 0; i < m->desc.t.loc_nsched; i++)
        if ((int64_t)g_steps < m->desc.t.loc_until[i]) {
            radius = m->desc.t.loc_radius[i];
            break;
        }
    if (radius < 0)
        return none;
    for (int s = 0; s < TG_MAX_STAGES; s++)
        if (m->masks[s] && m->mask_radius[s] != radius) {
            tg_locality_mask(m->masks[s], m->gen.st[s].res, radius);
            m->mask_radius[s] = radius;
        }
    return m->masks;
}

/* The arrays inference reads, by shadow slot: tg_generate (EMA or, with
 * TG_GEN_RAW, the weights) and tg_discriminate. */
static void bf16_arrays(tg_model *m, const float *arr[3], size_t n[3])
{
    arr[0] = m->gnet.w, n[0] = m->gen.P.total;
    arr[1] = m->gnet.ema, n[1] = m->gen.P.total;
    arr[2] = m->dnet.w, n[2] = m->disc.P.total;
}

tg_status tg_model_precision_set(tg_model *m, int precision)
{
    if (precision == TG_PRECISION_BF16 && tg_bf16_supported()) {
        m->precision = TG_PRECISION_BF16;
        tg_model_weights_changed(m); /* copies made at their first use */
        return TG_OK;
    }
    /* f32, asked for or the fallback */
    tg_dnn_bf16_release(m->dnn);
    m->precision = TG_PRECISION_F32;
    return TG_OK;
}

void tg_model_weights_changed(tg_model *m)
{
    if (m->precision != TG_PRECISION_BF16)
        return;
    const float *arr[3];
    size_t n[3];
    bf16_arrays(m, arr, n);
    /* the generator's input Linear keeps f32: it maps the latent straight to
     * every token, and rounding z to bf16 moves pixels the most (measured on
     * the shipped fmnist-mid: 0.3% of pixels off by more than 2 levels with
     * it in bf16, 0.017% without; the bound is 0.1%). At batch 1 and 2 its
     * GEMV (ops/gemv.c) still reads the bf16 copy of its weights, with z in
     * f32: half the bytes of the largest weight (0.050% of the pixels off by
     * more than 2 levels, tests/test_bf16.c) */
    for (int i = 0; i < 3; i++)
        tg_dnn_bf16_bind(m->dnn, i, arr[i], n[i], i < 2 ? m->gen.in_w : 0, i < 2);
    tg_dnn_bf16_set(m->dnn, 1);
}

int tg_model_train_precision(const tg_model *m)
{
    return m->desc.t.precision == TG_PRECISION_BF16 && tg_bf16_supported() ? TG_PRECISION_BF16
                                                                           : TG_PRECISION_F32;
}

void tg_model_train_begin(tg_model *m)
{
    if (tg_model_train_precision(m) != TG_PRECISION_BF16) {
        tg_model_force_f32(m, 1);
        return;
    }
    /* the arrays a step reads through Linears: G's weights (the fakes D
     * sees, G's own step) and D's. Unlike inference, G's input Linear is
     * bf16 too: its rounding is noise a step's gradient tolerates (the
     * pixel bound that kept it f32 is an inference promise). The copies are
     * converted at their first use, again after each update
     * (train/train.c); slot 1 (the EMA) is not read by training. */
    tg_dnn_bf16_bind(m->dnn, 0, m->gnet.w, m->gen.P.total, 0, 0);
    tg_dnn_bf16_bind(m->dnn, 2, m->dnet.w, m->disc.P.total, 0, 0);
    tg_dnn_bf16_set(m->dnn, 1);
    tg_dnn_bf16_train(m->dnn, 1); /* the conv D's convolutions too */
}

void tg_model_train_end(tg_model *m)
{
    tg_dnn_bf16_train(m->dnn, 0);
    tg_model_force_f32(m, 0);
    tg_model_weights_changed(m); /* the inference bindings back (bf16 precision) */
}

void tg_model_force_f32(tg_model *m, int on)
{
    tg_dnn_bf16_set(m->dnn, !on && m->precision == TG_PRECISION_BF16);
}
