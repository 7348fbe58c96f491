/* finite.c - the first value of a float array that is not finite, for the checks on weights
 * and embeddings in the layers below src/ops (io, model). Blocks of 64 are tested with a
 * branch-free OR of exponent tests, which the compiler vectorises, so the scan runs at about
 * memory speed; the one block that holds a NaN or inf is then searched value by value. */
#include "core.h"

#include <string.h>

static inline int nonfinite_bits(uint32_t u)
{
    return (u & 0x7f800000u) == 0x7f800000u;
}

size_t mv_find_nonfinite(const float *x, size_t n)
{
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint32_t u[64];
        memcpy(u, x + i, sizeof u);
        int any = 0;
        for (int k = 0; k < 64; k++) any |= nonfinite_bits(u[k]);
        if (any) break;
    }
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        if (nonfinite_bits(u)) return i;
    }
    return n;
}
