/* Data-parallel training (tg_model_set_data_parallel) without MPI: N
 * replicas in N threads, each with batch B / N, whose all-reduce is a sum
 * over the threads' buffers behind a barrier, against one model with batch
 * B on the same data and seed. After the first step (same weights, so only
 * the summation order differs) every state array, the Adam moments being the
 * step's gradient, agrees within 1e-5 relative L2; after 10 steps the
 * weights and the EMA within 1e-5 and the moments within 2e-4 (they hold the
 * last step's gradient, whose rounding differences the penalty's
 * second-order terms amplify); no element differs by more than 10 times the
 * tolerance of its array's largest magnitude (Adam's first steps turn
 * rounding in tiny gradient components into visible weight differences:
 * 6e-6 of the largest weight with oneDNN's AVX2 kernels). The drift term
 * from each replica's own mean instead of the global one fails the first
 * check. For every loss with
 * DiffAugment, the gradient penalty (wgan-gp*), MT-CT, EMA and locality on;
 * the replicas are bit-identical to each other and their RNG and counters
 * equal the single model's. Also: the arguments, the
 * batch check under data parallel, a failing all-reduce (model unchanged)
 * and resuming a data-parallel run from a checkpoint. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "testutil.h"

#define STEPS 10
#define MAXW 4

/* 8x8 RGB, two generator stages (MT-CT needs them), all of DiffAugment
 * (the default), a short EMA half-life so the EMA moves; %s is the loss */
static const char *desc_fmt =
    "{%s\"format\":\"transgan\",\"format_version\":1,\"latent_dim\":7,"
    "\"image\":{\"size\":8,\"channels\":3},"
    "\"generator\":{\"bottom_width\":4,\"embed_dim\":24,\"depths\":[1,1],\"heads\":3,\"mlp_ratio\":2},"
    "\"discriminator\":{%s},"
    "\"training\":{\"loss\":\"%s\",\"d_batch\":4,\"g_batch\":8,\"n_critic\":2,\"g_lr\":0.001,"
    "\"d_lr\":0.001,\"drift_weight\":0.1,\"sr_aux_weight\":5,"
    "\"ema\":{\"half_life_kimg\":0.01,\"warmup\":0.1},"
    "\"locality\":{\"stages\":[1],\"schedule\":[[2,1]]},\"seed\":99%s}}";
/* the second %s: nothing, or ADA moving p every D step from 0.5 (per-image
 * op choices are drawn, and the sign tally couples the replicas) */
static const char *ada_keys = ",\"diffaug_p\":0.5,\"ada\":{\"target\":0.6,\"interval\":1,\"kimg\":0.02}";

/* the discriminator: the transformer, or (conv) a conv D of residual units */
static const char *disc_tf = "\"patch_size\":4,\"embed_dim\":12,\"depth\":2,\"heads\":3,\"mlp_ratio\":2";
static const char *disc_conv = "\"kind\":\"conv\",\"widths\":[4,6],\"blocks\":[1,1]";

static const char *losses[] = {"wgan-gp-eps", "wgan-gp", "hinge", "lsgan"};
/* each loss with 2 replicas, then wgan-gp-eps (the drift couples the rows)
 * and hinge with 4 (one real image each) */
/* ada: ADA on; cond: class-conditional (3 classes; the real classes given,
 * the fakes' drawn by the library; the class loss on); conv: the conv D
 * (with cond: its projection term) */
static const struct { int loss, world, ada, cond, conv; } cases[] = {
    {0, 2, 0, 0, 0}, {1, 2, 0, 0, 0}, {2, 2, 0, 0, 0}, {3, 2, 0, 0, 0},
    {0, 4, 0, 0, 0}, {2, 4, 0, 0, 0}, {1, 2, 1, 0, 0}, {0, 2, 0, 1, 0}, {0, 2, 0, 1, 1}};
#define NCASES (int)(sizeof cases / sizeof *cases)

/* a conditional case's: the class loss, a per-replica mean like the others */
static const char *cls_keys = ",\"class_loss_weight\":0.5";

