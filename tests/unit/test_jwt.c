/* tests/unit/test_jwt: HS256 verification order, claim typing and expiry. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/jwt.h"
#include "util/codec.h"

#define SECRET "test-secret-for-integrationsd-unit-tests"
#define NOW_MS 1768676836000LL          /* 2026-01-17, before the fixtures expire */
#define HS256_HDR "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define GOOD_PAYLOAD                                                               \
    "{\"id\":7,\"email\":\"a@b.c\",\"roleName\":\"Editor\",\"tenantId\":\"a4ayc80OGd\"," \
    "\"organizationId\":1,\"expire\":1768680436000,\"iat\":1768676836}"

/* Computed independently with Python's hmac/base64 over GOOD_PAYLOAD and SECRET. */
static const char known_token[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJpZCI6NywiZW1haWwiOiJhQGIuYyIsInJvbGVOYW1lIjoiRWRpdG9yIiwidGVuYW50SWQiOiJhNGF5Yzgw"
    "T0dkIiwib3JnYW5pemF0aW9uSWQiOjEsImV4cGlyZSI6MTc2ODY4MDQzNjAwMCwiaWF0IjoxNzY4Njc2ODM2fQ."
    "FeMNGotL8jGrgJtmJ9Rhy9RKwkEAqkHpDpXWsN2920k";
/* Same payload, header alg HS512, HMAC-SHA512 with the same secret (Python). */
static const char hs512_token[] =
    "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9."
    "eyJpZCI6NywiZW1haWwiOiJhQGIuYyIsInJvbGVOYW1lIjoiRWRpdG9yIiwidGVuYW50SWQiOiJhNGF5Yzgw"
    "T0dkIiwib3JnYW5pemF0aW9uSWQiOjEsImV4cGlyZSI6MTc2ODY4MDQzNjAwMCwiaWF0IjoxNzY4Njc2ODM2fQ."
    "SVxBOC1YleP7w5kstz9BoA6hQc-McCPVgNL6BTbPrB1eu_yEW1E1nGFs5hdSC1w_vn0Up30TnEfslMPtZn4WGQ";

/* Build "b64(header).b64(payload).b64(mac)" with the given digest (NULL: an
 * empty signature segment). Caller frees. */
static char *make_token_md(const char *header, const char *payload, const EVP_MD *md)
{
    size_t hl = strlen(header), pl = strlen(payload);
    char *tok = malloc(b64url_encoded_len(hl) + b64url_encoded_len(pl) + 200);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t n;

    assert_non_null(tok);
    n = b64url_encode((const unsigned char *)header, hl, tok);
    tok[n++] = '.';
    n += b64url_encode((const unsigned char *)payload, pl, tok + n);
    if (md != NULL) {
        assert_non_null(HMAC(md, SECRET, (int)strlen(SECRET), (unsigned char *)tok, n, mac,
                             &maclen));
        tok[n++] = '.';
        b64url_encode(mac, maclen, tok + n);
    } else {
        tok[n++] = '.';
        tok[n] = '\0';
    }
    return tok;
}

static char *make_token(const char *header, const char *payload)
{
    return make_token_md(header, payload, EVP_sha256());
}

static enum jwt_status verify(const char *tok, struct jwt_claims *c)
{
    return jwt_verify_hs256(tok, strlen(tok), (const unsigned char *)SECRET, strlen(SECRET),
                            NOW_MS, c);
}

static enum jwt_status verify_built(const char *header, const char *payload, struct jwt_claims *c)
{
    char *tok = make_token(header, payload);
    enum jwt_status st = verify(tok, c);
    free(tok);
    return st;
}

static void test_known_token(void **state)
{
    (void)state;
    struct jwt_claims c;

    assert_int_equal(verify(known_token, &c), JWT_OK);
    assert_true(c.has_id);
    assert_int_equal(c.id, 7);
    assert_true(c.has_role);
    assert_string_equal(c.role_name, "Editor");
    assert_true(c.has_tenant);
    assert_string_equal(c.tenant_id, "a4ayc80OGd");
    assert_true(c.has_org);
    assert_int_equal(c.organization_id, 1);
    assert_true(c.expire_ms == 1768680436000.0);
    assert_false(c.has_exp);

    /* The token built here from the same parts is byte-identical. */
    char *tok = make_token(HS256_HDR, GOOD_PAYLOAD);
    assert_string_equal(tok, known_token);
    free(tok);
}

static void test_sign_round_trip(void **state)
{
    (void)state;
    struct jwt_claims c;
    char *tok = jwt_sign_hs256(GOOD_PAYLOAD, (const unsigned char *)SECRET, strlen(SECRET));

    assert_non_null(tok);
    assert_string_equal(tok, known_token);
    assert_int_equal(verify(tok, &c), JWT_OK);
    assert_int_equal(c.id, 7);
    free(tok);

    tok = jwt_sign_hs256("{\"id\":1,\"roleName\":\"Admin\",\"expire\":2e12}",
                         (const unsigned char *)"k", 1);
    assert_non_null(tok);
    assert_int_equal(jwt_verify_hs256(tok, strlen(tok), (const unsigned char *)"k", 1, NOW_MS, &c),
                     JWT_OK);
    assert_true(c.expire_ms == 2e12);
    assert_int_equal(jwt_verify_hs256(tok, strlen(tok), (const unsigned char *)"K", 1, NOW_MS, &c),
                     JWT_INVALID);
    free(tok);
    assert_null(jwt_sign_hs256(NULL, (const unsigned char *)"k", 1));
}

static void test_bad_signature(void **state)
{
    (void)state;
    struct jwt_claims c;
    char tok[sizeof known_token];

    /* wrong secret */
    assert_int_equal(jwt_verify_hs256(known_token, strlen(known_token),
                                      (const unsigned char *)"other", 5, NOW_MS, &c),
                     JWT_INVALID);
    assert_false(c.has_id);
    /* one signature character changed (keeping the encoding canonical) */
    memcpy(tok, known_token, sizeof tok);
    tok[strlen(tok) - 5] = tok[strlen(tok) - 5] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(tok, &c), JWT_INVALID);
    /* payload changed, signature kept */
    char *other = make_token(HS256_HDR, "{\"id\":8,\"roleName\":\"Admin\",\"expire\":1768680436000}");
    char *dot = strrchr(other, '.');
    char *mixed = malloc(strlen(other) + 64);
    assert_non_null(mixed);
    memcpy(mixed, other, (size_t)(dot - other));
    strcpy(mixed + (dot - other), strrchr(known_token, '.'));
    assert_int_equal(verify(mixed, &c), JWT_INVALID);
    free(mixed);
    free(other);
    /* truncated signature */
    memcpy(tok, known_token, sizeof tok);
    tok[strlen(tok) - 2] = '\0';
    assert_int_equal(verify(tok, &c), JWT_INVALID);
    /* signature with an appended byte */
    char longer[sizeof known_token + 8];
    snprintf(longer, sizeof longer, "%sAA", known_token);
    assert_int_equal(verify(longer, &c), JWT_INVALID);
    /* verify over a prefix of the buffer: len is honoured */
    assert_int_equal(jwt_verify_hs256(longer, strlen(known_token), (const unsigned char *)SECRET,
                                      strlen(SECRET), NOW_MS, &c),
                     JWT_OK);
}

