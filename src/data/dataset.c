/*
 * dataset.c - labelled image lists from a label table (one-hot class columns as in SICAPv2,
 * or one label column of names / indices) or from a folder with one sub-folder per class.
 */
#include "data.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const image_columns[] = {"image_name", "Path", "image", "filename", "path"};
static const char *const label_columns[] = {"label", "class"};

/* ---- class lists ---- */

static void free_strings(char **s, int n)
{
    if (!s) return;
    for (int i = 0; i < n; i++) mv_free(s[i]);
    mv_free(s);
}

/* "NC, G3,G4" -> {"NC", "G3", "G4"}; empty names and duplicates are errors. */
static enum medvlm_status split_classes(const char *list, char ***out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    int cap = 1;
    for (const char *p = list; *p; p++) cap += *p == ',';
    char **names = mv_calloc((size_t)cap, sizeof *names);
    if (!names) return MEDVLM_ERR_NOMEM;
    int n = 0;
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t')) p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        if (len == 0) {
            free_strings(names, n);
            return mv_err(MEDVLM_ERR_ARG,
                          "classes '%s': an empty class name (expected names "
                          "separated by commas, e.g. NC,G3,G4,G5)",
                          list);
        }
        names[n] = mv_strndup(p, len);
        if (!names[n]) {
            free_strings(names, n);
            return MEDVLM_ERR_NOMEM;
        }
        for (int j = 0; j < n; j++) {
            if (strcmp(names[j], names[n]) == 0) {
                enum medvlm_status st = mv_err(MEDVLM_ERR_ARG,
                                               "classes '%s': class '%s' is "
                                               "named twice",
                                               list, names[n]);
                free_strings(names, n + 1);
                return st;
            }
        }
        n++;
        if (!e) break;
        p = e + 1;
    }
    *out = names;
    *n_out = n;
    return MEDVLM_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- the dataset under construction ---- */

static struct medvlm_dataset *dataset_new(int cap)
{
    struct medvlm_dataset *d = mv_calloc(1, sizeof *d);
    if (!d) return NULL;
    d->names = mv_calloc((size_t)cap + 1, sizeof *d->names);
    d->paths = mv_calloc((size_t)cap + 1, sizeof *d->paths);
    d->labels = mv_calloc((size_t)cap + 1, sizeof *d->labels);
    if (!d->names || !d->paths || !d->labels) {
        medvlm_dataset_free(d);
        return NULL;
    }
    return d;
}

void medvlm_dataset_free(struct medvlm_dataset *d)
{
    if (!d) return;
    free_strings(d->names, d->n);
    free_strings(d->paths, d->n);
    free_strings(d->classes, d->n_classes);
    mv_free(d->labels);
    mv_free(d);
}

void medvlm_dataset_class_counts(const struct medvlm_dataset *d, int64_t *counts)
{
    if (!d || !counts) return;
    memset(counts, 0, (size_t)d->n_classes * sizeof *counts);
    for (int i = 0; i < d->n; i++)
        if (d->labels[i] >= 0 && d->labels[i] < d->n_classes) counts[d->labels[i]]++;
}

static enum medvlm_status add_image(struct medvlm_dataset *d, const char *dir, const char *name,
                                    int64_t label)
{
    d->names[d->n] = mv_strdup(name);
    d->paths[d->n] = dir ? mv_path_join(dir, name) : mv_strdup(name);
    d->labels[d->n] = label;
    d->n++;
    return d->names[d->n - 1] && d->paths[d->n - 1] ? MEDVLM_OK : MEDVLM_ERR_NOMEM;
}

/* ---- label cells ---- */

/* A one-hot cell as a number: "0", "1", "1.0", TRUE / FALSE; empty counts as NaN (pandas would read
 * NaN, so the row does not sum to 1). */
static int parse_number(const char *s, double *out)
{
    while (*s == ' ') s++;
    if (!*s) {
        *out = NAN;
        return 1;
    }
    if (strcasecmp(s, "true") == 0 || strcasecmp(s, "false") == 0) { /* xlsx booleans */
        *out = (s[0] == 't' || s[0] == 'T') ? 1.0 : 0.0;
        return 1;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (*end == ' ') end++;
    if (end == s || *end || errno == ERANGE) return 0;
    *out = v;
    return 1;
}

static int parse_index(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < 0 || v > (1L << 24)) return 0;
    *out = v;
    return 1;
}

