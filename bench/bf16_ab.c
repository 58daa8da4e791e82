/* bench/bf16_ab.c - images/s of f32 against bf16 inference (tg_model_set_precision)
 * on one checkpoint, interleaved call by call so that a busy host slows both
 * alike; prints one JSON line per (net, batch).
 *
 *   bf16_ab CKPT.safetensors|DESC.json [--threads 2] [--seconds 3] [--rounds 5]
 *           [--gen-batches 1,16,64] [--disc-batches 64] [--raw]
 *
 * Two models of the same checkpoint (or descriptor: weights from its
 * training.seed), one set to bf16. Each round times
 * --seconds of calls alternating f32, bf16, f32, ... (one warm-up call each
 * first) and gives each precision's images/s; the JSON has every round's
 * pair and the medians of the rounds (and of their ratios). The precision
 * in effect is read back (TG_INFO_PRECISION): on a CPU without AVX512-BF16
 * both columns are f32 and the ratio is ~1. --raw samples the raw generator
 * (TG_GEN_RAW) instead of the EMA. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <transgan.h>

#include "util.h"

static void die(const char *msg, const char *arg)
{
    fprintf(stderr, "bf16_ab: %s%s\n", msg, arg);
    exit(1);
}

static void check(tg_status st, const char *what)
{
    if (st != TG_OK) {
        fprintf(stderr, "bf16_ab: %s: %s (%s)\n", what, tg_last_error(), tg_status_string(st));
        exit(1);
    }
}

/* the median of v[0..n), v left as it is */
static double median(const double *v, int n)
{
    double s[64];
    memcpy(s, v, (size_t)n * sizeof *v);
    return sort_median(s, n);
}

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 4096)
            die("bad batch list ", s);
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

typedef struct {
    tg_model *m[2];
    int gen;
    uint32_t flags;
    size_t B, in_len, out_len;
    float *in, *out;
} job;

static void call(job *j, int k)
{
    check(j->gen ? tg_generate(j->m[k], j->in, j->B, j->flags, j->out, j->out_len)
                 : tg_discriminate(j->m[k], j->in, j->B, j->out, j->out_len),
          j->gen ? "tg_generate" : "tg_discriminate");
}

static void run(job *j, const char *ckpt, int threads, double seconds, int rounds)
{
    double rate[2][64], ratio[64];
    call(j, 0), call(j, 1); /* warm-up: primitives, workspaces */
    for (int r = 0; r < rounds; r++) {
        double t[2] = {0, 0};
        long calls = 0;
        double t0 = now();
        while (calls < 2 || now() - t0 < seconds) {
            for (int k = 0; k < 2; k++) {
                double a = now();
                call(j, k);
                t[k] += now() - a;
            }
            calls++;
        }
        for (int k = 0; k < 2; k++)
            rate[k][r] = (double)calls * (double)j->B / t[k];
        ratio[r] = rate[1][r] / rate[0][r];
    }
    int64_t p[2];
    for (int k = 0; k < 2; k++)
        check(tg_model_info(j->m[k], TG_INFO_PRECISION, &p[k]), "tg_model_info");
    printf("{\"model\":\"%s\",\"net\":\"%s\",\"batch\":%zu,\"threads\":%d,"
           "\"precision\":[\"%s\",\"%s\"],\"img_per_s_median\":[%.2f,%.2f],"
           "\"ratio_median\":%.3f,\"rounds\":[",
           ckpt, j->gen ? "generator" : "discriminator", j->B, threads, p[0] ? "bf16" : "f32",
           p[1] ? "bf16" : "f32", median(rate[0], rounds), median(rate[1], rounds),
           median(ratio, rounds));
    for (int r = 0; r < rounds; r++)
        printf("%s[%.2f,%.2f]", r ? "," : "", rate[0][r], rate[1][r]);
    printf("]}\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *ckpt = NULL;
    int threads = 2, rounds = 5, gb[16] = {1, 16, 64}, ngb = 3, db[16] = {64}, ndb = 1, raw = 0;
    double seconds = 3.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            ckpt = a;
            continue;
        }
        if (!strcmp(a, "--raw")) {
            raw = 1;
            continue;
        }
        if (i + 1 >= argc)
            die(a, " needs a value");
        const char *v = argv[++i];
        if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(a, "--rounds"))
            rounds = atoi(v);
        else if (!strcmp(a, "--gen-batches"))
            ngb = strcmp(v, "none") ? parse_list(v, gb, 16) : 0;
        else if (!strcmp(a, "--disc-batches"))
            ndb = strcmp(v, "none") ? parse_list(v, db, 16) : 0;
        else
            die("unknown option ", a);
    }
    if (!ckpt || threads < 1 || rounds < 1 || rounds > 64 || !(seconds >= 0))
        die("usage: bf16_ab CKPT [--threads T] [--seconds S] [--rounds R] "
            "[--gen-batches 1,16,64|none] [--disc-batches 64|none] [--raw]", "");
    job j = {0};
    for (int k = 0; k < 2; k++) {
        size_t n = strlen(ckpt);
        if (n > 5 && !strcmp(ckpt + n - 5, ".json"))
            check(tg_model_create_from_file(ckpt, TG_SEED_FROM_DESCRIPTOR, &j.m[k]),
                  "tg_model_create_from_file");
        else
            check(tg_model_load(ckpt, &j.m[k]), "tg_model_load");
        check(tg_model_set_threads(j.m[k], threads), "tg_model_set_threads");
        check(tg_model_set_precision(j.m[k], k ? TG_PRECISION_BF16 : TG_PRECISION_F32),
              "tg_model_set_precision");
    }
    int64_t S, C, L;
    check(tg_model_info(j.m[0], TG_INFO_IMAGE_SIZE, &S), "tg_model_info");
    check(tg_model_info(j.m[0], TG_INFO_CHANNELS, &C), "tg_model_info");
    check(tg_model_info(j.m[0], TG_INFO_LATENT_DIM, &L), "tg_model_info");
    size_t img = (size_t)(C * S * S);
    j.flags = raw ? TG_GEN_RAW : TG_GEN_EMA;
    for (int pass = 0; pass < 2; pass++) {
        int n = pass ? ndb : ngb, *bs = pass ? db : gb;
        j.gen = !pass;
        for (int b = 0; b < n; b++) {
            j.B = (size_t)bs[b];
            j.in_len = j.gen ? j.B * (size_t)L : j.B * img;
            j.out_len = j.gen ? j.B * img : j.B;
            j.in = malloc(j.in_len * sizeof *j.in);
            j.out = malloc(j.out_len * sizeof *j.out);
            if (!j.in || !j.out)
                die("out of memory", "");
            if (j.gen) {
                check(tg_latent_sample(j.m[0], 12345, j.B, j.in, j.in_len), "tg_latent_sample");
            } else { /* the generator's images: realistic inputs */
                float *z = malloc(j.B * (size_t)L * sizeof *z);
                if (!z)
                    die("out of memory", "");
                check(tg_latent_sample(j.m[0], 12345, j.B, z, j.B * (size_t)L), "tg_latent_sample");
                check(tg_generate(j.m[0], z, j.B, j.flags, j.in, j.in_len), "tg_generate");
                free(z);
            }
            run(&j, ckpt, threads, seconds, rounds);
            free(j.in);
            free(j.out);
        }
    }
    tg_model_destroy(j.m[0]);
    tg_model_destroy(j.m[1]);
    return 0;
}
