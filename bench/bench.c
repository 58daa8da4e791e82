/* bench/bench.c - measure libtransgan on one model descriptor; prints one JSON line.
 *
 *   bench DESC.json [--threads N] [--seconds S] [--runs R] [--train-runs R]
 *                   [--batches 1,16,64] [--peak-seconds S] [--mode all|sample|train|peak]
 *                   [--no-train] [--precision f32|bf16]
 *
 * Measures, with the public API only:
 *   - images/s of tg_generate at each batch size: one warm-up call, then R runs,
 *     each repeating the call for at least S seconds (and at least twice);
 *     median, min and max of the R runs;
 *   - seconds per tg_train_step call with the descriptor's d_batch/g_batch: one
 *     warm-up call, then runs of whole G/D iterations (n_critic calls each, so
 *     every run holds as many G updates as D updates / n_critic) for at least S
 *     seconds; median, min and max per call over the runs;
 *   - peak resident memory (getrusage ru_maxrss) of a sampling-only and of a
 *     training-only phase, each in its own forked child process;
 *   - generator GFLOP/s at the largest batch (64 by default) = images/s x the
 *     generator's FLOPs per image (the formula of tests/reference/oracle.py flops(),
 *     ported below), and the machine's FP32 FMA peak measured by peak.c.
 *
 * Threads: --threads N calls omp_set_num_threads(N) (and sets OMP_NUM_THREADS)
 * before any library call, for the peak measurement, and gives the models N
 * with tg_model_set_threads, the library's documented option.
 * With --mode all (the default) every phase runs in a child of a parent that
 * never starts OpenMP, so fork is safe and the memory peaks are separate. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <oneapi/dnnl/dnnl.h>
#include <transgan.h>

#include "util.h"

#include "bench.h"

#define MAX_BATCHES 16

typedef struct {
    const char *desc;
    int threads;
    double seconds;
    int runs, train_runs;
    int batches[MAX_BATCHES], nb;
    double peak_seconds;
    const char *mode;
    int no_train;
    const char *precision; /* --precision: the models' compute precision */
} opts;

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "bench: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

#define TG_CHECK(call)                                                                             \
    do {                                                                                           \
        tg_status st_ = (call);                                                                    \
        if (st_ != TG_OK) {                                                                        \
            fprintf(stderr, "bench: %s: %s (%s)\n", #call, tg_last_error(),                        \
                    tg_status_string(st_));                                                        \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory%s", "");
    return p;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

static double round_to(double x, int digits)
{
    double s = pow(10.0, digits);
    return round(x * s) / s;
}

/* {"median": , "min": , "max": } of v[0..n) */
static cJSON *spread(const double *v, int n, int digits)
{
    double *s = xmalloc((size_t)n * sizeof *s);
    memcpy(s, v, (size_t)n * sizeof *s);
    double med = sort_median(s, n);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "median", round_to(med, digits));
    cJSON_AddNumberToObject(o, "min", round_to(s[0], digits));
    cJSON_AddNumberToObject(o, "max", round_to(s[n - 1], digits));
    free(s);
    return o;
}

/* ------------------------------------------------------------------ FLOPs */

static int64_t get_int(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        die("descriptor has no number %s", key);
    return (int64_t)v->valuedouble;
}

static const cJSON *get_obj(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
        die("descriptor has no object %s", key);
    return v;
}

/* Multiply-adds x 2 of one transformer block over n tokens of width c: qkv,
 * scores and weighted sum, projection, MLP (as oracle.py flops()). */
static int64_t block_flops(int64_t n, int64_t c, int64_t r)
{
    return 2 * (n * c * 3 * c + 2 * n * n * c + n * c * c + 2 * n * c * c * r);
}

/* The convolutional discriminator's (discriminator.kind "conv"): 2 x the
 * multiply-adds of every convolution and of the head, as oracle.py flops(). */
static int64_t conv_disc_flops(const cJSON *dd, int64_t S, int64_t cin)
{
    const cJSON *widths = get_obj(dd, "widths"), *blocks = get_obj(dd, "blocks");
    const cJSON *down = cJSON_GetObjectItemCaseSensitive(dd, "down");
    int res = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(dd, "residual"));
    int stride = cJSON_IsString(down) && strcmp(down->valuestring, "stride") == 0;
    int nl = cJSON_GetArraySize(widths);
    int64_t f = 0, cout = cin;
    for (int l = 0; l < nl; l++) {
        cout = (int64_t)cJSON_GetArrayItem(widths, l)->valuedouble;
        int nb = (int)cJSON_GetArrayItem(blocks, l)->valuedouble;
        for (int j = 0; j < nb; j++) {
            int dn = j == nb - 1 && l < nl - 1;
            int64_t So = dn ? S / 2 : S, k = dn && stride ? 4 : 3, Sl = dn && stride ? So : S;
            if (!res) {
                f += 2 * cin * cout * k * k * Sl * Sl;
            } else {
                f += 2 * cin * cout * 9 * S * S + 2 * cout * cout * k * k * Sl * Sl;
                if (cin != cout || dn)
                    f += 2 * cin * cout * S * S;
            }
            cin = cout, S = So;
        }
    }
    return f + 2 * cout;
}

