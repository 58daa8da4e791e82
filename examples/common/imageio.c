/* imageio.c - see imageio.h. The only file that compiles stb_image and
 * stb_image_write (Debian libstb-dev); their warnings are silenced here only. */
#include "imageio.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#if defined(__GNUC__)
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wall"
#  pragma GCC diagnostic ignored "-Wextra"
#  pragma GCC diagnostic ignored "-Wsign-compare"
#  pragma GCC diagnostic ignored "-Wunused-parameter"
#  pragma GCC diagnostic ignored "-Wunused-function"
#  pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#  pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#  pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#  pragma GCC diagnostic ignored "-Wtype-limits"
#endif
#define STBI_ONLY_PNG
#define STBI_NO_HDR
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#  pragma GCC diagnostic pop
#endif

/* ------------------------------------------------------------------ errors */

static char io_err[1024];

const char *io_last_error(void)
{
    return io_err;
}

static int io_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(io_err, sizeof io_err, fmt, ap);
    va_end(ap);
    return -1;
}

static int bad_shape(int size, int channels)
{
    if (size <= 0 || size > 65536)
        return io_fail("image size %d is not usable", size);
    if (channels != 1 && channels != 3 && channels != 4)
        return io_fail("channels must be 1, 3 or 4 (got %d)", channels);
    return 0;
}

/* ------------------------------------------------------------ idx (MNIST) */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* read exactly len bytes; 0 on success */
static int gz_read_all(gzFile f, void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        unsigned chunk = len > (1u << 30) ? 1u << 30 : (unsigned)len;
        int got = gzread(f, p, chunk);
        if (got <= 0)
            return -1;
        p += got, len -= (size_t)got;
    }
    return 0;
}

/* gzopen an idx file (gzip or plain), or NULL after io_fail with why (a
 * missing Fashion-MNIST file names its Debian package) */
static gzFile open_idx(const char *path)
{
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f && errno == ENOENT && !strncmp(path, IO_FMNIST_DIR, strlen(IO_FMNIST_DIR)))
        io_fail("cannot open '%s': %s; Fashion-MNIST comes with the Debian package %s "
                "(apt-get install %s)", path, strerror(errno), IO_FMNIST_PACKAGE,
                IO_FMNIST_PACKAGE);
    else if (!f)
        io_fail("cannot open '%s': %s", path, errno ? strerror(errno) : "out of memory");
    return f;
}

int io_load_idx(const char *path, int size, int channels, size_t limit, float **out, size_t *n)
{
    *out = NULL, *n = 0;
    if (bad_shape(size, channels))
        return -1;
    gzFile f = open_idx(path);
    if (!f)
        return -1;
    gzbuffer(f, 1 << 17);
    unsigned char hdr[16];
    if (gz_read_all(f, hdr, sizeof hdr) || hdr[0] || hdr[1] || hdr[2] != 8 || hdr[3] != 3) {
        gzclose(f);
        return io_fail("'%s' is not an idx3 file of unsigned bytes (images); the data must "
                       "be fmnist, an idx3 file such as Fashion-MNIST's or a folder of PNG "
                       "files", path);
    }
    size_t count = be32(hdr + 4), rows = be32(hdr + 8), cols = be32(hdr + 12);
    if (rows == 0 || cols == 0 || rows > (size_t)size || cols > (size_t)size) {
        gzclose(f);
        return io_fail("'%s' holds %zux%zu images, which do not fit the model's %dx%d", path,
                       rows, cols, size, size);
    }
    if (rows != (size_t)size || cols != (size_t)size)
        fprintf(stderr, "imageio: '%s' holds %zux%zu images; each is centred on a black %dx%d "
                "frame, the model's image size\n", path, rows, cols, size, size);
    if (limit && limit < count)
        count = limit;
    size_t plane = (size_t)size * size, per = plane * channels;
    float *img = malloc(count * per * sizeof *img);
    unsigned char *buf = malloc(rows * cols);
    if (!img || !buf) {
        free(img), free(buf), gzclose(f);
        return io_fail("out of memory for %zu images", count);
    }
    size_t top = ((size_t)size - rows) / 2, left = ((size_t)size - cols) / 2;
    for (size_t i = 0; i < count; i++) {
        if (gz_read_all(f, buf, rows * cols)) {
            free(img), free(buf), gzclose(f);
            return io_fail("'%s' is truncated at image %zu", path, i);
        }
        float *x = img + i * per;
        for (size_t k = 0; k < plane; k++)
            x[k] = -1.0f; /* the padding is value 0, black */
        for (size_t y = 0; y < rows; y++)
            for (size_t c = 0; c < cols; c++)
                x[(top + y) * size + left + c] = buf[y * cols + c] / 127.5f - 1.0f;
        for (int c = 1; c < channels; c++)
            for (size_t k = 0; k < plane; k++)
                x[c * plane + k] = c == 3 ? 1.0f : x[k];
    }
    free(buf);
    gzclose(f);
    *out = img, *n = count;
    return 0;
}

