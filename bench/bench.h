/* bench/bench.h - shared between bench.c and peak.c (not part of the library). */
#ifndef TG_BENCH_H
#define TG_BENCH_H

/* The machine's FP32 FMA peak in GFLOP/s, measured on all OpenMP threads by a
 * loop of independent vector FMAs (12 accumulator chains per thread). Runs for
 * about `seconds` and returns the best of a few trials. *isa names the kernel
 * ("avx512f", "avx2" or "scalar"), *threads the team size. */
double bench_peak_gflops(double seconds, const char **isa, int *threads);

#endif