/* Class names of a label column when the caller gave none: indices 0..max when every value
 * is an index, else the sorted distinct names. */
static enum medvlm_status infer_classes(const struct medvlm_table *t, int col, char ***out,
                                        int *n_out)
{
    long maxv = -1, v;
    int all_index = t->n_rows > 0;
    for (int r = 0; r < t->n_rows && all_index; r++) {
        all_index = parse_index(t->cells[(size_t)r * t->n_cols + col], &v);
        if (all_index && v > maxv) maxv = v;
    }
    char **names = NULL;
    int n = 0;
    if (all_index) {
        names = mv_calloc((size_t)maxv + 1, sizeof *names);
        if (!names) return MEDVLM_ERR_NOMEM;
        for (n = 0; n <= maxv; n++)
            if (!(names[n] = mv_asprintf("%d", n))) goto nomem;
    } else {
        names = mv_calloc((size_t)t->n_rows + 1, sizeof *names);
        if (!names) return MEDVLM_ERR_NOMEM;
        for (int r = 0; r < t->n_rows; r++) {
            const char *s = t->cells[(size_t)r * t->n_cols + col];
            if (!*s) continue;
            if (!(names[n++] = mv_strdup(s))) goto nomem;
        }
        qsort(names, (size_t)n, sizeof *names, cmp_str);
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (k > 0 && strcmp(names[i], names[k - 1]) == 0) {
                mv_free(names[i]);
                continue;
            }
            names[k++] = names[i];
        }
        n = k;
    }
    *out = names;
    *n_out = n;
    return MEDVLM_OK;
nomem:
    free_strings(names, n);
    return MEDVLM_ERR_NOMEM;
}

/* d's class names: copies of classes[0..k-1]; 0 when out of memory. */
static int set_classes(struct medvlm_dataset *d, char *const *classes, int k)
{
    d->n_classes = k;
    d->classes = mv_calloc((size_t)k, sizeof *d->classes);
    if (!d->classes) return 0;
    for (int c = 0; c < k; c++)
        if (!(d->classes[c] = mv_strdup(classes[c]))) return 0;
    return 1;
}

static int find_class(char **classes, int k, const char *s)
{
    for (int c = 0; c < k; c++)
        if (strcmp(classes[c], s) == 0) return c;
    long v;
    if (parse_index(s, &v) && v < k) return (int)v;
    return -1;
}

/* "a, b, c" from a list of names, cut to fit buf. */
static void join_names(char *buf, size_t cap, char *const *names, int n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used + 8 < cap; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", names[i]);
        if (w < 0 || (size_t)w >= cap - used) {
            snprintf(buf + (cap > 5 ? cap - 5 : 0), cap > 5 ? 5 : cap, "...");
            return;
        }
        used += (size_t)w;
    }
}

/* ---- from a label table ---- */

/* Whether an image name from a table points outside the image folder it is relative to: an
 * absolute path, or more '..' components than folders before them ("a/../../x"). */
static int escapes_root(const char *name)
{
    if (name[0] == '/') return 1;
    int depth = 0;
    for (const char *p = name; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (--depth < 0) return 1;
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            depth++;
        }
        p += n + (e != NULL);
    }
    return 0;
}

