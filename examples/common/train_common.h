/* train_common.h - what examples/train.c and examples/train_mpi.c share, so
 * the two programs (whose runs tests/mpi.sh compares byte for byte) cannot
 * drift apart: the data order, the loading of the training images, the sample
 * grid and the log.tsv format. Failures die() (cli.h). */
#ifndef TG_EXAMPLES_TRAIN_COMMON_H
#define TG_EXAMPLES_TRAIN_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <transgan.h>

#define TC_SAMPLE_SEED 1u /* z of the sample grids: fixed, so grids compare over time */
#define TC_SAMPLE_N 64

/* Seconds on CLOCK_MONOTONIC. */
double tc_now(void);
/* Whether s ends with suffix. */
int tc_ends_with(const char *s, const char *suffix);
/* "dir/name", malloc'd. */
char *tc_join(const char *dir, const char *name);
/* The folder of a path ("." for a bare name, "/" for a file in the root),
 * malloc'd. */
char *tc_dir_of(const char *path);

/* The data order is an endless sequence of epochs, each a permutation of the
 * images drawn from (seed, epoch number). Position p of the sequence is image
 * perm_{p / n}[p % n], so a resumed run finds its place from d_steps alone.
 * Initialise with {.n = images, .seed = seed}; free(perm) at the end. */
typedef struct tc_order {
    size_t n;
    uint64_t seed, epoch;
    size_t *perm; /* of `epoch`, or NULL */
} tc_order;
size_t tc_order_at(tc_order *o, uint64_t pos);

/* The images of `src` for a model of size x size x channels: a folder of PNG
 * files or an idx3 file; limit > 0 keeps the first `limit`. */
void tc_load_images(const char *src, int size, int channels, size_t limit, float **images,
                    size_t *n);

/* Generate TC_SAMPLE_N images from z (TC_SAMPLE_N x latent) with the EMA
 * weights, of classes ylab (NULL: an unconditional model), into img and px
 * (TC_SAMPLE_N x channels x size x size each) and write them as the grid
 * out/samples_<d_steps>.png of 8 columns. Returns the PNG's path, malloc'd. */
char *tc_write_samples(tg_model *m, const char *out, uint64_t d_steps, const float *z,
                       const int32_t *ylab, float *img, uint8_t *px, int size, int channels);

/* log.tsv: the header line, and one line per save with d_steps, g_steps,
 * seconds and v[8] = d_loss gp d_real d_fake g_loss sr_loss d_grad_norm
 * g_grad_norm. */
extern const char TC_LOG_HEADER[];
/* Append to `path`: the header first when `header`, then a line unless v is
 * NULL. */
void tc_log_append(const char *path, int header, uint64_t d_steps, uint64_t g_steps,
                   double seconds, const double *v);

#endif
