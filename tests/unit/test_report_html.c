/* test_report_html.c - the HTML report: the strings of the text table, escaping, the parts
 * drawn only when given, the gallery bound, the thumbnails, well-formed markup, no script,
 * and nothing written on a refused call. Also the thumbnail/JPEG helpers and base64. */
#include "check.h"
#include "core/core.h"
#include "eval/eval.h"
#include "image/image.h"

#include <unistd.h>

static char *slurp(const char *path)
{
    char *s = NULL;
    size_t n;
    return mv_read_file(path, &s, &n) == MEDVLM_OK ? s : NULL;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Well-formed markup: every element closed in order (void elements written as <x/>), no stray
 * '<' or '&' outside the five XML references and numeric ones. 1 when it holds. */
static int well_formed(const char *s)
{
    char stack[64][32];
    int depth = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '&') {
            const char *ok[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&#"};
            int good = 0;
            for (int i = 0; i < 5; i++) good |= strncmp(p, ok[i], strlen(ok[i])) == 0;
            if (!good) return fprintf(stderr, "stray '&' at %.20s\n", p), 0;
            continue;
        }
        if (*p != '<') continue;
        if (strncmp(p, "<!DOCTYPE", 9) == 0) {
            p = strchr(p, '>');
            if (!p) return 0;
            continue;
        }
        const char *end = strchr(p, '>');
        if (!end) return 0;
        int closing = p[1] == '/', selfclose = end[-1] == '/';
        const char *n0 = p + 1 + closing;
        size_t len = strcspn(n0, " \t\n/>");
        if (len == 0 || len >= 32) return fprintf(stderr, "bad tag at %.20s\n", p), 0;
        for (const char *q = n0 + len; q < end; q++)
            if (*q == '<') return fprintf(stderr, "'<' inside a tag at %.30s\n", p), 0;
        if (closing) {
            if (depth == 0 || strncmp(stack[depth - 1], n0, len) || stack[depth - 1][len])
                return fprintf(stderr, "</%.*s> closes <%s>\n", (int)len, n0,
                               depth ? stack[depth - 1] : "(none)"),
                       0;
            depth--;
        } else if (!selfclose) {
            if (depth == 64) return 0;
            memcpy(stack[depth], n0, len);
            stack[depth++][len] = '\0';
        }
        p = end;
    }
    if (depth) fprintf(stderr, "<%s> never closed\n", stack[depth - 1]);
    return depth == 0;
}

/* The value after `label` in the text table, e.g. "79.17 %" after "balanced accuracy". */
static void text_value(const char *table, const char *label, char *out, size_t cap)
{
    const char *p = strstr(table, label);
    out[0] = '\0';
    if (!p) return;
    p += strlen(label);
    while (*p == ' ') p++;
    size_t n = strcspn(p, "\n");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
}

static void test_helpers(void)
{
    struct mv_eval_buf b = {0};
    mv_eval_buf_base64(&b, (const uint8_t *)"foobar", 6);
    mv_eval_buf_put(&b, " ", 1);
    mv_eval_buf_base64(&b, (const uint8_t *)"fooba", 5);
    mv_eval_buf_put(&b, " ", 1);
    mv_eval_buf_base64(&b, (const uint8_t *)"f", 1);
    mv_eval_buf_put(&b, " ", 1);
    mv_eval_buf_html(&b, "a<b>&\"c'");
    char *s = mv_eval_buf_take(&b);
    CHECK(s && strcmp(s, "Zm9vYmFy Zm9vYmE= Zg== a&lt;b&gt;&amp;&quot;c&#39;") == 0, "got '%s'",
          s ? s : "(null)");
    mv_free(s);

    /* a 300 x 150 image fits 100 x 50; a JPEG of it decodes back to that size */
    struct medvlm_image img = {0}, th = {0}, back = {0};
    CHECK_OK(mv_image_alloc("t", 300, 150, &img));
    for (int i = 0; i < 300 * 150 * 3; i++) img.rgb[i] = (uint8_t)(i % 3 == 0 ? 200 : 40);
    CHECK_OK(mv_image_thumbnail(&img, 100, &th));
    CHECK(th.width == 100 && th.height == 50, "thumbnail %d x %d", th.width, th.height);
    uint8_t *jpg = NULL;
    size_t len = 0;
    CHECK_OK(mv_jpeg_encode(&th, 85, &jpg, &len));
    CHECK_OK(medvlm_image_decode_memory(jpg, len, "thumb", NULL, &back));
    CHECK(back.width == 100 && back.height == 50, "decoded %d x %d", back.width, back.height);
    CHECK(abs((int)back.rgb[0] - 200) < 8 && abs((int)back.rgb[1] - 40) < 8, "colour %d %d",
          back.rgb[0], back.rgb[1]);
    medvlm_image_free(&th); /* the call below starts from an empty out-parameter */
    CHECK_ERR(mv_image_thumbnail(&img, 0, &th), MEDVLM_ERR_ARG, "side");
    mv_free(jpg);
    medvlm_image_free(&back);
    medvlm_image_free(&th);
    medvlm_image_free(&img);
}