int io_load_idx_labels(const char *path, size_t limit, int32_t **out, size_t *n)
{
    *out = NULL, *n = 0;
    gzFile f = open_idx(path);
    if (!f)
        return -1;
    unsigned char hdr[8];
    if (gz_read_all(f, hdr, sizeof hdr) || hdr[0] || hdr[1] || hdr[2] != 8 || hdr[3] != 1) {
        gzclose(f);
        return io_fail("'%s' is not an idx1 file of unsigned bytes (labels), such as "
                       "Fashion-MNIST's train-labels-idx1-ubyte.gz", path);
    }
    size_t count = be32(hdr + 4);
    if (limit && limit < count)
        count = limit;
    unsigned char *buf = malloc(count ? count : 1);
    int32_t *y = malloc((count ? count : 1) * sizeof *y);
    if (!buf || !y) {
        free(buf), free(y), gzclose(f);
        return io_fail("out of memory for %zu labels", count);
    }
    if (gz_read_all(f, buf, count)) {
        free(buf), free(y), gzclose(f);
        return io_fail("'%s' is truncated", path);
    }
    for (size_t i = 0; i < count; i++)
        y[i] = buf[i];
    free(buf);
    gzclose(f);
    *out = y, *n = count;
    return 0;
}

/* ---------------------------------------------------------- PNG folders */

/* Why stb_image could not decode a file, in words (its own reasons are terse
 * codes such as "bad png sig"). */