static char *desc_for(const char *loss, int ada, int cond, int conv)
{
    const char *extra = ada ? ada_keys : cond ? cls_keys : "";
    const char *root = cond ? "\"num_classes\":3," : "";
    const char *disc = conv ? disc_conv : disc_tf;
    size_t n = strlen(desc_fmt) + strlen(loss) + strlen(extra) + strlen(root) + strlen(disc) + 1;
    char *s = malloc(n);
    snprintf(s, n, desc_fmt, root, disc, loss, extra);
    return s;
}

/* ------------------------------------------------ an all-reduce over threads */
typedef struct group {
    int world;
    pthread_barrier_t bar;
    float *buf[MAXW];
    size_t n[MAXW];
    int kind[MAXW];
    int mismatch;      /* the replicas disagreed on a call's kind or size */
    size_t floats[4];  /* floats reduced per kind (replica 0's count) */
} group;

typedef struct replica {
    group *g;
    int rank;
    tg_model *m;
    const float *data; /* STEPS global batches */
    float *tmp;        /* the sum before it is copied over buf */
    size_t tmp_n;
    tg_status st;
    char err[256];
} replica;

/* Sum over the replicas in rank order (the same bits on every replica):
 * publish, wait, sum into a private buffer, wait until every replica has
 * read the others' buffers, then overwrite this one. */
static int thread_allreduce(void *user, tg_allreduce_kind kind, float *buf, size_t n)
{
    replica *r = user;
    group *g = r->g;
    g->buf[r->rank] = buf, g->n[r->rank] = n, g->kind[r->rank] = (int)kind;
    pthread_barrier_wait(&g->bar);
    for (int k = 0; k < g->world; k++)
        if (g->n[k] != n || g->kind[k] != (int)kind)
            g->mismatch = 1;
    if (r->tmp_n < n) {
        free(r->tmp);
        r->tmp = malloc(n * sizeof *r->tmp);
        r->tmp_n = n;
    }
    if (!r->tmp)
        return 1;
    for (size_t i = 0; i < n; i++) {
        float s = 0;
        for (int k = 0; k < g->world; k++)
            s += g->buf[k][i];
        r->tmp[i] = s;
    }
    if (r->rank == 0 && kind >= 1 && kind <= 3)
        g->floats[kind] += n;
    pthread_barrier_wait(&g->bar);
    memcpy(buf, r->tmp, n * sizeof *buf);
    return 0;
}

/* the images of global batch `step` (deterministic) */
static float *make_data(int64_t B, size_t px)
{
    tu_seed(7);
    return tu_rand((size_t)STEPS * B * px, -1, 1);
}

/* calls [from, to) of a replica: its rows of each global batch */
static void run_steps(replica *r, int64_t B, size_t px, int from, int to)
{
    int64_t b = B / r->g->world;
    for (int s = from; s < to && r->st == TG_OK; s++) {
        size_t row = (size_t)s * B + (size_t)r->rank * b; /* the first row of the share */
        const float *x = r->data + row * px;
        int64_t K = 0;
        tg_model_info(r->m, TG_INFO_NUM_CLASSES, &K);
        if (K) { /* the global batch's rows take classes row % K */
            int32_t y[MAXW * 8];
            for (int64_t i = 0; i < b; i++)
                y[i] = (int32_t)((row + (size_t)i) % (size_t)K);
            tg_train_labels lab = {.struct_size = sizeof lab, .real = y};
            r->st = tg_train_step_labels(r->m, x, (size_t)b, &lab, NULL, NULL, NULL, NULL);
        } else {
            r->st = tg_train_step(r->m, x, (size_t)b, NULL, NULL, NULL, NULL);
        }
        if (r->st != TG_OK)
            snprintf(r->err, sizeof r->err, "%s", tg_last_error());
    }
}

typedef struct { replica *r; int64_t B; size_t px; int from, to; } job;
static void *thread_main(void *p)
{
    job *j = p;
    run_steps(j->r, j->B, j->px, j->from, j->to);
    return NULL;
}

/* every replica runs calls [from, to) in its own thread */
static void run_group(replica *reps, int world, int64_t B, size_t px, int from, int to)
{
    pthread_t th[MAXW];
    job jobs[MAXW];
    for (int k = 0; k < world; k++) {
        jobs[k] = (job){&reps[k], B, px, from, to};
        ck_assert_int_eq(pthread_create(&th[k], NULL, thread_main, &jobs[k]), 0);
    }
    for (int k = 0; k < world; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < world; k++)
        ck_assert_msg(reps[k].st == TG_OK, "replica %d: %s", k, reps[k].err);
}

