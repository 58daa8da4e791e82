/* train.c - train a TransGAN with libtransgan: the discriminator/generator loop.
 *
 *   train --model DESC.json|CKPT.safetensors [--data fmnist|IDX_FILE|DIR_OF_PNGS]
 *         [--steps N] [--out DIR] [--every K] [--resume CKPT] [--seed S] [--limit N]
 *         [--keep 1] [--threads N] [--minutes M] [--every-minutes X]
 *         [--labels fmnist|folders|IDX1_FILE]
 *
 * --model     a descriptor (fresh weights from its training.seed) or a checkpoint
 *             (its weights, optimiser state, step counters and RNG)
 * --resume    continue a run from its checkpoint: weights, EMA, optimiser, step
 *             counters, the library's RNG and (same --seed and data) the data
 *             order; the log's clock continues from the run's log.tsv. With
 *             --model DESC.json the descriptor's settings (e.g. learning rates)
 *             replace the checkpoint's; default --out is the checkpoint's folder
 * --data      "fmnist" (default: Fashion-MNIST train images, padded to 32x32),
 *             an idx3 file, or a folder of PNG files (resized to the model)
 * --steps     calls of tg_train_step in this run (one D update each, a G update
 *             every n_critic); default: until interrupted
 * --out       output folder (default train-out): checkpoint.safetensors,
 *             samples_<d_steps>.png, log.tsv
 * --every     save the checkpoint, a sample grid and a log line every K D steps
 *             and at the end (default 500; 0 = only at the end)
 * --seed      seed of the data order (default 1): shuffled epochs, the same for
 *             a given seed, continued exactly on --resume
 * --limit     use only the first N images of the data set
 * --threads   threads to compute on (tg_model_set_threads; default: OpenMP's,
 *             i.e. OMP_NUM_THREADS or every core)
 * --minutes   stop (and save) after M minutes of this run's training loop
 *             (wall clock; fractions allowed); with --steps, whichever comes first
 * --every-minutes  also save every X minutes of wall clock (as --every does
 *             by steps; bench/quality uses it with --keep 1 for FID-vs-time)
 * --labels    the classes of a class-conditional model (num_classes > 0, e.g.
 *             models/fmnist-cond.json): "fmnist" (Fashion-MNIST's train label
 *             file; the default with --data fmnist), an idx1 label file, or
 *             "folders": the sub-folders of the --data folder are the classes
 *             (matched to the model's class_names by name when it has them,
 *             else in name order; --limit then counts per class). Sample grids
 *             then show one class per row.
 *
 * Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves and exits 0.
 * log.tsv columns: d_steps, g_steps, seconds (wall time of the training loop,
 * summed over resumed runs), then the means over the steps since the previous
 * line of d_loss, gp, d_real, d_fake, g_loss, sr_loss, d_grad_norm, g_grad_norm.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <transgan.h>

#include "cli.h"
#include "imageio.h"
#include "train_common.h"

#define PROGRESS_SECONDS 5.0
/* The time estimate printed with the second progress line (docs/TRAINING.md,
 * "How long"): images the discriminator had to see, from the measured
 * Fashion-MNIST curves, before EMA samples were recognisable (FID below
 * RECOGNISABLE_FID on bench/fid's scale), divided by this run's measured
 * images per second (over the second interval: the first one holds the first
 * call's one-off set-up). A rule of thumb for 32x32 data of about that
 * difficulty; the run's real speed makes it follow the machine's load.
 * The transformer D (fmnist-mid) needed ~400k images; the convolutional D at
 * the recipe's learning rates (fmnist-convd-recipe.json, lr 8e-4) 50k (FID
 * 86.5), which is why the kind of D picks the figure. */
