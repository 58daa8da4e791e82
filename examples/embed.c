/* The shortest program that uses libtransgan: create (or load) a model and
 * draw one sprite into an RGBA buffer, then show it in the terminal.
 *
 *   embed [DESCRIPTOR.json | CHECKPOINT.safetensors] [SEED]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <transgan.h>

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "models/fmnist-small.json";
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    tg_model *m = NULL;
    size_t len = strlen(path);
    tg_status st = len > 5 && strcmp(path + len - 5, ".json") == 0
                       ? tg_model_create_from_file(path, TG_SEED_FROM_DESCRIPTOR, &m)
                       : tg_model_load(path, &m);
    if (st != TG_OK) {
        fprintf(stderr, "embed: %s: %s\n", tg_status_string(st), tg_last_error());
        return 1;
    }
    int64_t S, L;
    tg_model_info(m, TG_INFO_IMAGE_SIZE, &S);
    tg_model_info(m, TG_INFO_LATENT_DIM, &L);
    float *z = malloc((size_t)L * sizeof *z);
    uint8_t *rgba = malloc((size_t)(S * S * 4));
    if (!z || !rgba)
        return 1;
    st = tg_latent_sample(m, seed, 1, z, (size_t)L);
    if (st == TG_OK)
        st = tg_generate_pixels(m, z, 1, TG_GEN_EMA, TG_PIXEL_RGBA8, rgba, (size_t)(S * S * 4));
    if (st != TG_OK) {
        fprintf(stderr, "embed: %s\n", tg_last_error());
        return 1;
    }
    /* two pixels per character cell row pair would need colour; plain ASCII
     * ramp of the luma is enough to see the sprite */
    static const char ramp[] = " .:-=+*#%@";
    for (int64_t y = 0; y < S; y++) {
        for (int64_t x = 0; x < S; x++) {
            const uint8_t *p = rgba + (y * S + x) * 4;
            int l = (299 * p[0] + 587 * p[1] + 114 * p[2]) / 1000;
            putchar(ramp[l * 9 / 255]);
            putchar(ramp[l * 9 / 255]);
        }
        putchar('\n');
    }
    printf("libtransgan %s: a %lldx%lld sprite from %s (seed %llu)\n", tg_version_string(),
           (long long)S, (long long)S, path, (unsigned long long)seed);
    free(z);
    free(rgba);
    tg_model_destroy(m);
    return 0;
}
