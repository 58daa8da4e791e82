#include "train_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "imageio.h"

double tc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int tc_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

char *tc_join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *s = malloc(len);
    if (!s)
        die("out of memory");
    snprintf(s, len, "%s/%s", dir, name);
    return s;
}

char *tc_dir_of(const char *path)
{
    char *d = strdup(path);
    if (!d)
        die("out of memory");
    char *slash = strrchr(d, '/');
    if (!slash)
        strcpy(d, ".");
    else if (slash == d)
        d[1] = '\0';
    else
        *slash = '\0';
    return d;
}

/* ------------------------------------------------------------ data order */

/* SplitMix64: the data order's own RNG, independent of the library's. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

size_t tc_order_at(tc_order *o, uint64_t pos)
{
    uint64_t e = pos / o->n;
    if (!o->perm || o->epoch != e) {
        if (!o->perm && !(o->perm = malloc(o->n * sizeof *o->perm)))
            die("out of memory");
        uint64_t s = o->seed ^ (e * 0xD1B54A32D192ED03ull);
        splitmix64(&s);
        for (size_t i = 0; i < o->n; i++)
            o->perm[i] = i;
        for (size_t i = o->n - 1; i > 0; i--) { /* Fisher-Yates, unbiased */
            uint64_t bound = (uint64_t)i + 1, lim = UINT64_MAX - UINT64_MAX % bound, r;
            do
                r = splitmix64(&s);
            while (r >= lim);
            size_t j = (size_t)(r % bound), t = o->perm[i];
            o->perm[i] = o->perm[j], o->perm[j] = t;
        }
        o->epoch = e;
    }
    return o->perm[pos % o->n];
}

/* ------------------------------------------------------------ data, outputs */

void tc_load_images(const char *src, int size, int channels, size_t limit, float **images,
                    size_t *n)
{
    struct stat sb;
    int rc = stat(src, &sb) == 0 && S_ISDIR(sb.st_mode)
                 ? io_load_png_dir(src, size, channels, limit, images, n)
                 : io_load_idx(src, size, channels, limit, images, n);
    if (rc)
        die("%s", io_last_error());
}

char *tc_write_samples(tg_model *m, const char *out, uint64_t d_steps, const float *z,
                       const int32_t *ylab, float *img, uint8_t *px, int size, int channels)
{
    size_t n = TC_SAMPLE_N, per = (size_t)channels * size * size;
    check(tg_generate_labels(m, z, ylab, n, TG_GEN_EMA, img, n * per), "tg_generate_labels");
    check(tg_images_to_pixels(img, n, channels, size, (tg_pixel_format)channels, px, n * per),
          "tg_images_to_pixels");
    char name[64];
    snprintf(name, sizeof name, "samples_%llu.png", (unsigned long long)d_steps);
    char *png = tc_join(out, name);
    if (io_write_png_grid(png, px, n, size, channels, 8))
        die("%s", io_last_error());
    return png;
}

const char TC_LOG_HEADER[] = "d_steps\tg_steps\tseconds\td_loss\tgp\td_real\td_fake\tg_loss\t"
                             "sr_loss\td_grad_norm\tg_grad_norm\n";

void tc_log_append(const char *path, int header, uint64_t d_steps, uint64_t g_steps,
                   double seconds, const double *v)
{
    FILE *f = fopen(path, "a");
    if (!f)
        die("cannot append to '%s': %s", path, strerror(errno));
    if (header)
        fputs(TC_LOG_HEADER, f);
    if (v)
        fprintf(f, "%llu\t%llu\t%.1f\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\n",
                (unsigned long long)d_steps, (unsigned long long)g_steps, seconds, v[0], v[1],
                v[2], v[3], v[4], v[5], v[6], v[7]);
    if (fclose(f) != 0)
        die("cannot write '%s': %s", path, strerror(errno));
}
