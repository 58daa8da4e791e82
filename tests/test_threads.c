/* The default thread count on a busy host (lib/ops/cpushare.c): with as many
 * busy-loop processes as CPUs beside it, a call runs on one thread instead of
 * stalling at OpenMP barriers; a fixed count (tg_model_set_threads) and
 * TG_DYNAMIC_THREADS=0 are left alone. The busy processes are plain spinners,
 * always runnable, so these checks hold whatever else the machine runs. */
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "models/model.h"
#include "ops/cpushare.h"
#include "testutil.h"
#include "transgan.h"

static const char *JSON =
    "{\"format\":\"transgan\",\"format_version\":1,\"image\":{\"size\":16,\"channels\":1},"
    "\"latent_dim\":8,\"generator\":{\"bottom_width\":8,\"embed_dim\":16,\"depths\":[1,1],"
    "\"heads\":2,\"mlp_ratio\":2},\"discriminator\":{\"patch_size\":4,\"embed_dim\":16,"
    "\"depth\":1,\"heads\":2,\"mlp_ratio\":2},\"training\":{\"d_batch\":2,\"g_batch\":2,"
    "\"n_critic\":1}}";

#define MAX_SPIN 64
static pid_t spinners[MAX_SPIN];
static int nspin;

static void spin_start(int k)
{
    for (int i = 0; i < k && nspin < MAX_SPIN; i++) {
        pid_t p = fork();
        ck_assert_int_ge(p, 0);
        if (p == 0) {
            volatile unsigned long x = 0;
            for (;;)
                x++;
        }
        spinners[nspin++] = p;
    }
    nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
}

static void spin_stop(void)
{
    for (int i = 0; i < nspin; i++) {
        kill(spinners[i], SIGKILL);
        waitpid(spinners[i], NULL, 0);
    }
    nspin = 0;
}

START_TEST(share_caps)
{
    tg_cpushare s;
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(tg_cpushare_threads(&s, 1), 1);
    ck_assert_int_eq(tg_cpushare_threads(&s, 0), 1);
    int cap = omp_get_num_procs() + 2;
    int n = tg_cpushare_threads(&s, cap);
    ck_assert_int_ge(n, 1);
    ck_assert_int_le(n, omp_get_num_procs()); /* never more than the CPUs */
}
END_TEST

START_TEST(share_busy_host_gives_one)
{
    int procs = omp_get_num_procs();
    spin_start(procs);
    tg_cpushare s;
    memset(&s, 0, sizeof s);
    int worst = 0;
    for (int i = 0; i < 5; i++) {
        int n = tg_cpushare_threads(&s, procs > 1 ? procs : 2);
        worst = n > worst ? n : worst;
    }
    spin_stop();
    ck_assert_msg(worst == 1, "with %d spinners on %d CPUs the count was %d", procs, procs, worst);
}
END_TEST

static void generate(tg_model *m, float *out)
{
    float z[3 * 8];
    OK(tg_latent_sample(m, 9, 3, z, 3 * 8));
    OK(tg_generate(m, z, 3, TG_GEN_RAW, out, 3 * 16 * 16));
}

/* the model-level default: adapts unless fixed or switched off */
START_TEST(model_default_adapts)
{
    int procs = omp_get_num_procs();
    if (procs < 2) {
        /* one CPU: the count is 1 either way; nothing to tell apart */
        ck_assert_int_eq(procs, 1);
        return;
    }
    omp_set_num_threads(procs);
    tg_model *dyn = NULL, *off = NULL, *fixed = NULL;
    setenv("TG_DYNAMIC_THREADS", "1", 1);
    OK(tg_model_create(JSON, 3, &dyn));
    OK(tg_model_create(JSON, 3, &fixed));
    OK(tg_model_set_threads(fixed, procs));
    setenv("TG_DYNAMIC_THREADS", "0", 1);
    OK(tg_model_create(JSON, 3, &off));
    float a[3 * 256], b[3 * 256], c[3 * 256], real[2 * 256];
    tu_fill(real, 2 * 256, -1.0f, 1.0f);

    spin_start(procs);
    generate(dyn, a);
    int n_dyn = tg_dnn_last_threads(dyn->dnn);
    OK(tg_train_step(dyn, real, 2, NULL, NULL, NULL, NULL));
    int n_dyn_train = tg_dnn_last_threads(dyn->dnn);
    generate(off, b);
    int n_off = tg_dnn_last_threads(off->dnn);
    generate(fixed, c);
    int n_fixed = tg_dnn_last_threads(fixed->dnn);
    spin_stop();

    ck_assert_int_eq(n_dyn, 1);
    ck_assert_int_eq(n_dyn_train, 1);
    ck_assert_int_eq(n_off, procs);
    ck_assert_int_eq(n_fixed, procs);
    /* the caller's OpenMP maximum is restored after the call */
    ck_assert_int_eq(omp_get_max_threads(), procs);
    /* the default stays 0 (the caller's maximum, adapted) */
    int64_t t = -1;
    OK(tg_model_info(dyn, TG_INFO_THREADS, &t));
    ck_assert_int_eq(t, 0);
    /* the same weights give the same images within float rounding */
    for (int i = 0; i < 3 * 256; i++) {
        ck_assert_float_eq_tol(a[i], b[i], 1e-5f);
        ck_assert_float_eq_tol(a[i], c[i], 1e-5f);
    }
    tg_model_destroy(dyn);
    tg_model_destroy(off);
    tg_model_destroy(fixed);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("cpushare");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, share_caps);
    tcase_add_test(tc, share_busy_host_gives_one);
    tcase_add_test(tc, model_default_adapts);
    suite_add_tcase(s, tc);
    return tu_run(s) ? 1 : 0;
}
