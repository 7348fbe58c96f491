/*
 * report.c - medvlm_report_write_html: one self-contained HTML page of a run's results.
 * Inline SVG and CSS, thumbnails as JPEG data: URIs, no script and nothing fetched, so the
 * file opens offline and can be mailed. The page is also well-formed XML (every element
 * closed, only the five XML character references), so that `xmllint --noout` checks it.
 *
 * The numbers are written with mv_eval_buf_score and the decimals of
 * medvlm_metrics_format_table (two for percentages, three per class, four for macro-F1 and
 * kappa): the page shows the strings the text report prints.
 *
 * Glossary: K classes, n samples, S seeds, M methods.
 */
#include "task.h"

#include "../eval/eval.h"
#include "../image/image.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define GALLERY_MAX 48
#define THUMB_SIZE  112

static const char *style =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;"
    "max-width:1100px;color:#1b1f24;padding:0 1em}"
    "h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:2em;"
    "border-bottom:1px solid #d0d7de;padding-bottom:.2em}"
    "p.summary{color:#57606a;margin-top:0}"
    "table{border-collapse:collapse;margin:.5em 0}"
    "td,th{padding:.25em .8em;border-bottom:1px solid #eaeef2;text-align:left}"
    "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}"
    "svg text{font-family:system-ui,sans-serif;font-size:12px;fill:#1b1f24}"
    ".gallery{display:flex;flex-wrap:wrap;gap:12px}"
    "figure{margin:0;width:150px;font-size:12px;word-break:break-all}"
    "figure img{display:block;max-width:100%;border:1px solid #d0d7de}"
    ".noimg{width:112px;height:112px;background:#f6f8fa;border:1px dashed #d0d7de}"
    ".true{color:#1a7f37}.pred{color:#cf222e}"
    "footer{margin-top:3em;color:#8c959f;font-size:.85em}";

/* Name of class k: the caller's, else the label value (as report.c). buf holds the latter. */
static const char *cname(const struct medvlm_report *r, int k, char *buf, size_t cap)
{
    if (r->class_names && r->class_names[k]) return r->class_names[k];
    const struct medvlm_metrics *m = r->metrics;
    snprintf(buf, cap, "%lld", (long long)(m && m->labels ? m->labels[k] : k));
    return buf;
}

static void html(struct mv_eval_buf *b, const char *s)
{
    mv_eval_buf_html(b, s);
}

/* Approximate width in pixels of a label drawn at 12px, capped. */
static int text_px(const char *s, int cap)
{
    int w = (int)strlen(s) * 7 + 8;
    return w > cap ? cap : w;
}

static void metrics_tables(struct mv_eval_buf *b, const struct medvlm_report *r)
{
    const struct medvlm_metrics *m = r->metrics;
    char nb[32];
    mv_eval_buf_printf(b,
                       "<section id=\"metrics\"><h2>Metrics</h2>\n<table class=\"overall\">\n"
                       "<tr><th>samples</th><td class=\"num\" id=\"samples\">%d</td></tr>\n",
                       m->n_samples);
    static const struct {
        const char *label, *id, *unit;
        int decimals;
    } rows[] = {{"balanced accuracy", "balanced-accuracy", " %", 2},
                {"accuracy", "accuracy", " %", 2},
                {"macro-F1", "macro-f1", "", 4},
                {"quadratic kappa", "quadratic-kappa", "", 4}};
    const double vals[] = {m->balanced_accuracy, m->accuracy, m->macro_f1, m->quadratic_kappa};
    for (int i = 0; i < 4; i++) {
        mv_eval_buf_printf(b, "<tr><th>%s</th><td class=\"num\" id=\"%s\">", rows[i].label,
                           rows[i].id);
        mv_eval_buf_score(b, vals[i], 0, rows[i].decimals);
        mv_eval_buf_printf(b, "%s</td></tr>\n", rows[i].unit);
    }
    mv_eval_buf_printf(b, "</table>\n");
    if (m->n_absent > 0)
        mv_eval_buf_printf(b,
                           "<p>%d class(es) without true samples: recall n/a, left out of "
                           "balanced accuracy.</p>\n",
                           m->n_absent);
    mv_eval_buf_printf(b, "<table class=\"per-class\">\n<tr><th>class</th><th class=\"num\">"
                          "recall</th><th class=\"num\">precision</th><th class=\"num\">F1</th>"
                          "<th class=\"num\">support</th></tr>\n");
    for (int c = 0; c < m->n_classes; c++) {
        mv_eval_buf_printf(b, "<tr><td>");
        html(b, cname(r, c, nb, sizeof nb));
        const double v[3] = {m->per_class_recall[c], m->per_class_precision[c], m->per_class_f1[c]};
        for (int j = 0; j < 3; j++) {
            mv_eval_buf_printf(b, "</td><td class=\"num\">");
            mv_eval_buf_score(b, v[j], 0, 3);
        }
        mv_eval_buf_printf(b, "</td><td class=\"num\">%lld</td></tr>\n", (long long)m->support[c]);
    }
    mv_eval_buf_printf(b, "</table></section>\n");
}