static void test_alg(void **state)
{
    (void)state;
    struct jwt_claims c;

    /* HS512 signed with the same key (Python fixture) */
    assert_int_equal(verify(hs512_token, &c), JWT_INVALID);
    /* HS512 header, but a correct HS256 MAC over it */
    assert_int_equal(verify_built("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", GOOD_PAYLOAD, &c),
                     JWT_INVALID);
    char *t = make_token_md("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", GOOD_PAYLOAD, EVP_sha512());
    assert_int_equal(verify(t, &c), JWT_INVALID);
    free(t);
    /* alg none, with and without a signature segment */
    t = make_token_md("{\"alg\":\"none\",\"typ\":\"JWT\"}", GOOD_PAYLOAD, NULL);
    assert_int_equal(verify(t, &c), JWT_INVALID);
    free(t);
    assert_int_equal(verify_built("{\"alg\":\"none\"}", GOOD_PAYLOAD, &c), JWT_INVALID);
    /* case, missing, wrong type */
    assert_int_equal(verify_built("{\"alg\":\"hs256\"}", GOOD_PAYLOAD, &c), JWT_INVALID);
    assert_int_equal(verify_built("{\"alg\":\"HS256 \"}", GOOD_PAYLOAD, &c), JWT_INVALID);
    assert_int_equal(verify_built("{\"typ\":\"JWT\"}", GOOD_PAYLOAD, &c), JWT_INVALID);
    assert_int_equal(verify_built("{\"alg\":256}", GOOD_PAYLOAD, &c), JWT_INVALID);
    assert_int_equal(verify_built("{\"alg\":\"RS256\"}", GOOD_PAYLOAD, &c), JWT_INVALID);
    /* typ absent is fine, other typ is not; crit is refused */
    assert_int_equal(verify_built("{\"alg\":\"HS256\"}", GOOD_PAYLOAD, &c), JWT_OK);
    assert_int_equal(verify_built("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", GOOD_PAYLOAD, &c),
                     JWT_INVALID);
    assert_int_equal(verify_built("{\"alg\":\"HS256\",\"typ\":null}", GOOD_PAYLOAD, &c),
                     JWT_INVALID);
    assert_int_equal(verify_built("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", GOOD_PAYLOAD, &c),
                     JWT_INVALID);
    assert_int_equal(verify_built("{\"alg\":\"HS256\",\"alg\":\"HS256\"}", GOOD_PAYLOAD, &c),
                     JWT_INVALID);
    /* header not JSON / not an object */
    assert_int_equal(verify_built("{\"alg\":\"HS256\"", GOOD_PAYLOAD, &c), JWT_INVALID);
    assert_int_equal(verify_built("HS256", GOOD_PAYLOAD, &c), JWT_INVALID);
    assert_int_equal(verify_built("[\"HS256\"]", GOOD_PAYLOAD, &c), JWT_INVALID);
    assert_int_equal(verify_built("{\"alg\":\"HS256\"} x", GOOD_PAYLOAD, &c), JWT_INVALID);
}

