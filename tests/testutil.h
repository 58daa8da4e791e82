/* Helpers shared by the Check test programs. */
#ifndef TG_TESTUTIL_H
#define TG_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "transgan.h"

/* A call that must succeed; the failure message is the library's. */
#define OK(x) ck_assert_msg((x) == TG_OK, "%s: %s", #x, tg_last_error())

/* Deterministic uniform numbers in [lo, hi). */
void tu_seed(uint64_t s);
float tu_uniform(float lo, float hi);
void tu_fill(float *x, size_t n, float lo, float hi);
float *tu_rand(size_t n, float lo, float hi); /* malloc'd, caller frees */

/* max |a - b| / (atol + rtol * |b|); <= 1 means close. */
double tu_close_ratio(const float *a, const float *b, size_t n, double atol, double rtol);
#define tu_assert_close(a, b, n, atol, rtol)                                              \
    do {                                                                                  \
        double r_ = tu_close_ratio((a), (b), (n), (atol), (rtol));                        \
        ck_assert_msg(r_ <= 1.0, "%s vs %s: error ratio %g (atol %g rtol %g)", #a, #b, r_, \
                      (double)(atol), (double)(rtol));                                    \
    } while (0)

/* Finite-difference gradient check. `f` computes outputs y[ny] from the
 * inputs in `ctx` (which the checker perturbs through x[nx]); the loss is
 * sum_i y_i * r_i. `grad` is the analytic dL/dx. Checks up to `max_probe`
 * evenly spread coordinates with central differences of step eps. */
typedef void (*tu_fn)(void *ctx, float *y);
void tu_gradcheck(const char *what, tu_fn f, void *ctx, float *x, size_t nx, const float *r,
                  size_t ny, const float *grad, size_t max_probe, float eps, double atol,
                  double rtol);

/* The same for piecewise-linear functions (LeakyReLU networks): `sig`
 * returns a signature of the kinks' side (a hash of the signs of every
 * activation's input) after the last call of f. A probe whose +eps or -eps
 * evaluation changed it straddles a kink, where there is no derivative to
 * compare with: it is skipped, and at most half of the probes may be. */
typedef uint64_t (*tu_sig)(void *ctx);
void tu_gradcheck_pl(const char *what, tu_fn f, tu_sig sig, void *ctx, float *x, size_t nx,
                     const float *r, size_t ny, const float *grad, size_t max_probe, float eps,
                     double atol, double rtol);
/* A running hash of the signs of x[n] (for tu_sig functions). */
uint64_t tu_sign_hash(uint64_t h, const float *x, size_t n);

/* Fails the test if the library built any primitive on a reference kernel. */
void tu_assert_no_ref(void);

/* Run this test program again as `EXE --capped-child` with oneDNN capped at
 * `isa` (ONEDNN_MAX_CPU_ISA; any inherited cap replaced) and assert that it
 * exits 0: how the bf16 suites test their fallback on a CPU that has bf16. */
void tu_assert_capped_child_passes(const char *isa);

/* Remove a file or a folder tree (scratch folders of tests). */
void tu_rm_rf(const char *path);

/* One scratch folder at a time: tu_scratch_make creates /tmp/TAG_XXXXXX
 * (a test's or a fixture's setup), tu_path names a file in it (four static
 * buffers in turn, so a call can take a few paths), tu_scratch_remove deletes
 * it with its contents. */
const char *tu_scratch_make(const char *tag);
const char *tu_scratch_dir(void);
const char *tu_path(const char *name);
void tu_scratch_remove(void);
/* Whole files, checked: write n bytes; read all (malloc'd, NUL-terminated,
 * size in *n). */
void tu_write_file(const char *path, const void *bytes, size_t n);
unsigned char *tu_read_file(const char *path, size_t *n);

/* Run a suite, return the number of failures (for main). */
int tu_run(Suite *s);

#endif
