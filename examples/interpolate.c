/* interpolate.c - a walk through latent space, written as numbered PNG frames
 * (for animation tools: GIMP "open as layers", ffmpeg, Aseprite, ...).
 *
 *   interpolate CKPT.safetensors [--frames N] [--seed A] [--to B] [--keys K]
 *               [--loop 1] [--out DIR] [--raw] [--scale S]
 *
 * --frames  frames in total (default 60)
 * --seed    seed of the first key latent (default 1); key i is drawn from seed
 *           A + i, so a key frame is the image `generate --n 1 --seed A+i` shows
 * --to      walk between exactly two keys, seeds A and B (instead of --keys)
 * --keys    number of key latents, seeds A, A+1, ..., A+K-1 (default 2)
 * --loop    1: walk back from the last key to the first, so the frames loop
 *           seamlessly (the first key is not repeated at the end)
 * --out     output folder (default frames): frame_0000.png, frame_0001.png, ...
 * --raw     the generator's current weights instead of its EMA
 * --scale   integer upscale by nearest neighbour (default 4; 1 = model size)
 *
 * Between consecutive keys the latents follow spherical linear interpolation
 * (slerp), which keeps them at the norm the generator was trained on; nearly
 * parallel keys fall back to linear interpolation. Without --loop the first
 * frame is the first key and the last frame the last key. The PNGs are in the
 * model's channels: grey, RGB or RGBA. A descriptor (.json) works too.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <transgan.h>

#include "cli.h"
#include "imageio.h"

#define CHUNK 64 /* frames per tg_generate_pixels call */
#define MAX_FRAMES 1000000
#define MAX_KEYS 10000

static void usage(FILE *f)
{
    fprintf(f, "usage: interpolate CKPT.safetensors [--frames N] [--seed A] [--to B] [--keys K]\n"
               "                   [--loop 1] [--out DIR] [--raw] [--scale S]\n");
}

/* out = slerp(a, b; u) for u in [0, 1]; lerp when a and b are nearly parallel
 * (or one is zero), where slerp's 1/sin(theta) would blow up */
static void slerp(const float *a, const float *b, double u, float *out, size_t L)
{
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < L; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    double wa = 1.0 - u, wb = u;
    if (na > 0 && nb > 0) {
        double c = dot / sqrt(na * nb);
        if (fabs(c) < 0.9995) {
            double theta = acos(c), s = sin(theta);
            wa = sin((1.0 - u) * theta) / s;
            wb = sin(u * theta) / s;
        }
    }
    for (size_t i = 0; i < L; i++)
        out[i] = (float)(wa * a[i] + wb * b[i]);
}