/* The confusion matrix: cell (r, c) shaded by its share of row r (the recall view), with the
 * count written in it. */
static void confusion_svg(struct mv_eval_buf *b, const struct medvlm_report *r)
{
    const struct medvlm_metrics *m = r->metrics;
    const int K = m->n_classes;
    char nb[32];
    int cell = 900 / K;
    cell = cell > 48 ? 48 : cell < 10 ? 10 : cell;
    int lw = 40;
    for (int c = 0; c < K; c++) lw = MV_MAX(lw, text_px(cname(r, c, nb, sizeof nb), 220));
    const int x0 = lw + 30, y0 = lw + 10, W = x0 + K * cell + 10, H = y0 + K * cell + 30;
    mv_eval_buf_printf(b,
                       "<section id=\"confusion\"><h2>Confusion matrix</h2>\n"
                       "<p>Rows: true class; columns: predicted class; shade: share of the "
                       "row.</p>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
                       "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n",
                       W, H, W, H);
    for (int c = 0; c < K; c++) {
        const char *name = cname(r, c, nb, sizeof nb);
        mv_eval_buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", x0 - 6,
                           y0 + c * cell + cell / 2 + 4);
        html(b, name);
        mv_eval_buf_printf(b, "</text>\n<text transform=\"translate(%d,%d) rotate(-60)\">",
                           x0 + c * cell + cell / 2 + 4, y0 - 6);
        html(b, name);
        mv_eval_buf_printf(b, "</text>\n");
    }
    for (int i = 0; i < K; i++) {
        for (int j = 0; j < K; j++) {
            int64_t v = m->confusion[(size_t)i * K + j];
            double f = m->support[i] > 0 ? (double)v / (double)m->support[i] : 0.0;
            int R = (int)lround(255 - f * (255 - 8)), G = (int)lround(255 - f * (255 - 81)),
                B = (int)lround(255 - f * (255 - 156));
            mv_eval_buf_printf(b,
                               "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                               "fill=\"rgb(%d,%d,%d)\" stroke=\"#d0d7de\"><title>",
                               x0 + j * cell, y0 + i * cell, cell, cell, R, G, B);
            html(b, cname(r, i, nb, sizeof nb));
            mv_eval_buf_printf(b, " as ");
            html(b, cname(r, j, nb, sizeof nb));
            mv_eval_buf_printf(b, ": %lld</title></rect>\n", (long long)v);
            if (cell >= 20)
                mv_eval_buf_printf(b,
                                   "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" "
                                   "style=\"fill:%s\">%lld</text>\n",
                                   x0 + j * cell + cell / 2, y0 + i * cell + cell / 2 + 4,
                                   f > 0.5 ? "#ffffff" : "#1b1f24", (long long)v);
        }
    }
    mv_eval_buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">predicted</text>\n",
                       x0 + K * cell / 2, y0 + K * cell + 20);
    mv_eval_buf_printf(b, "</svg></section>\n");
}

