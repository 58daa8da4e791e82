#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void tg_rng_seed(tg_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tg_rng_next(tg_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double tg_rng_uniform(tg_rng *r) { return (double)(tg_rng_next(r) >> 11) * 0x1.0p-53; }

double tg_rng_normal(tg_rng *r)
{
    double u1 = 1.0 - tg_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = tg_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double tg_rng_trunc_normal(tg_rng *r, double std, double lo, double hi)
{
    for (;;) {
        double v = std * tg_rng_normal(r);
        if (v >= lo && v <= hi)
            return v;
    }
}

uint64_t tg_rng_below(tg_rng *r, uint64_t n)
{
    /* rejection keeps it exactly uniform */
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t v = tg_rng_next(r);
        if (v < lim)
            return v % n;
    }
}
