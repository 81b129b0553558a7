/* Unit tests for integrations/mlflow_map: runs and model versions -> records
 * (reference 3.2 plus issue 4): name fallbacks, skips (no name, prompts), omitted and
 * empty fields alike, metrics/params/tags, timestamps, aliases, the upsert JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "integrations/mlflow_map.h"

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    assert_non_null(j);
    return j;
}

static const char FULL_RUN[] =
    "{\"info\":{\"run_id\":\"abc\",\"run_uuid\":\"abc\",\"run_name\":\"bold-owl\",\"experiment_id\":\"7\","
    "\"status\":\"FINISHED\",\"start_time\":1718000000000,\"end_time\":1718000300000,"
    "\"artifact_uri\":\"s3://b/7/abc/artifacts\",\"lifecycle_stage\":\"active\"},"
    "\"data\":{\"metrics\":[{\"key\":\"auc\",\"value\":0.93,\"timestamp\":1,\"step\":0},"
    "{\"key\":\"loss\",\"value\":\"NaN\",\"timestamp\":1,\"step\":0}],"
    "\"params\":[{\"key\":\"max_depth\",\"value\":\"6\"}],"
    "\"tags\":[{\"key\":\"mlflow.runName\",\"value\":\"bold-owl\"},{\"key\":\"model_name\",\"value\":\"fraud\"},"
    "{\"key\":\"stage\",\"value\":\"production\"},{\"key\":\"mlflow.note.content\",\"value\":\"note\"},"
    "{\"key\":\"mlflow.source.git.commit\",\"value\":\"deadbeef\"}]}}";

static void run_full(void **state)
{
    json_t *run = parse(FULL_RUN);
    struct mlflow_experiment_info exp = {"7", "fraud-exp", "s3://b/7"};
    struct mlflow_record r;
    assert_int_equal(mlflow_map_run(run, &exp, &r), MLFLOW_MAP_OK);
    assert_string_equal(r.kind, "run");
    assert_string_equal(r.model_name, "fraud");
    assert_string_equal(r.version, "abc");
    assert_string_equal(r.run_id, "abc");
    assert_string_equal(r.lifecycle_stage, "production");
    assert_string_equal(r.description, "note");
    assert_string_equal(r.source, "s3://b/7/abc/artifacts");
    assert_string_equal(r.status, "FINISHED");
    assert_string_equal(r.training_status, "FINISHED");
    assert_string_equal(r.experiment_id, "7");
    assert_string_equal(r.experiment_name, "fraud-exp");
    assert_string_equal(r.artifact_location, "s3://b/7/abc/artifacts");
    assert_string_equal(r.source_version, "deadbeef");
    assert_true(r.training_started_at == 1718000000000LL);
    assert_true(r.training_ended_at == 1718000300000LL);
    assert_true(r.model_created_at == 1718000000000LL);
    assert_true(r.model_updated_at == 1718000300000LL);
    assert_true(json_real_value(json_object_get(r.metrics, "auc")) > 0.92);
    assert_string_equal(json_string_value(json_object_get(r.metrics, "loss")), "NaN");
    assert_string_equal(json_string_value(json_object_get(r.parameters, "max_depth")), "6");
    assert_string_equal(json_string_value(json_object_get(r.tags, "stage")), "production");
    json_t *o = mlflow_record_json(&r);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "record_kind")), "run");
    assert_true(json_integer_value(json_object_get(o, "training_ended_at")) == 1718000300000LL);
    assert_true(json_is_object(json_object_get(o, "tags")));
    json_decref(o);
    mlflow_record_clear(&r);
    json_decref(run);
}

static void run_fallbacks(void **state)
{
    /* no model_name tag: runName; no stage tags: "unknown" (not the run name or user);
     * no status: the stage; no end_time: NULL and updated = start; experiment from the
     * experiments list; "" treated as absent */
    json_t *run = parse("{\"info\":{\"run_id\":\"r1\",\"experiment_id\":\"3\",\"start_time\":5,"
                        "\"artifact_uri\":\"\",\"status\":\"\"},"
                        "\"data\":{\"tags\":[{\"key\":\"mlflow.runName\",\"value\":\"owl\"},"
                        "{\"key\":\"mlflow.user\",\"value\":\"alice\"},{\"key\":\"mlflow.note.content\",\"value\":\"\"}]}}");
    struct mlflow_experiment_info exp = {"3", "exp3", "mlflow-artifacts:/3"};
    struct mlflow_record r;
    assert_int_equal(mlflow_map_run(run, &exp, &r), MLFLOW_MAP_OK);
    assert_string_equal(r.model_name, "owl");
    assert_string_equal(r.lifecycle_stage, "unknown");
    assert_string_equal(r.status, "unknown");
    assert_null(r.training_status);
    assert_null(r.description);
    assert_null(r.source);
    assert_string_equal(r.artifact_location, "mlflow-artifacts:/3");
    assert_string_equal(r.experiment_name, "exp3");
    assert_true(r.training_ended_at == -1);
    assert_true(r.model_updated_at == 5);
    assert_int_equal((int)json_object_size(r.metrics), 0);
    json_t *o = mlflow_record_json(&r);
    assert_true(json_is_null(json_object_get(o, "training_ended_at")));
    assert_true(json_is_null(json_object_get(o, "description")));
    json_decref(o);
    mlflow_record_clear(&r);
    json_decref(run);

    /* mlflow.modelName beats runName; experimentName tag beats the experiments list */
    run = parse("{\"info\":{\"run_id\":\"r2\"},\"data\":{\"tags\":["
                "{\"key\":\"mlflow.runName\",\"value\":\"owl\"},{\"key\":\"mlflow.modelName\",\"value\":\"m\"},"
                "{\"key\":\"mlflow.experimentName\",\"value\":\"tagged\"},{\"key\":\"model_stage\",\"value\":\"Staging\"}]}}");
    assert_int_equal(mlflow_map_run(run, &exp, &r), MLFLOW_MAP_OK);
    assert_string_equal(r.model_name, "m");
    assert_string_equal(r.experiment_name, "tagged");
    assert_string_equal(r.lifecycle_stage, "Staging");
    assert_true(r.training_started_at == -1 && r.model_created_at == -1 && r.model_updated_at == -1);
    mlflow_record_clear(&r);
    json_decref(run);

    /* only the experiment name tag: it names the model */
    run = parse("{\"info\":{\"run_uuid\":\"r3\"},\"data\":{\"tags\":[{\"key\":\"mlflow.experimentName\",\"value\":\"e\"}]}}");
    assert_int_equal(mlflow_map_run(run, NULL, &r), MLFLOW_MAP_OK);
    assert_string_equal(r.model_name, "e");
    assert_string_equal(r.version, "r3");
    mlflow_record_clear(&r);
    json_decref(run);
}