/* Per-class recall and precision as horizontal bars on [0, 1], the value written beside. */
static void bars_svg(struct mv_eval_buf *b, const struct medvlm_report *r)
{
    const struct medvlm_metrics *m = r->metrics;
    const int K = m->n_classes, bw = 360, row = 34;
    char nb[32];
    int lw = 40;
    for (int c = 0; c < K; c++) lw = MV_MAX(lw, text_px(cname(r, c, nb, sizeof nb), 220));
    const int W = lw + bw + 80, H = K * row + 30;
    mv_eval_buf_printf(b,
                       "<section id=\"per-class\"><h2>Per-class recall and precision</h2>\n"
                       "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                       "viewBox=\"0 0 %d %d\" role=\"img\">\n"
                       "<rect x=\"%d\" y=\"4\" width=\"10\" height=\"10\" fill=\"#0969da\"/>"
                       "<text x=\"%d\" y=\"13\">recall</text>"
                       "<rect x=\"%d\" y=\"4\" width=\"10\" height=\"10\" fill=\"#fb8f44\"/>"
                       "<text x=\"%d\" y=\"13\">precision</text>\n",
                       W, H, W, H, lw, lw + 14, lw + 80, lw + 94);
    for (int c = 0; c < K; c++) {
        int y = 22 + c * row;
        mv_eval_buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", lw - 6, y + 17);
        html(b, cname(r, c, nb, sizeof nb));
        mv_eval_buf_printf(b, "</text>\n");
        const double v[2] = {m->per_class_recall[c], m->per_class_precision[c]};
        const char *col[2] = {"#0969da", "#fb8f44"};
        for (int j = 0; j < 2; j++) {
            double f = isnan(v[j]) ? 0 : v[j] < 0 ? 0 : v[j] > 1 ? 1 : v[j];
            int yy = y + 2 + j * 14;
            mv_eval_buf_printf(b,
                               "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"12\" "
                               "fill=\"%s\"/><text x=\"%.1f\" y=\"%d\">",
                               lw, yy, f * bw, col[j], lw + f * bw + 4, yy + 10);
            mv_eval_buf_score(b, v[j], 0, 3);
            mv_eval_buf_printf(b, "</text>\n");
        }
    }
    mv_eval_buf_printf(b, "</svg></section>\n");
}

/* The training loss per step as a polyline (at most ~2000 points drawn). */
static void loss_svg(struct mv_eval_buf *b, const struct medvlm_report *r)
{
    const long n = r->n_losses;
    const int W = 640, H = 260, x0 = 60, y0 = 12, pw = W - x0 - 16, ph = H - y0 - 40;
    double lo = INFINITY, hi = -INFINITY;
    for (long i = 0; i < n; i++)
        if (isfinite(r->losses[i])) {
            lo = fmin(lo, r->losses[i]);
            hi = fmax(hi, r->losses[i]);
        }
    if (!isfinite(lo)) return; /* nothing finite to draw */
    if (hi - lo < 1e-12) {
        lo -= 0.5;
        hi += 0.5;
    }
    long stride = n > 2000 ? (n + 1999) / 2000 : 1;
    mv_eval_buf_printf(b,
                       "<section id=\"loss\"><h2>Training loss</h2>\n<p>%ld steps, loss %.4f "
                       "&#8594; %.4f.</p>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
                       "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n"
                       "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
                       "stroke=\"#d0d7de\"/>\n"
                       "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.4g</text>\n"
                       "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.4g</text>\n"
                       "<text x=\"%d\" y=\"%d\">1</text><text x=\"%d\" y=\"%d\" "
                       "text-anchor=\"end\">%ld</text>\n"
                       "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">step</text>\n"
                       "<polyline fill=\"none\" stroke=\"#0969da\" stroke-width=\"1.5\" points=\"",
                       n, (double)r->losses[0], (double)r->losses[n - 1], W, H, W, H, x0, y0, pw,
                       ph, x0 - 4, y0 + 10, hi, x0 - 4, y0 + ph, lo, x0, y0 + ph + 16, x0 + pw,
                       y0 + ph + 16, n, x0 + pw / 2, y0 + ph + 32);
    for (long i = 0; i < n; i += stride) {
        long k = i + stride >= n ? n - 1 : i; /* the last point is always drawn */
        if (!isfinite(r->losses[k])) continue;
        double x = x0 + (n > 1 ? (double)k / (double)(n - 1) : 0.5) * pw;
        double y = y0 + (hi - r->losses[k]) / (hi - lo) * ph;
        mv_eval_buf_printf(b, "%.1f,%.1f ", x, y);
        if (k == n - 1) break;
    }
    mv_eval_buf_printf(b, "\"/>\n</svg></section>\n");
}

static void mean_std(const double *v, int n, double *mean, double *std)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *std = sqrt(q / n);
}

/* Several seeds: the table `medvlm adapt` prints (mean, population std, each seed, rounded
 * as it rounds them) and a strip of dots per method with its mean marked. */
