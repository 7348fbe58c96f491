/*
 * golden_compare OUT_DIR GOLDEN_DIR STAGE... - compare OUT_DIR/<stage>.safetensors with
 * GOLDEN_DIR/expected/<stage>.safetensors using manifest.json's tolerances: a float tensor
 * passes when |out - ref| <= atol + rtol*|ref| everywhere (NaN never passes), an integer one
 * must be equal. Every tensor the manifest lists for a named stage must be present.
 * Prints one line per tensor and "N passed, M failed".
 */
#include "medvlm.h"

#include "../../src/io/io.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int passed, failed;

static double elem(const struct medvlm_tensor_info *t, size_t i, int *ok)
{
    const unsigned char *p = t->data;
    *ok = 1;
    switch (t->dtype) {
    case MEDVLM_DTYPE_F32: {
        float v;
        memcpy(&v, p + 4 * i, 4);
        return v;
    }
    case MEDVLM_DTYPE_F64: {
        double v;
        memcpy(&v, p + 8 * i, 8);
        return v;
    }
    case MEDVLM_DTYPE_I64: {
        int64_t v;
        memcpy(&v, p + 8 * i, 8);
        return (double)v;
    }
    case MEDVLM_DTYPE_I32: {
        int32_t v;
        memcpy(&v, p + 4 * i, 4);
        return v;
    }
    case MEDVLM_DTYPE_U8:
        return p[i];
    case MEDVLM_DTYPE_BOOL:
        return p[i];
    default:
        *ok = 0;
        return 0;
    }
}

static void fail(const char *stage, const char *name, const char *fmt, const char *detail)
{
    failed++;
    printf("FAIL %s:%s ", stage, name);
    printf(fmt, detail);
    printf("\n");
}

static void compare_tensor(const char *stage, const char *name, const cJSON *spec,
                           const struct medvlm_tensor_info *o, const struct medvlm_tensor_info *r)
{
    size_t no = o->nbytes / medvlm_dtype_size(o->dtype),
           nr = r->nbytes / medvlm_dtype_size(r->dtype);
    int shape_ok = o->ndim == r->ndim;
    for (int d = 0; shape_ok && d < o->ndim; d++) shape_ok = o->shape[d] == r->shape[d];
    if (!shape_ok && !(no == 1 && nr == 1)) {
        char buf[256];
        int n = 0;
        n += snprintf(buf + n, sizeof buf - n, "out [");
        for (int d = 0; d < o->ndim; d++)
            n += snprintf(buf + n, sizeof buf - n, "%s%lld", d ? "," : "", (long long)o->shape[d]);
        n += snprintf(buf + n, sizeof buf - n, "] vs ref [");
        for (int d = 0; d < r->ndim; d++)
            n += snprintf(buf + n, sizeof buf - n, "%s%lld", d ? "," : "", (long long)r->shape[d]);
        snprintf(buf + n, sizeof buf - n, "]");
        fail(stage, name, "shape mismatch: %s", buf);
        return;
    }
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(spec, "exact");
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(spec, "atol");
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(spec, "rtol");
    int exact = cJSON_IsTrue(ex) || r->dtype == MEDVLM_DTYPE_I64 || r->dtype == MEDVLM_DTYPE_U8 ||
                r->dtype == MEDVLM_DTYPE_I32 || r->dtype == MEDVLM_DTYPE_BOOL;
    double atol = exact ? 0 : (cJSON_IsNumber(at) ? at->valuedouble : 1e-5);
    double rtol = exact ? 0 : (cJSON_IsNumber(rt) ? rt->valuedouble : 0);
    double max_abs = 0, max_rel = 0;
    size_t bad = 0, first = 0;
    double fo = 0, fr = 0;
    for (size_t i = 0; i < nr; i++) {
        int ok1, ok2;
        double a = elem(o, i, &ok1), b = elem(r, i, &ok2);
        if (!ok1 || !ok2) {
            fail(stage, name, "unsupported dtype %s", medvlm_dtype_name(ok1 ? r->dtype : o->dtype));
            return;
        }
        double d = fabs(a - b);
        int good = exact ? a == b : (d <= atol + rtol * fabs(b));
        if (isnan(a) || isnan(b)) good = 0;
        if (!good) {
            if (!bad) {
                first = i;
                fo = a;
                fr = b;
            }
            bad++;
        }
        if (d > max_abs) max_abs = d;
        if (d / fmax(fabs(b), 1e-12) > max_rel) max_rel = d / fmax(fabs(b), 1e-12);
    }
    if (bad) {
        failed++;
        printf("FAIL %s:%s %zu/%zu off, max abs %.3g, max rel %.3g (atol %g rtol %g); first at "
               "flat [%zu]: out %.9g ref %.9g\n",
               stage, name, bad, nr, max_abs, max_rel, atol, rtol, first, fo, fr);
    } else {
        passed++;
        printf("ok   %s:%s max abs %.3g, max rel %.3g (atol %g rtol %g)\n", stage, name, max_abs,
               max_rel, atol, rtol);
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: golden_compare OUT_DIR GOLDEN_DIR STAGE...\n");
        return 2;
    }
    const char *out_dir = argv[1], *gdir = argv[2];
    char *man_path = mv_path_join(gdir, "manifest.json");
    cJSON *man;
    if (!mv_is_file(man_path)) {
        fprintf(stderr,
                "golden_compare: %s has no manifest.json; set MEDVLM_GOLDEN to a golden folder "
                "(e.g. ../shared/golden/tiny-a)\n",
                gdir);
        return 1;
    }
    if (mv_json_load(man_path, &man)) {
        fprintf(stderr, "golden_compare: %s\n", medvlm_last_error());
        return 1;
    }
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(man, "files");
    for (int a = 3; a < argc; a++) {
        const char *stage = argv[a];
        char *file = mv_asprintf("%s.safetensors", stage);
        char *opath = mv_path_join(out_dir, file);
        char *rpath = mv_asprintf("%s/expected/%s", gdir, file);
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(files, file);
        struct medvlm_st *o = NULL, *r = NULL;
        if (!cJSON_IsObject(spec)) {
            fail(stage, "*", "%s", "the manifest lists no tensors for this stage");
        } else if (medvlm_st_open(rpath, &r)) {
            fail(stage, "*", "cannot read reference: %s", medvlm_last_error());
        } else if (medvlm_st_open(opath, &o)) {
            fail(stage, "*", "cannot read output: %s", medvlm_last_error());
        } else {
            for (const cJSON *t = spec->child; t; t = t->next) {
                const struct medvlm_tensor_info *ot = medvlm_st_find(o, t->string);
                const struct medvlm_tensor_info *rt = medvlm_st_find(r, t->string);
                if (!rt)
                    fail(stage, t->string, "%s", "missing from the reference file");
                else if (!ot)
                    fail(stage, t->string, "%s", "missing from the output (not written)");
                else
                    compare_tensor(stage, t->string, t, ot, rt);
            }
        }
        medvlm_st_free(o);
        medvlm_st_free(r);
        mv_free(file);
        mv_free(opath);
        mv_free(rpath);
    }
    cJSON_Delete(man);
    mv_free(man_path);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
