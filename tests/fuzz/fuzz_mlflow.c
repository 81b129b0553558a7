/* tests/fuzz/fuzz_mlflow: an MLflow server's answer (arbitrary bytes as the body of a
 * 2xx response) through mlflow_parse_object (with the default budget) and the mapper of mlflow_map.h, the way
 * the sync job walks the pages: "experiments" (indexed by id: experiment info for runs), "runs"
 * (mlflow_map_run), "registered_models" (aliases per name and version, prompts) and
 * "model_versions" (mlflow_map_version); every mapped record becomes its upsert JSON,
 * and the batch is dumped as the sync job sends it.
 * Properties: a failed parse gives NULL and a message; a mapped record has a kind, a
 * non-empty model name and version, object tags/metrics/parameters and timestamps
 * >= -1; its JSON has the 20 columns; a version mapped with aliases carries them in
 * the mlflow.aliases tag. Nothing may leak. */
#include "fuzz.h"

#include "integrations/mlflow_client.h"
#include "integrations/mlflow_map.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    json_object_seed(1);
    return 0;
}

static void check_str(const char *s)
{
    FUZZ_ASSERT(s == NULL || *s != '\0');
}

static void check_record(const struct mlflow_record *r, json_t *batch)
{
    FUZZ_ASSERT(r->kind && (strcmp(r->kind, "run") == 0 || strcmp(r->kind, "model_version") == 0));
    FUZZ_ASSERT(r->model_name && *r->model_name && r->version && *r->version && r->lifecycle_stage);
    FUZZ_ASSERT(json_is_object(r->tags) && json_is_object(r->metrics) && json_is_object(r->parameters));
    FUZZ_ASSERT(r->training_started_at >= -1 && r->training_ended_at >= -1 && r->model_created_at >= -1 &&
                r->model_updated_at >= -1);
    check_str(r->run_id), check_str(r->description), check_str(r->source), check_str(r->status);
    check_str(r->experiment_id), check_str(r->training_status), check_str(r->source_version);
    json_t *o = mlflow_record_json(r);
    FUZZ_ASSERT(json_is_object(o) && json_object_size(o) == 20);
    FUZZ_ASSERT(json_array_append_new(batch, o) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024)
        return 0;
    char *body = fuzz_strndup(data, size);
    struct fetch_response res;
    memset(&res, 0, sizeof res);
    res.outcome = FETCH_OK;
    res.status = 200;
    res.body = body;
    res.body_len = size;
    char err[128];
    memset(err, 'x', sizeof err);
    const struct mlflow_page_budget budget = {.max_bytes = 256 * 1024, .max_values = 50000, .max_depth = 32};
    json_t *page = mlflow_parse_object(&res, &budget, NULL, err, sizeof err);
    if (!page) {
        fuzz_check_cstr(err, sizeof err);
        FUZZ_ASSERT(err[0] != '\0');
        free(body);
        return 0;
    }
    FUZZ_ASSERT(json_is_object(page));
    check_str(mlflow_str(page, "next_page_token"));

    json_t *batch = json_array(), *aliases = json_object(), *prompts = json_object();
    FUZZ_ASSERT(batch && aliases && prompts);
    size_t i, k;
    const json_t *it, *a;

    /* runs, with their experiments */
    json_t *exps = mlflow_experiment_index(json_object_get(page, "experiments"));
    FUZZ_ASSERT(exps);
    json_array_foreach(json_object_get(page, "runs"), i, it) {
        struct mlflow_record rec;
        struct mlflow_experiment_info eb;
        const json_t *info = json_object_get(it, "info");
        enum mlflow_map_result mr = mlflow_map_run(it, mlflow_find_experiment(exps, mlflow_str(info, "experiment_id"), &eb), &rec);
        FUZZ_ASSERT(mr == MLFLOW_MAP_OK || mr == MLFLOW_MAP_SKIP || mr == MLFLOW_MAP_INVALID);
        if (mr == MLFLOW_MAP_OK)
            check_record(&rec, batch);
        else
            FUZZ_ASSERT(rec.tags == NULL && rec.metrics == NULL && rec.parameters == NULL);
        mlflow_record_clear(&rec);
    }

    json_decref(exps);

    /* registered models: aliases "name\x1fversion" -> "a,b" and prompt names */
    json_array_foreach(json_object_get(page, "registered_models"), i, it) {
        const char *name = mlflow_str(it, "name");
        if (!name)
            continue;
        if (mlflow_tags_is_prompt(json_object_get(it, "tags"))) {
            json_object_set_new(prompts, name, json_true());
            continue;
        }
        json_array_foreach(json_object_get(it, "aliases"), k, a) {
            const char *alias = mlflow_str(a, "alias"), *ver = mlflow_str(a, "version");
            if (!alias || !ver)
                continue;
            char key[1024], val[1024];
            snprintf(key, sizeof key, "%s\x1f%s", name, ver);
            const char *old = mlflow_str(aliases, key);
            snprintf(val, sizeof val, "%s%s%s", old ? old : "", old ? "," : "", alias);
            json_object_set_new(aliases, key, json_string(val));
        }
    }

    /* model versions */
    json_array_foreach(json_object_get(page, "model_versions"), i, it) {
        const char *name = mlflow_str(it, "name"), *ver = mlflow_str(it, "version"), *al = NULL;
        if (name && json_object_get(prompts, name))
            continue;
        if (name && ver) {
            char key[1024];
            snprintf(key, sizeof key, "%s\x1f%s", name, ver);
            al = mlflow_str(aliases, key);
        }
        struct mlflow_record rec;
        enum mlflow_map_result mr = mlflow_map_version(it, al, &rec);
        FUZZ_ASSERT(mr == MLFLOW_MAP_OK || mr == MLFLOW_MAP_SKIP || mr == MLFLOW_MAP_INVALID);
        if (mr == MLFLOW_MAP_OK) {
            check_record(&rec, batch);
            if (al)
                FUZZ_ASSERT(strcmp(mlflow_str(rec.tags, MLFLOW_ALIASES_TAG), al) == 0);
        }
        mlflow_record_clear(&rec);
    }

    /* helpers on the page itself */
    json_t *tags = mlflow_tags_object(json_object_get(page, "tags"));
    FUZZ_ASSERT(json_is_object(tags));
    (void)mlflow_tags_is_prompt(json_object_get(page, "tags"));
    json_decref(tags);
    FUZZ_ASSERT(mlflow_ms(page, "creation_timestamp") >= -1);

    if (json_array_size(batch)) {
        char *txt = json_dumps(batch, JSON_COMPACT | JSON_ENSURE_ASCII);
        FUZZ_ASSERT(txt != NULL);
        free(txt);
    }
    json_decref(batch);
    json_decref(aliases);
    json_decref(prompts);
    json_decref(page);
    free(body);
    return 0;
}