static const char *undecodable(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return "it is a folder";
    const char *why = stbi_failure_reason();
    if (!why)
        return "it could not be decoded";
    if (!strcmp(why, "can't fopen")) {
        FILE *f = fopen(path, "rb");
        if (!f)
            return strerror(errno);
        fclose(f);
        return "it cannot be read";
    }
    if (!strcmp(why, "bad png sig") || !strcmp(why, "unknown image type"))
        return "it is not a PNG image (its name ends in .png but its contents do not start "
               "like one)";
    if (!strcmp(why, "outofmem"))
        return "out of memory decoding it";
    if (!strcmp(why, "too large"))
        return "the image is too large";
    return "the PNG file is damaged or uses a feature the decoder does not support";
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_png(const char *name)
{
    size_t len = strlen(name);
    return len > 4 && strcasecmp(name + len - 4, ".png") == 0;
}

/* One pass of area resampling along one axis: `lines` lines of n_in pixels of
 * 4 floats (pixel i of line l at src[l * line_in + i * step_in]) become n_out
 * pixels. Each output pixel averages the source interval it covers, weighting
 * source pixels by their overlap; an integer ratio gives plain box averages,
 * upscaling repeats pixels. */
static void area_pass(const float *src, size_t line_in, size_t step_in, int n_in, float *dst,
                      size_t line_out, size_t step_out, int n_out, int lines)
{
    double scale = (double)n_in / n_out;
    for (int o = 0; o < n_out; o++) {
        double lo = o * scale, hi = (o + 1) * scale;
        int i0 = (int)floor(lo), i1 = (int)ceil(hi);
        if (i1 > n_in)
            i1 = n_in;
        for (int l = 0; l < lines; l++) {
            double acc[4] = {0, 0, 0, 0};
            for (int i = i0; i < i1; i++) {
                double w = fmin(hi, i + 1.0) - fmax(lo, (double)i);
                if (w <= 0)
                    continue;
                const float *p = src + (size_t)l * line_in + (size_t)i * step_in;
                for (int k = 0; k < 4; k++)
                    acc[k] += w * p[k];
            }
            float *q = dst + (size_t)l * line_out + (size_t)o * step_out;
            for (int k = 0; k < 4; k++)
                q[k] = (float)(acc[k] / scale);
        }
    }
}

/* rgba8 [h, w, 4] -> x [channels, size, size] in [-1, 1] */
static int convert_rgba(const unsigned char *rgba, int w, int h, int size, int channels, float *x)
{
    size_t np = (size_t)w * h;
    float *pm = malloc(np * 4 * sizeof *pm);                 /* premultiplied, in [0, 1] */
    float *tmp = malloc((size_t)h * size * 4 * sizeof *tmp); /* [h, size, 4] */
    float *res = malloc((size_t)size * size * 4 * sizeof *res);
    if (!pm || !tmp || !res) {
        free(pm), free(tmp), free(res);
        return io_fail("out of memory for a %dx%d image", w, h);
    }
    for (size_t k = 0; k < np; k++) {
        float a = rgba[4 * k + 3] / 255.0f;
        for (int c = 0; c < 3; c++)
            pm[4 * k + c] = rgba[4 * k + c] / 255.0f * a;
        pm[4 * k + 3] = a;
    }
    area_pass(pm, (size_t)w * 4, 4, w, tmp, (size_t)size * 4, 4, size, h);      /* along x */
    area_pass(tmp, 4, (size_t)size * 4, h, res, 4, (size_t)size * 4, size, size); /* along y */
    size_t plane = (size_t)size * size;
    for (size_t k = 0; k < plane; k++) {
        const float *p = res + 4 * k;
        float v[4];
        if (channels == 4) {
            float a = p[3];
            for (int c = 0; c < 3; c++)
                v[c] = a > 1e-6f ? fminf(p[c] / a, 1.0f) : 0.0f;
            v[3] = a;
        } else if (channels == 3) {
            v[0] = p[0], v[1] = p[1], v[2] = p[2];
        } else {
            v[0] = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
        }
        for (int c = 0; c < channels; c++)
            x[c * plane + k] = fminf(fmaxf(v[c], 0.0f), 1.0f) * 2.0f - 1.0f;
    }
    free(pm), free(tmp), free(res);
    return 0;
}

/* list_dir filters: 1 keep, 0 skip, -1 out of memory */
static int keep_png(const char *dir, const char *name)
{
    (void)dir;
    return is_png(name);
}

static int keep_subdir(const char *dir, const char *name)
{
    if (name[0] == '.')
        return 0;
    size_t plen = strlen(dir) + strlen(name) + 2;
    char *path = malloc(plen);
    struct stat sb;
    if (!path)
        return -1;
    snprintf(path, plen, "%s/%s", dir, name);
    int is_dir = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
    free(path);
    return is_dir;
}

/* The entries of folder `dir` that keep(dir, name) accepts, unsorted, into
 * *names [*count], malloc'd: free them also on failure (the folder cannot be
 * opened, or the listing ran out of memory: returns io_fail()). */
static int list_dir(const char *dir, int (*keep)(const char *dir, const char *name),
                    char ***names, size_t *count)
{
    *names = NULL, *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return io_fail("cannot open folder '%s': %s", dir, strerror(errno));
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int k = keep(dir, e->d_name);
        if (k < 0)
            break;
        if (!k)
            continue;
        if (*count == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(*names, cap * sizeof **names);
            if (!grown)
                break;
            *names = grown;
        }
        if (!((*names)[*count] = strdup(e->d_name)))
            break;
        (*count)++;
    }
    int listed = e == NULL;
    closedir(d);
    return listed ? 0 : io_fail("out of memory listing '%s'", dir);
}

