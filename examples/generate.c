/* generate.c - sample images from a trained model.
 *
 *   generate CKPT.safetensors [--n N] [--seed S] [--raw] [--png OUT.png] [--npy OUT.npy]
 *            [--grid COLS]
 *
 * --n      images to sample (default 64)
 * --seed   seed of the latent vectors (default 1; train's sample grids use seed 1
 *          too, so the first 64 images here match its last grid)
 * --raw    the generator's current weights instead of its EMA
 * --png    write a grid of the images (default samples.png when no --npy is given)
 * --npy    write all N images as float32 [N, C, S, S] in [-1, 1], e.g. for
 *          bench/fid/fmnist_fid.py
 * --grid   columns of the PNG grid (default: ceil(sqrt(N)))
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
               "                [--npy OUT.npy] [--grid COLS]\n");
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
    const char *path = NULL, *png = NULL, *npy = NULL;
    uint64_t n = 64, seed = 1, cols = 0;
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
            n = parse_u64(a, v);
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

    size_t per = (size_t)(C * S * S);
    float *z = malloc((size_t)n * (size_t)L * sizeof *z);
    float *img = malloc((size_t)n * per * sizeof *img);
    if (!z || !img)
        die("out of memory for %llu images", (unsigned long long)n);
    /* all z at once, so image i does not depend on the chunking */
    check(tg_latent_sample(m, seed, (size_t)n, z, (size_t)n * (size_t)L), "tg_latent_sample");
    double t0 = now();
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? (size_t)n - i : CHUNK;
        check(tg_generate(m, z + i * (size_t)L, k, flags, img + i * per, k * per), "tg_generate");
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
    free(z), free(img);
    tg_model_destroy(m);
    return 0;
}
