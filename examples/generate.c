/* generate.c - sample images from a trained model.
 *
 *   generate CKPT.safetensors [--n N] [--seed S] [--raw] [--png OUT.png] [--npy OUT.npy]
 *            [--grid COLS] [--class NAME|K|rows|cycle]
 *
 * --n      images to sample (default 64)
 * --seed   seed of the latent vectors (default 1; train's sample grids use seed 1
 *          too, so the first 64 images here match its last grid)
 * --raw    the generator's current weights instead of its EMA
 * --png    write a grid of the images (default samples.png when no --npy is given)
 * --npy    write all N images as float32 [N, C, S, S] in [-1, 1], e.g. for
 *          bench/fid/fmnist_fid.py
 * --grid   columns of the PNG grid (default: ceil(sqrt(N)))
 * --class  class-conditional models: every image of class NAME (one of the
 *          model's class_names) or number K; "rows": one class per grid row
 *          (row r shows class r modulo the class count; with --n and --grid
 *          unset, one row of 8 per class). Without it each latent picks its
 *          own class (tg_generate_labels with NULL labels). "cycle": image i
 *          of class i modulo the class count (for bench/fid's class report:
 *          its targets are numpy's arange(N) % K).
 *
 * A descriptor (.json) works too: its freshly initialised weights.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <transgan.h>

#include "cli.h"
#include "imageio.h"

#define CHUNK 500 /* images per tg_generate call */

