/* train_mpi.c - data-parallel training over MPI with libtransgan
 * (tg_model_set_data_parallel; docs/DISTRIBUTED.md).
 *
 *   mpirun -np N train_mpi --model DESC.json|CKPT.safetensors [--data fmnist|IDX_FILE|DIR]
 *          [--steps S] [--until D] [--out DIR] [--every K] [--resume CKPT] [--seed S]
 *          [--limit N] [--threads T] [--replica-files 1]
 *
 * Every rank holds a replica of the model and computes its share, d_batch / N
 * images, of each global batch; the replicas' gradients are summed by
 * MPI_Allreduce before each optimiser update, so N ranks train the model one
 * process would train with the same descriptor, seed and data (up to float
 * summation order). N must divide training.d_batch and training.g_batch.
 *
 * --model     a descriptor (fresh weights from its training.seed) or a
 *             checkpoint; rank 0 reads the file and broadcasts its bytes, so
 *             the other ranks need not see it
 * --resume    continue from a checkpoint (the same as --model CKPT; the
 *             default --out is its folder)
 * --data      "fmnist" (default), an idx3 file or a folder of PNG files; every
 *             rank reads it (it must be on every machine). The data order is
 *             examples/train.c's (tc_order_at, common/train_common.c):
 *             shuffled epochs from --seed, position d_steps * d_batch + j for
 *             row j of a global batch, and rank r takes rows
 *             [r * d_batch / N, (r + 1) * d_batch / N)
 * --steps     calls of tg_train_step in this run (default: until --until or
 *             interrupted)
 * --until     stop when the model's d_steps reaches D (a resumed run ends
 *             where an uninterrupted one would)
 * --out       output folder (default train-out), written by rank 0 only:
 *             checkpoint.safetensors (atomically), samples_<d_steps>.png,
 *             log.tsv (the step's d_steps, g_steps, seconds and statistics at
 *             each save)
 * --every     save every K D steps and at the end (default 500; 0 = at the end)
 * --threads   threads per rank (tg_model_set_threads; default OpenMP's)
 * --replica-files 1: at the end every rank r > 0 also writes
 *             checkpoint.rank<r>.safetensors, to check that the replicas agree
 *
 * SIGINT/SIGTERM on any rank: every rank stops after the same step (a flag
 * all-reduced before each step), rank 0 saves, exit 0. Any failure on any
 * rank aborts the whole job (MPI_Abort): the other ranks would otherwise wait
 * in an all-reduce for ever.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <mpi.h>
#include <transgan.h>

#include "cli.h"
#include "imageio.h"
#include "train_common.h"

#define PROGRESS_SECONDS 5.0

static volatile sig_atomic_t g_stop;
static int g_mpi_live; /* MPI initialised and not finalised: exit() aborts the job */

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* die() exits; a rank that leaves without MPI_Finalize must take the job
 * down, or the others wait in their next all-reduce */