/* max |a - b| / max |b| */
static double rel_err(const float *a, const float *b, size_t n)
{
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return s > 0 ? e / s : e;
}

/* ||a - b|| / ||b|| (L2) */
static double rel_l2(const float *a, const float *b, size_t n)
{
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

/* replica (from data parallel) against the single model: every kept array
 * within tol relative L2 (the Adam moments within tol_moments) and no
 * element further than 10 times that from the other's, relative to the
 * array's largest magnitude; same counters and RNG */
static void assert_close_model(const char *what, tg_model *a, tg_model *ref, double tol,
                               double tol_moments)
{
    const tg_net_state *na[2] = {&a->gnet, &a->dnet}, *nr[2] = {&ref->gnet, &ref->dnet};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < TG_NET_NARRAYS; i++) {
            if (!(tg_net_arrays[i].group & TG_GROUPS_KEPT) || !nr[k]->arr[i])
                continue;
            ck_assert_ptr_nonnull(na[k]->arr[i]);
            double t = tg_net_arrays[i].group & TG_GROUP_OPTIMIZER ? tol_moments : tol;
            double e = rel_l2(na[k]->arr[i], nr[k]->arr[i], nr[k]->P->total);
            double em = rel_err(na[k]->arr[i], nr[k]->arr[i], nr[k]->P->total);
            ck_assert_msg(e <= t && em <= 10 * t, "%s: %s %s: relative error %.3g (L2), %.3g "
                          "(max) > %.1g, %.1g", what, k ? "discriminator" : "generator",
                          tg_net_arrays[i].field, e, em, t, 10 * t);
        }
        ck_assert_uint_eq(na[k]->steps, nr[k]->steps);
    }
    ck_assert_mem_eq(&a->rng, &ref->rng, sizeof a->rng);
}

/* the replicas hold the same bits */
static void assert_identical(tg_model *a, tg_model *b)
{
    const tg_net_state *na[2] = {&a->gnet, &a->dnet}, *nb[2] = {&b->gnet, &b->dnet};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < TG_NET_NARRAYS; i++)
            if ((tg_net_arrays[i].group & TG_GROUPS_KEPT) && na[k]->arr[i])
                ck_assert_mem_eq(na[k]->arr[i], nb[k]->arr[i], na[k]->P->total * 4);
    ck_assert_mem_eq(&a->rng, &b->rng, sizeof a->rng);
}

static void weights_moved(tg_model *m, const char *desc)
{
    tg_model *fresh;
    OK(tg_model_create(desc, TG_SEED_FROM_DESCRIPTOR, &fresh));
    ck_assert_msg(rel_err(m->gnet.w, fresh->gnet.w, m->gen.P.total) > 1e-3, "G did not train");
    ck_assert_msg(rel_err(m->dnet.w, fresh->dnet.w, m->disc.P.total) > 1e-3, "D did not train");
    ck_assert_msg(rel_err(m->gnet.ema, fresh->gnet.ema, m->gen.P.total) > 1e-4, "EMA did not move");
    tg_model_destroy(fresh);
}