int io_load_png_dir(const char *dir, int size, int channels, size_t limit, float **out,
                    size_t *n)
{
    *out = NULL, *n = 0;
    if (bad_shape(size, channels))
        return -1;
    char **names;
    size_t count;
    int rc = list_dir(dir, keep_png, &names, &count);
    float *img = NULL;
    size_t got = 0, per = (size_t)channels * size * size;
    if (rc)
        goto done;
    if (count == 0) {
        rc = io_fail("folder '%s' has no .png files", dir);
        goto done;
    }
    qsort(names, count, sizeof *names, cmp_names);
    size_t want = limit && limit < count ? limit : count;
    if (!(img = malloc(want * per * sizeof *img))) {
        rc = io_fail("out of memory for %zu images", want);
        goto done;
    }
    size_t skipped = 0, resized = 0, see_through = 0;
    char example[300] = "";
    for (size_t i = 0; i < count && got < want; i++) {
        size_t plen = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(plen);
        if (!path) {
            rc = io_fail("out of memory");
            goto done;
        }
        snprintf(path, plen, "%s/%s", dir, names[i]);
        int w, h, comp;
        unsigned char *rgba = stbi_load(path, &w, &h, &comp, 4);
        if (!rgba) {
            if (skipped++ < 5)
                fprintf(stderr, "imageio: skipping '%s': %s\n", path, undecodable(path));
            free(path);
            continue;
        }
        free(path);
        if (w != size || h != size) {
            if (resized++ == 0)
                snprintf(example, sizeof example, "'%.200s' is %dx%d", names[i], w, h);
        }
        if (channels != 4) {
            size_t np = (size_t)w * h, k = 0;
            while (k < np && rgba[4 * k + 3] == 255)
                k++;
            see_through += k < np;
        }
        rc = convert_rgba(rgba, w, h, size, channels, img + got * per);
        stbi_image_free(rgba);
        if (rc)
            goto done;
        got++;
    }
    if (skipped)
        fprintf(stderr, "imageio: %zu file(s) of '%s' were skipped: they could not be read as "
                "PNG images%s\n", skipped, dir,
                skipped > 5 ? " (the first 5 are listed above)" : "");
    if (resized)
        fprintf(stderr, "imageio: %zu of %zu images are not %dx%d (%s); they were resized to "
                "%dx%d, the model's image size, each pixel the average of the area it covers\n",
                resized, got, size, size, example, size, size);
    if (see_through)
        fprintf(stderr, "imageio: %zu of %zu images have transparent pixels; the model has no "
                "alpha channel, so they were drawn over black\n", see_through, got);
    if (got == 0)
        rc = io_fail("no image of folder '%s' could be decoded", dir);
done:
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    if (rc) {
        free(img);
        return rc;
    }
    *out = img, *n = got;
    return 0;
}