#define RECOGNISABLE_KIMG 400.0
#define RECOGNISABLE_KIMG_CONV_D 50.0
#define RECOGNISABLE_FID 100

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: train --model DESC.json|CKPT.safetensors [--data fmnist|IDX_FILE|DIR_OF_PNGS]\n"
               "             [--steps N] [--out DIR] [--every K] [--resume CKPT] [--seed S]\n"
               "             [--keep 1]  (keep checkpoint_<d_steps>.safetensors at every save)\n"
               "             [--limit N_IMAGES] [--threads N] [--minutes M] [--every-minutes X]\n"
               "             [--labels fmnist|folders|IDX1_FILE]\n");
}

static void hms(double s, char *buf, size_t len)
{
    long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

/* a non-negative decimal number of minutes (fractions allowed) */
static double parse_minutes(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= 0) || v > 1e7)
        die("%s: '%s' is not a number of minutes (0 to 1e7)", opt, s);
    return v;
}

/* --------------------------------------------------------------- statistics */

typedef struct means {
    double d[5]; /* d_loss gp d_real d_fake d_grad_norm */
    double g[3]; /* g_loss sr_loss g_grad_norm */
    long nd, ng;
} means;

static void means_add(means *a, const tg_train_stats *s)
{
    double d[5] = {s->d_loss, s->gp, s->d_real, s->d_fake, s->d_grad_norm};
    for (int i = 0; i < 5; i++)
        a->d[i] += d[i];
    a->nd++;
    if (s->g_updated) {
        double g[3] = {s->g_loss, s->sr_loss, s->g_grad_norm};
        for (int i = 0; i < 3; i++)
            a->g[i] += g[i];
        a->ng++;
    }
}

/* means of D values; of G values over the G steps in the interval, or the
 * last G step's when the interval had none (NaN before any) */
static void means_get(const means *a, const double last_g[3], double d[5], double g[3])
{
    for (int i = 0; i < 5; i++)
        d[i] = a->nd ? a->d[i] / a->nd : NAN;
    for (int i = 0; i < 3; i++)
        g[i] = a->ng ? a->g[i] / a->ng : last_g[i];
}

/* -------------------------------------------------------------------- run */

typedef struct run {
    tg_model *m;
    const char *out;
    char *ckpt_path, *log_path;
    int64_t S, C, L;
    float *z_fixed;    /* TC_SAMPLE_N x L */
    float *img;        /* TC_SAMPLE_N x C x S x S */
    uint8_t *px;       /* TC_SAMPLE_N x S x S x C */
    int32_t *ylab;     /* TC_SAMPLE_N classes of a conditional model's grid, or NULL */
    double t0, prior;  /* loop start; seconds of earlier runs */
    means logm;        /* since the last log line */
    double last_g[3];
    uint64_t saved_at; /* d_steps of the last save, UINT64_MAX if none */
    int keep;          /* also keep checkpoint_<d_steps>.safetensors at each save */
} run;

static uint64_t steps_of(const tg_model *m, tg_info key)
{
    int64_t v = 0;
    check(tg_model_info(m, key, &v), "tg_model_info");
    return (uint64_t)v;
}

/* the seconds of the last line of a log.tsv whose d_steps <= d (0 if none) */
static double log_seconds(const char *path, uint64_t d)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[2048];
    double secs = 0;
    while (fgets(line, sizeof line, f)) {
        char *end;
        unsigned long long ds = strtoull(line, &end, 10);
        if (end == line || *end != '\t' || ds > d)
            continue; /* the header, or a line past the checkpoint */
        unsigned long long gs = strtoull(end + 1, &end, 10);
        (void)gs;
        if (*end != '\t')
            continue;
        double s = strtod(end + 1, &end);
        if (isfinite(s) && s >= 0)
            secs = s;
    }
    fclose(f);
    return secs;
}

