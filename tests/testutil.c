#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ops/dnn.h"

static uint64_t tu_state = 0x9E3779B97F4A7C15ull;

void tu_seed(uint64_t s) { tu_state = s * 0x9E3779B97F4A7C15ull + 1; }

static uint64_t tu_next(void)
{ /* splitmix64 */
    uint64_t z = (tu_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float tu_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((tu_next() >> 40) * (1.0 / 16777216.0));
}

void tu_fill(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = tu_uniform(lo, hi);
}

float *tu_rand(size_t n, float lo, float hi)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    tu_fill(x, n, lo, hi);
    return x;
}

double tu_close_ratio(const float *a, const float *b, size_t n, double atol, double rtol)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double r = d == 0 ? 0 : d / (atol + rtol * fabs((double)b[i]));
        if (!(r <= worst)) /* NaN counts as worst */
            worst = isnan(r) ? INFINITY : r;
    }
    return worst;
}

static double loss_of(tu_fn f, void *ctx, float *y, const float *r, size_t ny)
{
    f(ctx, y);
    double s = 0;
    for (size_t i = 0; i < ny; i++)
        s += (double)y[i] * r[i];
    return s;
}

void tu_gradcheck(const char *what, tu_fn f, void *ctx, float *x, size_t nx, const float *r,
                  size_t ny, const float *grad, size_t max_probe, float eps, double atol,
                  double rtol)
{
    float *y = malloc(ny * sizeof *y);
    ck_assert_ptr_nonnull(y);
    size_t step = nx > max_probe ? nx / max_probe : 1;
    for (size_t i = 0; i < nx; i += step) {
        float keep = x[i];
        x[i] = keep + eps;
        double lp = loss_of(f, ctx, y, r, ny);
        x[i] = keep - eps;
        double lm = loss_of(f, ctx, y, r, ny);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * eps);
        double err = fabs(num - grad[i]);
        ck_assert_msg(err <= atol + rtol * fabs(num),
                      "%s: d/dx[%zu] analytic %.6g numeric %.6g (err %.3g)", what, i,
                      (double)grad[i], num, err);
    }
    free(y);
}

uint64_t tu_sign_hash(uint64_t h, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint64_t)(x[i] > 0)) * 0x100000001B3ull + i;
    return h;
}

void tu_gradcheck_pl(const char *what, tu_fn f, tu_sig sig, void *ctx, float *x, size_t nx,
                     const float *r, size_t ny, const float *grad, size_t max_probe, float eps,
                     double atol, double rtol)
{
    float *y = malloc(ny * sizeof *y);
    ck_assert_ptr_nonnull(y);
    f(ctx, y);
    uint64_t base = sig(ctx);
    size_t step = nx > max_probe ? nx / max_probe : 1, probes = 0, skipped = 0;
    for (size_t i = 0; i < nx; i += step) {
        float keep = x[i];
        x[i] = keep + eps;
        double lp = loss_of(f, ctx, y, r, ny);
        int kink = sig(ctx) != base;
        x[i] = keep - eps;
        double lm = loss_of(f, ctx, y, r, ny);
        kink |= sig(ctx) != base;
        x[i] = keep;
        probes++;
        if (kink) {
            skipped++;
            continue;
        }
        double num = (lp - lm) / (2.0 * eps);
        double err = fabs(num - grad[i]);
        ck_assert_msg(err <= atol + rtol * fabs(num),
                      "%s: d/dx[%zu] analytic %.6g numeric %.6g (err %.3g)", what, i,
                      (double)grad[i], num, err);
    }
    ck_assert_msg(2 * skipped <= probes, "%s: %zu of %zu probes straddle a kink", what, skipped,
                  probes);
    free(y);
}

void tu_assert_no_ref(void)
{
    const char *impl = NULL;
    long n = tg_dnn_ref_count(&impl);
    ck_assert_msg(n == 0, "%ld primitive(s) fell back to a reference kernel, last: %s", n,
                  impl ? impl : "?");
}

int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf;
}

void tu_rm_rf(const char *p)
{
    struct stat st;
    if (lstat(p, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(p);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                    continue;
                char sub[1024];
                snprintf(sub, sizeof sub, "%s/%s", p, e->d_name);
                tu_rm_rf(sub);
            }
            closedir(d);
        }
        rmdir(p);
    } else {
        unlink(p);
    }
}

static char tu_dir[256];

const char *tu_scratch_make(const char *tag)
{
    snprintf(tu_dir, sizeof tu_dir, "/tmp/%s_XXXXXX", tag);
    ck_assert_msg(mkdtemp(tu_dir) != NULL, "cannot make a scratch folder for %s", tag);
    return tu_dir;
}

const char *tu_scratch_dir(void) { return tu_dir; }

const char *tu_path(const char *name)
{
    static char p[4][512];
    static int k;
    ck_assert_msg(tu_dir[0] != '\0', "tu_path(%s) without a scratch folder", name);
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tu_dir, name);
    return p[k];
}

void tu_scratch_remove(void)
{
    if (tu_dir[0])
        tu_rm_rf(tu_dir);
    tu_dir[0] = '\0';
}

void tu_write_file(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    if (n)
        ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

unsigned char *tu_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    ck_assert_int_ge(len, 0);
    rewind(f);
    unsigned char *b = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(b);
    *n = fread(b, 1, (size_t)len, f);
    ck_assert_uint_eq(*n, (size_t)len);
    b[*n] = '\0';
    fclose(f);
    return b;
}

extern char **environ;

void tu_assert_capped_child_passes(const char *isa)
{
    char exe[4096], cap[64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ck_assert_int_gt(n, 0);
    exe[n] = '\0';
    snprintf(cap, sizeof cap, "ONEDNN_MAX_CPU_ISA=%s", isa);
    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **env = calloc(ne + 2, sizeof *env);
    ck_assert_ptr_nonnull(env);
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], "ONEDNN_MAX_CPU_ISA=", 19) && strncmp(environ[i], "DNNL_MAX_CPU_ISA=", 17))
            env[k++] = environ[i];
    env[k++] = cap;
    env[k] = NULL;
    char *argv[] = {exe, "--capped-child", NULL};
    pid_t pid;
    ck_assert_int_eq(posix_spawn(&pid, exe, NULL, NULL, argv, env), 0);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    free(env);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the capped run failed (status 0x%x)", status);
}
