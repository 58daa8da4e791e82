/* Internal: the library's random numbers (xoshiro256**, seeded by
 * splitmix64). The state is four words, so it can be saved in checkpoints. */
#ifndef TG_RNG_H
#define TG_RNG_H

#include <stdint.h>

typedef struct tg_rng {
    uint64_t s[4];
} tg_rng;

void tg_rng_seed(tg_rng *r, uint64_t seed);
uint64_t tg_rng_next(tg_rng *r);
/* uniform in [0, 1) with 53 random bits */
double tg_rng_uniform(tg_rng *r);
/* standard normal (Box-Muller; one draw per call, so the stream is simple) */
double tg_rng_normal(tg_rng *r);
/* normal(0, std) redrawn until inside [lo, hi] (absolute bounds, as torch's
 * trunc_normal_(a, b)) */
double tg_rng_trunc_normal(tg_rng *r, double std, double lo, double hi);
/* uniform integer in [0, n) */
uint64_t tg_rng_below(tg_rng *r, uint64_t n);

#endif