static enum medvlm_status from_table(const struct medvlm_dataset_options *opt, char **classes,
                                     int k, struct medvlm_dataset **out)
{
    enum medvlm_status st;
    struct medvlm_table *t = NULL;
    struct medvlm_dataset *d = NULL;
    int *class_col = NULL;
    char **inferred = NULL;
    int n_inferred = 0;
    char msg[512];
    const char *path = opt->labels_path;
    if ((st = medvlm_table_load(path, opt->sheet, &t))) return st;
    if (t->n_rows == 0) {
        st = mv_err(MEDVLM_ERR_FORMAT,
                    "%s: the table has a header but no rows (no image is listed; expected one "
                    "row per image under the header)",
                    path);
        goto fail;
    }

    int img = -1;
    if (opt->image_column) {
        img = medvlm_table_column(t, opt->image_column);
    } else {
        for (size_t i = 0; i < MV_ARRAY_LEN(image_columns) && img < 0; i++)
            img = medvlm_table_column(t, image_columns[i]);
    }
    if (img < 0) {
        join_names(msg, sizeof msg, t->header, t->n_cols);
        if (opt->image_column)
            st = mv_err(MEDVLM_ERR_MISSING,
                        "%s: no column named '%s' for the image names (the "
                        "header has: %s)",
                        path, opt->image_column, msg);
        else
            st = mv_err(MEDVLM_ERR_MISSING,
                        "%s: no image-name column (looked for image_name, "
                        "Path, image, filename; the header has: %s); name it with the image "
                        "column option",
                        path, msg);
        goto fail;
    }

    /* one-hot columns named by the classes, or one label column */
    int label = -1;
    int one_hot = 0;
    if (opt->label_column) {
        label = medvlm_table_column(t, opt->label_column);
        if (label < 0) {
            join_names(msg, sizeof msg, t->header, t->n_cols);
            st = mv_err(MEDVLM_ERR_MISSING, "%s: no label column named '%s' (the header has: %s)",
                        path, opt->label_column, msg);
            goto fail;
        }
    } else if (classes) {
        class_col = mv_calloc((size_t)k, sizeof *class_col);
        if (!class_col) goto nomem;
        one_hot = 1;
        for (int c = 0; c < k; c++)
            one_hot &= (class_col[c] = medvlm_table_column(t, classes[c])) >= 0;
    }
    if (!one_hot && label < 0)
        for (size_t i = 0; i < MV_ARRAY_LEN(label_columns) && label < 0; i++)
            label = medvlm_table_column(t, label_columns[i]);
    if (!one_hot && label < 0) {
        join_names(msg, sizeof msg, t->header, t->n_cols);
        if (classes) {
            int c = 0;
            while (c < k && class_col[c] >= 0) c++;
            st = mv_err(MEDVLM_ERR_MISSING,
                        "%s: unknown class '%s': no column of that name for "
                        "one-hot labels and no label/class column (the header has: %s)",
                        path, classes[c], msg);
        } else {
            st = mv_err(MEDVLM_ERR_MISSING,
                        "%s: no label column (label, class) and no class "
                        "names given for one-hot columns (e.g. classes NC,G3,G4,G5; the header "
                        "has: %s)",
                        path, msg);
        }
        goto fail;
    }
    if (!one_hot && !classes) {
        if ((st = infer_classes(t, label, &inferred, &n_inferred))) goto fail;
        classes = inferred;
        k = n_inferred;
        if (k == 0) {
            st = mv_err(MEDVLM_ERR_FORMAT, "%s: the label column '%s' is empty", path,
                        t->header[label]);
            goto fail;
        }
    }

    if (!(d = dataset_new(t->n_rows))) goto nomem;
    for (int r = 0; r < t->n_rows; r++) {
        char *const *row = t->cells + (size_t)r * t->n_cols;
        int line = t->line[r];
        int64_t lab = -1;
        if (one_hot) {
            double sum = 0, best = 0;
            for (int c = 0; c < k; c++) {
                double v;
                if (!parse_number(row[class_col[c]], &v)) {
                    st = mv_err(MEDVLM_ERR_FORMAT,
                                "%s: %s %d, column %s: expected a number "
                                "(one-hot 0/1), got '%.40s'",
                                path, t->line_word, line, classes[c], row[class_col[c]]);
                    goto fail;
                }
                sum += v;
                if (c == 0 || v > best) { /* argmax, the first maximum */
                    lab = c;
                    best = v;
                }
            }
            if (!(sum == 1.0)) { /* the tutorial keeps rows whose one-hot values sum to 1 */
                d->skipped_rows++;
                continue;
            }
        } else {
            const char *v = row[label];
            lab = find_class(classes, k, v);
            if (lab < 0) {
                join_names(msg, sizeof msg, classes, k);
                st = mv_err(MEDVLM_ERR_FORMAT,
                            "%s: %s %d: unknown class '%.60s' in column %s "
                            "(expected one of: %s, or an index 0..%d)",
                            path, t->line_word, line, v, t->header[label], msg, k - 1);
                goto fail;
            }
        }
        if (!row[img][0]) {
            st = mv_err(MEDVLM_ERR_FORMAT, "%s: %s %d: empty image name in column %s", path,
                        t->line_word, line, t->header[img]);
            goto fail;
        }
        if (opt->images_dir && escapes_root(row[img])) {
            st = mv_err(MEDVLM_ERR_ARG,
                        "%s: %s %d: image '%.200s' is outside the image root %s (%s); name "
                        "the images relative to the image folder",
                        path, t->line_word, line, row[img], opt->images_dir,
                        row[img][0] == '/' ? "an absolute path" : "its '..' leave the folder");
            goto fail;
        }
        if ((st = add_image(d, opt->images_dir, row[img], lab))) goto fail;
    }

    if (d->n == 0) {
        st = mv_err(MEDVLM_ERR_FORMAT,
                    "%s: all %d rows were skipped: their one-hot values (columns %s...) do not "
                    "sum to 1",
                    path, t->n_rows, classes[0]);
        goto fail;
    }
    /* duplicates: sort row indices by name */
    if (d->n > 1) {
        char **sorted = mv_calloc((size_t)d->n, sizeof *sorted);
        if (!sorted) goto nomem;
        memcpy(sorted, d->names, (size_t)d->n * sizeof *sorted);
        qsort(sorted, (size_t)d->n, sizeof *sorted, cmp_str);
        for (int i = 1; i < d->n; i++) {
            if (strcmp(sorted[i], sorted[i - 1]) == 0) {
                int first = -1, second = -1;
                for (int r = 0; r < t->n_rows; r++) {
                    if (strcmp(t->cells[(size_t)r * t->n_cols + img], sorted[i]) != 0) continue;
                    if (first < 0)
                        first = t->line[r];
                    else if (second < 0)
                        second = t->line[r];
                }
                st = mv_err(MEDVLM_ERR_FORMAT,
                            "%s: %s %d: duplicate image name '%.200s' "
                            "(already listed at %s %d)",
                            path, t->line_word, second, sorted[i], t->line_word, first);
                mv_free(sorted);
                goto fail;
            }
        }
        mv_free(sorted);
    }
    if (!set_classes(d, classes, k)) goto nomem;
    *out = d;
    d = NULL;
    goto done;
nomem:
    st = mv_err(MEDVLM_ERR_NOMEM, "%s: out of memory building the dataset", path);
fail:
done:
    medvlm_dataset_free(d);
    medvlm_table_free(t);
    mv_free(class_col);
    free_strings(inferred, n_inferred);
    return st;
}