static void save_all(run *r)
{
    uint64_t d = steps_of(r->m, TG_INFO_D_STEPS), g = steps_of(r->m, TG_INFO_G_STEPS);
    check(tg_model_save(r->m, r->ckpt_path, 0), "tg_model_save");
    if (r->keep) { /* snapshots for evaluating the run afterwards (e.g. FID over time) */
        char snap[64];
        snprintf(snap, sizeof snap, "checkpoint_%llu.safetensors", (unsigned long long)d);
        char *sp = tc_join(r->out, snap);
        check(tg_model_save(r->m, sp, 0), "tg_model_save");
        free(sp);
    }

    char *png = tc_write_samples(r->m, r->out, d, r->z_fixed, r->ylab, r->img, r->px, (int)r->S,
                                 (int)r->C);
    double dm[5], gm[3];
    means_get(&r->logm, r->last_g, dm, gm);
    double v[8] = {dm[0], dm[1], dm[2], dm[3], gm[0], gm[1], dm[4], gm[2]};
    tc_log_append(r->log_path, 0, d, g, r->prior + tc_now() - r->t0, v);
    memset(&r->logm, 0, sizeof r->logm);
    r->saved_at = d;
    printf("saved %s and %s\n", r->ckpt_path, png);
    free(png);
}

static void progress(run *r, uint64_t calls, uint64_t total, double rate, const means *a)
{
    double dm[5], gm[3];
    means_get(a, r->last_g, dm, gm);
    double el = tc_now() - r->t0, all = calls ? el / calls : 0;
    char e[32], eta[32] = "-", tot[32] = "";
    hms(el, e, sizeof e);
    if (total != UINT64_MAX) {
        hms(all * (double)(total - calls), eta, sizeof eta);
        snprintf(tot, sizeof tot, "/%llu", (unsigned long long)total);
    }
    printf("call %llu%s  d %llu g %llu  %.2f steps/s  d_loss %.4f gp %.4f d_real %.4f "
           "d_fake %.4f g_loss %.4f  |gD| %.3g |gG| %.3g  elapsed %s eta %s\n",
           (unsigned long long)calls, tot, (unsigned long long)steps_of(r->m, TG_INFO_D_STEPS),
           (unsigned long long)steps_of(r->m, TG_INFO_G_STEPS), rate, dm[0], dm[1], dm[2], dm[3],
           gm[0], dm[4], gm[2], e, eta);
}

