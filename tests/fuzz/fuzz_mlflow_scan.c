/* tests/fuzz/fuzz_mlflow_scan: the budget pre-scan of MLflow answers (json_scan, and
 * mlflow_parse_object with a budget). Input: two bytes choose the budget (values
 * 1..4096, depth 1..64), the rest is the page.
 * Properties: the scan never reads past the input; whenever jansson parses the text
 * (duplicates rejected, any top-level value), the scan counted exactly the values and
 * the depth of the tree jansson built; a text the scan accepts within a budget has a
 * tree within that budget, and one it refuses has a tree over it; a page that
 * mlflow_parse_object accepts is an object within the budget, and a refused one gets
 * a message. Nothing may leak. */
#include "fuzz.h"

#include <jansson.h>

#include "integrations/mlflow_client.h"
#include "util/json_scan.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    json_object_seed(1);
    return 0;
}

/* Values of a tree (member names not counted) and its depth (containers). */
static void measure(const json_t *v, int level, size_t *values, int *depth)
{
    (*values)++;
    if (json_is_object(v) || json_is_array(v)) {
        if (level + 1 > *depth)
            *depth = level + 1;
        const char *k;
        json_t *x;
        size_t i;
        if (json_is_object(v)) {
            json_object_foreach((json_t *)v, k, x) measure(x, level + 1, values, depth);
        } else {
            json_array_foreach(v, i, x) measure(x, level + 1, values, depth);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 64 * 1024)
        return 0;
    size_t max_values = 1 + (((size_t)data[0] << 4) | (data[1] >> 4)); /* 1..4096 */
    int max_depth = 1 + (data[1] & 0x0f) * 4;                           /* 1..61 */
    const char *text = (const char *)data + 2;
    size_t len = size - 2;
    char *copy = (char *)fuzz_memdup(text, len); /* exactly len bytes: ASan sees overreads */

    struct json_scan_stats all, lim;
    char err[128];
    int rc_all = json_scan(copy, len, (size_t)-1, JSON_SCAN_DEPTH_LIMIT, &all, err, sizeof err);
    memset(err, 'x', sizeof err);
    int rc_lim = json_scan(copy, len, max_values, max_depth, &lim, err, sizeof err);
    if (rc_lim != 0) {
        FUZZ_ASSERT(memchr(err, '\0', sizeof err) && err[0] != '\0');
        FUZZ_ASSERT(lim.values > max_values || lim.max_depth >= max_depth);
    } else {
        FUZZ_ASSERT(lim.values <= max_values && lim.max_depth <= max_depth);
        FUZZ_ASSERT(rc_all == 0 && lim.values == all.values && lim.max_depth == all.max_depth);
    }

    json_error_t je;
    json_t *tree = json_loadb(copy, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (tree && rc_all == 0) {
        size_t values = 0;
        int depth = 0;
        measure(tree, 0, &values, &depth);
        FUZZ_ASSERT(values == all.values);
        FUZZ_ASSERT(depth == all.max_depth);
        FUZZ_ASSERT((rc_lim == 0) == (values <= max_values && depth <= max_depth));
    }
    json_decref(tree);

    /* the sync's parse: within the budget, or refused with a message */
    struct fetch_response res;
    memset(&res, 0, sizeof res);
    res.outcome = FETCH_OK;
    res.status = 200;
    char *body = fuzz_strndup(text, len);
    res.body = body;
    res.body_len = len;
    struct mlflow_page_budget b = {.max_bytes = 32 * 1024, .max_values = max_values, .max_depth = max_depth};
    char msg[200];
    memset(msg, 'x', sizeof msg);
    bool over = false;
    json_t *page = mlflow_parse_object(&res, &b, &over, msg, sizeof msg);
    if (page) {
        size_t values = 0;
        int depth = 0;
        measure(page, 0, &values, &depth);
        FUZZ_ASSERT(json_is_object(page) && len <= b.max_bytes && values <= max_values && depth <= max_depth);
        FUZZ_ASSERT(!over);
    } else {
        FUZZ_ASSERT(memchr(msg, '\0', sizeof msg) && msg[0] != '\0');
        /* over the budget exactly when the bytes or the scan say so */
        FUZZ_ASSERT(over == (len > b.max_bytes || rc_lim != 0));
        FUZZ_ASSERT(!over || strstr(msg, "over the budget"));
    }
    json_decref(page);
    free(body);
    free(copy);
    return 0;
}