/* tests/reference/oracle.py flops(): matmul FLOPs of one image's forward pass through G
 * and D, from the full descriptor JSON (defaults filled in). */
static void model_flops(const char *desc_json, int64_t *g_flops, int64_t *d_flops)
{
    cJSON *d = cJSON_Parse(desc_json);
    if (!d)
        die("cannot parse the model's descriptor%s", "");
    const cJSON *g = get_obj(d, "generator"), *dd = get_obj(d, "discriminator"),
                *im = get_obj(d, "image"), *depths = get_obj(g, "depths");
    int64_t L = get_int(d, "latent_dim"), bw = get_int(g, "bottom_width"),
            ge = get_int(g, "embed_dim"), gr = get_int(g, "mlp_ratio"),
            size = get_int(im, "size"), ch = get_int(im, "channels");
    int ns = cJSON_GetArraySize(depths);
    if (ns < 1)
        die("descriptor: generator.depths is empty%s", "");
    int64_t gf = 0, dim = ge, res = bw;
    gf += 2 * L * bw * bw * ge;
    for (int s = 0; s < ns; s++) {
        const cJSON *v = cJSON_GetArrayItem(depths, s);
        if (!cJSON_IsNumber(v))
            die("descriptor: bad generator.depths%s", "");
        gf += (int64_t)v->valuedouble * block_flops(res * res, dim, gr);
        if (s + 1 < ns)
            dim /= 4, res *= 2;
    }
    gf += 2 * res * res * dim * ch;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(dd, "kind");
    int64_t df = 0;
    if (cJSON_IsString(kind) && strcmp(kind->valuestring, "conv") == 0) {
        df = conv_disc_flops(dd, size, ch);
    } else {
        int64_t p = get_int(dd, "patch_size"), de = get_int(dd, "embed_dim"),
                ddepth = get_int(dd, "depth"), dr = get_int(dd, "mlp_ratio");
        int64_t n = (size / p) * (size / p);
        df = 2 * n * ch * p * p * de;
        df += ddepth * block_flops(n + 1, de, dr) + 2 * de;
    }
    cJSON_Delete(d);
    *g_flops = gf;
    *d_flops = df;
}

/* The compute precision: "f32" (the library's default) or "bf16"
 * (tg_model_set_precision). precision_known() runs in parse(), before any
 * child process, so an unknown name fails at once; bf16 on a CPU without
 * AVX512-BF16 (the model stays f32) exits with status 3 in set_precision(). */
static int precision_known(const char *precision)
{
    return !strcmp(precision, "f32") || !strcmp(precision, "bf16");
}