/* ---- from a folder of class folders ---- */

/* Sorted names of the entries of dir that are directories (want_dirs) or regular files,
 * hidden ones skipped. */
static enum medvlm_status list_dir(const char *dir, int want_dirs, char ***out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    DIR *dp = opendir(dir);
    if (!dp) return mv_err(MEDVLM_ERR_IO, "%s: cannot open the folder: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    enum medvlm_status st = MEDVLM_OK;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char *full = mv_path_join(dir, e->d_name);
        if (!full) {
            st = MEDVLM_ERR_NOMEM;
            break;
        }
        int ok = want_dirs ? mv_is_dir(full) : mv_is_file(full);
        mv_free(full);
        if (!ok) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = mv_realloc(names, (size_t)cap * sizeof *p);
            if (!p) {
                st = MEDVLM_ERR_NOMEM;
                break;
            }
            names = p;
        }
        if (!(names[n] = mv_strdup(e->d_name))) {
            st = MEDVLM_ERR_NOMEM;
            break;
        }
        n++;
    }
    closedir(dp);
    if (st) {
        free_strings(names, n);
        return st;
    }
    if (n) qsort(names, (size_t)n, sizeof *names, cmp_str);
    *out = names;
    *n_out = n;
    return MEDVLM_OK;
}

static enum medvlm_status from_folders(const struct medvlm_dataset_options *opt, char **classes,
                                       int k, struct medvlm_dataset **out)
{
    enum medvlm_status st = MEDVLM_OK;
    char **found = NULL, **files = NULL;
    int n_found = 0, n_files = 0;
    struct medvlm_dataset *d = NULL;
    const char *root = opt->images_dir;
    if (!mv_is_dir(root))
        return mv_err(MEDVLM_ERR_IO,
                      "%s: not a folder (expected one sub-folder of images per "
                      "class, or give a label table)",
                      root);
    if ((st = list_dir(root, 1, &found, &n_found))) return st;
    if (!classes) {
        classes = found;
        k = n_found;
        if (k == 0) {
            st = mv_err(MEDVLM_ERR_MISSING,
                        "%s: no class sub-folders (expected one sub-folder "
                        "of images per class)",
                        root);
            goto fail;
        }
    } else {
        for (int c = 0; c < k; c++) {
            int hit = 0;
            for (int j = 0; j < n_found && !hit; j++) hit = strcmp(found[j], classes[c]) == 0;
            if (!hit) {
                st = mv_err(MEDVLM_ERR_MISSING,
                            "%s: unknown class '%s': no sub-folder of that "
                            "name",
                            root, classes[c]);
                goto fail;
            }
        }
    }
    /* two passes: count, then fill */
    int total = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && !(d = dataset_new(total))) goto nomem;
        for (int c = 0; c < k; c++) {
            char *sub = mv_path_join(root, classes[c]);
            if (!sub) goto nomem;
            st = list_dir(sub, 0, &files, &n_files);
            mv_free(sub);
            if (st) goto fail;
            if (pass == 0) {
                if (n_files > (1 << 30) - total) {
                    st = mv_err(MEDVLM_ERR_LIMIT, "%s: too many images", root);
                    goto fail;
                }
                total += n_files;
            } else {
                for (int i = 0; i < n_files && d->n < total; i++) {
                    char *name = mv_asprintf("%s/%s", classes[c], files[i]);
                    if (!name) goto nomem;
                    st = add_image(d, root, name, c);
                    mv_free(name);
                    if (st) goto fail;
                }
            }
            free_strings(files, n_files);
            files = NULL;
            n_files = 0;
        }
    }
    if (!set_classes(d, classes, k)) goto nomem;
    *out = d;
    d = NULL;
    goto done;