int main(int argc, char **argv)
{
    cli_prog = "train";
    const char *model_path = NULL, *data = "fmnist", *out = NULL, *resume = NULL,
               *labels_opt = NULL;
    uint64_t total = UINT64_MAX, every = 500, seed = 1, limit = 0, keep = 0, threads = 0;
    double minutes = 0, every_minutes = 0; /* 0: no limit / no timed saves */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc || strncmp(a, "--", 2) != 0) {
            usage(stderr);
            die("%s: %s", a, strncmp(a, "--", 2) ? "unexpected argument" : "needs a value");
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--model"))
            model_path = v;
        else if (!strcmp(a, "--data"))
            data = v;
        else if (!strcmp(a, "--steps"))
            total = parse_u64(a, v);
        else if (!strcmp(a, "--out"))
            out = v;
        else if (!strcmp(a, "--every"))
            every = parse_u64(a, v);
        else if (!strcmp(a, "--resume"))
            resume = v;
        else if (!strcmp(a, "--seed"))
            seed = parse_u64(a, v);
        else if (!strcmp(a, "--limit"))
            limit = parse_u64(a, v);
        else if (!strcmp(a, "--keep"))
            keep = parse_u64(a, v);
        else if (!strcmp(a, "--labels"))
            labels_opt = v;
        else if (!strcmp(a, "--threads"))
            threads = parse_u64(a, v);
        else if (!strcmp(a, "--minutes"))
            minutes = parse_minutes(a, v);
        else if (!strcmp(a, "--every-minutes"))
            every_minutes = parse_minutes(a, v);
        else {
            usage(stderr);
            die("unknown option %s", a);
        }
    }
    if (!model_path && !resume) {
        usage(stderr);
        die("give --model (or --resume)");
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* the model */
    run r = {.saved_at = UINT64_MAX, .last_g = {NAN, NAN, NAN}};
    int model_json = model_path && tc_ends_with(model_path, ".json");
    if (model_json) {
        check(tg_model_create_from_file(model_path, TG_SEED_FROM_DESCRIPTOR, &r.m), model_path);
        if (resume)
            check(tg_model_load_weights(r.m, resume), resume);
    } else {
        if (model_path && resume && strcmp(model_path, resume) != 0)
            die("--model %s and --resume %s: give one checkpoint", model_path, resume);
        const char *ck = resume ? resume : model_path;
        check(tg_model_load(ck, &r.m), ck);
    }
    if (threads > 4096)
        die("--threads %llu: use 1..4096 (0: OpenMP's default)", (unsigned long long)threads);
    check(tg_model_set_threads(r.m, (int)threads), "--threads");
    int64_t dB, has_ema;
    check(tg_model_info(r.m, TG_INFO_IMAGE_SIZE, &r.S), "tg_model_info");
    check(tg_model_info(r.m, TG_INFO_CHANNELS, &r.C), "tg_model_info");
    check(tg_model_info(r.m, TG_INFO_LATENT_DIM, &r.L), "tg_model_info");
    check(tg_model_info(r.m, TG_INFO_D_BATCH, &dB), "tg_model_info");
    check(tg_model_info(r.m, TG_INFO_HAS_EMA, &has_ema), "tg_model_info");
    int64_t gp, dp;
    check(tg_model_info(r.m, TG_INFO_G_PARAMS, &gp), "tg_model_info");
    check(tg_model_info(r.m, TG_INFO_D_PARAMS, &dp), "tg_model_info");

    int64_t K;
    check(tg_model_info(r.m, TG_INFO_NUM_CLASSES, &K), "tg_model_info");
    if (labels_opt && K == 0)
        die("--labels: the model is unconditional (num_classes = 0); train a descriptor with "
            "num_classes, e.g. models/fmnist-cond.json");
    if (K > 0 && !labels_opt && strcmp(data, "fmnist") != 0)
        die("the model is class-conditional (num_classes = %lld): give the classes with "
            "--labels folders (sub-folders of --data) or --labels IDX1_FILE", (long long)K);

    /* the data (and a conditional model's classes) */
    float *images = NULL;
    int32_t *labels = NULL;
    size_t n_images = 0, n_labels = 0;
    struct stat sb;
    const char *src = !strcmp(data, "fmnist") ? IO_FMNIST_TRAIN : data;
    int folders = labels_opt && !strcmp(labels_opt, "folders");
    int rc;
    if (folders) {
        char **names;
        int nc;
        rc = io_load_png_classes(src, (int)r.S, (int)r.C, (size_t)limit, &images, &labels,
                                 &n_images, &names, &nc);
        if (rc)
            die("%s", io_last_error());
        /* folder c -> the model's class of the same name, else class c */
        int32_t map[4096];
        if (nc > 4096)
            die("--labels folders: %d sub-folders; at most 4096 classes here", nc);
        for (int c = 0; c < nc; c++) {
            map[c] = c;
            if (tg_model_class_name(r.m, 0)) {
                map[c] = -1;
                for (int64_t k = 0; k < K; k++)
                    if (!strcmp(tg_model_class_name(r.m, k), names[c]))
                        map[c] = (int32_t)k;
                if (map[c] < 0)
                    die("--labels folders: sub-folder '%s' of %s is not one of the model's "
                        "class_names", names[c], src);
            } else if (c >= K) {
                die("--labels folders: %s has %d sub-folders, the model %lld classes", src, nc,
                    (long long)K);
            }
        }
        for (size_t i = 0; i < n_images; i++)
            labels[i] = map[labels[i]];
        printf("train: %d classes from the sub-folders of %s\n", nc, src);
        io_free_names(names, nc);
    } else {
        tc_load_images(src, (int)r.S, (int)r.C, (size_t)limit, &images, &n_images);
        if (K > 0) {
            const char *lp = !labels_opt || !strcmp(labels_opt, "fmnist") ? IO_FMNIST_TRAIN_LABELS
                                                                           : labels_opt;
            if (io_load_idx_labels(lp, (size_t)limit, &labels, &n_labels))
                die("%s", io_last_error());
            if (n_labels < n_images)
                die("--labels %s: %zu labels for %zu images", lp, n_labels, n_images);
            for (size_t i = 0; i < n_images; i++)
                if (labels[i] >= K)
                    die("--labels %s: label %d of image %zu is not a class of the model "
                        "(num_classes = %lld)", lp, (int)labels[i], i, (long long)K);
            printf("train: classes from %s\n", lp);
        }
    }

    /* the output folder and the log */
    char *resume_dir = resume ? tc_dir_of(resume) : NULL;
    r.out = out ? out : resume ? resume_dir : "train-out";
    mkdirs(r.out);
    r.ckpt_path = tc_join(r.out, "checkpoint.safetensors");
    r.keep = keep != 0;
    r.log_path = tc_join(r.out, "log.tsv");
    uint64_t d0 = steps_of(r.m, TG_INFO_D_STEPS), g0 = steps_of(r.m, TG_INFO_G_STEPS);
    int fresh_log = 1; /* a new run starts a new log; a resumed one appends */
    if (resume) {
        if (stat(r.log_path, &sb) == 0) {
            r.prior = log_seconds(r.log_path, d0);
            fresh_log = 0;
        } else {
            char *old = tc_join(resume_dir, "log.tsv");
            r.prior = log_seconds(old, d0);
            free(old);
        }
    }
    if (fresh_log) {
        FILE *lf = fopen(r.log_path, "w");
        if (!lf || fputs(TC_LOG_HEADER, lf) < 0 || fclose(lf) != 0)
            die("cannot write '%s': %s", r.log_path, strerror(errno));
    }

    /* the training precision in effect (training.precision, f32 on a CPU
     * without AVX512-BF16) */
    int64_t tp;
    check(tg_model_info(r.m, TG_INFO_TRAIN_PRECISION, &tp), "tg_model_info");
    printf("train: %s%s%s: %lldx%lldx%lld, G %.2fM D %.2fM params, d_batch %lld, %s, "
           "%s training, at d_steps %llu g_steps %llu\n",
           model_path ? model_path : resume, model_json && resume ? " + " : "",
           model_json && resume ? resume : "", (long long)r.S, (long long)r.S, (long long)r.C,
           gp / 1e6, dp / 1e6, (long long)dB, has_ema ? "EMA" : "no EMA",
           tp == TG_PRECISION_BF16 ? "bf16" : "f32", (unsigned long long)d0,
           (unsigned long long)g0);
    printf("train: %zu images from %s (data seed %llu); output in %s/\n", n_images, src,
           (unsigned long long)seed, r.out);

    /* buffers */
    size_t per = (size_t)(r.C * r.S * r.S);
    float *real = malloc((size_t)dB * per * sizeof *real);
    r.z_fixed = malloc((size_t)(TC_SAMPLE_N * r.L) * sizeof *r.z_fixed);
    r.img = malloc(TC_SAMPLE_N * per * sizeof *r.img);
    r.px = malloc(TC_SAMPLE_N * per);
    int32_t *yb = K ? malloc((size_t)dB * sizeof *yb) : NULL;
    r.ylab = K ? malloc(TC_SAMPLE_N * sizeof *r.ylab) : NULL;
    if (!real || !r.z_fixed || !r.img || !r.px || (K && (!yb || !r.ylab)))
        die("out of memory");
    for (int i = 0; K && i < TC_SAMPLE_N; i++)
        r.ylab[i] = (int32_t)((i / 8) % K); /* the grid has 8 columns: a class per row */
    check(tg_latent_sample(r.m, TC_SAMPLE_SEED, TC_SAMPLE_N, r.z_fixed, (size_t)(TC_SAMPLE_N * r.L)),
          "tg_latent_sample");
    tc_order ord = {.n = n_images, .seed = seed};

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C ends the program at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* the loop */
    r.t0 = tc_now();
    double last_print = r.t0, next_timed_save = r.t0 + every_minutes * 60;
    uint64_t calls = 0, printed_at = 0, calls_at_print = 0;
    int estimated = 0;
    means pm = {0};
    while (calls < total && !g_stop) {
        if (minutes > 0 && tc_now() - r.t0 >= minutes * 60) {
            printf("train: the %.4g-minute budget is spent after %llu calls\n", minutes,
                   (unsigned long long)calls);
            break;
        }
        uint64_t d = steps_of(r.m, TG_INFO_D_STEPS);
        for (int64_t j = 0; j < dB; j++) {
            size_t k = tc_order_at(&ord, d * (uint64_t)dB + (uint64_t)j);
            memcpy(real + j * per, images + k * per, per * sizeof *real);
            if (yb)
                yb[j] = labels[k];
        }
        tg_train_stats st;
        memset(&st, 0, sizeof st);
        st.struct_size = sizeof st;
        if (yb) {
            tg_train_labels tl = {.struct_size = sizeof tl, .real = yb};
            check(tg_train_step_labels(r.m, real, (size_t)dB, &tl, NULL, NULL, NULL, &st),
                  "tg_train_step_labels");
        } else {
            check(tg_train_step(r.m, real, (size_t)dB, NULL, NULL, NULL, &st), "tg_train_step");
        }
        calls++;
        means_add(&pm, &st);
        means_add(&r.logm, &st);
        if (st.g_updated)
            r.last_g[0] = st.g_loss, r.last_g[1] = st.sr_loss, r.last_g[2] = st.g_grad_norm;
        if (calls == total)
            break; /* the last call's line and save come below */
        double t = tc_now();
        if (t - last_print >= PROGRESS_SECONDS) {
            double rate = (calls - calls_at_print) / (t - last_print);
            progress(&r, calls, total, rate, &pm);
            /* the second interval: the first includes the one-off set-up of
             * the first call (buffers, oneDNN primitives), which is slow */
            if (++estimated == 2 && rate > 0) {
                double img_s = rate * (double)dB; /* D's real images per second */
                int64_t kind = 0;
                double kimg = tg_model_info(r.m, TG_INFO_D_KIND, &kind) == TG_OK && kind == 1 /* conv */
                                  ? RECOGNISABLE_KIMG_CONV_D
                                  : RECOGNISABLE_KIMG;
                printf("train: estimate: at %.0f real images/s, about %.0f min from scratch until "
                       "samples are recognisable (~%.0fk images seen by D; FID < %d on "
                       "Fashion-MNIST; docs/TRAINING.md)\n",
                       img_s, kimg * 1000 / img_s / 60, kimg, RECOGNISABLE_FID);
            }
            memset(&pm, 0, sizeof pm);
            last_print = t, calls_at_print = calls, printed_at = calls;
        }
        if ((every && st.d_steps % every == 0) || (every_minutes > 0 && t >= next_timed_save)) {
            save_all(&r);
            while (every_minutes > 0 && next_timed_save <= t)
                next_timed_save += every_minutes * 60;
        }
    }
    if (printed_at != calls) {
        double t = tc_now();
        progress(&r, calls, total, t > last_print ? (calls - calls_at_print) / (t - last_print) : 0,
                 &pm);
    }
    if (g_stop)
        printf("train: interrupted after %llu calls; saving\n", (unsigned long long)calls);
    if (r.saved_at != steps_of(r.m, TG_INFO_D_STEPS))
        save_all(&r);

    free(ord.perm);
    free(real), free(images), free(labels), free(yb), free(r.ylab);
    free(r.z_fixed), free(r.img), free(r.px);
    free(r.ckpt_path), free(r.log_path), free(resume_dir);
    tg_model_destroy(r.m);
    return 0;
}