static void seeds_section(struct mv_eval_buf *b, const struct medvlm_report *r)
{
    const int M = r->n_methods, S = r->n_seeds;
    mv_eval_buf_printf(b,
                       "<section id=\"seeds\"><h2>Balanced accuracy over %d seed%s</h2>\n"
                       "<table><tr><th>method</th><th class=\"num\">ACA %%</th>"
                       "<th class=\"num\">std</th>",
                       S, S == 1 ? "" : "s");
    for (int s = 0; s < S; s++)
        mv_eval_buf_printf(b, "<th class=\"num\">seed %ld</th>", r->seeds ? r->seeds[s] : (long)s);
    mv_eval_buf_printf(b, "</tr>\n");
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < M; i++) {
        const double *v = r->seed_aca + (size_t)i * S; // (S)
        double mean, sd;
        mean_std(v, S, &mean, &sd);
        mv_eval_buf_printf(b, "<tr><td>");
        html(b, r->methods && r->methods[i] ? r->methods[i] : "?");
        mv_eval_buf_printf(b, "</td><td class=\"num\">%.2f</td><td class=\"num\">%.2f</td>",
                           medvlm_round_half_even(mean, 2), medvlm_round_half_even(sd, 2));
        for (int s = 0; s < S; s++) {
            mv_eval_buf_printf(b, "<td class=\"num\">%.2f</td>", medvlm_round_half_even(v[s], 2));
            if (isfinite(v[s])) {
                lo = fmin(lo, v[s]);
                hi = fmax(hi, v[s]);
            }
        }
        mv_eval_buf_printf(b, "</tr>\n");
    }
    mv_eval_buf_printf(b, "</table>\n");
    if (isfinite(lo)) {
        lo = floor(lo - 1);
        hi = ceil(hi + 1);
        int lw = 40;
        for (int i = 0; i < M; i++)
            lw = MV_MAX(lw, text_px(r->methods && r->methods[i] ? r->methods[i] : "?", 200));
        const int pw = 480, row = 26, W = lw + pw + 20, H = M * row + 36;
        mv_eval_buf_printf(b,
                           "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                           "viewBox=\"0 0 %d %d\" role=\"img\">\n"
                           "<text x=\"%d\" y=\"%d\">%.0f %%</text><text x=\"%d\" y=\"%d\" "
                           "text-anchor=\"end\">%.0f %%</text>\n",
                           W, H, W, H, lw, H - 6, lo, lw + pw, H - 6, hi);
        for (int i = 0; i < M; i++) {
            const double *v = r->seed_aca + (size_t)i * S; // (S)
            int y = 10 + i * row + row / 2;
            double mean, sd;
            mean_std(v, S, &mean, &sd);
            mv_eval_buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", lw - 6, y + 4);
            html(b, r->methods && r->methods[i] ? r->methods[i] : "?");
            mv_eval_buf_printf(b,
                               "</text><line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" "
                               "stroke=\"#eaeef2\"/>\n",
                               lw, lw + pw, y, y);
            for (int s = 0; s < S; s++)
                if (isfinite(v[s]))
                    mv_eval_buf_printf(b,
                                       "<circle cx=\"%.1f\" cy=\"%d\" r=\"4\" fill=\"#0969da\" "
                                       "fill-opacity=\"0.6\"/>\n",
                                       lw + (v[s] - lo) / (hi - lo) * pw, y);
            if (isfinite(mean))
                mv_eval_buf_printf(b,
                                   "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" "
                                   "stroke=\"#cf222e\" stroke-width=\"2\"/>\n",
                                   lw + (mean - lo) / (hi - lo) * pw,
                                   lw + (mean - lo) / (hi - lo) * pw, y - 9, y + 9);
        }
        mv_eval_buf_printf(b, "</svg>\n");
    }
    mv_eval_buf_printf(b, "</section>\n");
}

/* One thumbnail as an <img> with a JPEG data: URI; nothing when the file cannot be read. */
static int thumbnail(struct mv_eval_buf *b, const char *path, int side)
{
    struct medvlm_decode_limits lim;
    medvlm_decode_limits_default(&lim);
    lim.max_pixels = (int64_t)8192 * 8192;
    struct medvlm_image img = {0}, th = {0};
    uint8_t *jpg = NULL;
    size_t len = 0;
    int ok = !medvlm_image_decode_file(path, &lim, &img) && !mv_image_thumbnail(&img, side, &th) &&
             !mv_jpeg_encode(&th, 85, &jpg, &len);
    if (ok) {
        mv_eval_buf_printf(b,
                           "<img width=\"%d\" height=\"%d\" alt=\"\" src=\"data:image/jpeg;"
                           "base64,",
                           th.width, th.height);
        mv_eval_buf_base64(b, jpg, len);
        mv_eval_buf_printf(b, "\"/>");
    }
    mv_free(jpg);
    medvlm_image_free(&th);
    medvlm_image_free(&img);
    mv_err_clear(); /* a missing image is not the report's failure */
    return ok;
}

