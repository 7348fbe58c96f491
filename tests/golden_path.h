/* golden_path.h - where the tests find the golden set: $MEDVLM_GOLDEN, else the build default. */
#ifndef MEDVLM_TEST_GOLDEN_PATH_H
#define MEDVLM_TEST_GOLDEN_PATH_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Exits the test with status 1 and a hint when the golden folder is missing: the golden
 * tests must never pass silently without their reference data. */
static inline const char *test_golden_dir(void)
{
    const char *g = getenv("MEDVLM_GOLDEN");
    if (!g || !*g) g = getenv("MEDVLM_GOLDEN_DEFAULT");
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/manifest.json", g ? g : "");
    if (!g || stat(path, &sb) != 0) {
        fprintf(stderr,
                "golden folder not found ('%s'): set MEDVLM_GOLDEN=/path/to/shared/golden/tiny-a\n",
                g ? g : "");
        exit(1);
    }
    return g;
}

#endif
