/* bench/bf16_train.c - training calls/s of f32 against bf16 training
 * (training.precision) on one descriptor, interleaved so that a busy host
 * slows every variant alike; prints one JSON line.
 *
 *   bf16_train DESC.json [--threads 2] [--steps 3] [--rounds 5]
 *              [--penalty-masks 2] [--seed 1]
 *
 * The variants: the descriptor with training.precision "f32", then "bf16"
 * once per mask in --penalty-masks (a comma list of 0..3: which of the
 * gradient penalty's passes run in bf16, bit 1 the first-order, bit 2 the
 * second-order one; the library's default is TG_PENALTY_BF16_DEFAULT,
 * lib/train/train.h). Models of the same seed, the same random real batch.
 * After one warm-up call each, every round times --steps tg_train_step
 * calls of each variant in turn (the order rotating from round to round);
 * the JSON has each round's calls/s per variant, the medians, and the
 * median of the per-round ratios to f32. The training precision in effect
 * is read back (TG_INFO_TRAIN_PRECISION): on a CPU without AVX512-BF16 every
 * variant is f32. Links the static library: the penalty mask is an
 * internal setting. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <transgan.h>

#include "train/train.h"
#include "util.h"

#define MAXV 5

static void die(const char *msg, const char *arg)
{
    fprintf(stderr, "bf16_train: %s%s\n", msg, arg);
    exit(1);
}

static void check(tg_status st, const char *what)
{
    if (st != TG_OK) {
        fprintf(stderr, "bf16_train: %s: %s (%s)\n", what, tg_last_error(), tg_status_string(st));
        exit(1);
    }
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open ", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (!s || fread(s, 1, (size_t)n, f) != (size_t)n)
        die("cannot read ", path);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* the descriptor with "precision": prec first in its training section (a
 * later key of the file's own would win: the file must not have one) */
static char *with_precision(const char *json, const char *prec)
{
    if (strstr(json, "\"precision\""))
        die("the descriptor sets training.precision itself", "");
    const char *t = strstr(json, "\"training\"");
    const char *brace = t ? strchr(t, '{') : NULL;
    if (!brace)
        die("the descriptor needs a training section", "");
    size_t head = (size_t)(brace + 1 - json);
    char ins[64];
    snprintf(ins, sizeof ins, "\"precision\": \"%s\", ", prec);
    char *out = malloc(strlen(json) + sizeof ins);
    if (!out)
        die("out of memory", "");
    memcpy(out, json, head);
    strcpy(out + head, ins);
    strcat(out, json + head);
    return out;
}

static double median(const double *v, int n)
{
    double s[64];
    memcpy(s, v, (size_t)n * sizeof *v);
    return sort_median(s, n);
}

int main(int argc, char **argv)
{
    const char *desc = NULL, *masks = "2";
    int threads = 2, steps = 3, rounds = 5;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            desc = a;
            continue;
        }
        if (i + 1 >= argc)
            die(a, " needs a value");
        const char *v = argv[++i];
        if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--steps"))
            steps = atoi(v);
        else if (!strcmp(a, "--rounds"))
            rounds = atoi(v);
        else if (!strcmp(a, "--penalty-masks"))
            masks = v;
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 10);
        else
            die("unknown option ", a);
    }
    if (!desc || threads < 1 || steps < 1 || rounds < 1 || rounds > 64)
        die("usage: bf16_train DESC.json [--threads T] [--steps N] [--rounds R] "
            "[--penalty-masks 0,2,3] [--seed S]", "");
    int mask[MAXV], nv = 1; /* variant 0: f32 */
    mask[0] = -1;
    for (const char *s = masks; *s && nv < MAXV;) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 3)
            die("bad --penalty-masks ", masks);
        mask[nv++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
    char *text = slurp(desc);
    tg_model *m[MAXV];
    for (int k = 0; k < nv; k++) {
        char *j = with_precision(text, k ? "bf16" : "f32");
        check(tg_model_create(j, seed, &m[k]), "tg_model_create");
        free(j);
        check(tg_model_set_threads(m[k], threads), "tg_model_set_threads");
    }
    int64_t S, C, B;
    check(tg_model_info(m[0], TG_INFO_IMAGE_SIZE, &S), "tg_model_info");
    check(tg_model_info(m[0], TG_INFO_CHANNELS, &C), "tg_model_info");
    check(tg_model_info(m[0], TG_INFO_D_BATCH, &B), "tg_model_info");
    size_t n = (size_t)(B * C * S * S);
    float *real = malloc(n * sizeof *real);
    if (!real)
        die("out of memory", "");
    srand(7);
    for (size_t i = 0; i < n; i++)
        real[i] = (float)rand() / (float)RAND_MAX * 2.0f - 1.0f;
    for (int k = 0; k < nv; k++) { /* warm-up: primitives, buffers, copies */
        tg_penalty_bf16 = mask[k] < 0 ? TG_PENALTY_BF16_DEFAULT : mask[k];
        check(tg_train_step(m[k], real, (size_t)B, NULL, NULL, NULL, NULL), "tg_train_step");
    }
    double rate[MAXV][64], ratio[MAXV][64];
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < nv; i++) {
            int k = (i + r) % nv; /* rotate who goes first */
            tg_penalty_bf16 = mask[k] < 0 ? TG_PENALTY_BF16_DEFAULT : mask[k];
            double t0 = now();
            for (int s = 0; s < steps; s++)
                check(tg_train_step(m[k], real, (size_t)B, NULL, NULL, NULL, NULL),
                      "tg_train_step");
            rate[k][r] = steps / (now() - t0);
        }
        for (int k = 0; k < nv; k++)
            ratio[k][r] = rate[k][r] / rate[0][r];
    }
    printf("{\"descriptor\":\"%s\",\"threads\":%d,\"steps_per_round\":%d,\"variants\":[", desc,
           threads, steps);
    for (int k = 0; k < nv; k++) {
        int64_t p;
        check(tg_model_info(m[k], TG_INFO_TRAIN_PRECISION, &p), "tg_model_info");
        printf("%s{\"precision\":\"%s\",", k ? "," : "", p ? "bf16" : "f32");
        if (k)
            printf("\"penalty_mask\":%d,", mask[k]);
        printf("\"calls_per_s_median\":%.4f,\"ratio_to_f32_median\":%.3f,\"rounds\":[",
               median(rate[k], rounds), median(ratio[k], rounds));
        for (int r = 0; r < rounds; r++)
            printf("%s%.4f", r ? "," : "", rate[k][r]);
        printf("]}");
    }
    printf("]}\n");
    for (int k = 0; k < nv; k++)
        tg_model_destroy(m[k]);
    free(real);
    free(text);
    return 0;
}
