/* tests/fuzz/fuzz_slack: Slack's answers and the Slack message, through the pure entry
 * points of slack_send.h and slack_webhooks.h. The first input byte picks the path:
 *   0: bytes 1-2 are an HTTP status, byte 3 an outcome, the rest the body of a
 *      chat.postMessage answer -> slack_classify_api;
 *   1: the same for an incoming-webhook answer -> slack_classify_webhook;
 *   2: the rest is "title\nmessage\nurl" -> slack_text_error, slack_routing_type_valid,
 *      and for accepted text slack_call_webhook (the Block Kit body).
 * Answers that would make the classifier read the Retry-After header (status 429, or an
 * API error that means rate limited) are skipped: fetch_response_header only works on a
 * response made by net/fetch (it reaches into the transfer), not on one made here.
 * Properties: a classification is one of the enum values with a printable,
 * NUL-terminated error; an OK API answer has ts and channel NUL-terminated; accepted
 * text builds a JSON body whose header and section texts are the title and message. */
#include "fuzz.h"

#include <jansson.h>

#include "integrations/slack_send.h"
#include "integrations/slack_webhooks.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    json_object_seed(1);
    return 0;
}

static bool printable(const char *s, size_t cap)
{
    const char *end = memchr(s, '\0', cap);
    if (!end)
        return false;
    for (; s < end; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return false;
    return true;
}

/* Would slack_classify_api look at Retry-After for this body? (mirrors its set_error) */
static bool api_rate_limited(const char *body, size_t len)
{
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    const char *e = json_string_value(json_object_get(j, "error"));
    bool rl = false;
    if (json_is_false(json_object_get(j, "ok")) && e) {
        char buf[128];
        size_t n = strlen(e), k = 0;
        for (size_t i = 0; i < n && k + 1 < sizeof buf; i++)
            buf[k++] = (unsigned char)e[i] >= 0x20 && (unsigned char)e[i] < 0x7f ? e[i] : '?';
        buf[k] = '\0';
        rl = strcmp(buf, "ratelimited") == 0 || strcmp(buf, "rate_limited") == 0;
    }
    json_decref(j);
    return rl;
}

static void classify(bool api, const uint8_t *data, size_t size)
{
    if (size < 3)
        return;
    long status = 100 + (long)((data[0] << 8 | data[1]) % 500);
    enum fetch_outcome outcome = data[2] % 4 ? FETCH_OK : (enum fetch_outcome)(data[2] / 4 % 10);
    char *body = fuzz_strndup(data + 3, size - 3);
    if (outcome == FETCH_OK && (status == 429 || (api && api_rate_limited(body, size - 3)))) {
        free(body);
        return;
    }
    struct fetch_response res;
    memset(&res, 0, sizeof res);
    res.outcome = outcome;
    res.status = outcome == FETCH_OK ? status : 0;
    res.body = body;
    res.body_len = size - 3;
    res.error = outcome == FETCH_OK ? NULL : "fuzz";
    struct slack_post_outcome o;
    memset(&o, 0xa5, sizeof o);
    if (api)
        slack_classify_api(&res, &o);
    else
        slack_classify_webhook(&res, &o);
    FUZZ_ASSERT(o.result >= SLACK_POST_OK && o.result <= SLACK_POST_FAILED);
    FUZZ_ASSERT(printable(o.error, sizeof o.error));
    FUZZ_ASSERT(memchr(o.ts, '\0', sizeof o.ts) && memchr(o.channel, '\0', sizeof o.channel));
    if (o.result == SLACK_POST_RATE_LIMITED)
        FUZZ_ASSERT(o.retry_after_s >= 1 && o.retry_after_s <= 3600);
    if (outcome != FETCH_OK)
        FUZZ_ASSERT(o.result == SLACK_POST_RETRYABLE || o.result == SLACK_POST_FAILED);
    free(body);
}

static void message(const uint8_t *data, size_t size)
{
    const uint8_t *part[3];
    size_t len[3];
    size_t n = fuzz_split(data, size, '\n', part, len, 3);
    const char *title = (const char *)part[0], *msg = n > 1 ? (const char *)part[1] : "";
    size_t tlen = len[0], mlen = n > 1 ? len[1] : 0;

    (void)slack_routing_type_valid(title, tlen);
    for (size_t i = 0; i < SLACK_ROUTING_TYPES; i++)
        FUZZ_ASSERT(slack_routing_type_valid(slack_routing_types[i], strlen(slack_routing_types[i])));

    const char *err = slack_text_error(title, tlen, msg, mlen);
    if (err) {
        FUZZ_ASSERT(*err);
        return;
    }
    FUZZ_ASSERT(tlen > 0 && mlen > 0);
    char *t = fuzz_strndup(title, tlen), *m = fuzz_strndup(msg, mlen);
    char *url = n > 2 ? fuzz_strndup(part[2], len[2]) : fuzz_strndup("https://hooks.slack.com/services/T/B/x", 38);
    json_t *jt = json_stringn(t, tlen), *jm = json_stringn(m, mlen); /* NULL: not valid UTF-8 */
    struct slack_call c;
    int rc = slack_call_webhook(&c, url, t, m);
    if (jt && jm && strlen(url) < sizeof c.url) {
        FUZZ_ASSERT(rc == 0 && c.body && c.fr.body == c.body && c.fr.body_len == strlen(c.body));
        FUZZ_ASSERT(strcmp(c.url, url) == 0);
        json_error_t je;
        json_t *b = json_loads(c.body, 0, &je);
        FUZZ_ASSERT(b != NULL);
        json_t *blocks = json_object_get(b, "blocks");
        FUZZ_ASSERT(json_array_size(blocks) == 3);
        FUZZ_ASSERT(json_equal(json_object_get(json_object_get(json_array_get(blocks, 0), "text"), "text"), jt));
        FUZZ_ASSERT(json_equal(json_object_get(json_object_get(json_array_get(blocks, 1), "text"), "text"), jm));
        FUZZ_ASSERT(json_object_get(b, "channel") == NULL);
        json_decref(b);
    }
    if (rc == 0)
        slack_call_clear(&c);
    else
        FUZZ_ASSERT(c.body == NULL && c.auth == NULL);
    json_decref(jt);
    json_decref(jm);
    free(url);
    free(m);
    free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024)
        return 0;
    switch (data[0] % 3) {
    case 0:
        classify(true, data + 1, size - 1);
        break;
    case 1:
        classify(false, data + 1, size - 1);
        break;
    default:
        message(data + 1, size - 1);
    }
    return 0;
}
