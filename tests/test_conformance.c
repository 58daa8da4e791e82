/* Conformance with the PyTorch reference: fixtures made by
 * tests/fixtures/make_fixtures.py (checkpoints written by the reference, its
 * outputs computed in float64) must be reproduced within 1e-4 relative L2
 * error; and checkpoints saved by the library must load back identically. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "models/model.h"
#include "testutil.h"
#include "transgan.h"


static const char *fixtures[] = {"tiny-ln", "gray-relbias-tanh", "rgba-locality", "rgb-sr",
                                 "conv-res", "conv-plain-stride", "cond-ln", "cond-conv"};
#define NFIX (sizeof fixtures / sizeof *fixtures)

static double rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static const tg_st_tensor *io_get(const tg_st_file *f, const char *name)
{
    const tg_st_tensor *t = tg_st_find(f, name);
    ck_assert_msg(t != NULL, "fixture lacks %s", name);
    return t;
}

static float *io_f32(const tg_st_file *f, const char *name, size_t *n)
{
    const tg_st_tensor *t = io_get(f, name);
    float *x = malloc(t->nelem * sizeof *x);
    tg_st_to_f32(t, x);
    *n = t->nelem;
    return x;
}

/* A conditional fixture's classes (stored as float32 integers), or NULL. */
static int32_t *io_labels(const tg_st_file *f)
{
    if (!tg_st_find(f, "labels"))
        return NULL;
    size_t n;
    float *x = io_f32(f, "labels", &n);
    int32_t *y = malloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++)
        y[i] = (int32_t)x[i];
    free(x);
    return y;
}

static void check_model_against(tg_model *m, const tg_st_file *io, const char *fx)
{
    size_t nz, nraw, nema, nimg, nsc;
    float *z = io_f32(io, "z", &nz), *raw = io_f32(io, "gen_raw", &nraw),
          *ema = io_f32(io, "gen_ema", &nema), *img = io_f32(io, "images", &nimg),
          *sc = io_f32(io, "scores", &nsc);
    int32_t *lab = io_labels(io);
    size_t n = nsc;
    float *out = malloc(nraw * sizeof *out), *s = malloc(n * sizeof *s);
    OK(tg_generate_labels(m, z, lab, n, TG_GEN_RAW, out, nraw));
    double e = rel_l2(out, raw, nraw);
    ck_assert_msg(e < 1e-4, "%s: raw generator rel L2 error %g", fx, e);
    OK(tg_generate_labels(m, z, lab, n, TG_GEN_EMA, out, nema));
    e = rel_l2(out, ema, nema);
    ck_assert_msg(e < 1e-4, "%s: EMA generator rel L2 error %g", fx, e);
    if (lab) { /* the classes matter: other classes give other images and scores */
        int32_t *other = malloc(n * sizeof *other);
        for (size_t i = 0; i < n; i++)
            other[i] = (lab[i] + 1) % (int32_t)m->desc.num_classes;
        OK(tg_generate_labels(m, z, other, n, TG_GEN_EMA, out, nema));
        ck_assert_msg(rel_l2(out, ema, nema) > 1e-2, "%s: the class does not change the image", fx);
        OK(tg_discriminate_labels(m, img, other, n, s, n));
        ck_assert_msg(rel_l2(s, sc, n) > 1e-3, "%s: the class does not change the score", fx);
        free(other);
    }
    OK(tg_discriminate_labels(m, img, lab, n, s, n));
    e = rel_l2(s, sc, n);
    ck_assert_msg(e < 1e-4, "%s: discriminator rel L2 error %g", fx, e);
    free(z), free(raw), free(ema), free(img), free(sc), free(out), free(s), free(lab);
}

