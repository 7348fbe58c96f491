/* test_core.c - errors, checked arithmetic, arena, RNG, atomic writes. */
#include "check.h"
#include "core/core.h"

#include <sys/stat.h>
#include <unistd.h>

int main(void)
{
    /* error message carries context */
    enum medvlm_status st = mv_err(MEDVLM_ERR_IO, "file %s: bad", "x.json");
    CHECK(st == MEDVLM_ERR_IO, "status passes through");
    mv_err_ctx(st, "loading %s", "model");
    CHECK(strcmp(medvlm_last_error(), "loading model: file x.json: bad") == 0, "got '%s'",
          medvlm_last_error());
    CHECK(strcmp(medvlm_status_name(MEDVLM_ERR_SHAPE), "shape mismatch") == 0, "name");

    /* checked size math */
    size_t out;
    CHECK(!mv_mul_ok(SIZE_MAX / 2 + 1, 2, &out), "mul overflow detected");
    CHECK(mv_mul_ok(1000, 1000, &out) && out == 1000000, "mul");
    int64_t big[] = {1ll << 40, 1ll << 40};
    CHECK(!mv_numel(big, 2, &out), "numel overflow detected");
    int64_t neg[] = {3, -1};
    CHECK(!mv_numel(neg, 2, &out), "negative dim rejected");
    CHECK(mv_calloc(SIZE_MAX / 4, 8) == NULL && strstr(medvlm_last_error(), "overflow"),
          "calloc overflow: %s", medvlm_last_error());
    /* aligned allocations: 64-byte aligned, zeroed on request, overflow refused */
    unsigned char *za = mv_aligned_zeros(100);
    int zeros = za && ((uintptr_t)za & 63) == 0;
    for (int i = 0; za && i < 100; i++) zeros &= za[i] == 0;
    CHECK(zeros, "mv_aligned_zeros: not 64-byte aligned zeros");
    mv_free(za);
    CHECK(mv_aligned_zeros(SIZE_MAX - 10) == NULL && strstr(medvlm_last_error(), "overflow"),
          "aligned overflow: %s", medvlm_last_error());
    /* large ones: 2 MB aligned, every requested byte usable */
    const size_t big_n = ((size_t)5 << 20) + 3;
    unsigned char *lg = mv_aligned_large(big_n);
    CHECK(lg && ((uintptr_t)lg & (((uintptr_t)2 << 20) - 1)) == 0, "mv_aligned_large: %p",
          (void *)lg);
    if (lg) {
        memset(lg, 0xab, big_n);
        CHECK(lg[0] == 0xab && lg[big_n - 1] == 0xab, "mv_aligned_large: not writable");
    }
    mv_free(lg);
    CHECK(mv_aligned_large(SIZE_MAX - 10) == NULL && strstr(medvlm_last_error(), "overflow"),
          "large overflow: %s", medvlm_last_error());

    /* arena: alignment and many blocks */
    struct mv_arena a;
    mv_arena_init(&a, 128);
    for (int i = 0; i < 1000; i++) {
        char *p = mv_arena_alloc(&a, (size_t)(i % 37) + 1);
        CHECK(p && ((uintptr_t)p & 15) == 0, "arena alloc %d aligned", i);
        if (p) memset(p, 0xAB, (size_t)(i % 37) + 1);
    }
    CHECK(strcmp(mv_arena_strdup(&a, "hello"), "hello") == 0, "arena strdup");
    mv_arena_free(&a);

    /* RNG: reproducible, seeds differ, normal roughly standard */
    struct mv_rng r1, r2, r3;
    mv_rng_seed(&r1, 42);
    mv_rng_seed(&r2, 42);
    mv_rng_seed(&r3, 43);
    uint64_t x1 = mv_rng_u64(&r1), x2 = mv_rng_u64(&r2), x3 = mv_rng_u64(&r3);
    CHECK(x1 == x2 && x1 != x3, "rng reproducible per seed");
    double sum = 0, sq = 0;
    for (int i = 0; i < 100000; i++) {
        double z = mv_rng_normal(&r1);
        sum += z;
        sq += z * z;
    }
    CHECK(fabs(sum / 1e5) < 0.02 && fabs(sq / 1e5 - 1) < 0.03, "normal mean %g var %g", sum / 1e5,
          sq / 1e5);
    for (int i = 0; i < 1000; i++) CHECK(mv_rng_below(&r1, 7) < 7, "below");
    /* below: the draws of its definition (reject x >= UINT64_MAX - UINT64_MAX % n), including
     * bounds where the rejection is frequent */
    const uint64_t bounds[] = {2,
                               3,
                               7,
                               10000,
                               (1ull << 32) + 1,
                               1ull << 63,
                               (1ull << 63) + 5,
                               UINT64_MAX / 3 * 2,
                               UINT64_MAX - 1,
                               UINT64_MAX};
    for (size_t b = 0; b < sizeof bounds / sizeof *bounds; b++) {
        const uint64_t n = bounds[b];
        mv_rng_seed(&r2, 5 + b);
        mv_rng_seed(&r3, 5 + b);
        int same = 1;
        for (int i = 0; i < 2000; i++) {
            uint64_t x, limit = UINT64_MAX - UINT64_MAX % n;
            do x = mv_rng_u64(&r3);
            while (x >= limit);
            uint64_t got = mv_rng_below(&r2, n);
            same &= got == x % n && got < n;
        }
        CHECK(same, "below(%llu): the definition's draws", (unsigned long long)n);
    }
    /* a shuffle in parts of any sizes is the shuffle in one go */
    static int whole[1000], parts[1000];
    for (int i = 0; i < 1000; i++) whole[i] = parts[i] = i;
    mv_rng_seed(&r2, 11);
    mv_rng_seed(&r3, 11);
    mv_rng_shuffle(&r2, whole, 1000);
    int at = 999, calls = 0;
    while (at > 0) at = mv_rng_shuffle_part(&r3, parts, at, 1 + calls++ % 13);
    CHECK(memcmp(whole, parts, sizeof whole) == 0 && mv_rng_u64(&r2) == mv_rng_u64(&r3),
          "shuffle in %d parts differs", calls);
    CHECK(mv_rng_shuffle_part(&r3, parts, 0, 5) == 0 && mv_rng_shuffle_part(&r3, parts, 7, 0) == 7,
          "shuffle part: nothing to do");

    /* atomic write: content lands, no temp file left */
    char path[] = "test_core_atomic.txt";
    CHECK_OK(mv_write_file_atomic(path, "abc", 3));
    char *data;
    size_t len;
    CHECK_OK(mv_read_file(path, &data, &len));
    CHECK(len == 3 && memcmp(data, "abc", 3) == 0, "content");
    mv_free(data);
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(tmp, F_OK) != 0, "temp file removed");
    unlink(path);
    CHECK_ERR(mv_read_file("/nonexistent/x", &data, &len), MEDVLM_ERR_IO, "/nonexistent/x");
    /* into a sub-folder (the folder is synced after the rename); a failed save leaves nothing */
    mkdir("test_core_dir", 0755);
    CHECK_OK(mv_write_file_atomic("test_core_dir/a.txt", "xy", 2));
    CHECK(mv_is_file("test_core_dir/a.txt"), "saved in a sub-folder");
    unlink("test_core_dir/a.txt");
    CHECK_ERR(mv_write_file_atomic("test_core_dir", "xy", 2), MEDVLM_ERR_IO, "rename");
    snprintf(tmp, sizeof tmp, "test_core_dir.tmp.%ld", (long)getpid());
    CHECK(access(tmp, F_OK) != 0, "temp file removed after a failed rename");

    /* a FIFO, a folder, a device: refused before open() (a FIFO would block it), by kind */
    const char *fifo = "test_core_fifo";
    unlink(fifo);
    CHECK(mkfifo(fifo, 0644) == 0, "mkfifo");
    CHECK_ERR(mv_read_file(fifo, &data, &len), MEDVLM_ERR_IO, "test_core_fifo: is a FIFO");
    void *map;
    CHECK_ERR(mv_map_file(fifo, &map, &len), MEDVLM_ERR_IO, "test_core_fifo: is a FIFO");
    CHECK(mv_path_exists(fifo) && !mv_is_file(fifo) && !strcmp(mv_path_kind(fifo), "is a FIFO"),
          "kind of a FIFO: %s", mv_path_kind(fifo));
    unlink(fifo);
    CHECK_ERR(mv_read_file("test_core_dir", &data, &len), MEDVLM_ERR_IO, "is a directory");
    CHECK_ERR(mv_map_file("/dev/null", &map, &len), MEDVLM_ERR_IO, "/dev/null: is a device");
    CHECK(!strcmp(mv_path_kind("/nonexistent/x"), "does not exist"), "kind of nothing");
    rmdir("test_core_dir");

    /* the non-finite scan: every position of a block and its tail, NaN, +-inf; the largest and
     * the subnormal floats are finite */
    float v[200];
    for (int i = 0; i < 200; i++) v[i] = i % 3 ? 3.4028235e38f : 1e-45f;
    CHECK(mv_find_nonfinite(v, 200) == 200, "all finite");
    int scan_ok = 1;
    const float bad_values[3] = {NAN, INFINITY, -INFINITY};
    for (int pos = 0; pos < 200; pos++)
        for (int b = 0; b < 3; b++) {
            float keep = v[pos];
            v[pos] = bad_values[b];
            scan_ok &= mv_find_nonfinite(v, 200) == (size_t)pos &&
                       mv_find_nonfinite(v, (size_t)pos) == (size_t)pos;
            v[pos] = keep;
        }
    CHECK(scan_ok, "mv_find_nonfinite finds the first NaN/inf at every index");
    return check_summary();
}