int main(int argc, char **argv)
{
    cli_prog = "interpolate";
    const char *path = NULL, *out = "frames";
    uint64_t frames = 60, seed = 1, to = 0, keys = 2, loop = 0, scale = 4;
    int have_to = 0, have_keys = 0;
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
        if (!strcmp(a, "--frames"))
            frames = parse_u64(a, v);
        else if (!strcmp(a, "--seed"))
            seed = parse_u64(a, v);
        else if (!strcmp(a, "--to"))
            to = parse_u64(a, v), have_to = 1;
        else if (!strcmp(a, "--keys"))
            keys = parse_u64(a, v), have_keys = 1;
        else if (!strcmp(a, "--loop"))
            loop = parse_u64(a, v);
        else if (!strcmp(a, "--out"))
            out = v;
        else if (!strcmp(a, "--scale"))
            scale = parse_u64(a, v);
        else {
            usage(stderr);
            die("unknown option %s", a);
        }
    }
    if (!path) {
        usage(stderr);
        return 1;
    }
    if (frames == 0 || frames > MAX_FRAMES)
        die("--frames must be between 1 and %d", MAX_FRAMES);
    if (have_to && have_keys && keys != 2)
        die("--to B walks between two keys (seeds A and B); it does not go with --keys %llu",
            (unsigned long long)keys);
    if (have_to)
        keys = 2;
    if (keys < 2 || keys > MAX_KEYS)
        die("--keys must be between 2 and %d", MAX_KEYS);
    if (!have_to && seed > UINT64_MAX - keys)
        die("--seed %llu + --keys %llu overflows", (unsigned long long)seed,
            (unsigned long long)keys);
    if (loop > 1)
        die("--loop must be 0 or 1");
    if (scale == 0 || scale > 256)
        die("--scale must be between 1 and 256");

    tg_model *m = NULL;
    size_t len = strlen(path);
    if (len > 5 && !strcmp(path + len - 5, ".json"))
        check(tg_model_create_from_file(path, TG_SEED_FROM_DESCRIPTOR, &m), path);
    else
        check(tg_model_load(path, &m), path);
    int64_t S, C, L, has_ema;
    check(tg_model_info(m, TG_INFO_IMAGE_SIZE, &S), "tg_model_info");
    check(tg_model_info(m, TG_INFO_CHANNELS, &C), "tg_model_info");
    check(tg_model_info(m, TG_INFO_LATENT_DIM, &L), "tg_model_info");
    check(tg_model_info(m, TG_INFO_HAS_EMA, &has_ema), "tg_model_info");
    if ((uint64_t)S * scale > 65536)
        die("--scale %llu makes %lldx%lld images too large", (unsigned long long)scale,
            (long long)S, (long long)S);

    /* the key latents: key i from its own seed */
    size_t K = (size_t)keys, Lz = (size_t)L;
    float *key = malloc(K * Lz * sizeof *key);
    float *z = malloc((size_t)CHUNK * Lz * sizeof *z);
    size_t per = (size_t)(S * S * C); /* bytes of one frame: GRAY8, RGB8, RGBA8 = C */
    uint8_t *px = malloc((size_t)CHUNK * per);
    if (!key || !z || !px)
        die("out of memory");
    for (size_t k = 0; k < K; k++)
        check(tg_latent_sample(m, have_to && k == 1 ? to : seed + k, 1, key + k * Lz, Lz),
              "tg_latent_sample");

    mkdirs(out);
    size_t plen = strlen(out) + 64;
    char *name = malloc(plen);
    if (!name)
        die("out of memory");
    int digits = frames > 100000 ? 6 : frames > 10000 ? 5 : 4; /* frames <= MAX_FRAMES */

    /* frame f sits at t in [0, segments] along the keys: the last frame on
     * the last key, or (--loop) one step before the first key again */
    size_t segments = loop ? K : K - 1;
    for (uint64_t f0 = 0; f0 < frames; f0 += CHUNK) {
        size_t n = frames - f0 < CHUNK ? (size_t)(frames - f0) : CHUNK;
        for (size_t j = 0; j < n; j++) {
            uint64_t f = f0 + j;
            double t = loop ? (double)f * segments / frames
                       : frames > 1 ? (double)f * segments / (frames - 1) : 0.0;
            size_t s = (size_t)t;
            if (s >= segments)
                s = segments - 1;
            double u = t - (double)s;
            if (u > 1.0)
                u = 1.0;
            slerp(key + s * Lz, key + ((s + 1) % K) * Lz, u, z + j * Lz, Lz);
        }
        check(tg_generate_pixels(m, z, n, flags, (tg_pixel_format)C, px, n * per),
              "tg_generate_pixels");
        for (size_t j = 0; j < n; j++) {
            snprintf(name, plen, "%s/frame_%0*llu.png", out, digits,
                     (unsigned long long)(f0 + j));
            if (io_write_png_scaled(name, px + j * per, (int)S, (int)C, (int)scale))
                die("%s", io_last_error());
        }
    }

    char keys_text[64];
    if (have_to)
        snprintf(keys_text, sizeof keys_text, "seeds %llu, %llu", (unsigned long long)seed,
                 (unsigned long long)to);
    else
        snprintf(keys_text, sizeof keys_text, "seeds %llu..%llu", (unsigned long long)seed,
                 (unsigned long long)(seed + keys - 1));
    printf("interpolate: %llu frames of %lldx%lld %s (%lldx%lld x%llu, %s), slerp through %zu "
           "keys (%s)%s -> %s/frame_%0*d.png .. frame_%0*llu.png\n",
           (unsigned long long)frames, (long long)(S * (int64_t)scale),
           (long long)(S * (int64_t)scale), C == 1 ? "grey" : C == 3 ? "RGB" : "RGBA",
           (long long)S, (long long)S, (unsigned long long)scale,
           flags == TG_GEN_RAW ? "raw" : has_ema ? "EMA" : "no EMA: raw", K, keys_text,
           loop ? " and back" : "", out, digits, 0, digits, (unsigned long long)(frames - 1));
    printf("interpolate: e.g. ffmpeg -framerate 24 -i %s/frame_%%0%dd.png walk.gif\n", out,
           digits);
    free(key), free(z), free(px), free(name);
    tg_model_destroy(m);
    return 0;
}
