/* integrations/mlflow_map: MLflow objects -> rows of "<tenant>".mlflow_model_records.
 * Pure (no I/O): a run (reference 3.2) or a registered-model version becomes one
 * struct mlflow_record; missing and empty ("") fields are treated alike; prompts
 * (tag mlflow.prompt.is_prompt = "true") are skipped.
 * Strings in a record are borrowed from the parsed JSON it came from; the three
 * JSON members are owned by the record (mlflow_record_clear releases them). */
#ifndef IDX_INTEGRATIONS_MLFLOW_MAP_H
#define IDX_INTEGRATIONS_MLFLOW_MAP_H
#include <jansson.h>
#include <stdbool.h>

#include "util/compiler.h"

#define MLFLOW_ALIASES_TAG "mlflow.aliases"

enum mlflow_map_result { MLFLOW_MAP_OK = 0, MLFLOW_MAP_SKIP = 1, MLFLOW_MAP_INVALID = -1 };

struct mlflow_experiment_info {
    const char *id;
    const char *name;               /* NULL when absent */
    const char *artifact_location;  /* NULL when absent */
};

struct mlflow_record {
    const char *kind;               /* "run" or "model_version" */
    const char *model_name, *version, *lifecycle_stage, *run_id, *description, *source, *status;
    const char *experiment_id, *experiment_name, *artifact_location, *training_status, *source_version;
    json_t *tags, *metrics, *parameters;   /* objects, owned */
    long long training_started_at, training_ended_at, model_created_at, model_updated_at; /* ms; -1 = NULL */
};

/* A string member that is present, a string and not empty; else NULL. */
const char *mlflow_str(const json_t *obj, const char *key);
/* An epoch-milliseconds member (number or digit string), or -1. */
long long mlflow_ms(const json_t *obj, const char *key);
/* [{key,value}] -> {key: value} for string values (a new object; never NULL on success). */
json_t *mlflow_tags_object(const json_t *arr) MUSTCHECK;
/* Does a [{key,value}] array carry mlflow.prompt.is_prompt = "true"? */
bool mlflow_tags_is_prompt(const json_t *arr);

/* An index of an experiments/search array: experiment_id -> experiment (the first
 * of equal ids), a new object holding references into exps; NULL on OOM. */
json_t *mlflow_experiment_index(const json_t *exps) MUSTCHECK;
/* The experiment with experiment_id `id` in an index, filled into buf (strings
 * borrowed from the experiments), or NULL when absent or id is NULL. One hash
 * lookup, whatever the size of the listing. */
const struct mlflow_experiment_info *mlflow_find_experiment(const json_t *index, const char *id,
                                                           struct mlflow_experiment_info *buf);

/* One run (a runs/search element). exp: the run's experiment when known, or NULL. */

enum mlflow_map_result mlflow_map_run(const json_t *run, const struct mlflow_experiment_info *exp,
                                      struct mlflow_record *out) MUSTCHECK;
/* One model version (a model-versions/search element). aliases: the version's
 * aliases joined with ',' (from the registered model), or NULL. */
enum mlflow_map_result mlflow_map_version(const json_t *mv, const char *aliases, struct mlflow_record *out)
    MUSTCHECK;

void mlflow_record_clear(struct mlflow_record *r);

/* The record as a JSON object for the upsert (jsonb_to_recordset); NULL on OOM. */
json_t *mlflow_record_json(const struct mlflow_record *r) MUSTCHECK;

#endif
