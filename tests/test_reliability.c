/* Reliability (docs/RELIABILITY.md): the allocation-failure sweep - every
 * allocation the library makes in a create / generate / discriminate /
 * train / save / load / load_weights sequence of a tiny model fails in turn,
 * and each failed call must return OUT_OF_MEMORY with a message, leave the
 * model as it was, and let the same call succeed afterwards with the result
 * of a run without failures (leaks: the ASan run of make test) - the same
 * sweep over cJSON's allocations, and one regression test per defect of
 * issue 15, each built from its reproducer. */
#include <dirent.h>
#include <pthread.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/common.h"
#include "models/model.h"
#include "testutil.h"
#include "transgan.h"

/* Small, yet every allocating feature on: three stages, locality, MT-CT,
 * two augmentations, EMA, Adam, the gradient penalty. */
static const char *SWEEP_JSON =
    "{\"format\":\"transgan\",\"format_version\":1,\"name\":\"sweep\",\"image\":{\"size\":8,"
    "\"channels\":1},\"latent_dim\":4,\"generator\":{\"bottom_width\":2,\"embed_dim\":16,"
    "\"depths\":[1,1,1],\"heads\":1,\"mlp_ratio\":1},\"discriminator\":{\"patch_size\":4,"
    "\"embed_dim\":8,\"depth\":1,\"heads\":2,\"mlp_ratio\":1},\"training\":{\"loss\":\"wgan-gp\","
    "\"n_critic\":1,\"g_batch\":2,\"d_batch\":2,\"diffaug\":[\"translation\",\"cutout\"],"
    "\"sr_aux_weight\":0.5,\"locality\":{\"stages\":[2],\"schedule\":[[100,1]]}}}";
/* The same with the convolutional discriminator (residual units, a 1x1
 * shortcut, pool down-sampling): its model, activations, primitives and
 * convolution temporaries fail cleanly too. */
static const char *SWEEP_CONV_JSON =
    "{\"format\":\"transgan\",\"format_version\":1,\"name\":\"sweep\",\"image\":{\"size\":8,"
    "\"channels\":1},\"latent_dim\":4,\"generator\":{\"bottom_width\":2,\"embed_dim\":16,"
    "\"depths\":[1,1,1],\"heads\":1,\"mlp_ratio\":1},\"discriminator\":{\"kind\":\"conv\","
    "\"widths\":[3,4],\"blocks\":[1,1]},\"training\":{\"loss\":\"wgan-gp\","
    "\"n_critic\":1,\"g_batch\":2,\"d_batch\":2,\"diffaug\":[\"translation\",\"cutout\"],"
    "\"sr_aux_weight\":0.5,\"locality\":{\"stages\":[2],\"schedule\":[[100,1]]}}}";
/* The same, class-conditional with named classes and the class loss: the
 * sweep's second run (the conditional calls; the fakes' classes drawn by the
 * step). */
static const char *SWEEP_COND_JSON =
    "{\"format\":\"transgan\",\"format_version\":1,\"name\":\"sweep\",\"num_classes\":2,"
    "\"class_names\":[\"a\",\"b\"],\"image\":{\"size\":8,"
    "\"channels\":1},\"latent_dim\":4,\"generator\":{\"bottom_width\":2,\"embed_dim\":16,"
    "\"depths\":[1,1,1],\"heads\":1,\"mlp_ratio\":1},\"discriminator\":{\"patch_size\":4,"
    "\"embed_dim\":8,\"depth\":1,\"heads\":2,\"mlp_ratio\":1},\"training\":{\"loss\":\"wgan-gp\","
    "\"n_critic\":1,\"g_batch\":2,\"d_batch\":2,\"diffaug\":[\"translation\",\"cutout\"],"
    "\"sr_aux_weight\":0.5,\"class_loss_weight\":0.5,\"locality\":{\"stages\":[2],\"schedule\":[[100,1]]}}}";
/* The conv D's, class-conditional: its projection head's table and the
 * conditional calls on the conv D. */
static const char *SWEEP_COND_CONV_JSON =
    "{\"format\":\"transgan\",\"format_version\":1,\"name\":\"sweep\",\"num_classes\":2,"
    "\"class_names\":[\"a\",\"b\"],\"image\":{\"size\":8,"
    "\"channels\":1},\"latent_dim\":4,\"generator\":{\"bottom_width\":2,\"embed_dim\":16,"
    "\"depths\":[1,1,1],\"heads\":1,\"mlp_ratio\":1},\"discriminator\":{\"kind\":\"conv\","
    "\"widths\":[3,4],\"blocks\":[1,1]},\"training\":{\"loss\":\"wgan-gp\","
    "\"n_critic\":1,\"g_batch\":2,\"d_batch\":2,\"diffaug\":[\"translation\",\"cutout\"],"
    "\"sr_aux_weight\":0.5,\"class_loss_weight\":0.5,\"locality\":{\"stages\":[2],\"schedule\":[[100,1]]}}}";
