/* bench/ort/lib_bench.c - time libtransgan's tg_generate or tg_discriminate at one
 * batch size, the same way bench/ort/ort_bench.js times ONNX Runtime; prints one
 * JSON line.
 *
 *   lib_bench CKPT.safetensors [--net generator|discriminator] [--batch 16]
 *             [--seconds 2] [--runs 1] [--threads 2] [--load full|sampling-only]
 *             [--precision f32|bf16]
 *
 * One warm-up call, then --runs runs, each repeating the call for at least
 * --seconds seconds (and at least twice); images/s of every run and their
 * median/min/max. Threads: tg_model_set_threads(--threads). Peak RSS is the
 * process's VmHWM (/proc/self/status) at the end, like ort_bench.js's, so the
 * two engines' memory is measured alike; vmhwm_before_model_mib is the program
 * before the model exists. cpu_ms_per_img is the process's CPU time (all
 * threads) over the timed runs per image: on a busy host, where images/s
 * follow the other jobs, a steadier figure for A/B comparisons of builds
 * (docs/PERFORMANCE.md). The generator runs with its raw weights (TG_GEN_RAW):
 * the ONNX export holds those. --load sampling-only loads with
 * TG_LOAD_SAMPLING_ONLY, as a tool that only samples would (the weights-only
 * export then keeps the raw generator alone; no discriminator).
 * --precision bf16 asks for tg_model_set_precision's bf16 path; where the CPU
 * lacks AVX512-BF16 (TG_INFO_PRECISION stays f32) the program exits with
 * status 3, which compare.py reports as the column not available. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <transgan.h>

#include "../util.h"

static void die(const char *msg, const char *arg)
{
    fprintf(stderr, "lib_bench: %s%s\n", msg, arg);
    exit(1);
}

static void check(tg_status st, const char *what)
{
    if (st != TG_OK) {
        fprintf(stderr, "lib_bench: %s: %s (%s)\n", what, tg_last_error(), tg_status_string(st));
        exit(1);
    }
}

static double vmhwm_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kib = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kib = strtod(line + 6, NULL);
    fclose(f);
    return kib / 1024.0;
}

/* The compute precision of the model: "f32" (the library's default) or
 * "bf16". Exit status 3 tells compare.py the precision is absent (an unknown
 * name, or bf16 on a CPU without AVX512-BF16), not that the run failed. */
static void set_precision(tg_model *m, const char *precision)
{
    int bf16 = !strcmp(precision, "bf16");
    if (!bf16 && strcmp(precision, "f32")) {
        fprintf(stderr, "lib_bench: precision %s is not available in this build\n", precision);
        exit(3);
    }
    check(tg_model_set_precision(m, bf16 ? TG_PRECISION_BF16 : TG_PRECISION_F32),
          "tg_model_set_precision");
    int64_t in_effect;
    check(tg_model_info(m, TG_INFO_PRECISION, &in_effect), "tg_model_info");
    if (bf16 && in_effect != TG_PRECISION_BF16) {
        fprintf(stderr, "lib_bench: bf16 is not available on this CPU (no AVX512-BF16)\n");
        exit(3);
    }
}

static double num(const char *s, double lo)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v >= lo))
        die("bad value ", s);
    return v;
}