nomem:
    st = mv_err(MEDVLM_ERR_NOMEM, "%s: out of memory listing the images", root);
fail:
done:
    free_strings(files, n_files);
    free_strings(found, n_found);
    medvlm_dataset_free(d);
    return st;
}

/* ---- missing files ---- */

static enum medvlm_status check_files(const struct medvlm_dataset_options *opt,
                                      struct medvlm_dataset *d)
{
    int missing = 0;
    char first[512] = "";
    size_t used = 0;
    for (int i = 0; i < d->n; i++) {
        if (mv_is_file(d->paths[i])) continue;
        const char *kind = mv_path_kind(d->paths[i]);
        if (kind && strcmp(kind, "does not exist") != 0) /* a FIFO, a folder: never "missing" */
            return mv_err(MEDVLM_ERR_IO, "image %s: %s, expected an image file", d->paths[i], kind);
        missing++;
        if (!opt->skip_missing) {
            mv_log(MEDVLM_LOG_ERROR, "missing image: %s", d->paths[i]);
            if (used + 4 < sizeof first) {
                int w = snprintf(first + used, sizeof first - used, "%s%s", used ? ", " : "",
                                 d->names[i]);
                if (w > 0) used = MV_MIN(used + (size_t)w, sizeof first - 1);
            }
        }
    }
    if (missing == 0) return MEDVLM_OK;
    if (!opt->skip_missing)
        return mv_err(MEDVLM_ERR_MISSING,
                      "%d of the %d listed images do not exist under %s "
                      "(each is named in the log above): %s%s",
                      missing, d->n, opt->images_dir ? opt->images_dir : ".", first,
                      used + 4 >= sizeof first ? "..." : "");
    /* drop them, keeping the order */
    int k = 0;
    for (int i = 0; i < d->n; i++) {
        if (!mv_is_file(d->paths[i])) {
            mv_log(MEDVLM_LOG_WARN, "skipping missing image %s", d->paths[i]);
            mv_free(d->paths[i]);
            mv_free(d->names[i]);
            continue;
        }
        d->paths[k] = d->paths[i];
        d->names[k] = d->names[i];
        d->labels[k] = d->labels[i];
        k++;
    }
    d->missing = d->n - k;
    d->n = k;
    return MEDVLM_OK;
}