/* The plain one in bf16 training (training.precision; f32 where the CPU
 * lacks AVX512-BF16): the weight copies it trains on and its bf16 operand
 * buffers fail cleanly too. */
static const char *SWEEP_BF16_JSON =
    "{\"format\":\"transgan\",\"format_version\":1,\"name\":\"sweep\",\"image\":{\"size\":8,"
    "\"channels\":1},\"latent_dim\":4,\"generator\":{\"bottom_width\":2,\"embed_dim\":16,"
    "\"depths\":[1,1,1],\"heads\":1,\"mlp_ratio\":1},\"discriminator\":{\"patch_size\":4,"
    "\"embed_dim\":8,\"depth\":1,\"heads\":2,\"mlp_ratio\":1},\"training\":{\"loss\":\"wgan-gp\","
    "\"n_critic\":1,\"g_batch\":2,\"d_batch\":2,\"diffaug\":[\"translation\",\"cutout\"],"
    "\"sr_aux_weight\":0.5,\"locality\":{\"stages\":[2],\"schedule\":[[100,1]]},"
    "\"precision\":\"bf16\"}}";
/* the sweep's variants (allocation_failure_sweep's _i): plain, conditional,
 * conv D, conditional conv D, bf16 training */
#define SWEEP_VARIANTS 5
#define SW_PX 64 /* 1 x 8 x 8 */
#define SW_L 4
#define SW_B 2
static const int32_t SW_Y[SW_B] = {1, 0};
static const tg_train_labels SW_LAB = {.struct_size = sizeof SW_LAB, .real = SW_Y};

/* the sequence's scoring and training calls, plain or conditional */
static tg_status sw_disc(int cond, tg_model *m, const float *x, float *out)
{
    return cond ? tg_discriminate_labels(m, x, SW_Y, SW_B, out, SW_B)
                : tg_discriminate(m, x, SW_B, out, SW_B);
}
static tg_status sw_step(int cond, tg_model *m, const float *x, tg_train_stats *st)
{
    return cond ? tg_train_step_labels(m, x, SW_B, &SW_LAB, NULL, NULL, NULL, st)
                : tg_train_step(m, x, SW_B, NULL, NULL, NULL, st);
}