int main(int argc, char **argv)
{
    const char *ckpt = NULL, *net = "generator", *load = "full", *precision = "f32";
    int batch = 16, runs = 1, threads = 2;
    double seconds = 2.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            ckpt = a;
            continue;
        }
        if (i + 1 >= argc)
            die(a, " needs a value");
        const char *v = argv[++i];
        if (!strcmp(a, "--net"))
            net = v;
        else if (!strcmp(a, "--batch"))
            batch = (int)num(v, 1);
        else if (!strcmp(a, "--seconds"))
            seconds = num(v, 0);
        else if (!strcmp(a, "--runs"))
            runs = (int)num(v, 1);
        else if (!strcmp(a, "--threads"))
            threads = (int)num(v, 1);
        else if (!strcmp(a, "--load"))
            load = v;
        else if (!strcmp(a, "--precision"))
            precision = v;
        else
            die("unknown option ", a);
    }
    int gen = !strcmp(net, "generator");
    int sampling_only = !strcmp(load, "sampling-only");
    if (!ckpt || (!gen && strcmp(net, "discriminator")) || (!sampling_only && strcmp(load, "full")))
        die("usage: lib_bench CKPT [--net generator|discriminator] [--batch B] [--seconds S] "
            "[--runs R] [--threads T] [--load full|sampling-only] [--precision P]", "");
    if (runs > 1000)
        die("too many --runs", "");

    double before = vmhwm_mib();
    tg_model *m = NULL;
    check(tg_model_load_ex(ckpt, sampling_only ? TG_LOAD_SAMPLING_ONLY : 0, &m), "tg_model_load_ex");
    set_precision(m, precision);
    check(tg_model_set_threads(m, threads), "tg_model_set_threads");
    int64_t S, C, L;
    check(tg_model_info(m, TG_INFO_IMAGE_SIZE, &S), "tg_model_info");
    check(tg_model_info(m, TG_INFO_CHANNELS, &C), "tg_model_info");
    check(tg_model_info(m, TG_INFO_LATENT_DIM, &L), "tg_model_info");
    size_t B = (size_t)batch, img = (size_t)(C * S * S);
    size_t in_len = gen ? B * (size_t)L : B * img, out_len = gen ? B * img : B;
    float *in = malloc(in_len * sizeof *in), *out = malloc(out_len * sizeof *out);
    if (!in || !out)
        die("out of memory", "");
    if (gen) {
        check(tg_latent_sample(m, 12345, B, in, in_len), "tg_latent_sample");
    } else {
        uint32_t s = 12345; /* uniform in [-1, 1): the values do not matter for speed */
        for (size_t i = 0; i < in_len; i++) {
            s = s * 1664525u + 1013904223u;
            in[i] = (float)(s / 2147483648.0 - 1.0);
        }
    }
#define CALL()                                                                                     \
    check(gen ? tg_generate(m, in, B, TG_GEN_RAW, out, out_len)                                    \
              : tg_discriminate(m, in, B, out, out_len),                                           \
          gen ? "tg_generate" : "tg_discriminate")
    CALL(); /* warm-up: the first call creates the primitives */
    double rates[1000], images = 0;
    struct timespec c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    for (int r = 0; r < runs; r++) {
        long calls = 0;
        double t0 = now(), el = 0;
        while (calls < 2 || el < seconds) {
            CALL();
            calls++;
            el = now() - t0;
        }
        rates[r] = (double)calls * (double)B / el;
        images += (double)calls * (double)B;
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    double cpu_ms = 1e3 * ((double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec));
    double sorted[1000];
    memcpy(sorted, rates, (size_t)runs * sizeof *rates);
    double med = sort_median(sorted, runs);
    printf("{\"engine\":\"libtransgan\",\"version\":\"%s\",\"model\":\"%s\",\"net\":\"%s\","
           "\"batch\":%d,\"options\":{\"threads\":%d,\"load\":\"%s\",\"precision\":\"%s\"},"
           "\"img_per_s\":{\"median\":%.2f,\"min\":%.2f,\"max\":%.2f},\"runs\":[",
           tg_version_string(), ckpt, net, batch, threads, load, precision, med, sorted[0], sorted[runs - 1]);
    for (int r = 0; r < runs; r++)
        printf("%s%.2f", r ? "," : "", rates[r]);
    printf("],\"cpu_ms_per_img\":%.3f,\"vmhwm_before_model_mib\":%.1f,\"peak_rss_mib\":%.1f}\n",
           cpu_ms / images, before, vmhwm_mib());
    tg_model_destroy(m);
    free(in);
    free(out);
    return 0;
}
