/* The model handle: built from a descriptor, initialised, freed; and the
 * locality masks the generator's schedule asks for. The public calls over it
 * are in api/. */
#include "model.h"

/* Everything the model owns except the trainer (train/'s, freed by
 * tg_model_destroy before this). */
void tg_model_free(tg_model *m)
{
    if (!m)
        return;
    tg_gen_free(&m->gen);
    tg_disc_free(&m->disc);
    tg_disc_acts_free(&m->d_ws);
    for (int s = 0; s < TG_MAX_STAGES; s++)
        free(m->masks[s]);
    free(m->gw);
    free(m->dw);
    free(m->ema);
    free(m->gm), free(m->gv), free(m->dm), free(m->dv);
    free(m->g_ws);
    free(m->px_ws);
    free(m->desc_json);
    tg_desc_free(&m->desc);
    tg_dnn_destroy(m->dnn);
    free(m);
}

tg_status tg_model_build(tg_desc *desc, char *desc_json, tg_model **out)
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
    tg_status st = TG_OK;
    if (!m->desc_json)
        st = tg_fail(TG_ERR_OUT_OF_MEMORY, "out of memory writing the descriptor");
    if (st == TG_OK)
        st = tg_dnn_create(&m->dnn);
    if (st == TG_OK)
        st = tg_gen_define(&m->gen, &m->desc);
    if (st == TG_OK)
        st = tg_disc_define(&m->disc, &m->desc);
    if (st == TG_OK) {
        m->gw = tg_alloc(m->gen.P.total * sizeof(float));
        m->dw = tg_alloc(m->disc.P.total * sizeof(float));
        if (m->desc.t.ema != TG_EMA_NONE)
            m->ema = tg_alloc(m->gen.P.total * sizeof(float));
        if (!m->gw || !m->dw || (m->desc.t.ema != TG_EMA_NONE && !m->ema))
            st = TG_ERR_OUT_OF_MEMORY;
    }
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
    if (st != TG_OK) {
        tg_model_free(m);
        return st;
    }
    tg_rng_seed(&m->rng, m->desc.t.seed);
    *out = m;
    return TG_OK;
}

void tg_model_init_weights(tg_model *m, uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed);
    tg_params_init(&m->gen.P, m->gw, &r);
    tg_params_init(&m->disc.P, m->dw, &r);
    if (m->ema)
        memcpy(m->ema, m->gw, m->gen.P.total * sizeof(float));
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