enum medvlm_status medvlm_dataset_load(const struct medvlm_dataset_options *opt,
                                       struct medvlm_dataset **out)
{
    if (!out) return mv_err(MEDVLM_ERR_ARG, "dataset: out must not be NULL");
    *out = NULL;
    if (!opt || (!opt->labels_path && !opt->images_dir))
        return mv_err(MEDVLM_ERR_ARG, "dataset: give a label table, an image folder, or both");
    char **classes = NULL;
    int k = 0;
    enum medvlm_status st = MEDVLM_OK;
    if (opt->n_class_names > 0) {
        if (!opt->class_names)
            return mv_err(MEDVLM_ERR_ARG, "dataset: n_class_names is %d but class_names is NULL",
                          opt->n_class_names);
        classes = mv_calloc((size_t)opt->n_class_names, sizeof *classes);
        if (!classes) return MEDVLM_ERR_NOMEM;
        for (k = 0; k < opt->n_class_names; k++) {
            const char *name = opt->class_names[k];
            int dup = 0;
            for (int j = 0; j < k && name; j++) dup |= strcmp(classes[j], name) == 0;
            if (!name || !*name || dup) {
                st = mv_err(MEDVLM_ERR_ARG, "dataset: class name %d is %s", k,
                            !name || !*name ? "empty" : "given twice");
                free_strings(classes, k);
                return st;
            }
            if (!(classes[k] = mv_strdup(name))) {
                free_strings(classes, k);
                return MEDVLM_ERR_NOMEM;
            }
        }
    } else if (opt->classes && (st = split_classes(opt->classes, &classes, &k))) {
        return st;
    }
    struct medvlm_dataset *d = NULL;
    /* a table's image folder that is a file (or, when the images are checked, absent): one
     * message, not one "missing image" per row */
    const char *kind = opt->labels_path && opt->images_dir && !mv_is_dir(opt->images_dir)
                           ? mv_path_kind(opt->images_dir)
                           : NULL;
    if (opt->labels_path && opt->images_dir && !mv_is_dir(opt->images_dir) &&
        (!kind || strcmp(kind, "does not exist") != 0 || opt->check_files)) {
        st = mv_err(MEDVLM_ERR_ARG,
                    "image folder %s %s%s (expected the folder the label table's image names "
                    "are relative to)",
                    opt->images_dir, kind ? kind : "is a file",
                    kind && !strcmp(kind, "does not exist") ? "" : ", not a folder");
        free_strings(classes, k);
        return st;
    }
    if (opt->labels_path)
        st = from_table(opt, classes, k, &d);
    else
        st = from_folders(opt, classes, k, &d);
    free_strings(classes, k);
    if (st) return st;
    if (opt->check_files || opt->skip_missing) {
        if ((st = check_files(opt, d))) {
            medvlm_dataset_free(d);
            return st;
        }
    }
    if (d->skipped_rows)
        mv_log(MEDVLM_LOG_INFO, "%s: %d row(s) whose one-hot values do not sum to 1 skipped",
               opt->labels_path, d->skipped_rows);
    *out = d;
    return MEDVLM_OK;
}

enum medvlm_status medvlm_dataset_subset(const struct medvlm_dataset *d, const int *idx, int n,
                                         struct medvlm_dataset **out)
{
    if (!out) return mv_err(MEDVLM_ERR_ARG, "dataset subset: out must not be NULL");
    *out = NULL;
    if (!d || n < 0 || (n > 0 && !idx))
        return mv_err(MEDVLM_ERR_ARG, "dataset subset: need a dataset and n >= 0 indices");
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= d->n)
            return mv_err(MEDVLM_ERR_ARG,
                          "dataset subset: index %d (entry %d) is outside "
                          "0..%d",
                          idx[i], i, d->n - 1);
    struct medvlm_dataset *s = dataset_new(n);
    if (!s) return MEDVLM_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        s->names[i] = mv_strdup(d->names[idx[i]]);
        s->paths[i] = mv_strdup(d->paths[idx[i]]);
        s->labels[i] = d->labels[idx[i]];
        s->n = i + 1;
        if (!s->names[i] || !s->paths[i]) goto nomem;
    }
    s->classes = mv_calloc((size_t)d->n_classes + 1, sizeof *s->classes);
    if (!s->classes) goto nomem;
    for (int c = 0; c < d->n_classes; c++) {
        s->n_classes = c + 1;
        if (!(s->classes[c] = mv_strdup(d->classes[c]))) goto nomem;
    }
    s->n_classes = d->n_classes;
    *out = s;
    return MEDVLM_OK;
nomem:
    medvlm_dataset_free(s);
    return MEDVLM_ERR_NOMEM;
}