void io_free_names(char **names, int n)
{
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

int io_load_png_classes(const char *dir, int size, int channels, size_t limit, float **out,
                        int32_t **labels, size_t *n, char ***names, int *n_classes)
{
    *out = NULL, *labels = NULL, *n = 0, *names = NULL, *n_classes = 0;
    char **sub;
    size_t listed;
    int rc = list_dir(dir, keep_subdir, &sub, &listed), k = (int)listed;
    if (rc) {
        io_free_names(sub, k);
        return rc;
    }
    if (k == 0) {
        free(sub);
        return io_fail("folder '%s' has no sub-folders (one per class)", dir);
    }
    qsort(sub, (size_t)k, sizeof *sub, cmp_names);
    float *img = NULL;
    int32_t *y = NULL;
    size_t total = 0, per = (size_t)channels * size * size;
    for (int c = 0; c < k && rc == 0; c++) {
        size_t plen = strlen(dir) + strlen(sub[c]) + 2, got;
        char *path = malloc(plen);
        float *part = NULL;
        if (!path) {
            rc = io_fail("out of memory");
            break;
        }
        snprintf(path, plen, "%s/%s", dir, sub[c]);
        rc = io_load_png_dir(path, size, channels, limit, &part, &got);
        free(path);
        if (rc)
            break;
        float *gi = realloc(img, (total + got) * per * sizeof *img);
        int32_t *gy = gi ? realloc(y, (total + got) * sizeof *y) : NULL;
        if (gi)
            img = gi;
        if (gy)
            y = gy;
        if (!gi || !gy) {
            free(part);
            rc = io_fail("out of memory for %zu images", total + got);
            break;
        }
        memcpy(img + total * per, part, got * per * sizeof *img);
        for (size_t i = 0; i < got; i++)
            y[total + i] = c;
        total += got;
        free(part);
    }
    if (rc) {
        free(img), free(y);
        io_free_names(sub, k);
        return rc;
    }
    *out = img, *labels = y, *n = total, *names = sub, *n_classes = k;
    return 0;
}

/* ---------------------------------------------------------------- writers */

static char *tmp_name(const char *path)
{
    size_t len = strlen(path) + 32;
    char *t = malloc(len);
    if (t)
        snprintf(t, len, "%s.tmp%ld", path, (long)getpid());
    return t;
}

/* write canvas [H, W, bpp] as a PNG via a temporary file renamed over path */
static int write_png_atomic(const char *path, const uint8_t *canvas, size_t W, size_t H, int bpp)
{
    char *tmp = tmp_name(path);
    if (!tmp)
        return io_fail("out of memory");
    int ok = stbi_write_png(tmp, (int)W, (int)H, bpp, canvas, (int)(W * bpp));
    if (!ok || rename(tmp, path) != 0) {
        int err = errno;
        remove(tmp);
        free(tmp);
        return io_fail("cannot write '%s'%s%s", path, ok ? ": " : "", ok ? strerror(err) : "");
    }
    free(tmp);
    return 0;
}

int io_write_png_grid(const char *path, const uint8_t *pixels, size_t n, int size, int bpp,
                      int cols)
{
    if (n == 0 || size <= 0 || (bpp != 1 && bpp != 3 && bpp != 4))
        return io_fail("png grid: nothing to write (n %zu, size %d, bpp %d)", n, size, bpp);
    if (cols <= 0)
        cols = (int)ceil(sqrt((double)n));
    if ((size_t)cols > n)
        cols = (int)n;
    size_t rows = (n + cols - 1) / cols;
    size_t W = (size_t)cols * size + cols - 1, H = rows * size + rows - 1;
    if (W > 1u << 20 || H > 1u << 20 || W * H > (size_t)1 << 31)
        return io_fail("png grid of %zux%zu pixels is too large", W, H);
    uint8_t *canvas = malloc(W * H * bpp);
    if (!canvas)
        return io_fail("out of memory for a %zux%zu grid", W, H);
    static const uint8_t gap[4] = {128, 128, 128, 255};
    for (size_t k = 0; k < W * H; k++)
        memcpy(canvas + k * bpp, gap, (size_t)bpp);
    size_t row_bytes = (size_t)size * bpp;
    for (size_t i = 0; i < n; i++) {
        size_t gx = i % cols, gy = i / cols;
        const uint8_t *src = pixels + i * size * row_bytes;
        for (int y = 0; y < size; y++)
            memcpy(canvas + ((gy * (size + 1) + y) * W + gx * (size + 1)) * bpp,
                   src + y * row_bytes, row_bytes);
    }
    int rc = write_png_atomic(path, canvas, W, H, bpp);
    free(canvas);
    return rc;
}

int io_write_png_scaled(const char *path, const uint8_t *pixels, int size, int bpp, int scale)
{
    if (size <= 0 || (bpp != 1 && bpp != 3 && bpp != 4) || scale <= 0)
        return io_fail("png: nothing to write (size %d, bpp %d, scale %d)", size, bpp, scale);
    size_t W = (size_t)size * (size_t)scale;
    if (W > 1u << 16)
        return io_fail("png of %zux%zu pixels is too large", W, W);
    uint8_t *canvas = malloc(W * W * bpp);
    if (!canvas)
        return io_fail("out of memory for a %zux%zu image", W, W);
    for (size_t y = 0; y < W; y++) {
        const uint8_t *src = pixels + (y / scale) * (size_t)size * bpp;
        uint8_t *dst = canvas + y * W * bpp;
        for (size_t x = 0; x < W; x++)
            memcpy(dst + x * bpp, src + (x / scale) * bpp, (size_t)bpp);
    }
    int rc = write_png_atomic(path, canvas, W, W, bpp);
    free(canvas);
    return rc;
}

int io_write_npy(const char *path, const float *images, size_t n, int channels, int size)
{
    char hdr[256];
    int len = snprintf(hdr + 10, sizeof hdr - 10,
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %d, %d, %d), }",
                       n, channels, size, size);
    size_t total = 10 + (size_t)len + 1; /* magic, version, length, dict, '\n' */
    total = (total + 63) / 64 * 64;     /* numpy aligns the data to 64 bytes */
    memset(hdr + 10 + len, ' ', total - 10 - (size_t)len);
    hdr[total - 1] = '\n';
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = (char)((total - 10) & 0xff), hdr[9] = (char)((total - 10) >> 8);

    char *tmp = tmp_name(path);
    if (!tmp)
        return io_fail("out of memory");
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int err = errno;
        free(tmp);
        return io_fail("cannot create '%s': %s", path, strerror(err));
    }
    size_t count = n * channels * size * size;
    int ok = fwrite(hdr, 1, total, f) == total;
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe) { /* little-endian host: the floats as they are */
        ok = ok && fwrite(images, sizeof(float), count, f) == count;
    } else {
        for (size_t i = 0; ok && i < count; i++) {
            uint8_t b[4], s[4];
            memcpy(b, images + i, 4);
            s[0] = b[3], s[1] = b[2], s[2] = b[1], s[3] = b[0];
            ok = fwrite(s, 1, 4, f) == 4;
        }
    }
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        err = ok ? errno : err;
        remove(tmp);
        free(tmp);
        return io_fail("cannot write '%s': %s", path, strerror(err));
    }
    free(tmp);
    return 0;
}