START_TEST(reference_outputs)
{
    const char *fx = fixtures[_i];
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s.safetensors", fx);
    tg_model *m;
    OK(tg_model_load(path, &m));
    snprintf(path, sizeof path, "tests/fixtures/%s.io.safetensors", fx);
    tg_st_file io;
    OK(tg_st_read(path, &io));
    check_model_against(m, &io, fx);
    if (tg_st_find(&io, "sr_raw")) { /* MT-CT path: stage 1 from low-res images */
        size_t nl, nr;
        float *lr = io_f32(&io, "sr_lowres", &nl), *sr = io_f32(&io, "sr_raw", &nr);
        int64_t B = 5;
        tg_gen_acts a;
        OK(tg_gen_acts_alloc(&m->gen, B, &a));
        int32_t *lab = io_labels(&io);
        a.labels = lab;
        OK(tg_gen_fwd(m->dnn, &m->gen, m->gnet.w, lr, 1, tg_model_masks(m, m->gnet.steps), &a));
        double e = rel_l2(a.img, sr, nr);
        ck_assert_msg(e < 1e-4, "%s: sr forward rel L2 error %g", fx, e);
        tg_gen_acts_free(&a);
        free(lr), free(sr), free(lab);
    }
    /* the training forward agrees with inference */
    {
        size_t nz, nraw;
        float *z = io_f32(&io, "z", &nz), *raw = io_f32(&io, "gen_raw", &nraw);
        tg_gen_acts a;
        OK(tg_gen_acts_alloc(&m->gen, 5, &a));
        int32_t *lab = io_labels(&io);
        a.labels = lab;
        OK(tg_gen_fwd(m->dnn, &m->gen, m->gnet.w, z, 0, tg_model_masks(m, m->gnet.steps), &a));
        double e = rel_l2(a.img, raw, nraw);
        ck_assert_msg(e < 1e-4, "%s: training forward rel L2 error %g", fx, e);
        tg_gen_acts_free(&a);
        free(z), free(raw), free(lab);
    }
    tg_st_free(&io);
    tg_model_destroy(m);
    tu_assert_no_ref();
}
END_TEST

START_TEST(library_roundtrip)
{
    /* save -> load gives the same model, the same outputs and the counters */
    const char *fx = fixtures[_i];
    char path[256];
    tu_scratch_make("tg_conf");
    snprintf(path, sizeof path, "tests/fixtures/%s.safetensors", fx);
    tg_model *m, *m2;
    OK(tg_model_load(path, &m));
    const char *out = tu_path("m.safetensors");
    OK(tg_model_save(m, out, 0));
    OK(tg_model_load(out, &m2));
    ck_assert_mem_eq(m->gnet.w, m2->gnet.w, m->gen.P.total * sizeof(float));
    ck_assert_mem_eq(m->dnet.w, m2->dnet.w, m->disc.P.total * sizeof(float));
    if (m->gnet.ema)
        ck_assert_mem_eq(m->gnet.ema, m2->gnet.ema, m->gen.P.total * sizeof(float));
    ck_assert_str_eq(tg_model_descriptor(m), tg_model_descriptor(m2));
    int64_t a, b;
    OK(tg_model_info(m, TG_INFO_D_STEPS, &a));
    OK(tg_model_info(m2, TG_INFO_D_STEPS, &b));
    ck_assert_int_eq(a, b);
    snprintf(path, sizeof path, "tests/fixtures/%s.io.safetensors", fx);
    tg_st_file io;
    OK(tg_st_read(path, &io));
    check_model_against(m2, &io, fx);
    tg_st_free(&io);
    /* weights-only: no EMA tensors; loading starts the EMA from the weights */
    OK(tg_model_save(m, out, TG_SAVE_WEIGHTS_ONLY));
    tg_st_file f;
    OK(tg_st_read(out, &f));
    ck_assert_ptr_null(tg_st_find(&f, "ema.generator.input.weight"));
    tg_st_free(&f);
    tg_model_destroy(m2);
    OK(tg_model_load(out, &m2));
    if (m2->gnet.ema)
        ck_assert_mem_eq(m2->gnet.ema, m2->gnet.w, m->gen.P.total * sizeof(float));
    tu_scratch_remove();
    tg_model_destroy(m);
    tg_model_destroy(m2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conformance");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, reference_outputs, 0, NFIX);
    tcase_add_loop_test(tc, library_roundtrip, 0, NFIX);
    suite_add_tcase(s, tc);
    return tu_run(s) ? 1 : 0;
}