static void test_expiry(void **state)
{
    (void)state;
    struct jwt_claims c;

    /* expire (ms) in the past; claims still filled */
    assert_int_equal(verify_built(HS256_HDR,
                                  "{\"id\":3,\"roleName\":\"Admin\",\"expire\":1768676835999}", &c),
                     JWT_EXPIRED);
    assert_true(c.has_id);
    assert_int_equal(c.id, 3);
    /* expire == now is not expired (expire < now) */
    assert_int_equal(verify_built(HS256_HDR, "{\"id\":3,\"expire\":1768676836000}", &c), JWT_OK);
    /* expire as a real */
    assert_int_equal(verify_built(HS256_HDR, "{\"expire\":1768676836000.5}", &c), JWT_OK);
    assert_int_equal(verify_built(HS256_HDR, "{\"expire\":1.0e3}", &c), JWT_EXPIRED);
    /* exp (s) in the past, expire in the future */
    assert_int_equal(verify_built(HS256_HDR, "{\"expire\":1768680436000,\"exp\":1768676835}", &c),
                     JWT_EXPIRED);
    assert_true(c.has_exp);
    assert_int_equal(c.exp, 1768676835);
    assert_int_equal(verify_built(HS256_HDR, "{\"expire\":1768680436000,\"exp\":1768676836}", &c),
                     JWT_EXPIRED);
    assert_int_equal(verify_built(HS256_HDR, "{\"expire\":1768680436000,\"exp\":1768676837}", &c),
                     JWT_OK);
    assert_int_equal(
        verify_built(HS256_HDR, "{\"expire\":1768680436000,\"exp\":9223372036854775807}", &c),
        JWT_OK);
    assert_int_equal(
        verify_built(HS256_HDR, "{\"expire\":1768680436000,\"exp\":-9223372036854775808}", &c),
        JWT_EXPIRED);
    /* exp not an integer */
    assert_int_equal(verify_built(HS256_HDR, "{\"expire\":1768680436000,\"exp\":1768680436.0}", &c),
                     JWT_INVALID);
    assert_int_equal(verify_built(HS256_HDR, "{\"expire\":1768680436000,\"exp\":\"9999999999\"}", &c),
                     JWT_INVALID);
    assert_int_equal(verify_built(HS256_HDR, "{\"expire\":1768680436000,\"exp\":null}", &c),
                     JWT_INVALID);
    /* missing or non-numeric expire */
    assert_int_equal(verify_built(HS256_HDR, "{\"id\":1,\"roleName\":\"Admin\"}", &c), JWT_INVALID);
    assert_int_equal(verify_built(HS256_HDR, "{\"id\":1,\"exp\":9999999999}", &c), JWT_INVALID);
    assert_int_equal(verify_built(HS256_HDR, "{\"expire\":\"1768680436000\"}", &c), JWT_INVALID);
    assert_int_equal(verify_built(HS256_HDR, "{\"expire\":null}", &c), JWT_INVALID);
    assert_int_equal(verify_built(HS256_HDR, "{\"expire\":true}", &c), JWT_INVALID);
    assert_int_equal(verify_built(HS256_HDR, "{}", &c), JWT_INVALID);
}