static void abort_job(void)
{
    if (g_mpi_live)
        MPI_Abort(MPI_COMM_WORLD, 1);
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------ the all-reduce */

typedef struct comm_ctx {
    MPI_Comm comm;
    uint64_t floats[4]; /* reduced so far, per tg_allreduce_kind */
    double seconds;     /* wall time inside MPI_Allreduce, waiting for the others included */
} comm_ctx;

/* tg_allreduce_fn over MPI: in place, float sums, in slices of at most
 * INT_MAX elements (MPI counts are int). Every rank gets the same bits. */
static int mpi_allreduce(void *user, tg_allreduce_kind kind, float *buf, size_t n)
{
    comm_ctx *c = user;
    if ((int)kind >= 1 && (int)kind <= 3)
        c->floats[kind] += n;
    double t = tc_now();
    while (n) {
        int k = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        if (MPI_Allreduce(MPI_IN_PLACE, buf, k, MPI_FLOAT, MPI_SUM, c->comm) != MPI_SUCCESS)
            return 1;
        buf += k, n -= (size_t)k;
    }
    c->seconds += tc_now() - t;
    return 0;
}

/* -------------------------------------------------- the model on every rank */

/* rank 0 reads the whole file; every rank gets its bytes (+ a NUL) */
static char *bcast_file(const char *path, int rank, size_t *size)
{
    uint64_t n = 0;
    char *buf = NULL;
    if (rank == 0) {
        FILE *f = fopen(path, "rb");
        if (!f)
            die("cannot open '%s': %s", path, strerror(errno));
        if (fseek(f, 0, SEEK_END) != 0 || ftell(f) < 0)
            die("cannot read '%s'", path);
        n = (uint64_t)ftell(f);
        rewind(f);
        if (!(buf = malloc(n + 1)) || fread(buf, 1, n, f) != n)
            die("cannot read '%s'", path);
        fclose(f);
    }
    MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (rank != 0 && !(buf = malloc(n + 1)))
        die("out of memory");
    for (uint64_t off = 0; off < n;) {
        int k = n - off > (uint64_t)INT_MAX ? INT_MAX : (int)(n - off);
        MPI_Bcast(buf + off, k, MPI_BYTE, 0, MPI_COMM_WORLD);
        off += (uint64_t)k;
    }
    buf[n] = '\0';
    *size = n;
    return buf;
}

/* A descriptor: every rank creates the model from the same text and seed
 * (identical replicas). A checkpoint: every rank loads the same bytes. */
static tg_model *load_model(const char *path, int rank)
{
    size_t n;
    char *bytes = bcast_file(path, rank, &n);
    tg_model *m = NULL;
    if (tc_ends_with(path, ".json"))
        check(tg_model_create(bytes, TG_SEED_FROM_DESCRIPTOR, &m), path);
    else
        check(tg_model_load_memory(bytes, n, 0, &m), path);
    free(bytes);
    return m;
}

/* -------------------------------------------------------------------- run */

static int64_t info(const tg_model *m, tg_info key)
{
    int64_t v = 0;
    check(tg_model_info(m, key, &v), "tg_model_info");
    return v;
}

static void save(tg_model *m, const char *out, const tg_train_stats *st, double secs)
{
    int64_t S = info(m, TG_INFO_IMAGE_SIZE), C = info(m, TG_INFO_CHANNELS);
    int64_t L = info(m, TG_INFO_LATENT_DIM), d = info(m, TG_INFO_D_STEPS);
    char *ck = tc_join(out, "checkpoint.safetensors");
    check(tg_model_save(m, ck, 0), "tg_model_save");
    size_t per = (size_t)(C * S * S);
    float *z = malloc((size_t)(TC_SAMPLE_N * L) * sizeof *z);
    float *img = malloc(TC_SAMPLE_N * per * sizeof *img);
    uint8_t *px = malloc(TC_SAMPLE_N * per);
    if (!z || !img || !px)
        die("out of memory");
    check(tg_latent_sample(m, TC_SAMPLE_SEED, TC_SAMPLE_N, z, (size_t)(TC_SAMPLE_N * L)),
          "tg_latent_sample");
    char *png = tc_write_samples(m, out, (uint64_t)d, z, NULL, img, px, (int)S, (int)C);
    char *lp = tc_join(out, "log.tsv");
    struct stat sb;
    int fresh = stat(lp, &sb) != 0;
    if (st) {
        double v[8] = {st->d_loss, st->gp,      st->d_real,      st->d_fake,
                       st->g_loss, st->sr_loss, st->d_grad_norm, st->g_grad_norm};
        tc_log_append(lp, fresh, st->d_steps, st->g_steps, secs, v);
    } else {
        tc_log_append(lp, fresh, 0, 0, secs, NULL); /* the header alone, if new */
    }
    printf("saved %s and %s\n", ck, png);
    free(z), free(img), free(px), free(ck), free(png), free(lp);
}

int main(int argc, char **argv)
{
    cli_prog = "train_mpi";
    MPI_Init(&argc, &argv);
    g_mpi_live = 1;
    atexit(abort_job);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);

    const char *model_path = NULL, *data = "fmnist", *out = NULL, *resume = NULL;
    uint64_t steps = UINT64_MAX, until = UINT64_MAX, every = 500, seed = 1, limit = 0;
    uint64_t threads = 0, replica_files = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc || strncmp(a, "--", 2) != 0)
            die("%s: %s (see the comment at the top of examples/train_mpi.c)", a,
                strncmp(a, "--", 2) ? "unexpected argument" : "needs a value");
        const char *v = argv[++i];
        if (!strcmp(a, "--model"))
            model_path = v;
        else if (!strcmp(a, "--resume"))
            resume = v;
        else if (!strcmp(a, "--data"))
            data = v;
        else if (!strcmp(a, "--steps"))
            steps = parse_u64(a, v);
        else if (!strcmp(a, "--until"))
            until = parse_u64(a, v);
        else if (!strcmp(a, "--out"))
            out = v;
        else if (!strcmp(a, "--every"))
            every = parse_u64(a, v);
        else if (!strcmp(a, "--seed"))
            seed = parse_u64(a, v);
        else if (!strcmp(a, "--limit"))
            limit = parse_u64(a, v);
        else if (!strcmp(a, "--threads"))
            threads = parse_u64(a, v);
        else if (!strcmp(a, "--replica-files"))
            replica_files = parse_u64(a, v);
        else
            die("unknown option %s", a);
    }
    if (!!model_path == !!resume)
        die("give --model DESC.json|CKPT or --resume CKPT (one of them)");
    if (threads > 4096)
        die("--threads %llu: use 1..4096 (0: OpenMP's default)", (unsigned long long)threads);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (rank != 0) /* rank 0 speaks for the job */
        if (!freopen("/dev/null", "w", stdout))
            die("cannot silence stdout");

    /* identical replicas, then the group */
    tg_model *m = load_model(resume ? resume : model_path, rank);
    check(tg_model_set_threads(m, (int)threads), "--threads");
    comm_ctx comm = {.comm = MPI_COMM_WORLD};
    check(tg_model_set_data_parallel(m, rank, world, mpi_allreduce, &comm),
          "tg_model_set_data_parallel");
    int64_t S = info(m, TG_INFO_IMAGE_SIZE), C = info(m, TG_INFO_CHANNELS);
    int64_t dB = info(m, TG_INFO_D_BATCH), b = dB / world;
    int64_t gp = info(m, TG_INFO_G_PARAMS), dp = info(m, TG_INFO_D_PARAMS);

    /* the data, on every rank */
    float *images = NULL;
    size_t n_images = 0;
    const char *src = !strcmp(data, "fmnist") ? IO_FMNIST_TRAIN : data;
    tc_load_images(src, (int)S, (int)C, (size_t)limit, &images, &n_images);
    char *resume_dir = !out && resume ? tc_dir_of(resume) : NULL;
    out = out ? out : resume_dir ? resume_dir : "train-out";
    if (rank == 0)
        mkdirs(out);
    printf("train_mpi: %d ranks x %lld images = d_batch %lld; G %.2fM D %.2fM params; "
           "at d_steps %lld g_steps %lld; %zu images from %s; output in %s/\n",
           world, (long long)b, (long long)dB, gp / 1e6, dp / 1e6,
           (long long)info(m, TG_INFO_D_STEPS), (long long)info(m, TG_INFO_G_STEPS), n_images,
           src, out);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    size_t per = (size_t)(C * S * S);
    float *real = malloc((size_t)b * per * sizeof *real);
    if (!real)
        die("out of memory");
    tc_order ord = {.n = n_images, .seed = seed};
    tg_train_stats st = {.struct_size = sizeof st};
    int have_stats = 0;
    uint64_t calls = 0, saved_at = UINT64_MAX;
    double t0 = tc_now(), last_print = t0, cpu0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t calls_at_print = 0;
    for (;;) {
        uint64_t d = (uint64_t)info(m, TG_INFO_D_STEPS);
        /* every rank stops after the same step */
        int stop = g_stop || calls >= steps || d >= until, any = 0;
        MPI_Allreduce(&stop, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (any)
            break;
        for (int64_t j = 0; j < b; j++) { /* this rank's rows of the global batch */
            uint64_t pos = d * (uint64_t)dB + (uint64_t)(rank * b + j);
            memcpy(real + j * per, images + tc_order_at(&ord, pos) * per, per * sizeof *real);
        }
        check(tg_train_step(m, real, (size_t)b, NULL, NULL, NULL, &st), "tg_train_step");
        have_stats = 1;
        calls++;
        double t = tc_now();
        if (t - last_print >= PROGRESS_SECONDS) {
            double rate = (double)(calls - calls_at_print) / (t - last_print);
            printf("d %llu g %llu  %.3f steps/s  %.1f images/s  d_loss %.4f gp %.4f g_loss %.4f\n",
                   (unsigned long long)st.d_steps, (unsigned long long)st.g_steps, rate,
                   rate * (double)dB, st.d_loss, st.gp, st.g_loss);
            last_print = t, calls_at_print = calls;
        }
        if (rank == 0 && every && st.d_steps % every == 0) {
            save(m, out, &st, t - t0);
            saved_at = st.d_steps;
        }
    }
    double el = tc_now() - t0, cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0, cpu_all = 0;
    double comm_max = 0;
    MPI_Reduce(&cpu, &cpu_all, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&comm.seconds, &comm_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    uint64_t d_end = (uint64_t)info(m, TG_INFO_D_STEPS);
    if (g_stop)
        printf("train_mpi: interrupted after %llu calls; saving\n", (unsigned long long)calls);
    uint64_t bytes = 4 * (comm.floats[1] + comm.floats[2] + comm.floats[3]);
    double pc = calls ? 1.0 / (double)calls : 0.0;
    printf("train_mpi: %llu calls in %.2f s: %.3f steps/s, %.1f images/s; all-reduced %.3f MB "
           "per call (float sums); per call: %.3f CPU s (all ranks), %.3f s in the all-reduce "
           "(the slowest rank's, waits included)\n",
           (unsigned long long)calls, el, el > 0 ? calls / el : 0.0, el > 0 ? calls * (double)dB / el : 0.0,
           bytes / 1e6 * pc, cpu_all * pc, comm_max * pc);
    if (rank == 0 && saved_at != d_end)
        save(m, out, have_stats ? &st : NULL, el);
    if (replica_files && rank != 0) {
        char name[64];
        snprintf(name, sizeof name, "checkpoint.rank%d.safetensors", rank);
        char *p = tc_join(out, name);
        check(tg_model_save(m, p, 0), "tg_model_save");
        free(p);
    }
    free(real), free(images), free(ord.perm), free(resume_dir);
    tg_model_destroy(m);
    MPI_Barrier(MPI_COMM_WORLD); /* rank 0's files are complete when any rank exits */
    g_mpi_live = 0;
    MPI_Finalize();
    return 0;
}