static void set_precision(tg_model *m, const char *precision)
{
    int bf16 = !strcmp(precision, "bf16");
    int64_t in_effect = -1;
    if (tg_model_set_precision(m, bf16 ? TG_PRECISION_BF16 : TG_PRECISION_F32) != TG_OK ||
        tg_model_info(m, TG_INFO_PRECISION, &in_effect) != TG_OK ||
        in_effect != (bf16 ? TG_PRECISION_BF16 : TG_PRECISION_F32)) {
        fprintf(stderr, "bench: precision %s is not available on this CPU: %s\n", precision,
                tg_last_error());
        exit(3);
    }
}

static tg_model *make_model(const opts *o)
{
    tg_model *m = NULL;
    TG_CHECK(tg_model_create_from_file(o->desc, 1, &m));
    TG_CHECK(tg_model_set_threads(m, o->threads));
    set_precision(m, o->precision);
    return m;
}

static int64_t info(const tg_model *m, tg_info key)
{
    int64_t v = 0;
    TG_CHECK(tg_model_info(m, key, &v));
    return v;
}

/* facts about the model: name, FLOPs, parameters, batches */
static cJSON *model_facts(const tg_model *m)
{
    const char *dj = tg_model_descriptor(m);
    int64_t gf, df;
    model_flops(dj, &gf, &df);
    cJSON *d = cJSON_Parse(dj), *o = cJSON_CreateObject();
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(d, "name");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "training");
    cJSON_AddStringToObject(o, "name", cJSON_IsString(name) ? name->valuestring : "");
    cJSON_AddNumberToObject(o, "generator_flops", (double)gf);
    cJSON_AddNumberToObject(o, "discriminator_flops", (double)df);
    cJSON_AddNumberToObject(o, "generator_params", (double)info(m, TG_INFO_G_PARAMS));
    cJSON_AddNumberToObject(o, "discriminator_params", (double)info(m, TG_INFO_D_PARAMS));
    cJSON_AddNumberToObject(o, "latent_dim", (double)info(m, TG_INFO_LATENT_DIM));
    cJSON_AddNumberToObject(o, "image_size", (double)info(m, TG_INFO_IMAGE_SIZE));
    cJSON_AddNumberToObject(o, "channels", (double)info(m, TG_INFO_CHANNELS));
    cJSON_AddNumberToObject(o, "d_batch", (double)info(m, TG_INFO_D_BATCH));
    cJSON_AddNumberToObject(o, "g_batch", (double)info(m, TG_INFO_G_BATCH));
    cJSON_AddNumberToObject(o, "n_critic", t ? (double)get_int(t, "n_critic") : 0.0);
    cJSON_Delete(d);
    return o;
}

/* ------------------------------------------------------------------ phases */

static void phase_sample(const opts *o, cJSON *out)
{
    tg_model *m = make_model(o);
    cJSON_AddItemToObject(out, "model", model_facts(m));
    cJSON_AddNumberToObject(out, "omp_max_threads", omp_get_max_threads());
    size_t L = (size_t)info(m, TG_INFO_LATENT_DIM), S = (size_t)info(m, TG_INFO_IMAGE_SIZE),
           per = (size_t)info(m, TG_INFO_CHANNELS) * S * S;
    cJSON *gen = cJSON_AddObjectToObject(out, "generate");
    double *ips = xmalloc((size_t)o->runs * sizeof *ips);
    for (int k = 0; k < o->nb; k++) {
        size_t b = (size_t)o->batches[k];
        float *z = xmalloc(b * L * sizeof *z), *img = xmalloc(b * per * sizeof *img);
        TG_CHECK(tg_latent_sample(m, 7, b, z, b * L));
        TG_CHECK(tg_generate(m, z, b, TG_GEN_EMA, img, b * per)); /* warm-up */
        long calls = 0;
        for (int r = 0; r < o->runs; r++) {
            long reps = 0;
            double t0 = now(), dt;
            do {
                TG_CHECK(tg_generate(m, z, b, TG_GEN_EMA, img, b * per));
                reps++;
            } while ((dt = now() - t0) < o->seconds || reps < 2);
            ips[r] = (double)b * (double)reps / dt;
            calls += reps;
        }
        char key[32];
        snprintf(key, sizeof key, "%zu", b);
        cJSON *e = cJSON_AddObjectToObject(gen, key);
        cJSON_AddItemToObject(e, "img_per_s", spread(ips, o->runs, 2));
        cJSON_AddNumberToObject(e, "calls", (double)calls);
        free(z);
        free(img);
    }
    free(ips);
    tg_model_destroy(m);
}

