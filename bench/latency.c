/* bench/latency.c - sprite latency and training speed on a busy host.
 *
 *   latency MODEL [--busy K] [--seconds S] [--batch B] [--threads N] [--train DESC.json]
 *           [--sampling-only]
 *
 * Games and art tools call the library while their own threads keep the cores
 * busy. This program starts K busy-loop processes (plain `for (;;)` spinners at
 * the same priority, like a host's render or physics threads), then, in this
 * process with no environment variables of ours and no thread calls unless
 * --threads is given:
 *   - sampling (default): loads MODEL (a checkpoint), times the first
 *     tg_generate_pixels call of B sprites (load excluded), then calls it again
 *     and again for S seconds; prints first, median, p99 and max milliseconds;
 *   - --train DESC.json: creates a model from the descriptor and runs
 *     tg_train_step on a fixed batch for S seconds; prints steps/s.
 * Peak RSS of the process (getrusage) is printed too. One JSON line on stdout.
 * bench/latency.sh runs it for K = 0..4 side by side. */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <transgan.h>

#include "util.h"

#define MAX_BUSY 64

static pid_t busy[MAX_BUSY];
static int nbusy;

static void stop_busy(void)
{
    for (int i = 0; i < nbusy; i++) {
        kill(busy[i], SIGKILL);
        waitpid(busy[i], NULL, 0);
    }
    nbusy = 0;
}

/* A failed call: the spinners go with us, then the message. */
static void fail(const char *what, tg_status st)
{
    stop_busy();
    fprintf(stderr, "latency: %s: %s: %s\n", what, tg_status_string(st), tg_last_error());
    exit(1);
}

/* Fork before any library call: the children never touch OpenMP. */
static void start_busy(int k)
{
    for (int i = 0; i < k; i++) {
        pid_t p = fork();
        if (p < 0) {
            perror("latency: fork");
            stop_busy();
            exit(1);
        }
        if (p == 0) {
            volatile uint64_t x = 0;
            for (;;)
                x++;
        }
        busy[nbusy++] = p;
    }
}

int main(int argc, char **argv)
{
    const char *model = NULL, *train = NULL;
    int k = 0, batch = 1, threads = -1;
    double seconds = 10;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--busy") && v)
            k = atoi(v), i++;
        else if (!strcmp(a, "--seconds") && v)
            seconds = atof(v), i++;
        else if (!strcmp(a, "--batch") && v)
            batch = atoi(v), i++;
        else if (!strcmp(a, "--threads") && v)
            threads = atoi(v), i++;
        else if (!strcmp(a, "--train") && v)
            train = v, i++;
        else if (a[0] != '-' && !model)
            model = a;
        else {
            fprintf(stderr, "usage: latency MODEL [--busy K] [--seconds S] [--batch B] "
                            "[--threads N] [--train DESC.json]\n");
            return 2;
        }
    }
    if ((!model && !train) || k < 0 || k > MAX_BUSY || batch < 1 || seconds <= 0) {
        fprintf(stderr, "latency: need MODEL or --train DESC, 0 <= K <= %d, B >= 1, S > 0\n",
                MAX_BUSY);
        return 2;
    }
    start_busy(k);
    nanosleep(&(struct timespec){.tv_nsec = 200000000}, NULL); /* let the spinners settle */

    tg_model *m = NULL;
    tg_status st = train ? tg_model_create_from_file(train, TG_SEED_FROM_DESCRIPTOR, &m)
                         : tg_model_load(model, &m);
    if (st != TG_OK)
        fail("load", st);
    if (threads >= 0 && (st = tg_model_set_threads(m, threads)) != TG_OK)
        fail("threads", st);
    int64_t S, C, L, DB;
    tg_model_info(m, TG_INFO_IMAGE_SIZE, &S);
    tg_model_info(m, TG_INFO_CHANNELS, &C);
    tg_model_info(m, TG_INFO_LATENT_DIM, &L);
    tg_model_info(m, TG_INFO_D_BATCH, &DB);

    if (train) {
        size_t n = (size_t)(DB * C * S * S);
        float *real = malloc(n * sizeof *real);
        if (!real) {
            stop_busy();
            return 1;
        }
        for (size_t i = 0; i < n; i++)
            real[i] = sinf(0.01f * (float)i);
        double t0 = now();
        if ((st = tg_train_step(m, real, (size_t)DB, NULL, NULL, NULL, NULL)) != TG_OK)
            fail("train_step", st);
        double first = now() - t0;
        long steps = 0;
        t0 = now();
        while (now() - t0 < seconds) {
            if ((st = tg_train_step(m, real, (size_t)DB, NULL, NULL, NULL, NULL)) != TG_OK)
                fail("train_step", st);
            steps++;
        }
        double el = now() - t0;
        stop_busy();
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("{\"mode\":\"train\",\"busy\":%d,\"threads\":%d,\"first_s\":%.4f,\"steps\":%ld,"
               "\"steps_per_s\":%.4f,\"rss_mib\":%.1f}\n",
               k, threads, first, steps, (double)steps / el, (double)ru.ru_maxrss / 1024.0);
        free(real);
        tg_model_destroy(m);
        return 0;
    }

    size_t zl = (size_t)(batch * L), pl = (size_t)(batch * S * S * 4);
    float *z = malloc(zl * sizeof *z);
    uint8_t *px = malloc(pl);
    size_t cap = 1 << 20;
    double *lat = malloc(cap * sizeof *lat);
    if (!z || !px || !lat) {
        stop_busy();
        return 1;
    }
    if ((st = tg_latent_sample(m, 1, (size_t)batch, z, zl)) != TG_OK)
        fail("latent", st);
    double t0 = now();
    if ((st = tg_generate_pixels(m, z, (size_t)batch, TG_GEN_EMA, TG_PIXEL_RGBA8, px, pl)) != TG_OK)
        fail("generate", st);
    double first = now() - t0;
    size_t n = 0;
    double start = now();
    while (now() - start < seconds && n < cap) {
        double a = now();
        if ((st = tg_generate_pixels(m, z, (size_t)batch, TG_GEN_EMA, TG_PIXEL_RGBA8, px, pl)) !=
            TG_OK)
            fail("generate", st);
        lat[n++] = now() - a;
    }
    stop_busy();
    qsort(lat, n, sizeof *lat, cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    size_t i99 = n ? (size_t)ceil(0.99 * (double)n) - 1 : 0;
    printf("{\"mode\":\"sample\",\"busy\":%d,\"threads\":%d,\"batch\":%d,\"calls\":%zu,"
           "\"first_ms\":%.3f,\"median_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
           "\"rss_mib\":%.1f}\n",
           k, threads, batch, n, 1e3 * first, n ? 1e3 * lat[n / 2] : 0.0,
           n ? 1e3 * lat[i99] : 0.0, n ? 1e3 * lat[n - 1] : 0.0, (double)ru.ru_maxrss / 1024.0);
    free(z);
    free(px);
    free(lat);
    tg_model_destroy(m);
    return 0;
}