static void test_report(void)
{
    static const int64_t refs[8] = {0, 0, 1, 1, 2, 2, 2, 3};
    static const int64_t preds[8] = {0, 1, 1, 1, 2, 0, 2, 3};
    const char *classes[4] = {"benign", "grade <3> & \"4\"", "grade 4", "grade 5"};
    struct medvlm_metrics m;
    CHECK_OK(medvlm_metrics_compute(refs, preds, 8, 4, &m));
    char *table = NULL;
    CHECK_OK(medvlm_metrics_format_table(&m, classes, &table));

    char dir[] = "/tmp/medvlm-report-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    /* one real image (a JPEG written here) and one missing */
    struct medvlm_image img = {0};
    CHECK_OK(mv_image_alloc("t", 64, 48, &img));
    for (int i = 0; i < 64 * 48 * 3; i++) img.rgb[i] = (uint8_t)(i * 7);
    uint8_t *jpg = NULL;
    size_t len = 0;
    CHECK_OK(mv_jpeg_encode(&img, 90, &jpg, &len));
    char *tile = mv_path_join(dir, "tile.jpg"), *path = mv_path_join(dir, "r.html");
    CHECK_OK(mv_write_file_atomic(tile, jpg, len));
    const char *names[8] = {"a", "<script>x</script>.png", "c", "d", "e", "f", "g", "h"};
    const char *paths[8] = {0};
    paths[1] = tile;
    paths[5] = "/nonexistent/medvlm/f.png";
    float probs[8 * 4];
    for (int i = 0; i < 32; i++) probs[i] = 0.25f;
    probs[1 * 4 + 1] = 0.625f;
    const float losses[5] = {1.5f, 1.2f, 0.9f, 0.8f, 0.75f};
    const char *methods[2] = {"clap", "lp & <b>"};
    const long seeds[3] = {1, 2, 3};
    const double aca[6] = {80.125, 82.0, 79.0, 70.0, 71.5, 72.25};
    struct medvlm_report r = {.title = "medvlm <test>",
                              .summary = "zero-shot, 8 images, 4 classes",
                              .metrics = &m,
                              .class_names = classes,
                              .losses = losses,
                              .n_losses = 5,
                              .n_methods = 2,
                              .n_seeds = 3,
                              .methods = methods,
                              .seeds = seeds,
                              .seed_aca = aca,
                              .n = 8,
                              .refs = refs,
                              .preds = preds,
                              .probs = probs,
                              .image_names = names,
                              .image_paths = paths};
    CHECK_OK(medvlm_report_write_html(path, &r));
    char *h = slurp(path);
    CHECK(h != NULL, "report not written");
    if (h && table) {
        CHECK(well_formed(h), "the report is not well-formed");
        CHECK(!strstr(h, "<script"), "a script element");
        CHECK(!strstr(h, "http://") || count(h, "http://") == count(h, "xmlns=\"http://"),
              "only namespace URIs, nothing fetched");
        char want[64], cell[96];
        const char *labels[4] = {"balanced accuracy", "\naccuracy", "macro-F1", "quadratic kappa"};
        const char *ids[4] = {"balanced-accuracy", "accuracy", "macro-f1", "quadratic-kappa"};
        for (int i = 0; i < 4; i++) {
            text_value(table, labels[i], want, sizeof want);
            snprintf(cell, sizeof cell, "id=\"%s\">%s</td>", ids[i], want);
            CHECK(want[0] && strstr(h, cell), "the text's %s '%s' is not in the report", labels[i],
                  want);
        }
        CHECK(strstr(h, "id=\"balanced-accuracy\">79.17 %</td>"), "ACA 79.17");
        /* per-class strings as the text table prints them (%.3f) */
        CHECK(strstr(h, "<td>grade 4</td><td class=\"num\">0.667</td><td class=\"num\">1.000"
                        "</td><td class=\"num\">0.800</td><td class=\"num\">3</td>"),
              "grade 4 row");
        CHECK(strstr(h, "grade &lt;3&gt; &amp; &quot;4&quot;") && !strstr(h, "grade <3>"),
              "class names escaped");
        CHECK(strstr(h, "&lt;script&gt;x&lt;/script&gt;.png"), "image names escaped");
        CHECK(strstr(h, "lp &amp; &lt;b&gt;"), "method names escaped");
        CHECK(count(h, "data:image/jpeg;base64,") == 1, "one thumbnail (the missing one has none)");
        CHECK(count(h, "<figure>") == 2, "two misclassified images");
        CHECK(strstr(h, "2 of 8 misclassified"), "misclassified count");
        CHECK(strstr(h, "(p 0.625)"), "the predicted class's probability");
        CHECK(strstr(h, "id=\"loss\"") && strstr(h, "loss 1.5000 &#8594; 0.7500"), "loss curve");
        /* adapt's seed table: mean 80.375 -> 80.38 (half even on the binary value), std */
        CHECK(strstr(h, "<td>clap</td><td class=\"num\">80.38</td>"), "seed mean");
        CHECK(strstr(h, "<td class=\"num\">80.12</td>"), "per-seed 80.125 rounds half to even");
        CHECK(strstr(h, "<title>medvlm &lt;test&gt;</title>"), "title escaped");
        /* heatmap: the counts in the cells */
        CHECK(count(h, "<rect x=") >= 16, "16 heatmap cells");
    }
    mv_free(h);

    /* the gallery bound, and parts left out when not given */
    r.gallery_max = 1;
    r.losses = NULL;
    r.n_losses = 0;
    r.n_methods = r.n_seeds = 0;
    CHECK_OK(medvlm_report_write_html(path, &r));
    h = slurp(path);
    if (h) {
        CHECK(count(h, "<figure>") == 1, "gallery_max 1: %d figures", count(h, "<figure>"));
        CHECK(strstr(h, "the first ones in order are shown"), "says it is cut");
        CHECK(!strstr(h, "id=\"loss\"") && !strstr(h, "id=\"seeds\""), "no loss, no seeds");
        CHECK(well_formed(h), "well-formed");
    }
    mv_free(h);

    /* refused calls write nothing */
    char *none = mv_path_join(dir, "none.html");
    r.n_losses = 3; /* without losses */
    CHECK_ERR(medvlm_report_write_html(none, &r), MEDVLM_ERR_ARG, "inconsistent");
    r.n_losses = 0;
    struct medvlm_metrics empty = {0};
    r.metrics = &empty;
    CHECK_ERR(medvlm_report_write_html(none, &r), MEDVLM_ERR_ARG, "metrics are empty");
    CHECK(access(none, F_OK) != 0, "nothing written on failure");

    unlink(tile);
    unlink(path);
    rmdir(dir);
    mv_free(none);
    mv_free(tile);
    mv_free(path);
    mv_free(jpg);
    medvlm_image_free(&img);
    medvlm_free(table);
    medvlm_metrics_free(&m);
}

int main(void)
{
    test_helpers();
    test_report();
    return check_summary();
}