static void phase_train(const opts *o, cJSON *out)
{
    tg_model *m = make_model(o);
    cJSON *facts = model_facts(m);
    int nc = (int)cJSON_GetObjectItemCaseSensitive(facts, "n_critic")->valuedouble;
    cJSON_AddItemToObject(out, "model", facts);
    cJSON_AddNumberToObject(out, "omp_max_threads", omp_get_max_threads());
    size_t S = (size_t)info(m, TG_INFO_IMAGE_SIZE), db = (size_t)info(m, TG_INFO_D_BATCH),
           n = db * (size_t)info(m, TG_INFO_CHANNELS) * S * S;
    float *real = xmalloc(n * sizeof *real);
    uint64_t x = 0x9E3779B97F4A7C15u; /* uniform in [-1, 1): a fixed "real" batch */
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        real[i] = (float)((double)(x >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    }
    tg_train_stats st = {.struct_size = sizeof st};
    TG_CHECK(tg_train_step(m, real, db, NULL, NULL, NULL, &st)); /* warm-up: D and G */
    double *sec = xmalloc((size_t)o->train_runs * sizeof *sec);
    long calls = 0;
    for (int r = 0; r < o->train_runs; r++) {
        long c = 0;
        double t0 = now(), dt;
        do { /* whole G/D iterations: n_critic calls hold exactly one G update */
            for (int i = 0; i < nc; i++, c++)
                TG_CHECK(tg_train_step(m, real, db, NULL, NULL, NULL, &st));
        } while ((dt = now() - t0) < o->seconds);
        sec[r] = dt / (double)c;
        calls += c;
    }
    cJSON_AddItemToObject(out, "train_step_s", spread(sec, o->train_runs, 5));
    cJSON_AddNumberToObject(out, "train_calls", (double)calls);
    free(sec);
    free(real);
    tg_model_destroy(m);
}

static void phase_peak(const opts *o, cJSON *out)
{
    const char *isa = "";
    int nt = 0;
    double g = bench_peak_gflops(o->peak_seconds, &isa, &nt);
    cJSON *p = cJSON_AddObjectToObject(out, "peak");
    cJSON_AddNumberToObject(p, "gflops", round_to(g, 2));
    cJSON_AddStringToObject(p, "isa", isa);
    cJSON_AddNumberToObject(p, "threads", nt);
}

typedef void (*phase_fn)(const opts *, cJSON *);

/* Run one phase; adds its peak RSS under rss_key when given. */
static cJSON *run_here(phase_fn f, const opts *o, const char *rss_key)
{
    cJSON *out = cJSON_CreateObject();
    f(o, out);
    if (rss_key)
        cJSON_AddNumberToObject(out, rss_key, round_to(peak_rss_mib(), 1));
    return out;
}

/* Run one phase in a forked child; its JSON comes back through a pipe. */
static cJSON *run_child(phase_fn f, const opts *o, const char *rss_key)
{
    int fd[2];
    fflush(NULL);
    if (pipe(fd) != 0)
        die("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fd[0]);
        cJSON *out = run_here(f, o, rss_key);
        char *s = cJSON_PrintUnformatted(out);
        size_t len = strlen(s), done = 0;
        while (done < len) {
            ssize_t w = write(fd[1], s + done, len - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                _exit(2);
            done += (size_t)w;
        }
        close(fd[1]);
        _exit(0);
    }
    close(fd[1]);
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                die("out of memory%s", "");
            buf = nb;
        }
        ssize_t r = read(fd[0], buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = 0;
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("a measuring child process failed%s", "");
    cJSON *out = cJSON_Parse(buf);
    free(buf);
    if (!out)
        die("a measuring child process sent bad JSON%s", "");
    return out;
}

/* move every item of src into dst (keeping the first "model") */
static void merge(cJSON *dst, cJSON *src)
{
    while (src->child) {
        cJSON *it = cJSON_DetachItemViaPointer(src, src->child);
        if (cJSON_GetObjectItemCaseSensitive(dst, it->string))
            cJSON_Delete(it);
        else
            cJSON_AddItemToObject(dst, it->string, it); /* takes it->string again */
    }
    cJSON_Delete(src);
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench DESC.json [--threads N] [--seconds S] [--runs R] [--train-runs R]\n"
            "                       [--batches 1,16,64] [--peak-seconds S]\n"
            "                       [--mode all|sample|train|peak] [--no-train] [--precision f32|bf16]\n"
            "Measures libtransgan on one descriptor; prints one JSON line.\n");
}

static double num_arg(int argc, char **argv, int *i, double lo)
{
    if (*i + 1 >= argc)
        die("%s needs a value", argv[*i]);
    char *end;
    double v = strtod(argv[++*i], &end);
    if (*end || !(v >= lo))
        die("bad value %s", argv[*i]);
    return v;
}

static void parse(int argc, char **argv, opts *o)
{
    *o = (opts){.threads = 0, .seconds = 3.0, .runs = 5, .train_runs = 0,
                .batches = {1, 16, 64}, .nb = 3, .peak_seconds = 1.0, .mode = "all",
                .precision = "f32"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            usage(stdout), exit(0);
        else if (!strcmp(a, "--threads"))
            o->threads = (int)num_arg(argc, argv, &i, 1);
        else if (!strcmp(a, "--seconds"))
            o->seconds = num_arg(argc, argv, &i, 0);
        else if (!strcmp(a, "--runs"))
            o->runs = (int)num_arg(argc, argv, &i, 1);
        else if (!strcmp(a, "--train-runs"))
            o->train_runs = (int)num_arg(argc, argv, &i, 1);
        else if (!strcmp(a, "--peak-seconds"))
            o->peak_seconds = num_arg(argc, argv, &i, 0);
        else if (!strcmp(a, "--precision")) {
            if (++i >= argc)
                die("--precision needs a value%s", "");
            o->precision = argv[i];
        } else if (!strcmp(a, "--no-train"))
            o->no_train = 1;
        else if (!strcmp(a, "--mode")) {
            if (++i >= argc)
                die("--mode needs a value%s", "");
            o->mode = argv[i];
            if (strcmp(o->mode, "all") && strcmp(o->mode, "sample") &&
                strcmp(o->mode, "train") && strcmp(o->mode, "peak"))
                die("unknown mode %s", o->mode);
        } else if (!strcmp(a, "--batches")) {
            if (++i >= argc)
                die("--batches needs a value%s", "");
            o->nb = 0;
            for (const char *p = argv[i]; *p;) {
                char *end;
                long b = strtol(p, &end, 10);
                if (end == p || b < 1 || b > 1 << 20 || o->nb == MAX_BATCHES)
                    die("bad --batches %s", argv[i]);
                o->batches[o->nb++] = (int)b;
                p = *end == ',' ? end + 1 : end;
                if (*end && *end != ',')
                    die("bad --batches %s", argv[i]);
            }
            if (!o->nb)
                die("bad --batches %s", argv[i]);
        } else if (a[0] == '-')
            usage(stderr), die("unknown option %s", a);
        else if (o->desc)
            die("more than one descriptor: %s", a);
        else
            o->desc = a;
    }
    if (!o->desc)
        usage(stderr), exit(2);
    if (!precision_known(o->precision)) {
        fprintf(stderr, "bench: precision %s is not available in this build\n", o->precision);
        exit(3);
    }
    if (!o->train_runs)
        o->train_runs = o->runs;
}

int main(int argc, char **argv)
{
    opts o;
    parse(argc, argv, &o);
    if (o.threads > 0) { /* before the first library call: models size their team at creation */
        char n[16];
        snprintf(n, sizeof n, "%d", o.threads);
        setenv("OMP_NUM_THREADS", n, 1);
        omp_set_num_threads(o.threads);
    }
    const dnnl_version_t *dv = dnnl_version();
    char dnnl[64];
    snprintf(dnnl, sizeof dnnl, "%d.%d.%d", dv->major, dv->minor, dv->patch);

    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "bench", "libtransgan");
    cJSON_AddStringToObject(out, "version", tg_version_string());
    cJSON_AddStringToObject(out, "onednn", dnnl);
    cJSON_AddStringToObject(out, "descriptor", o.desc);
    cJSON_AddNumberToObject(out, "threads", o.threads > 0 ? o.threads : omp_get_max_threads());
    cJSON_AddStringToObject(out, "precision", o.precision);
    cJSON_AddNumberToObject(out, "seconds", o.seconds);
    cJSON_AddNumberToObject(out, "runs", o.runs);
    cJSON_AddNumberToObject(out, "train_runs", o.train_runs);
    cJSON_AddStringToObject(out, "mode", o.mode);

    int all = !strcmp(o.mode, "all");
    cJSON *(*run)(phase_fn, const opts *, const char *) = all ? run_child : run_here;
    if (all || !strcmp(o.mode, "sample"))
        merge(out, run(phase_sample, &o, "sample_peak_rss_mib"));
    if ((all && !o.no_train) || !strcmp(o.mode, "train"))
        merge(out, run(phase_train, &o, "train_peak_rss_mib"));
    if (all || !strcmp(o.mode, "peak"))
        merge(out, run(phase_peak, &o, NULL));

    /* GFLOP/s of sampling at the largest batch, and its share of the peak */
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(out, "model");
    const cJSON *gen = cJSON_GetObjectItemCaseSensitive(out, "generate");
    if (model && gen) {
        int bmax = 0;
        for (int k = 0; k < o.nb; k++)
            bmax = o.batches[k] > bmax ? o.batches[k] : bmax;
        char key[32];
        snprintf(key, sizeof key, "%d", bmax);
        const cJSON *ips = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(gen, key), "img_per_s");
        double gf = cJSON_GetObjectItemCaseSensitive(model, "generator_flops")->valuedouble;
        const char *k3[] = {"median", "min", "max"};
        cJSON *g = cJSON_AddObjectToObject(out, "gflops");
        cJSON_AddNumberToObject(g, "batch", bmax);
        for (int i = 0; i < 3; i++)
            cJSON_AddNumberToObject(
                g, k3[i],
                round_to(cJSON_GetObjectItemCaseSensitive(ips, k3[i])->valuedouble * gf * 1e-9,
                         3));
        const cJSON *peak = cJSON_GetObjectItemCaseSensitive(out, "peak");
        if (peak) {
            double p = cJSON_GetObjectItemCaseSensitive(peak, "gflops")->valuedouble;
            double med = cJSON_GetObjectItemCaseSensitive(g, "median")->valuedouble;
            cJSON_AddNumberToObject(out, "pct_of_peak", p > 0 ? round_to(100.0 * med / p, 2) : 0.0);
        }
    }
    char *s = cJSON_PrintUnformatted(out);
    puts(s);
    free(s);
    cJSON_Delete(out);
    return 0;
}
