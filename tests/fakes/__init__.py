# Fake upstream servers for integrationsd's tests (stdlib only).
#
# Each fake is an http.server.ThreadingHTTPServer running in a daemon thread on a free
# port (127.0.0.1 by default; pass host="127.0.0.2" for the SSRF deny-list tests). They
# behave as shared/reference/external-apis.md describes (status codes, JSON error bodies,
# headers) and record every request they receive so tests can assert on what the service
# sent.
#
#   fakes.base     FakeServer (threading, recording, marker parsing, slow/reset/huge helpers)
#   fakes.github   FakeGitHub: GET /user (and /rate_limit); gh_token(marker, prefix) builds tokens
#   fakes.llm      FakeAnthropic (GET /v1/models), FakeOpenAI (GET /v1/models),
#                  FakeOpenRouter (GET /api/v1/key, /api/v1/auth/key, public /api/v1/models);
#                  llm_key(provider, marker) builds keys
#
# Behaviour is chosen by the credential itself, so tests need no restart or shared state:
# the credential ends with an upper-case MARKER (random lower-case filler before it):
#   VALID        200 (GitHub: scopes header for ghp_/gho_/legacy, none for github_pat_/ghu_/ghs_/ghr_)
#   EMPTYSCOPES  GitHub: 200 with an empty X-OAuth-Scopes header
#   NORATE       GitHub: 200 without any X-RateLimit-* header
#   RATELIMIT    GitHub 403 + X-RateLimit-Remaining: 0; LLM providers 429
#   FORBIDDEN    GitHub 403 permissions (remaining > 0); Anthropic/OpenRouter 403; OpenAI 401 restricted key
#   SECONDARY    GitHub 403 secondary rate limit (Retry-After: 60, remaining > 0)
#   SLOW         answers VALID after server.slow_delay seconds (default 3)
#   SLOW<n>      ... after n seconds;  SLOWMS<n>  ... after n milliseconds
#   RESET        reads the request, then resets the connection (RST) without answering
#   CLOSE        reads the request, then closes the connection cleanly without answering
#   HUGE         200 with a 20 MiB JSON body
#   GARBAGE      200 with a non-JSON body
#   E500 / E502 / E503   that status with the provider's error body
#   anything else (no marker)  401 with the provider's "bad credentials" body
# Credentials registered with server.register(cred, marker) take precedence (e.g. legacy
# 40-hex GitHub tokens, which cannot carry a marker).