static void test_claim_types(void **state)
{
    (void)state;
    struct jwt_claims c;

    assert_int_equal(verify_built(HS256_HDR, "{\"expire\":1768680436000}", &c), JWT_OK);
    assert_false(c.has_id);
    assert_false(c.has_role);
    assert_false(c.has_tenant);
    assert_false(c.has_org);
    assert_false(c.has_exp);
    assert_string_equal(c.role_name, "");

    assert_int_equal(verify_built(HS256_HDR,
                                  "{\"expire\":1768680436000,\"id\":\"7\",\"roleName\":7,"
                                  "\"tenantId\":null,\"organizationId\":1.0}",
                                  &c),
                     JWT_OK);
    assert_false(c.has_id);
    assert_false(c.has_role);
    assert_false(c.has_tenant);
    assert_false(c.has_org);

    assert_int_equal(verify_built(HS256_HDR,
                                  "{\"expire\":1768680436000,\"id\":7.5,\"roleName\":[\"Admin\"],"
                                  "\"tenantId\":{},\"organizationId\":\"1\"}",
                                  &c),
                     JWT_OK);
    assert_false(c.has_id);
    assert_false(c.has_role);
    assert_false(c.has_tenant);
    assert_false(c.has_org);

    /* negative and zero ids are still integers (the middleware judges them) */
    assert_int_equal(verify_built(HS256_HDR,
                                  "{\"expire\":1768680436000,\"id\":-4,\"organizationId\":0,"
                                  "\"roleName\":\"\",\"tenantId\":\"x\"}",
                                  &c),
                     JWT_OK);
    assert_true(c.has_id);
    assert_int_equal(c.id, -4);
    assert_true(c.has_org);
    assert_int_equal(c.organization_id, 0);
    assert_true(c.has_role);
    assert_string_equal(c.role_name, "");
    assert_true(c.has_tenant);
    assert_string_equal(c.tenant_id, "x");

    /* 63 bytes fit, 64 do not */
    char payload[512];
    char s63[64], s64[65];
    memset(s63, 'r', 63);
    s63[63] = '\0';
    memset(s64, 't', 64);
    s64[64] = '\0';
    snprintf(payload, sizeof payload,
             "{\"expire\":1768680436000,\"roleName\":\"%s\",\"tenantId\":\"%s\"}", s63, s64);
    assert_int_equal(verify_built(HS256_HDR, payload, &c), JWT_OK);
    assert_true(c.has_role);
    assert_string_equal(c.role_name, s63);
    assert_false(c.has_tenant);
    assert_string_equal(c.tenant_id, "");
    snprintf(payload, sizeof payload,
             "{\"expire\":1768680436000,\"roleName\":\"%s\",\"tenantId\":\"%s\"}", s64, s63);
    assert_int_equal(verify_built(HS256_HDR, payload, &c), JWT_OK);
    assert_false(c.has_role);
    assert_true(c.has_tenant);

    /* ids beyond long long make the payload unparsable */
    assert_int_equal(
        verify_built(HS256_HDR, "{\"expire\":1768680436000,\"id\":99999999999999999999}", &c),
        JWT_INVALID);
}

static void test_payload_shape(void **state)
{
    (void)state;
    struct jwt_claims c;

    assert_int_equal(verify_built(HS256_HDR,
                                  "{\"id\":1,\"id\":2,\"expire\":1768680436000}", &c),
                     JWT_INVALID);
    assert_int_equal(verify_built(HS256_HDR,
                                  "{\"expire\":1768680436000,\"expire\":1768680436000}", &c),
                     JWT_INVALID);
    assert_int_equal(verify_built(HS256_HDR, "[{\"expire\":1768680436000}]", &c), JWT_INVALID);
    assert_int_equal(verify_built(HS256_HDR, "1768680436000", &c), JWT_INVALID);
    assert_int_equal(verify_built(HS256_HDR, "\"x\"", &c), JWT_INVALID);
    assert_int_equal(verify_built(HS256_HDR, "not json", &c), JWT_INVALID);
    assert_int_equal(verify_built(HS256_HDR, "{\"expire\":1768680436000} {}", &c), JWT_INVALID);
    assert_int_equal(verify_built(HS256_HDR, "{\"expire\":1768680436000,\"a\":\"\\u0000\"}", &c),
                     JWT_INVALID);
}