static void run_skips(void **state)
{
    struct mlflow_record r;
    json_t *run = parse("{\"info\":{\"run_id\":\"r\"}}"); /* no name at all: skipped */
    assert_int_equal(mlflow_map_run(run, NULL, &r), MLFLOW_MAP_SKIP);
    json_decref(run);
    run = parse("{\"info\":{\"run_id\":\"r\"},\"data\":{\"tags\":[{\"key\":\"mlflow.runName\",\"value\":\"\"}]}}");
    assert_int_equal(mlflow_map_run(run, NULL, &r), MLFLOW_MAP_SKIP);
    json_decref(run);
    run = parse("{\"info\":{\"run_id\":\"r\"},\"data\":{\"tags\":[{\"key\":\"mlflow.runName\",\"value\":\"x\"},"
                "{\"key\":\"mlflow.prompt.is_prompt\",\"value\":\"true\"}]}}");
    assert_int_equal(mlflow_map_run(run, NULL, &r), MLFLOW_MAP_SKIP);
    json_decref(run);
    run = parse("{\"info\":{}}"); /* no id */
    assert_int_equal(mlflow_map_run(run, NULL, &r), MLFLOW_MAP_INVALID);
    json_decref(run);
    run = parse("[1,2]");
    assert_int_equal(mlflow_map_run(run, NULL, &r), MLFLOW_MAP_INVALID);
    json_decref(run);
    /* garbage inside arrays is ignored, not fatal */
    run = parse("{\"info\":{\"run_id\":\"r\",\"start_time\":\"abc\"},\"data\":{\"metrics\":[1,{\"key\":\"k\"}],"
                "\"params\":{\"a\":1},\"tags\":[{\"key\":\"mlflow.runName\",\"value\":\"x\"},{\"key\":5,\"value\":\"y\"},"
                "{\"key\":\"n\",\"value\":7}]}}");
    assert_int_equal(mlflow_map_run(run, NULL, &r), MLFLOW_MAP_OK);
    assert_true(r.training_started_at == -1);
    assert_int_equal((int)json_object_size(r.tags), 1);
    assert_int_equal((int)json_object_size(r.metrics), 0);
    mlflow_record_clear(&r);
    json_decref(run);
}

