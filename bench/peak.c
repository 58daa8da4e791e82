/* bench/peak.c - the machine's measured FP32 FMA peak.
 *
 * Each thread runs 12 independent accumulator chains of vector FMAs
 * (acc = acc * m + c): 12 chains cover the FMA latency times the FMA ports of
 * current x86 cores (4 cycles x 2 ports = 8 in flight), so the loop is bound by
 * FMA throughput alone. The AVX-512 kernel (16 floats per vector) is used where
 * the CPU has it, else AVX2+FMA (8 floats), else scalar; the choice is made at
 * run time by __builtin_cpu_supports, so the file builds without -mavx512f.
 * Every FMA counts 2 FLOPs. */
#include <omp.h>
#include <stdint.h>
#include <time.h>

#include "bench.h"

#define CHAINS 12
#define FMA12(F)                                                                                   \
    do {                                                                                           \
        a0 = F(a0, m, c), a1 = F(a1, m, c), a2 = F(a2, m, c), a3 = F(a3, m, c);                    \
        a4 = F(a4, m, c), a5 = F(a5, m, c), a6 = F(a6, m, c), a7 = F(a7, m, c);                    \
        a8 = F(a8, m, c), a9 = F(a9, m, c), a10 = F(a10, m, c), a11 = F(a11, m, c);                \
    } while (0)

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1

__attribute__((target("avx512f"), noinline)) static float kernel_avx512(int64_t iters)
{
    const __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
    __m512 a0 = _mm512_set1_ps(0.0f), a1 = _mm512_set1_ps(0.1f), a2 = _mm512_set1_ps(0.2f),
           a3 = _mm512_set1_ps(0.3f), a4 = _mm512_set1_ps(0.4f), a5 = _mm512_set1_ps(0.5f),
           a6 = _mm512_set1_ps(0.6f), a7 = _mm512_set1_ps(0.7f), a8 = _mm512_set1_ps(0.8f),
           a9 = _mm512_set1_ps(0.9f), a10 = _mm512_set1_ps(1.0f), a11 = _mm512_set1_ps(1.1f);
    for (int64_t i = 0; i < iters; i++)
        FMA12(_mm512_fmadd_ps);
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"), noinline)) static float kernel_avx2(int64_t iters)
{
    const __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
    __m256 a0 = _mm256_set1_ps(0.0f), a1 = _mm256_set1_ps(0.1f), a2 = _mm256_set1_ps(0.2f),
           a3 = _mm256_set1_ps(0.3f), a4 = _mm256_set1_ps(0.4f), a5 = _mm256_set1_ps(0.5f),
           a6 = _mm256_set1_ps(0.6f), a7 = _mm256_set1_ps(0.7f), a8 = _mm256_set1_ps(0.8f),
           a9 = _mm256_set1_ps(0.9f), a10 = _mm256_set1_ps(1.0f), a11 = _mm256_set1_ps(1.1f);
    for (int64_t i = 0; i < iters; i++)
        FMA12(_mm256_fmadd_ps);
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float v[8];
    _mm256_storeu_ps(v, s);
    return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
}
#endif

#define SFMA(x, y, z) ((x) * (y) + (z))
__attribute__((noinline)) static float kernel_scalar(int64_t iters)
{
    const float m = 0.999f, c = 0.001f;
    float a0 = 0.0f, a1 = 0.1f, a2 = 0.2f, a3 = 0.3f, a4 = 0.4f, a5 = 0.5f, a6 = 0.6f,
          a7 = 0.7f, a8 = 0.8f, a9 = 0.9f, a10 = 1.0f, a11 = 1.1f;
    for (int64_t i = 0; i < iters; i++)
        FMA12(SFMA);
    return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

volatile float bench_peak_sink; /* keeps the kernels' results alive */

/* seconds for `iters` iterations on every thread of the team */
static double trial(float (*k)(int64_t), int64_t iters, int *threads)
{
    int nt = 1;
    float sink = 0.0f;
    double t0 = now();
#pragma omp parallel reduction(+ : sink)
    {
#pragma omp single
        nt = omp_get_num_threads();
        sink += k(iters);
    }
    double dt = now() - t0;
    bench_peak_sink = sink;
    *threads = nt;
    return dt;
}

double bench_peak_gflops(double seconds, const char **isa, int *threads)
{
    float (*k)(int64_t) = kernel_scalar;
    int width = 1;
    *isa = "scalar";
#ifdef HAVE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        k = kernel_avx512, width = 16, *isa = "avx512f";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        k = kernel_avx2, width = 8, *isa = "avx2";
#endif
    /* calibrate: grow the trip count until one trial takes >= seconds / 8 */
    int64_t iters = 1 << 14;
    double dt = trial(k, iters, threads);
    while (dt < seconds / 8 && iters < ((int64_t)1 << 40)) {
        iters *= 2;
        dt = trial(k, iters, threads);
    }
    double best = 0.0, left = seconds;
    for (int i = 0; i < 20 && (i < 3 || left > 0); i++) {
        dt = trial(k, iters, threads);
        left -= dt;
        double g = (double)*threads * (double)iters * CHAINS * width * 2.0 / dt * 1e-9;
        if (g > best)
            best = g;
    }
    return best;
}
