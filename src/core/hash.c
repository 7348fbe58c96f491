/*
 * hash.c - a 64-bit hash of a byte range at memory speed, for fingerprints (not for security).
 *
 * xxHash64's round (acc = rotl(acc + w * P2, 31) * P1) on eight independent lanes, 64 bytes a
 * step, so that eight multiply chains are in flight at once; the lanes are merged with xxHash64's
 * merge step, the tail bytes and the length folded in, and the result avalanched. The value is
 * fixed by this definition (little-endian words), whatever the machine or thread count: callers
 * that hash many ranges in parallel combine the per-range values in a fixed order.
 */
#include "core.h"

#include <string.h>

#define P1 11400714785074694791ull
#define P2 14029467366897019727ull
#define P3 1609587929392839161ull
#define P4 9650029242287828579ull
#define P5 2870177450012600261ull

static inline uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t round64(uint64_t acc, uint64_t w)
{
    return rotl(acc + w * P2, 31) * P1;
}

static inline uint64_t merge64(uint64_t h, uint64_t acc)
{
    return (h ^ round64(0, acc)) * P1 + P4;
}

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

uint64_t mv_hash64(const void *data, size_t n, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t lane[8];
    for (int k = 0; k < 8; k++) lane[k] = seed + P1 * (uint64_t)(k + 1) + P2;
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int k = 0; k < 8; k++) lane[k] = round64(lane[k], load64(p + i + 8 * k));
    uint64_t h = seed + P5 + (uint64_t)n;
    for (int k = 0; k < 8; k++) h = merge64(h + rotl(lane[k], 1 + 7 * k), lane[k]);
    for (; i + 8 <= n; i += 8) h = rotl(h ^ round64(0, load64(p + i)), 27) * P1 + P4;
    for (; i < n; i++) h = rotl(h ^ (p[i] * P5), 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}