static void usage(FILE *f)
{
    fprintf(f, "usage: generate CKPT.safetensors [--n N] [--seed S] [--raw] [--png OUT.png]\n"
               "                [--npy OUT.npy] [--grid COLS] [--class NAME|K|rows|cycle]\n");
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    cli_prog = "generate";
    const char *path = NULL, *png = NULL, *npy = NULL, *cls = NULL;
    uint64_t n = 64, seed = 1, cols = 0;
    int n_given = 0;
    uint32_t flags = TG_GEN_EMA;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--raw")) {
            flags = TG_GEN_RAW;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (path) {
                usage(stderr);
                die("unexpected argument %s", a);
            }
            path = a;
            continue;
        }
        if (i + 1 >= argc)
            die("%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--n"))
            n = parse_u64(a, v), n_given = 1;
        else if (!strcmp(a, "--class"))
            cls = v;
        else if (!strcmp(a, "--seed"))
            seed = parse_u64(a, v);
        else if (!strcmp(a, "--png"))
            png = v;
        else if (!strcmp(a, "--npy"))
            npy = v;
        else if (!strcmp(a, "--grid"))
            cols = parse_u64(a, v);
        else {
            usage(stderr);
            die("unknown option %s", a);
        }
    }
    if (!path) {
        usage(stderr);
        return 1;
    }
    if (n == 0 || n > 10000000)
        die("--n must be between 1 and 10000000");
    if (cols > 100000)
        die("--grid: too many columns");
    if (!png && !npy)
        png = "samples.png";

    tg_model *m = NULL;
    size_t len = strlen(path);
    if (len > 5 && !strcmp(path + len - 5, ".json"))
        check(tg_model_create_from_file(path, TG_SEED_FROM_DESCRIPTOR, &m), path);
    else
        check(tg_model_load(path, &m), path);
    int64_t S, C, L, has_ema, d_steps;
    check(tg_model_info(m, TG_INFO_IMAGE_SIZE, &S), "tg_model_info");
    check(tg_model_info(m, TG_INFO_CHANNELS, &C), "tg_model_info");
    check(tg_model_info(m, TG_INFO_LATENT_DIM, &L), "tg_model_info");
    check(tg_model_info(m, TG_INFO_HAS_EMA, &has_ema), "tg_model_info");
    check(tg_model_info(m, TG_INFO_D_STEPS, &d_steps), "tg_model_info");
    int64_t K;
    check(tg_model_info(m, TG_INFO_NUM_CLASSES, &K), "tg_model_info");
    int32_t fixed = -1; /* one class for all images */
    int rows = cls && !strcmp(cls, "rows"), cycle = cls && !strcmp(cls, "cycle");
    if (cls && K == 0)
        die("--class %s: the model is unconditional (num_classes = 0)", cls);
    if (cls && !rows && !cycle) {
        for (int64_t k = 0; k < K && fixed < 0; k++)
            if (tg_model_class_name(m, k) && !strcmp(tg_model_class_name(m, k), cls))
                fixed = (int32_t)k;
        char *end;
        long v = strtol(cls, &end, 10);
        if (fixed < 0 && *cls && !*end && v >= 0 && v < K)
            fixed = (int32_t)v;
        if (fixed < 0) {
            fprintf(stderr, "generate: --class %s is not a class of %s; its classes:", cls, path);
            for (int64_t k = 0; k < K; k++)
                fprintf(stderr, " %lld%s%s", (long long)k, tg_model_class_name(m, k) ? "=" : "",
                        tg_model_class_name(m, k) ? tg_model_class_name(m, k) : "");
            fputc('\n', stderr);
            return 1;
        }
    }
    if (rows && !n_given && !cols)
        n = 8 * (uint64_t)K, cols = 8;

    size_t per = (size_t)(C * S * S);
    float *z = malloc((size_t)n * (size_t)L * sizeof *z);
    float *img = malloc((size_t)n * per * sizeof *img);
    int32_t *lab = cls ? malloc((size_t)n * sizeof *lab) : NULL;
    if (!z || !img || (cls && !lab))
        die("out of memory for %llu images", (unsigned long long)n);
    size_t grid = cols ? (size_t)cols : 1;
    if (rows && !cols)
        while (grid * grid < n)
            grid++; /* io_write_png_grid's default: ceil(sqrt(n)) */
    for (size_t i = 0; lab && i < n; i++)
        lab[i] = rows    ? (int32_t)((i / grid) % (size_t)K)
                 : cycle ? (int32_t)(i % (size_t)K)
                         : fixed;
    /* all z at once, so image i does not depend on the chunking */
    check(tg_latent_sample(m, seed, (size_t)n, z, (size_t)n * (size_t)L), "tg_latent_sample");
    double t0 = now();
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? (size_t)n - i : CHUNK;
        check(tg_generate_labels(m, z + i * (size_t)L, lab ? lab + i : NULL, k, flags,
                                 img + i * per, k * per),
              "tg_generate_labels");
        if (n > CHUNK)
            fprintf(stderr, "\rgenerate: %zu/%llu", i + k, (unsigned long long)n);
    }
    if (n > CHUNK)
        fputc('\n', stderr);
    double dt = now() - t0;

    if (npy && io_write_npy(npy, img, (size_t)n, (int)C, (int)S))
        die("%s", io_last_error());
    if (png) {
        uint8_t *px = malloc((size_t)n * per);
        if (!px)
            die("out of memory");
        check(tg_images_to_pixels(img, (size_t)n, (int)C, (int)S, (tg_pixel_format)C, px,
                                  (size_t)n * per),
              "tg_images_to_pixels");
        if (io_write_png_grid(png, px, (size_t)n, (int)S, (int)C, (int)cols))
            die("%s", io_last_error());
        free(px);
    }
    printf("generate: %llu images %lldx%lldx%lld (%s, d_steps %lld, seed %llu) in %.2f s -> %s%s%s\n",
           (unsigned long long)n, (long long)S, (long long)S, (long long)C,
           flags == TG_GEN_RAW ? "raw" : has_ema ? "EMA" : "no EMA: raw", (long long)d_steps,
           (unsigned long long)seed, dt, png ? png : "", png && npy ? ", " : "", npy ? npy : "");
    free(z), free(img), free(lab);
    tg_model_destroy(m);
    return 0;
}