static void versions(void **state)
{
    json_t *mv = parse("{\"name\":\"fraud-detector\",\"version\":\"3\",\"creation_timestamp\":100,"
                       "\"last_updated_timestamp\":200,\"current_stage\":\"Production\",\"description\":\"\","
                       "\"source\":\"models:/m-1\",\"run_id\":\"\",\"status\":\"READY\","
                       "\"tags\":[{\"key\":\"validated\",\"value\":\"true\"}],\"run_link\":\"\"}");
    struct mlflow_record r;
    assert_int_equal(mlflow_map_version(mv, "champion,prod", &r), MLFLOW_MAP_OK);
    assert_string_equal(r.kind, "model_version");
    assert_string_equal(r.model_name, "fraud-detector");
    assert_string_equal(r.version, "3");
    assert_null(r.run_id);      /* "" = absent */
    assert_null(r.description);
    assert_string_equal(r.lifecycle_stage, "Production");
    assert_string_equal(r.status, "READY");
    assert_string_equal(r.source, "models:/m-1");
    assert_true(r.model_created_at == 100 && r.model_updated_at == 200);
    assert_string_equal(json_string_value(json_object_get(r.tags, MLFLOW_ALIASES_TAG)), "champion,prod");
    assert_string_equal(json_string_value(json_object_get(r.tags, "validated")), "true");
    mlflow_record_clear(&r);
    json_decref(mv);

    /* minimal: omitted fields; aliases on the version itself (get answers) */
    mv = parse("{\"name\":\"m\",\"version\":\"1\",\"aliases\":[\"a\",\"b\"]}");
    assert_int_equal(mlflow_map_version(mv, NULL, &r), MLFLOW_MAP_OK);
    assert_string_equal(r.lifecycle_stage, "None");
    assert_null(r.status);
    assert_true(r.model_created_at == -1);
    assert_string_equal(json_string_value(json_object_get(r.tags, MLFLOW_ALIASES_TAG)), "a,b");
    mlflow_record_clear(&r);
    json_decref(mv);

    mv = parse("{\"name\":\"p\",\"version\":\"1\",\"tags\":[{\"key\":\"mlflow.prompt.is_prompt\",\"value\":\"true\"}]}");
    assert_int_equal(mlflow_map_version(mv, NULL, &r), MLFLOW_MAP_SKIP);
    json_decref(mv);
    mv = parse("{\"name\":\"p\"}");
    assert_int_equal(mlflow_map_version(mv, NULL, &r), MLFLOW_MAP_INVALID);
    json_decref(mv);
    mv = parse("{\"name\":\"p\",\"version\":3}");
    assert_int_equal(mlflow_map_version(mv, NULL, &r), MLFLOW_MAP_INVALID);
    json_decref(mv);
}

static void helpers(void **state)
{
    json_t *o = parse("{\"a\":\"\",\"b\":\"x\",\"c\":5,\"t\":\"123\",\"u\":\"12a\",\"r\":1.5e3,\"n\":-4}");
    assert_null(mlflow_str(o, "a"));
    assert_string_equal(mlflow_str(o, "b"), "x");
    assert_null(mlflow_str(o, "c"));
    assert_null(mlflow_str(o, "zz"));
    assert_true(mlflow_ms(o, "c") == 5);
    assert_true(mlflow_ms(o, "t") == 123);
    assert_true(mlflow_ms(o, "u") == -1);
    assert_true(mlflow_ms(o, "r") == 1500);
    assert_true(mlflow_ms(o, "n") == -1);
    json_decref(o);
    json_t *tags = parse("[{\"key\":\"mlflow.prompt.is_prompt\",\"value\":\"TRUE\"}]");
    assert_true(mlflow_tags_is_prompt(tags));
    json_decref(tags);
    tags = parse("[{\"key\":\"mlflow.prompt.is_prompt\",\"value\":\"false\"}]");
    assert_false(mlflow_tags_is_prompt(tags));
    assert_false(mlflow_tags_is_prompt(NULL));
    json_decref(tags);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(run_full), cmocka_unit_test(run_fallbacks), cmocka_unit_test(run_skips),
        cmocka_unit_test(versions), cmocka_unit_test(helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