START_TEST(replicas_match_one_model)
{
    const char *loss = losses[cases[_i].loss];
    int world = cases[_i].world;
    char *desc = desc_for(loss, cases[_i].ada, cases[_i].cond, cases[_i].conv);
    tg_model *ref;
    OK(tg_model_create(desc, TG_SEED_FROM_DESCRIPTOR, &ref));
    OK(tg_model_set_threads(ref, 1));
    int64_t B = ref->desc.t.d_batch;
    size_t px = (size_t)3 * 8 * 8;
    float *data = make_data(B, px);
    replica one = {.g = &(group){.world = 1}, .m = ref, .data = data};

    group g = {.world = world};
    pthread_barrier_init(&g.bar, NULL, (unsigned)world);
    replica reps[MAXW];
    for (int k = 0; k < world; k++) {
        reps[k] = (replica){.g = &g, .rank = k, .data = data};
        OK(tg_model_create(desc, TG_SEED_FROM_DESCRIPTOR, &reps[k].m));
        OK(tg_model_set_threads(reps[k].m, 1));
        OK(tg_model_set_data_parallel(reps[k].m, k, world, thread_allreduce, &reps[k]));
    }
    char what[64];
    snprintf(what, sizeof what, "%s%s%s%s, %d replicas", loss, cases[_i].ada ? " + ADA" : "",
             cases[_i].cond ? " conditional" : "", cases[_i].conv ? " conv D" : "", world);
    for (int part = 0; part < 2; part++) { /* step 1, then steps 2..10 */
        int from = part ? 1 : 0, to = part ? STEPS : 1;
        run_steps(&one, B, px, from, to);
        ck_assert_msg(one.st == TG_OK, "%s", one.err);
        run_group(reps, world, B, px, from, to);
        for (int k = 0; k < world; k++)
            assert_close_model(what, reps[k].m, ref, 1e-5, part ? 2e-4 : 1e-5);
    }
    ck_assert_msg(!g.mismatch, "the replicas' all-reduce calls differ in kind or size");
    /* per D step: D's gradient and 4 statistics (+1 score sum for the
     * drift); per G step (5 of 10 at n_critic 2): G's gradient and 2 */
    size_t stats = (size_t)STEPS * (4 + (cases[_i].loss == 0) + cases[_i].ada) + (STEPS / 2) * 2;
    ck_assert_uint_eq(g.floats[TG_ALLREDUCE_D_GRAD], (size_t)STEPS * ref->disc.P.total);
    ck_assert_uint_eq(g.floats[TG_ALLREDUCE_G_GRAD], (size_t)(STEPS / 2) * ref->gen.P.total);
    ck_assert_uint_eq(g.floats[TG_ALLREDUCE_STATS], stats);
    for (int k = 1; k < world; k++)
        assert_identical(reps[k].m, reps[0].m);
    if (cases[_i].ada) { /* p moved, and alike: the replicas summed their sign tallies */
        ck_assert_msg(ref->ada_p != 0.5, "ADA's p did not move (%g)", ref->ada_p);
        for (int k = 0; k < world; k++)
            ck_assert_msg(reps[k].m->ada_p == ref->ada_p && reps[k].m->ada_n == ref->ada_n,
                          "replica %d: ADA p %g (tally over %lld) vs one model's %g (%lld)", k,
                          reps[k].m->ada_p, (long long)reps[k].m->ada_n, ref->ada_p,
                          (long long)ref->ada_n);
    }
    weights_moved(ref, desc);
    for (int k = 0; k < world; k++) {
        tg_model_destroy(reps[k].m);
        free(reps[k].tmp);
    }
    pthread_barrier_destroy(&g.bar);
    tg_model_destroy(ref);
    free(data), free(desc);
}
END_TEST

/* A data-parallel run saved after 4 calls (by replica 0, as the MPI example
 * does), loaded by every replica and continued, ends where the uninterrupted
 * data-parallel run does, bit for bit. */
START_TEST(resume_from_checkpoint)
{
    char *desc = desc_for("wgan-gp-eps", 0, 0, 0);
    tu_scratch_make("tg_parallel");
    char ck[512];
    snprintf(ck, sizeof ck, "%s", tu_path("mid.safetensors"));
    int64_t B = 4;
    size_t px = (size_t)3 * 8 * 8;
    float *data = make_data(B, px);
    tg_model *ends[2];
    for (int resume = 0; resume < 2; resume++) {
        group g = {.world = 2};
        pthread_barrier_init(&g.bar, NULL, 2);
        replica reps[2];
        for (int k = 0; k < 2; k++) {
            reps[k] = (replica){.g = &g, .rank = k, .data = data};
            OK(tg_model_create(desc, TG_SEED_FROM_DESCRIPTOR, &reps[k].m));
            OK(tg_model_set_threads(reps[k].m, 1));
            OK(tg_model_set_data_parallel(reps[k].m, k, 2, thread_allreduce, &reps[k]));
        }
        if (resume) {
            run_group(reps, 2, B, px, 0, 4);
            OK(tg_model_save(reps[0].m, ck, 0));
            for (int k = 0; k < 2; k++) { /* every replica starts again from the file */
                tg_model_destroy(reps[k].m);
                OK(tg_model_load(ck, &reps[k].m));
                OK(tg_model_set_threads(reps[k].m, 1));
                OK(tg_model_set_data_parallel(reps[k].m, k, 2, thread_allreduce, &reps[k]));
            }
            run_group(reps, 2, B, px, 4, STEPS);
        } else {
            run_group(reps, 2, B, px, 0, STEPS);
        }
        assert_identical(reps[1].m, reps[0].m);
        ends[resume] = reps[0].m;
        tg_model_destroy(reps[1].m);
        free(reps[0].tmp), free(reps[1].tmp);
        pthread_barrier_destroy(&g.bar);
    }
    assert_identical(ends[1], ends[0]);
    tg_model_destroy(ends[0]);
    tg_model_destroy(ends[1]);
    tu_scratch_remove();
    free(data), free(desc);
}
END_TEST

