/*
 * test_embed_golden.c - `medvlm embed` end to end against the reference: the set's images go
 * through this project's decoder, HF preprocessing and vision tower, its prompts (prompts.txt)
 * through the tokenizer and text tower, and the written embeddings must equal the golden
 * vision/text `*_embeds`. Also: an undecodable image stops it (named, nothing written) unless
 * --skip-bad.
 */
#include "check.h"
#include "golden_path.h"
#include "io/io.h"

#include <unistd.h>

static void compare(const char *out_path, const char *out_name, const char *ref_path,
                    const char *ref_name, double atol)
{
    struct medvlm_st *o = NULL, *r = NULL;
    CHECK_OK(medvlm_st_open(out_path, &o));
    CHECK_OK(medvlm_st_open(ref_path, &r));
    if (o && r) {
        const struct medvlm_tensor_info *a = medvlm_st_find(o, out_name);
        const struct medvlm_tensor_info *b = medvlm_st_find(r, ref_name);
        CHECK(a && b && a->nbytes == b->nbytes, "%s: %s vs %s shapes", out_path, out_name,
              ref_name);
        if (a && b && a->nbytes == b->nbytes)
            check_close_f32(out_name, a->data, b->data, a->nbytes / 4, atol, 0);
    }
    medvlm_st_free(o);
    medvlm_st_free(r);
}

int main(void)
{
    const char *g = test_golden_dir();
    const char *cli = getenv("MEDVLM_CLI");
    if (!cli) {
        fprintf(stderr, "MEDVLM_CLI is not set (run through ctest)\n");
        return 1;
    }
    char man_path[4096], cmd[16384], out[8192];
    snprintf(man_path, sizeof man_path, "%s/manifest.json", g);
    cJSON *man;
    CHECK_OK(mv_json_load(man_path, &man));
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(man, "images");
    int n = cJSON_GetArraySize(images);
    size_t len = (size_t)snprintf(cmd, sizeof cmd,
                                  "'%s' embed --model '%s/model' --preprocess hf --batch-size 3 "
                                  "--prompts '%s/prompts.txt' --out embed-golden.safetensors",
                                  cli, g, g);
    for (int i = 0; i < n; i++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(images, i), "file");
        len += (size_t)snprintf(cmd + len, sizeof cmd - len, " '%s/images/%s'", g, f->valuestring);
    }
    snprintf(cmd + len, sizeof cmd - len, " 2>&1");
    int rc = check_run(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "image embeddings"), "embed: exit %d: %s", rc, out);
    char ref[4096];
    snprintf(ref, sizeof ref, "%s/expected/vision.safetensors", g);
    compare("embed-golden.safetensors", "image_embeds", ref, "image_embeds", 2e-5);
    snprintf(ref, sizeof ref, "%s/expected/text.safetensors", g);
    compare("embed-golden.safetensors", "text_embeds", ref, "text_embeds", 2e-5);

    /* an undecodable file among good ones */
    FILE *bad = fopen("embed-bad.jpg", "w");
    fputs("this is text, not a JPEG", bad);
    fclose(bad);
    unlink("embed-bad-out.safetensors");
    snprintf(cmd, sizeof cmd,
             "'%s' embed --model '%s/model' --out embed-bad-out.safetensors '%s/images/img1.png' "
             "embed-bad.jpg 2>&1",
             cli, g, g);
    rc = check_run(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "embed-bad.jpg") && access("embed-bad-out.safetensors", F_OK) != 0,
          "bad image: exit %d, output %s", rc, out);
    snprintf(cmd, sizeof cmd,
             "'%s' embed --model '%s/model' --skip-bad --out embed-bad-out.safetensors "
             "'%s/images/img1.png' embed-bad.jpg 2>&1",
             cli, g, g);
    rc = check_run(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "embed-bad.jpg") && strstr(out, "1 image embeddings"),
          "--skip-bad: exit %d, output %s", rc, out);
    cJSON_Delete(man);
    return check_summary();
}
