/* utf8.c - strict UTF-8 validation (as the JSON of safetensors headers requires) and a printable
 * form of a byte string for messages. */
#include "core.h"

#include <stdio.h>

size_t mv_utf8_check(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xbf; /* the allowed range of the second byte */
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0)
                lo = 0xa0; /* no overlong forms */
            else if (c == 0xed)
                hi = 0x9f; /* no surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f; /* <= U+10FFFF */
        } else {
            return i;
        }
        if (n - i < len || p[i + 1] < lo || p[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if ((p[i + k] & 0xc0) != 0x80) return i;
        i += len;
    }
    return n;
}

const char *mv_printable(char *buf, size_t cap, const char *s)
{
    size_t o = 0, n = 0;
    while (s[n]) n++;
    for (size_t i = 0; i < n && o + 5 < cap;) {
        size_t ok = mv_utf8_check(s + i, n - i);
        unsigned char c = (unsigned char)s[i];
        if (ok == 0 || c < 0x20 || c == 0x7f) { /* an invalid or control byte: \xNN */
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02X", c);
            i++;
            continue;
        }
        size_t len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
        if (o + len + 1 > cap) break;
        for (size_t k = 0; k < len; k++) buf[o++] = s[i + k];
        i += len;
    }
    if (cap) buf[o < cap ? o : cap - 1] = '\0';
    return buf;
}
