/* integrations/llm_keys_store: the SQL of /api/llm-keys and the decoding of its rows.
 * Statements run on the caller's tenant tables (<tenant>.llm_keys,
 * <tenant>.integrationsd_llm_key_fingerprints, <tenant>.integrationsd_llm_keys_unfingerprinted).
 * Each llm_keys_store_* statement function either submits its statement for r (done
 * runs as with app_query) or, when the statement cannot be built (invalid tenant, text
 * too long), answers r 500 itself: either way the handler has nothing left to do. Decoders take the result
 * those statements gave and never return any part of a key. */
#ifndef IDX_INTEGRATIONS_LLM_KEYS_STORE_H
#define IDX_INTEGRATIONS_LLM_KEYS_STORE_H
#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "app.h"
#include "crypto/secrets.h"
#include "integrations/llm_keys.h"

/* Rows without a fingerprint looked at per create / key change (VerifyWise-written). */
#define LLM_KEYS_BACKFILL_MAX 1000

/* The rows, newest first; of one provider when provider is not NULL. */
void llm_keys_store_list(struct http_req *r, const char *provider, app_query_done done);
/* Providers and their key counts. */
void llm_keys_store_status(struct http_req *r, app_query_done done);
/* The row id (id "0": none) and the rows listed as lacking a fingerprint
 * (<tenant>.integrationsd_llm_keys_unfingerprinted, at most LLM_KEYS_BACKFILL_MAX). */
void llm_keys_store_prequery(struct http_req *r, const char *id, app_query_done done);
/* Store the fingerprints of older rows and take them off the list, with the listed
 * rows that had one already (done_ids): ids, fps, done_ids and sums (the key_md5 of each
 * row fingerprinted) are array literals ("{1,2}", "{}"). A row whose stored key no longer
 * has that md5 gets no fingerprint and stays listed. */
void llm_keys_store_backfill(struct http_req *r, const char *ids, const char *fps, const char *done_ids,
                             const char *sums, app_query_done done);
/* Insert a checked key (enc: its scheme B ciphertext, fp: its fingerprint) with its
 * fingerprint; a fingerprint already taken is a unique violation. */
void llm_keys_store_insert(struct http_req *r, const struct llm_key_input *in, const char *enc, const char *fp,
                           app_query_done done);
/* Change row id: the fields of in that are set (the key as enc, with its fingerprint
 * fp); nothing set reads the row as it is. Returns the row, or none if absent. */
void llm_keys_store_update(struct http_req *r, const char *id, const struct llm_key_input *in, const char *enc,
                           const char *fp, app_query_done done);
/* Delete row id, returning its id. */
void llm_keys_store_delete(struct http_req *r, const char *id, app_query_done done);
/* Provider and stored key of row id. */
void llm_keys_store_get_key(struct http_req *r, const char *id, app_query_done done);

/* ---- decoding ---- */

/* The reference object of a row (key masked) / the array of all rows. */
json_t *llm_keys_row_json(const struct secrets *s, const PGresult *res, int row);
json_t *llm_keys_rows_json(const struct secrets *s, const PGresult *res);
/* The same array written into o as text: byte for byte json_dumps of llm_keys_rows_json
 * (o fails where jansson would refuse a string). */
struct json_out;
void llm_keys_rows_out(struct json_out *o, const struct secrets *s, const PGresult *res);
/* The data of llm_key.created / updated: id, provider, model, no part of the key. */
json_t *llm_keys_row_event(const PGresult *res, int row);
/* The status object (hasKeys, keyCount, providers) of llm_keys_store_status. */
json_t *llm_keys_status_json(const PGresult *res);
/* The id of a row llm_keys_store_delete returned. */
long long llm_keys_deleted_id(const PGresult *res, int row);

/* A row of llm_keys_store_prequery (strings borrowed from res). */
struct llm_key_prerow {
    const char *id, *key;
    const char *key_md5; /* md5 of key as stored (what its fingerprint is taken from) */
    bool target;   /* the row of the id asked for */
    bool needs_fp; /* no fingerprint stored yet */
    bool listed;   /* in the list of rows without a fingerprint */
};
void llm_keys_prerow(const PGresult *res, int row, struct llm_key_prerow *out);

/* A row of llm_keys_store_get_key (strings borrowed from res). */
void llm_keys_key_row(const PGresult *res, int row, const char **provider, const char **stored);

/* The mask of a stored key: scheme B ciphertext, a legacy plaintext row, or "****"
 * when it cannot be read. */
void llm_keys_mask_stored(const struct secrets *s, const char *stored, char out[SECRETS_MASK_MAX]);

#endif