#define FAILS_OOM(expr)                                                                       \
    do {                                                                                      \
        tg_status s_ = (expr);                                                                \
        ck_assert_msg(s_ == TG_ERR_OUT_OF_MEMORY, "%s: got %s (%s), want OUT_OF_MEMORY", #expr, \
                      tg_status_string(s_), tg_last_error());                                 \
        ck_assert_msg(tg_last_error()[0], "%s: no message", #expr);                           \
    } while (0)

static char g_dir[256];
/* a file in the scratch folder (four buffers in turn) */
static const char *rpath(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

/* ------------------------------------------------ the allocation gate */

/* The armed allocation, as an absolute tg_alloc_count() (-1: none). The
 * test's own checks (snapshots of the model) run with the gate disarmed and
 * push the armed index by what they allocated, so that every k of the sweep
 * fails an allocation of a call under test. */
static long g_armed = -1;
static long g_pause_start;

static void arm(long k)
{
    g_armed = k < 0 ? -1 : tg_alloc_count() + k;
    tg_alloc_fail_at(g_armed);
}
static void pause_gate(void)
{
    g_pause_start = tg_alloc_count();
    tg_alloc_fail_at(-1);
}
static void resume_gate(void)
{
    if (g_armed >= g_pause_start)
        g_armed += tg_alloc_count() - g_pause_start;
    tg_alloc_fail_at(g_armed);
}
/* did the armed allocation happen? */
static int fired(void) { return g_armed >= 0 && tg_alloc_count() > g_armed; }

/* Present and not all zero: Adam's moments made by a first step that then
 * failed are zeros, which is what absent moments mean (models/state.h). */
static int kept_array(const tg_net_state *s, int i)
{
    if (!(tg_net_arrays[i].group & TG_GROUPS_KEPT) || !s->arr[i])
        return 0;
    if (tg_net_arrays[i].group != TG_GROUP_OPTIMIZER)
        return 1;
    for (size_t j = 0; j < s->P->total; j++)
        if (s->arr[i][j] != 0)
            return 1;
    return 0;
}

/* The model's whole state - every kept array of both networks, their
 * counters, the training RNG - copied into one buffer (malloc'd: the
 * test's, not the library's). */
static unsigned char *snapshot(tg_model *m, size_t *n)
{
    const tg_net_state *nets[2] = {&m->gnet, &m->dnet};
    size_t total = sizeof m->rng;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < TG_NET_NARRAYS; i++)
            if (kept_array(nets[k], i))
                total += nets[k]->P->total * sizeof(float);
    total += 2 * (sizeof(uint64_t) + TG_NET_NARRAYS);
    unsigned char *b = malloc(total), *p = b;
    memcpy(p, &m->rng, sizeof m->rng), p += sizeof m->rng;
    for (int k = 0; k < 2; k++) {
        memcpy(p, &nets[k]->steps, sizeof(uint64_t)), p += sizeof(uint64_t);
        for (int i = 0; i < TG_NET_NARRAYS; i++) {
            int kept = kept_array(nets[k], i);
            *p++ = (unsigned char)kept;
            if (kept) {
                memcpy(p, nets[k]->arr[i], nets[k]->P->total * sizeof(float));
                p += nets[k]->P->total * sizeof(float);
            }
        }
    }
    *n = (size_t)(p - b);
    return b;
}

/* The model as a checkpoint file's bytes (the sequence's final result). */
static unsigned char *checkpoint_bytes(tg_model *m, size_t *n)
{
    pause_gate();
    const char *p = rpath("snap.safetensors");
    ck_assert_msg(tg_model_save(m, p, 0) == TG_OK, "checkpoint_bytes: %s", tg_last_error());
    unsigned char *b = tu_read_file(p, n);
    unlink(p);
    resume_gate();
    return b;
}

static void assert_unchanged(tg_model *m, const unsigned char *before, size_t nb, const char *what)
{
    size_t na;
    unsigned char *after = snapshot(m, &na);
    ck_assert_msg(na == nb && memcmp(after, before, nb) == 0,
                  "%s failed for lack of memory and changed the model", what);
    free(after);
}

/* Which state arrays exist (a failed first step must not leave any behind). */
static unsigned arrays_present(const tg_model *m)
{
    unsigned bits = 0;
    for (int i = 0; i < TG_NET_NARRAYS; i++)
        bits |= (m->gnet.arr[i] ? 1u : 0u) << i | (m->dnet.arr[i] ? 1u : 0u) << (i + 8);
    return bits | (m->trainer ? 1u << 16 : 0u);
}

/* No temporary of a save is left in the scratch folder. */
static void assert_no_tmp(void)
{
    DIR *d = opendir(g_dir);
    ck_assert_ptr_nonnull(d);
    for (struct dirent *e; (e = readdir(d));)
        ck_assert_msg(!strstr(e->d_name, ".tmp."), "temporary %s left behind", e->d_name);
    closedir(d);
}

typedef struct {
    float gen[SW_B * SW_PX], gen2[SW_B * SW_PX], gen3[SW_B * SW_PX], disc[SW_B];
    tg_train_stats st[2];
    unsigned char *ckpt; /* the final checkpoint of the loaded model */
    size_t nckpt;
} seq_out;

/* One sequence; the allocation k (counted from its start) fails, or none
 * when k < 0. Each call that fails must fail cleanly and is then repeated
 * with the gate disarmed. */
static void sequence(long k, seq_out *o, int variant)
{
    const char *const jsons[SWEEP_VARIANTS] = {SWEEP_JSON, SWEEP_COND_JSON, SWEEP_CONV_JSON,
                                               SWEEP_COND_CONV_JSON, SWEEP_BF16_JSON};
    const char *json = jsons[variant];
    int cond = variant == 1 || variant == 3;
    float z[SW_B * SW_L], real[SW_B * SW_PX];
    tu_seed(7);
    tu_fill(z, SW_B * SW_L, -1, 1);
    tu_fill(real, SW_B * SW_PX, -1, 1);
    char path[512]; /* rpath's buffers are reused by checkpoint_bytes() */
    snprintf(path, sizeof path, "%s", rpath("seq.safetensors"));
    unlink(path);
    tg_model *m = NULL, *m2 = NULL;
    size_t nb;
    unsigned char *before;
    tg_status st;
    arm(k);

    st = tg_model_create(json, 1, &m);
    if (st != TG_OK) {
        FAILS_OOM(st);
        ck_assert_ptr_null(m);
        pause_gate();
        OK(tg_model_create(json, 1, &m));
        resume_gate();
    }

    /* one thread: the sweep runs ~1000 sequences, and OpenMP's spinning
     * threads make it crawl on a loaded machine */
    OK(tg_model_set_threads(m, 1));
    /* sampling and scoring change nothing, fail or not */
    before = snapshot(m, &nb);
    st = tg_generate(m, z, SW_B, 0, o->gen, SW_B * SW_PX);
    if (st != TG_OK) {
        FAILS_OOM(st);
        assert_unchanged(m, before, nb, "tg_generate");
        pause_gate();
        OK(tg_generate(m, z, SW_B, 0, o->gen, SW_B * SW_PX));
        resume_gate();
    }
    st = sw_disc(cond, m, real, o->disc);
    if (st != TG_OK) {
        FAILS_OOM(st);
        assert_unchanged(m, before, nb, "tg_discriminate");
        pause_gate();
        OK(sw_disc(cond, m, real, o->disc));
        resume_gate();
    }
    free(before);

    /* two steps: the first makes the trainer, the second runs on it */
    for (int s = 0; s < 2; s++) {
        before = snapshot(m, &nb);
        unsigned arrays = arrays_present(m);
        o->st[s].struct_size = sizeof o->st[s];
        st = sw_step(cond, m, real, &o->st[s]);
        if (st != TG_OK) {
            FAILS_OOM(st);
            assert_unchanged(m, before, nb, "tg_train_step");
            /* without a trainer (its making failed) the arrays are as they
             * were; with one, both of Adam's moments are there */
            unsigned now = arrays_present(m), pair = 1u << TG_ARR_adam_m | 1u << TG_ARR_adam_v;
            pair |= pair << 8;
            ck_assert_msg((now & 1u << 16) ? (now & pair) == pair : now == arrays,
                          "a failed tg_train_step left state arrays 0x%x (was 0x%x)", now, arrays);
            pause_gate();
            OK(sw_step(cond, m, real, &o->st[s]));
            resume_gate();
        }
        free(before);
    }

    st = tg_model_save(m, path, 0);
    if (st != TG_OK) {
        FAILS_OOM(st);
        ck_assert_msg(access(path, F_OK) != 0, "a failed save created %s", path);
        assert_no_tmp();
        pause_gate();
        OK(tg_model_save(m, path, 0));
        resume_gate();
    }
    assert_no_tmp();

    st = tg_model_load(path, &m2);
    if (st != TG_OK) {
        FAILS_OOM(st);
        ck_assert_ptr_null(m2);
        pause_gate();
        OK(tg_model_load(path, &m2));
        resume_gate();
    }
    OK(tg_model_set_threads(m2, 1));
    /* load_weights over a model that has trained: from its own checkpoint
     * after one more step, so a success would change it */
    pause_gate();
    OK(sw_step(cond, m2, real, NULL));
    resume_gate();
    before = snapshot(m2, &nb);
    st = tg_model_load_weights(m2, path);
    if (st != TG_OK) {
        FAILS_OOM(st);
        assert_unchanged(m2, before, nb, "tg_model_load_weights");
        pause_gate();
        OK(tg_model_load_weights(m2, path));
        resume_gate();
    }
    free(before);
    st = tg_generate(m2, z, SW_B, 0, o->gen2, SW_B * SW_PX);
    if (st != TG_OK) {
        FAILS_OOM(st);
        pause_gate();
        OK(tg_generate(m2, z, SW_B, 0, o->gen2, SW_B * SW_PX));
        resume_gate();
    }
    /* bf16 inference (f32 where the CPU lacks it): its weight copies and
     * activation buffer are allocations too */
    OK(tg_model_set_precision(m2, TG_PRECISION_BF16)); /* allocates nothing */
    st = tg_generate(m2, z, SW_B, 0, o->gen3, SW_B * SW_PX);
    if (st != TG_OK) {
        FAILS_OOM(st);
        pause_gate();
        OK(tg_generate(m2, z, SW_B, 0, o->gen3, SW_B * SW_PX));
        resume_gate();
    }
    o->ckpt = checkpoint_bytes(m2, &o->nckpt);
    tg_alloc_fail_at(-1);
    tg_model_destroy(m);
    tg_model_destroy(m2);
}

/* _i = 1: the same sequence on a class-conditional model; 2: with the
 * convolutional discriminator; 3: both; 4: in bf16 training */
START_TEST(allocation_failure_sweep)
{
    int cond = _i;
    seq_out ref = {0};
    sequence(-1, &ref, cond);
    long k = 0, failed = 0;
    long t0 = tg_alloc_count();
    seq_out probe = {0};
    sequence(-1, &probe, cond);
    free(probe.ckpt);
    fprintf(stderr, "sequence: %ld allocations\n", tg_alloc_count() - t0);
    for (;; k++) {
        seq_out o = {0};
        sequence(k, &o, cond);
        int hit = fired();
        /* whatever failed, the end is the same as without failures */
        ck_assert_msg(memcmp(o.gen, ref.gen, sizeof o.gen) == 0, "k=%ld: generate differs", k);
        ck_assert_msg(memcmp(o.gen2, ref.gen2, sizeof o.gen2) == 0, "k=%ld: generate (loaded) differs", k);
        ck_assert_msg(memcmp(o.gen3, ref.gen3, sizeof o.gen3) == 0, "k=%ld: generate (bf16) differs", k);
        ck_assert_msg(memcmp(o.disc, ref.disc, sizeof o.disc) == 0, "k=%ld: discriminate differs", k);
        for (int s = 0; s < 2; s++)
            ck_assert_msg(o.st[s].d_loss == ref.st[s].d_loss && o.st[s].g_loss == ref.st[s].g_loss,
                          "k=%ld: step %d's losses differ", k, s);
        ck_assert_msg(o.nckpt == ref.nckpt && memcmp(o.ckpt, ref.ckpt, ref.nckpt) == 0,
                      "k=%ld: the final checkpoint differs", k);
        free(o.ckpt);
        if (!hit)
            break;
        failed++;
        if (getenv("TG_SWEEP_VERBOSE") && k % 100 == 0)
            fprintf(stderr, "k=%ld\n", k);
    }
    free(ref.ckpt);
    ck_assert_msg(failed > 100, "only %ld allocations in the sequence", failed);
    printf("allocation_failure_sweep%s: %ld allocations failed in turn\n",
           cond == 1 ? " (conditional)" : cond == 2 ? " (conv D)" : cond == 3 ? " (conditional conv D)"
           : cond == 4 ? " (bf16 training)" : "",
           failed);
}
END_TEST

/* ------------------------------------------------ cJSON's allocations */

/* cJSON's hooks belong to the application - here, this test. */
static long g_cj_count, g_cj_fail = -1;
static void *cj_malloc(size_t n)
{
    return g_cj_count++ == g_cj_fail ? NULL : malloc(n);
}
static void cj_free(void *p) { free(p); }

START_TEST(cjson_out_of_memory_is_reported)
{
    const char *path = rpath("cj.safetensors");
    tg_model *m = NULL;
    OK(tg_model_create(SWEEP_JSON, 1, &m));
    OK(tg_model_save(m, path, 0));
    tg_model_destroy(m);
    cJSON_Hooks h = {cj_malloc, cj_free};
    cJSON_InitHooks(&h);
    long failed = 0;
    for (int which = 0; which < 2; which++)
        for (long k = 0;; k++) {
            g_cj_count = 0, g_cj_fail = k;
            m = NULL;
            tg_status st = which ? tg_model_load(path, &m) : tg_model_create(SWEEP_JSON, 1, &m);
            if (g_cj_count <= k) { /* nothing failed: the call must have worked */
                ck_assert_msg(st == TG_OK, "%s", tg_last_error());
                tg_model_destroy(m);
                break;
            }
            ck_assert_msg(st == TG_ERR_OUT_OF_MEMORY,
                          "%s with cJSON allocation %ld failing: %s (%s), want OUT_OF_MEMORY",
                          which ? "tg_model_load" : "tg_model_create", k, tg_status_string(st),
                          tg_last_error());
            ck_assert_ptr_null(m);
            failed++;
        }
    g_cj_fail = -1;
    cJSON_InitHooks(NULL);
    ck_assert_msg(failed > 50, "only %ld cJSON allocations", failed);
}
END_TEST

/* ------------------------------------------------ regressions of issue 15 */

/* Replace the value of metadata `key` (a JSON string) in checkpoint `path`;
 * the data offsets are relative to the header's end, so only the length
 * prefix changes. */
static void rewrite_meta(const char *path, const char *key, const char *val)
{
    size_t n;
    unsigned char *b = tu_read_file(path, &n);
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--)
        hn = hn << 8 | b[i];
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    char *hdr = (char *)b + 8;
    char *hit = NULL;
    for (size_t i = 0; i + strlen(pat) <= hn && !hit; i++)
        if (memcmp(hdr + i, pat, strlen(pat)) == 0)
            hit = hdr + i + strlen(pat);
    ck_assert_msg(hit != NULL, "no metadata %s", key);
    char *close = memchr(hit, '"', hn - (size_t)(hit - hdr));
    size_t old = (size_t)(close - hit), nv = strlen(val);
    size_t nn = n - old + nv;
    unsigned char *o = malloc(nn);
    uint64_t hn2 = hn - old + nv;
    for (int i = 0; i < 8; i++)
        o[i] = (unsigned char)(hn2 >> (8 * i));
    size_t pre = (size_t)(hit - (char *)b);
    memcpy(o + 8, b + 8, pre - 8);
    memcpy(o + pre, val, nv);
    memcpy(o + pre + nv, close, n - (size_t)((unsigned char *)close - b));
    tu_write_file(path, o, nn);
    free(o);
    free(b);
}

