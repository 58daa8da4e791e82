/* bench/load_peak.c - peak resident memory of loading a checkpoint and
 * sampling one image, the way a program that only samples uses the library.
 *
 *   load_peak --make DESC.json OUT.safetensors   create a model (seed 1) and save it
 *   load_peak CKPT [--sampling-only] [--memory] [--batch N]
 *
 * The second form loads CKPT (tg_model_load_ex, or tg_model_load_memory of
 * the file's bytes read by this program with --memory), generates N images
 * (default 1) from the EMA generator and prints one JSON line: the peak
 * resident set (getrusage ru_maxrss, which includes oneDNN and libgomp as a
 * user pays them) after the load and after sampling. Run each measurement in
 * its own process: the peak of a process never goes down. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <transgan.h>

static long peak_kib(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss; /* KiB on Linux */
}

static int fail(const char *what)
{
    fprintf(stderr, "load_peak: %s: %s\n", what, tg_last_error());
    return 1;
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0) {
        if (f)
            fclose(f);
        return NULL;
    }
    long len = ftell(f);
    rewind(f);
    unsigned char *b = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

int main(int argc, char **argv)
{
    tg_model *m = NULL;
    if (argc == 4 && strcmp(argv[1], "--make") == 0) {
        if (tg_model_create_from_file(argv[2], 1, &m) != TG_OK)
            return fail(argv[2]);
        if (tg_model_save(m, argv[3], 0) != TG_OK)
            return fail(argv[3]);
        tg_model_destroy(m);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: load_peak --make DESC.json OUT.safetensors\n"
                        "       load_peak CKPT [--sampling-only] [--memory] [--batch N]\n");
        return 2;
    }
    const char *ckpt = argv[1];
    uint32_t flags = 0;
    int memory = 0;
    size_t batch = 1;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--sampling-only") == 0)
            flags |= TG_LOAD_SAMPLING_ONLY;
        else if (strcmp(argv[i], "--memory") == 0)
            memory = 1;
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = (size_t)strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "load_peak: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    long start = peak_kib();
    unsigned char *bytes = NULL;
    size_t n = 0;
    if (memory) {
        if (!(bytes = read_file(ckpt, &n))) {
            fprintf(stderr, "load_peak: cannot read %s\n", ckpt);
            return 1;
        }
        if (tg_model_load_memory(bytes, n, flags, &m) != TG_OK)
            return fail(ckpt);
        free(bytes); /* a program may drop its copy once the model is made */
    } else if (tg_model_load_ex(ckpt, flags, &m) != TG_OK) {
        return fail(ckpt);
    }
    long loaded = peak_kib();
    int64_t L, C, S;
    tg_model_info(m, TG_INFO_LATENT_DIM, &L);
    tg_model_info(m, TG_INFO_CHANNELS, &C);
    tg_model_info(m, TG_INFO_IMAGE_SIZE, &S);
    size_t nz = batch * (size_t)L, nx = batch * (size_t)(C * S * S);
    float *z = malloc(nz * sizeof *z), *img = malloc(nx * sizeof *img);
    if (!z || !img)
        return 1;
    if (tg_latent_sample(m, 7, batch, z, nz) != TG_OK ||
        tg_generate(m, z, batch, TG_GEN_EMA, img, nx) != TG_OK)
        return fail("generate");
    long sampled = peak_kib();
    printf("{\"checkpoint\": \"%s\", \"sampling_only\": %d, \"memory\": %d, \"batch\": %zu, "
           "\"peak_kib_start\": %ld, \"peak_kib_loaded\": %ld, \"peak_kib_sampled\": %ld, "
           "\"peak_mib_sampled\": %.1f}\n",
           ckpt, (flags & TG_LOAD_SAMPLING_ONLY) != 0, memory, batch, start, loaded, sampled,
           sampled / 1024.0);
    free(z), free(img);
    tg_model_destroy(m);
    return 0;
}