static int failing_allreduce(void *user, tg_allreduce_kind kind, float *buf, size_t n)
{
    (void)kind, (void)buf, (void)n;
    int *calls = user;
    return ++*calls >= 2 ? 5 : 0; /* the D gradient goes through, its statistics fail */
}

START_TEST(arguments_and_failures)
{
    char *desc = desc_for("hinge", 0, 0, 0); /* d_batch 4, g_batch 8 */
    tg_model *m, *fresh;
    OK(tg_model_create(desc, TG_SEED_FROM_DESCRIPTOR, &m));
    OK(tg_model_create(desc, TG_SEED_FROM_DESCRIPTOR, &fresh));
    int calls = 0;
    ck_assert_int_eq(tg_model_set_data_parallel(NULL, 0, 2, failing_allreduce, &calls),
                     TG_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(tg_model_set_data_parallel(m, 0, 0, failing_allreduce, &calls),
                     TG_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(tg_model_set_data_parallel(m, 2, 2, failing_allreduce, &calls),
                     TG_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(tg_model_set_data_parallel(m, -1, 2, failing_allreduce, &calls),
                     TG_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(tg_model_set_data_parallel(m, 0, 2, NULL, NULL), TG_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(tg_model_set_data_parallel(m, 0, 3, failing_allreduce, &calls),
                     TG_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "does not divide training.d_batch 4"));
    OK(tg_model_set_data_parallel(m, 0, 1, NULL, NULL)); /* off */

    /* a replica of 2 takes 2 real images; 4 is refused with the reason */
    OK(tg_model_set_data_parallel(m, 1, 2, failing_allreduce, &calls));
    float *x = tu_rand(4 * 3 * 8 * 8, -1, 1);
    ck_assert_int_eq(tg_train_step(m, x, 4, NULL, NULL, NULL, NULL), TG_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "training.d_batch / 2 = 2"));
    /* the callback fails: TG_ERR_IO, the replica unchanged */
    tg_status st = tg_train_step(m, x, 2, NULL, NULL, NULL, NULL);
    ck_assert_int_eq(st, TG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "returned 5"));
    ck_assert_int_eq(calls, 2);
    ck_assert_mem_eq(m->dnet.w, fresh->dnet.w, m->disc.P.total * 4);
    ck_assert_mem_eq(m->gnet.w, fresh->gnet.w, m->gen.P.total * 4);
    ck_assert_mem_eq(&m->rng, &fresh->rng, sizeof m->rng);
    ck_assert_uint_eq(m->dnet.steps, 0);
    /* back to one process: the full batch again */
    OK(tg_model_set_data_parallel(m, 0, 1, NULL, NULL));
    OK(tg_train_step(m, x, 4, NULL, NULL, NULL, NULL));

    /* a sampling-only model cannot train */
    tu_scratch_make("tg_parallel");
    OK(tg_model_save(fresh, tu_path("f.safetensors"), 0));
    tg_model *s;
    OK(tg_model_load_ex(tu_path("f.safetensors"), TG_LOAD_SAMPLING_ONLY, &s));
    ck_assert_int_eq(tg_model_set_data_parallel(s, 0, 2, failing_allreduce, &calls), TG_ERR_STATE);
    tg_model_destroy(s);
    tu_scratch_remove();
    free(x), free(desc);
    tg_model_destroy(m);
    tg_model_destroy(fresh);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("parallel");
    TCase *tc = tcase_create("exact");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, replicas_match_one_model, 0, NCASES);
    tcase_add_test(tc, resume_from_checkpoint);
    tcase_add_test(tc, arguments_and_failures);
    suite_add_tcase(s, tc);
    return tu_run(s) ? 1 : 0;
}
