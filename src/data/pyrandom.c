/*
 * pyrandom.c - CPython's `random` module, reproduced exactly so that a few-shot subset drawn
 * here is the one the Python tutorial draws: the Mersenne Twister MT19937 (Matsumoto and
 * Nishimura's reference algorithm), seeded with init_by_array as random.seed(int) does,
 * getrandbits, _randbelow and shuffle.
 */
#include "data.h"

#define MT_N 624
#define MT_M 397

static void init_genrand(struct mv_pyrandom *r, uint32_t s)
{
    r->mt[0] = s;
    for (int i = 1; i < MT_N; i++)
        r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->index = MT_N;
}

static void init_by_array(struct mv_pyrandom *r, const uint32_t *key, int len)
{
    init_genrand(r, 19650218u);
    int i = 1, j = 0;
    for (int k = MT_N > len ? MT_N : len; k > 0; k--) {
        r->mt[i] =
            (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
        i++;
        j++;
        if (i >= MT_N) {
            r->mt[0] = r->mt[MT_N - 1];
            i = 1;
        }
        if (j >= len) j = 0;
    }
    for (int k = MT_N - 1; k > 0; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= MT_N) {
            r->mt[0] = r->mt[MT_N - 1];
            i = 1;
        }
    }
    r->mt[0] = 0x80000000u; /* MSB is 1: a non-zero initial array */
}

void mv_pyrandom_seed(struct mv_pyrandom *r, int64_t seed)
{
    /* |seed| as an unsigned magnitude (INT64_MIN included), little-endian 32-bit words */
    uint64_t mag = seed < 0 ? (uint64_t)0 - (uint64_t)seed : (uint64_t)seed;
    uint32_t key[2] = {(uint32_t)mag, (uint32_t)(mag >> 32)};
    init_by_array(r, key, key[1] ? 2 : 1);
}

uint32_t mv_pyrandom_u32(struct mv_pyrandom *r)
{
    static const uint32_t mag01[2] = {0u, 0x9908b0dfu};
    uint32_t y;
    if (r->index >= MT_N) {
        int kk;
        for (kk = 0; kk < MT_N - MT_M; kk++) {
            y = (r->mt[kk] & 0x80000000u) | (r->mt[kk + 1] & 0x7fffffffu);
            r->mt[kk] = r->mt[kk + MT_M] ^ (y >> 1) ^ mag01[y & 1u];
        }
        for (; kk < MT_N - 1; kk++) {
            y = (r->mt[kk] & 0x80000000u) | (r->mt[kk + 1] & 0x7fffffffu);
            r->mt[kk] = r->mt[kk + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 1u];
        }
        y = (r->mt[MT_N - 1] & 0x80000000u) | (r->mt[0] & 0x7fffffffu);
        r->mt[MT_N - 1] = r->mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 1u];
        r->index = 0;
    }
    y = r->mt[r->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t mv_pyrandom_getrandbits(struct mv_pyrandom *r, int k)
{
    if (k <= 0) return 0;
    if (k > 64) k = 64;
    if (k <= 32) return mv_pyrandom_u32(r) >> (32 - k);
    /* CPython fills 32-bit words from the least significant; only the last is shifted */
    uint64_t lo = mv_pyrandom_u32(r);
    uint64_t hi = mv_pyrandom_u32(r) >> (64 - k);
    return lo | (hi << 32);
}

static int bit_length(uint64_t n)
{
    int k = 0;
    while (n) {
        k++;
        n >>= 1;
    }
    return k;
}

uint64_t mv_pyrandom_below(struct mv_pyrandom *r, uint64_t n)
{
    if (n == 0) return 0;
    int k = bit_length(n);
    uint64_t v = mv_pyrandom_getrandbits(r, k);
    while (v >= n) v = mv_pyrandom_getrandbits(r, k);
    return v;
}

void mv_pyrandom_shuffle_int(struct mv_pyrandom *r, int *x, size_t n)
{
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)mv_pyrandom_below(r, (uint64_t)i + 1);
        int t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
}