static void test_format(void **state)
{
    (void)state;
    struct jwt_claims c;
    const char *dot1 = strchr(known_token, '.');
    const char *dot2 = strrchr(known_token, '.');
    char buf[sizeof known_token + 16];
    size_t h = (size_t)(dot1 - known_token), s = (size_t)(dot2 - known_token);

    assert_int_equal(verify("", &c), JWT_INVALID);
    assert_int_equal(verify(".", &c), JWT_INVALID);
    assert_int_equal(verify("..", &c), JWT_INVALID);
    assert_int_equal(verify("...", &c), JWT_INVALID);
    assert_int_equal(verify("garbage", &c), JWT_INVALID);
    assert_int_equal(verify("a.b", &c), JWT_INVALID);
    assert_int_equal(jwt_verify_hs256(NULL, 0, (const unsigned char *)SECRET, strlen(SECRET),
                                      NOW_MS, &c),
                     JWT_INVALID);

    /* only one dot: header.payload, signature dropped */
    memcpy(buf, known_token, s);
    buf[s] = '\0';
    assert_int_equal(verify(buf, &c), JWT_INVALID);
    /* no dots at all */
    assert_int_equal(verify("eyJhbGciOiJIUzI1NiJ9", &c), JWT_INVALID);
    /* four segments */
    snprintf(buf, sizeof buf, "%s.AAAA", known_token);
    assert_int_equal(verify(buf, &c), JWT_INVALID);
    /* empty header, empty payload, empty signature */
    snprintf(buf, sizeof buf, "%s", dot1);
    assert_int_equal(verify(buf, &c), JWT_INVALID);
    snprintf(buf, sizeof buf, "%.*s.%s", (int)h, known_token, dot2);
    assert_int_equal(verify(buf, &c), JWT_INVALID);
    snprintf(buf, sizeof buf, "%.*s.", (int)s, known_token);
    assert_int_equal(verify(buf, &c), JWT_INVALID);

    /* garbage base64 in each segment */
    memcpy(buf, known_token, sizeof known_token);
    buf[3] = '+';
    assert_int_equal(verify(buf, &c), JWT_INVALID);
    memcpy(buf, known_token, sizeof known_token);
    buf[h + 4] = '/';
    assert_int_equal(verify(buf, &c), JWT_INVALID);
    memcpy(buf, known_token, sizeof known_token);
    buf[s + 4] = '=';
    assert_int_equal(verify(buf, &c), JWT_INVALID);
    memcpy(buf, known_token, sizeof known_token);
    buf[h + 10] = ' ';
    assert_int_equal(verify(buf, &c), JWT_INVALID);
    /* padding appended to the signature */
    snprintf(buf, sizeof buf, "%s=", known_token);
    assert_int_equal(verify(buf, &c), JWT_INVALID);
    /* non-canonical last signature character (same bytes under a lax decoder) */
    memcpy(buf, known_token, sizeof known_token);
    buf[strlen(buf) - 1] = 'l';        /* 'k' = 36, 'l' = 37: low 2 bits set */
    assert_int_equal(verify(buf, &c), JWT_INVALID);
    /* embedded NUL inside len */
    memcpy(buf, known_token, sizeof known_token);
    buf[h + 2] = '\0';
    assert_int_equal(jwt_verify_hs256(buf, strlen(known_token), (const unsigned char *)SECRET,
                                      strlen(SECRET), NOW_MS, &c),
                     JWT_INVALID);
    /* Bearer prefix left on */
    snprintf(buf, sizeof buf, "Bearer %s", known_token);
    assert_int_equal(verify(buf, &c), JWT_INVALID);
}

static void test_length_cap(void **state)
{
    (void)state;
    struct jwt_claims c;
    char payload[JWT_MAX_LEN];
    const char *pre = "{\"expire\":1768680436000,\"pad\":\"";
    size_t plen;

    /* a payload whose token is just over the cap: rejected though correctly signed */
    plen = strlen(pre);
    memcpy(payload, pre, plen);
    memset(payload + plen, 'x', 6200 - plen);
    memcpy(payload + 6200, "\"}", 3);
    char *tok = jwt_sign_hs256(payload, (const unsigned char *)SECRET, strlen(SECRET));
    assert_non_null(tok);
    assert_true(strlen(tok) > JWT_MAX_LEN);
    assert_int_equal(verify(tok, &c), JWT_INVALID);
    free(tok);

    /* one just under the cap verifies */
    memset(payload + plen, 'x', 6000 - plen);
    memcpy(payload + 6000, "\"}", 3);
    tok = jwt_sign_hs256(payload, (const unsigned char *)SECRET, strlen(SECRET));
    assert_non_null(tok);
    assert_true(strlen(tok) <= JWT_MAX_LEN);
    assert_int_equal(verify(tok, &c), JWT_OK);
    free(tok);
}

static void test_null_out(void **state)
{
    (void)state;
    assert_int_equal(jwt_verify_hs256(known_token, strlen(known_token),
                                      (const unsigned char *)SECRET, strlen(SECRET), NOW_MS, NULL),
                     JWT_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_token),
        cmocka_unit_test(test_sign_round_trip),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_alg),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_claim_types),
        cmocka_unit_test(test_payload_shape),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_length_cap),
        cmocka_unit_test(test_null_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