static tg_model *sweep_model(void)
{
    tg_model *m;
    OK(tg_model_create(SWEEP_JSON, 1, &m));
    return m;
}

/* Issue 15, defect 3: " -1" and 2^64 - 1 wrapped the step counters. */
START_TEST(step_counters_are_digits_below_2_63)
{
    const char *path = rpath("steps.safetensors");
    const char *bad[] = {"18446744073709551615", " -1", "-1", "+5", " 5", "5 ", "9223372036854775808",
                         "0x10", ""};
    tg_model *m = sweep_model(), *m2;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        for (int g = 0; g < 2; g++) {
            OK(tg_model_save(m, path, 0));
            rewrite_meta(path, g ? "g_steps" : "d_steps", bad[i]);
            m2 = (tg_model *)1;
            tg_status st = tg_model_load(path, &m2);
            ck_assert_msg(st == TG_ERR_FORMAT, "%s = '%s': %s", g ? "g_steps" : "d_steps", bad[i],
                          tg_status_string(st));
            ck_assert_ptr_null(m2);
            ck_assert_msg(strstr(tg_last_error(), "is not a step count"), "%s", tg_last_error());
            ck_assert_int_eq(tg_model_load_weights(m, path), TG_ERR_FORMAT);
        }
    /* the largest accepted count, and a step from it still works */
    OK(tg_model_save(m, path, 0));
    rewrite_meta(path, "d_steps", "9223372036854775807");
    OK(tg_model_load(path, &m2));
    int64_t v;
    OK(tg_model_info(m2, TG_INFO_D_STEPS, &v));
    ck_assert(v == INT64_MAX);
    float real[SW_B * SW_PX] = {0};
    OK(tg_train_step(m2, real, SW_B, NULL, NULL, NULL, NULL));
    tg_model_destroy(m2);
    tg_model_destroy(m);
}
END_TEST

