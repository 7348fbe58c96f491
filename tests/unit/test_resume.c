/* test_resume.c - the resume log survives torn writes and refuses another job's log. */
#include "check.h"
#include "io/io.h"

#include <fcntl.h>
#include <unistd.h>

int main(void)
{
    const char *out = "resume-test.safetensors";
    const int n = 10, d = 3, batch = 4; /* batches: [0,4) [4,8) [8,10) */
    float e[40];
    uint8_t ok[4] = {1, 1, 0, 1};
    for (int i = 0; i < 40; i++) e[i] = (float)i * 0.5f;
    struct mv_resume *r;
    CHECK_OK(mv_resume_open(out, "model=a images=xyz", n, d, batch, 0, &r));
    CHECK(mv_resume_batches(r) == 3 && mv_resume_done_count(r) == 0, "fresh");
    CHECK_OK(mv_resume_append(r, 0, ok, e));
    CHECK_OK(mv_resume_append(r, 2, ok, e + 12)); /* last batch holds 2 items */
    mv_resume_free(r);

    /* a torn record at the end (killed mid-write) */
    int fd = open("resume-test.safetensors.partial", O_WRONLY | O_APPEND);
    CHECK(fd >= 0 && write(fd, "\x01\x00\x00\x00\x04\x00\x00\x00\x01\x01", 10) == 10, "tear");
    close(fd);

    CHECK_OK(mv_resume_open(out, "model=a images=xyz", n, d, batch, 1, &r));
    if (r) {
        CHECK(mv_resume_done_count(r) == 2 && mv_resume_is_done(r, 0) && !mv_resume_is_done(r, 1) &&
                  mv_resume_is_done(r, 2),
              "replayed two batches");
        CHECK(memcmp(mv_resume_embeds(r), e, 12 * sizeof(float)) == 0, "batch 0 rows");
        CHECK(memcmp(mv_resume_embeds(r) + 8 * d, e + 12, 6 * sizeof(float)) == 0, "batch 2 rows");
        CHECK(mv_resume_ok(r)[2] == 0 && mv_resume_ok(r)[3] == 1, "ok flags");
        CHECK_OK(mv_resume_append(r, 1, ok, e + 24));
        mv_resume_free(r);
    }
    CHECK_OK(mv_resume_open(out, "model=a images=xyz", n, d, batch, 1, &r));
    if (r) {
        CHECK(mv_resume_done_count(r) == 3, "torn bytes truncated, new record kept");
        CHECK(memcmp(mv_resume_embeds(r) + 4 * d, e + 24, 12 * sizeof(float)) == 0, "batch 1 rows");
        mv_resume_free(r);
    }
    CHECK_ERR(mv_resume_open(out, "model=b images=xyz", n, d, batch, 1, &r), MEDVLM_ERR_ARG,
              "different job");
    CHECK_ERR(mv_resume_open(out, "model=a images=xyz", n, d, 5, 1, &r), MEDVLM_ERR_ARG,
              "different job");
    CHECK_OK(mv_resume_open(out, "model=b images=xyz", n, d, batch, 0, &r));
    if (r) {
        CHECK(mv_resume_done_count(r) == 0, "no resume starts over");
        mv_resume_remove(r);
        mv_resume_free(r);
    }
    CHECK(access("resume-test.safetensors.partial", F_OK) != 0, "removed");
    return check_summary();
}