static void gallery(struct mv_eval_buf *b, const struct medvlm_report *r, int K)
{
    const int cap = r->gallery_max > 0 ? r->gallery_max : GALLERY_MAX;
    const int side = r->thumb_size > 0 ? r->thumb_size : THUMB_SIZE;
    int wrong = 0, shown = 0;
    char nb[2][32];
    for (int i = 0; i < r->n; i++) wrong += r->refs[i] != r->preds[i];
    mv_eval_buf_printf(b,
                       "<section id=\"misclassified\"><h2>Misclassified images</h2>\n"
                       "<p>%d of %d misclassified%s.</p>\n<div class=\"gallery\">\n",
                       wrong, r->n, wrong > cap ? "; the first ones in order are shown" : "");
    for (int i = 0; i < r->n && shown < cap; i++) {
        int64_t t = r->refs[i], p = r->preds[i];
        if (t == p) continue;
        shown++;
        mv_eval_buf_printf(b, "<figure>");
        if (!r->image_paths || !r->image_paths[i] || !thumbnail(b, r->image_paths[i], side))
            mv_eval_buf_printf(b, "<div class=\"noimg\"></div>");
        mv_eval_buf_printf(b, "<figcaption>");
        if (r->image_names && r->image_names[i])
            html(b, r->image_names[i]);
        else
            mv_eval_buf_printf(b, "#%d", i);
        mv_eval_buf_printf(b, "<br/><span class=\"true\">true: ");
        html(b, t >= 0 && t < K ? cname(r, (int)t, nb[0], sizeof nb[0]) : "?");
        mv_eval_buf_printf(b, "</span><br/><span class=\"pred\">predicted: ");
        html(b, p >= 0 && p < K ? cname(r, (int)p, nb[1], sizeof nb[1]) : "?");
        if (r->probs && p >= 0 && p < K)
            mv_eval_buf_printf(b, " (p %.3f)", (double)r->probs[(size_t)i * K + p]);
        mv_eval_buf_printf(b, "</span></figcaption></figure>\n");
    }
    mv_eval_buf_printf(b, "</div></section>\n");
}

enum medvlm_status medvlm_report_write_html(const char *path, const struct medvlm_report *r)
{
    if (!path || !r) return mv_err(MEDVLM_ERR_ARG, "html report: path and report must be given");
    const struct medvlm_metrics *m = r->metrics;
    if (m && (m->n_classes <= 0 || !m->confusion || !m->support || !m->per_class_recall ||
              !m->per_class_precision || !m->per_class_f1))
        return mv_err(MEDVLM_ERR_ARG, "html report: the metrics are empty (compute them with "
                                      "medvlm_metrics_compute first)");
    if (r->n_losses < 0 || (r->n_losses > 0 && !r->losses) || r->n_methods < 0 || r->n_seeds < 0 ||
        ((r->n_methods > 0) != (r->n_seeds > 0)) || (r->n_methods > 0 && !r->seed_aca) ||
        r->n < 0 || (r->n > 0 && (!r->refs || !r->preds)))
        return mv_err(MEDVLM_ERR_ARG,
                      "html report: inconsistent parts (losses %ld, methods %d x seeds %d, "
                      "samples %d): each count needs its arrays",
                      r->n_losses, r->n_methods, r->n_seeds, r->n);
    if (r->n > 0 && !m)
        return mv_err(MEDVLM_ERR_ARG, "html report: the gallery needs the metrics' classes");
    const char *title = r->title ? r->title : "medvlm report";
    struct mv_eval_buf b = {0};
    mv_eval_buf_printf(&b, "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" "
                           "lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>");
    html(&b, title);
    mv_eval_buf_printf(&b, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>", style);
    html(&b, title);
    mv_eval_buf_printf(&b, "</h1>\n");
    if (r->summary) {
        mv_eval_buf_printf(&b, "<p class=\"summary\">");
        html(&b, r->summary);
        mv_eval_buf_printf(&b, "</p>\n");
    }
    if (m) {
        metrics_tables(&b, r);
        confusion_svg(&b, r);
        bars_svg(&b, r);
    }
    if (r->n_losses > 0) loss_svg(&b, r);
    if (r->n_methods > 0) seeds_section(&b, r);
    if (r->n > 0) gallery(&b, r, m->n_classes);
    mv_eval_buf_printf(&b, "<footer>medvlm %s</footer>\n</body>\n</html>\n", MEDVLM_VERSION_STRING);
    size_t len = b.len;
    char *text = mv_eval_buf_take(&b);
    if (!text) return mv_err(MEDVLM_ERR_NOMEM, "html report %s: out of memory", path);
    enum medvlm_status st = mv_write_file_atomic(path, text, len);
    mv_free(text);
    return st;
}