/* Issue 15, defect 7: an all-zero rng_state made the generator return 0 forever. */
START_TEST(rng_state_all_zero_is_refused)
{
    const char *path = rpath("rng.safetensors");
    tg_model *m = sweep_model(), *m2;
    OK(tg_model_save(m, path, 0));
    rewrite_meta(path, "rng_state", "0000000000000000000000000000000000000000000000000000000000000000");
    ck_assert_int_eq(tg_model_load(path, &m2), TG_ERR_FORMAT);
    ck_assert_msg(strstr(tg_last_error(), "rng_state is all zeros"), "%s", tg_last_error());
    ck_assert_int_eq(tg_model_load_weights(m, path), TG_ERR_FORMAT);
    /* one non-zero word is a valid state */
    OK(tg_model_save(m, path, 0));
    rewrite_meta(path, "rng_state", "0000000000000000000000000000000000000000000000000000000000000001");
    OK(tg_model_load(path, &m2));
    tg_model_destroy(m2);
    tg_model_destroy(m);
}
END_TEST

/* Issue 15, defect 6: a name that is not UTF-8 was accepted, and then no
 * save of the model could work. */
START_TEST(descriptor_strings_must_be_utf8)
{
    const char *bad[] = {"\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char json[1024];
        snprintf(json, sizeof json, "{\"format\":\"transgan\",\"format_version\":1,\"name\":\"%s\"}",
                 bad[i]);
        tg_model *m = (tg_model *)1;
        ck_assert_int_eq(tg_model_create(json, 1, &m), TG_ERR_DESCRIPTOR);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(tg_last_error(), "invalid UTF-8"), "%s", tg_last_error());
    }
    /* valid UTF-8, raw or escaped, is kept and saves */
    char *json = malloc(strlen(SWEEP_JSON) + 64);
    strcpy(json, SWEEP_JSON);
    char *name = strstr(json, "\"sweep\"");
    const char *utf8 = "\"sw\xc3\xa9\\u00e9p\xf0\x9f\x98\x80\"";
    memmove(name + strlen(utf8), name + 7, strlen(name + 7) + 1);
    memcpy(name, utf8, strlen(utf8));
    tg_model *m;
    OK(tg_model_create(json, 1, &m));
    OK(tg_model_save(m, rpath("utf8.safetensors"), 0));
    tg_model *m2;
    OK(tg_model_load(rpath("utf8.safetensors"), &m2));
    ck_assert(strstr(tg_model_descriptor(m2), "\"name\":\"sw\xc3\xa9\xc3\xa9p\xf0\x9f\x98\x80\"") ||
              strstr(tg_model_descriptor(m2), "sw\\u00e9\\u00e9p"));
    tg_model_destroy(m2);
    tg_model_destroy(m);
    free(json);
}
END_TEST

/* Issue 15, defect 8: leading zeros passed in descriptors. */
START_TEST(descriptor_numbers_are_strict_json)
{
    const char *bad[] = {"06", "-01", "00", "1.", ".5", "+1", "1e", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":%s}",
                 bad[i]);
        tg_model *m = (tg_model *)1;
        tg_status st = tg_model_create(json, 1, &m);
        ck_assert_msg(st == TG_ERR_DESCRIPTOR, "%s: %s", bad[i], tg_status_string(st));
        ck_assert_msg(strstr(tg_last_error(), "malformed JSON"), "%s", tg_last_error());
        ck_assert_ptr_null(m);
    }
    tg_model *m = NULL;
    ck_assert_int_eq(tg_model_create("{\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":06}",
                                     1, &m), TG_ERR_DESCRIPTOR);
    ck_assert_msg(strstr(tg_last_error(), "leading zero"), "%s", tg_last_error());
}
END_TEST

/* Issue 15, defect 8: the empty-path message named an internal function. */
START_TEST(save_empty_path_message)
{
    tg_model *m = sweep_model();
    ck_assert_int_eq(tg_model_save(m, "", 0), TG_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(tg_last_error(), "tg_model_save: path is empty");
    tg_model_destroy(m);
}
END_TEST

/* Issue 15, defect 8: the temporaries of a save killed mid-way stayed forever. */
START_TEST(save_removes_stale_temporaries)
{
    const char *path = rpath("t.safetensors");
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    ck_assert_int_gt(child, 0);
    waitpid(child, NULL, 0); /* reaped: that pid now names no process */
    char stale[512], live[512], other[512], odd[512];
    snprintf(stale, sizeof stale, "%s.tmp.%ld.0", path, (long)child);
    snprintf(live, sizeof live, "%s.tmp.%ld.3", path, (long)getppid()); /* a live writer */
    snprintf(other, sizeof other, "%s.tmp.%ld.0", rpath("u.safetensors"), (long)child);
    snprintf(odd, sizeof odd, "%s.tmp.%ld.0x", path, (long)child); /* not a name we make */
    const char *files[] = {stale, live, other, odd};
    for (int i = 0; i < 4; i++)
        tu_write_file(files[i], "x", 1);
    tg_model *m = sweep_model();
    OK(tg_model_save(m, path, 0));
    ck_assert_msg(access(stale, F_OK) != 0, "%s was not removed", stale);
    ck_assert_msg(access(live, F_OK) == 0, "a live writer's %s was removed", live);
    ck_assert_msg(access(other, F_OK) == 0, "another file's temporary %s was removed", other);
    ck_assert_msg(access(odd, F_OK) == 0, "%s was removed", odd);
    for (int i = 1; i < 4; i++)
        unlink(files[i]);
    tg_model_destroy(m);
}
END_TEST

/* Issue 15, defect 1: the shared oneDNN scratchpad was freed before its
 * bigger replacement was allocated; when that failed, the cached primitives
 * ran on NULL and the next call crashed. Sampling on one thread caches
 * primitives with small scratchpads; a training step on two threads needs
 * bigger ones (oneDNN's scratchpads grow with the thread count): fail each
 * of its allocations in turn, then sample on one thread again. */
START_TEST(scratchpad_survives_failed_growth)
{
    float z[SW_L] = {0.5f, -0.5f, 0.25f, 1}, ref[SW_PX], out[SW_PX], real[SW_B * SW_PX];
    tu_seed(3);
    tu_fill(real, SW_B * SW_PX, -1, 1);
    long failed = 0;
    for (long k = 0;; k++) {
        tg_model *m = sweep_model();
        OK(tg_model_set_threads(m, 1));
        OK(tg_generate(m, z, 1, 0, ref, SW_PX));
        OK(tg_model_set_threads(m, 2));
        arm(k);
        tg_status st = tg_train_step(m, real, SW_B, NULL, NULL, NULL, NULL);
        int hit = fired();
        tg_alloc_fail_at(-1);
        if (st != TG_OK)
            FAILS_OOM(st);
        OK(tg_model_set_threads(m, 1));
        OK(tg_generate(m, z, 1, 0, out, SW_PX));
        if (st != TG_OK)
            ck_assert_msg(memcmp(out, ref, sizeof out) == 0, "k=%ld: sampling changed", k);
        tg_model_destroy(m);
        if (!hit)
            break;
        failed++;
    }
    ck_assert_int_gt(failed, 100);
}
END_TEST

/* Issue 15, defect 2 (half of Adam's pair of moments left after a failed
 * first step) is caught by allocation_failure_sweep, which checks the arrays
 * after every failed tg_train_step. */

/* The scratch folder on tmpfs when there is one: the sweep saves ~2000
 * times, and each save fsyncs. */
/* Thread safety (docs/API.md "Threading"): four models on four threads at
 * once - create, sample, train, save, load - give what each gives alone. */
typedef struct {
    int id;
    float gen[SW_B * SW_PX];
    double loss;
    char path[512];
    tg_status st;
} par_job;

static void *par_run(void *arg)
{
    par_job *j = arg;
    float z[SW_B * SW_L], real[SW_B * SW_PX];
    for (int i = 0; i < SW_B * SW_L; i++)
        z[i] = (float)((i * 7 + j->id) % 11) / 11.0f - 0.5f;
    for (int i = 0; i < SW_B * SW_PX; i++)
        real[i] = (float)((i * 5 + j->id) % 13) / 13.0f - 0.5f;
    tg_model *m = NULL, *m2 = NULL;
    tg_train_stats st = {.struct_size = sizeof st};
    j->st = tg_model_create(SWEEP_JSON, (uint64_t)j->id + 1, &m);
    if (j->st == TG_OK)
        j->st = tg_model_set_threads(m, 1);
    for (int s = 0; s < 2 && j->st == TG_OK; s++)
        j->st = tg_train_step(m, real, SW_B, NULL, NULL, NULL, &st);
    if (j->st == TG_OK)
        j->st = tg_model_save(m, j->path, 0);
    if (j->st == TG_OK)
        j->st = tg_model_load(j->path, &m2);
    if (j->st == TG_OK)
        j->st = tg_model_set_threads(m2, 1);
    if (j->st == TG_OK)
        j->st = tg_generate(m2, z, SW_B, 0, j->gen, SW_B * SW_PX);
    j->loss = st.d_loss;
    tg_model_destroy(m);
    tg_model_destroy(m2);
    return NULL;
}

START_TEST(models_on_concurrent_threads)
{
    enum { N = 4 };
    par_job alone[N], par[N];
    for (int i = 0; i < N; i++) {
        alone[i] = (par_job){.id = i};
        snprintf(alone[i].path, sizeof alone[i].path, "%s", rpath("alone.safetensors"));
        par_run(&alone[i]);
        ck_assert_msg(alone[i].st == TG_OK, "%s", tg_last_error());
    }
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        par[i] = (par_job){.id = i};
        char name[32];
        snprintf(name, sizeof name, "par%d.safetensors", i);
        snprintf(par[i].path, sizeof par[i].path, "%s", rpath(name));
        ck_assert_int_eq(pthread_create(&t[i], NULL, par_run, &par[i]), 0);
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(par[i].st == TG_OK, "thread %d: %s", i, tg_status_string(par[i].st));
        ck_assert_msg(par[i].loss == alone[i].loss, "thread %d: loss differs", i);
        ck_assert_msg(memcmp(par[i].gen, alone[i].gen, sizeof par[i].gen) == 0,
                      "thread %d: images differ", i);
    }
}
END_TEST

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "%s/tg_rel_XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}
static void teardown(void)
{
    tg_alloc_fail_at(-1);
    tu_rm_rf(g_dir);
}

int main(void)
{
    Suite *s = suite_create("reliability");
    TCase *sw = tcase_create("sweep");
    tcase_add_checked_fixture(sw, setup, teardown);
    tcase_set_timeout(sw, 900);
    tcase_add_loop_test(sw, allocation_failure_sweep, 0, SWEEP_VARIANTS);
    suite_add_tcase(s, sw);
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, cjson_out_of_memory_is_reported);
    tcase_add_test(tc, scratchpad_survives_failed_growth);
    tcase_add_test(tc, step_counters_are_digits_below_2_63);
    tcase_add_test(tc, rng_state_all_zero_is_refused);
    tcase_add_test(tc, descriptor_strings_must_be_utf8);
    tcase_add_test(tc, descriptor_numbers_are_strict_json);
    tcase_add_test(tc, save_empty_path_message);
    tcase_add_test(tc, save_removes_stale_temporaries);
    tcase_add_test(tc, models_on_concurrent_threads);
    suite_add_tcase(s, tc);
    return tu_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
