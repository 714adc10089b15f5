"""tests/openapi/hooks.py - Schemathesis hooks of the openapi stage (SCHEMATHESIS_HOOKS).

Schemathesis generates what the description allows; some values the description cannot
pin are facts of the live stack, and without them every schema-valid request would meet a
documented refusal instead of the code path it is meant to reach:

- the tenant of /v1/evaluate (and /v1/sessions/start): a tenant the edge does not serve is
  answered 503 constitution_missing by design (no verified state: the edge never guesses),
  so a tenant of the right syntax is replaced by one the stack serves (GOV_OA_TENANT);
- the scope and tenant asked of /v1/tokens/issue: the registered client's (GOV_OA_SCOPE,
  GOV_OA_TENANT), else 400 invalid_scope / 403 unauthorized_client;
- a token that verifies, for /v1/tokens/verify and /introspect: the generated empty token
  becomes the one the run was issued (GOV_OA_BEARER), so the 200 answers with claims are
  checked too (every other generated token is refused, as it must be);
- a decision that exists, for GET /v1/decisions: the run logged one (GOV_OA_DECISION_ID);
  a valid tenant becomes the served one, and a valid id starting with 0-7 (about half)
  becomes the logged decision's, so both the record and 404 decision_not_found are checked;
- client_id/client_secret in the body of issue, introspect and revoke: the run
  authenticates with HTTP Basic, and credentials twice are 400 invalid_request;
- a `ttl` generated as a real (12295.0): JSON Schema counts it an integer, the edge
  reads an integer literal only (400 invalid_request otherwise, as described), so an
  integral real is written as the integer it is;
- unknown form parameters whose name is longer than 64 bytes once percent-encoded: the
  edge refuses them (400 invalid_request, as described), a bound JSON Schema cannot state
  (it counts characters of the decoded name), so they are left out of form bodies.

- an original request that can pass, for /v1/authz: when the generated X-Original-URI has
  an even length (about half the cases), the check asks about `GET /openapi/<it, escaped>`
  without the body headers (random text there is refused 403 by design), so the 200 answer
  and its headers are checked as well as the refusals.

A replaced value has the syntax the description gives, so a negative case stays negative
(Schemathesis validates a case again after a hook changed it). Nothing here touches a
response or a check.
"""
import os
import re
from urllib.parse import quote, quote_plus

import schemathesis

TENANT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
SCOPE_RE = re.compile(r"[!#-\[\]-~]+( [!#-\[\]-~]+)*")
TENANT = os.environ["GOV_OA_TENANT"]
SCOPE = os.environ["GOV_OA_SCOPE"]
BEARER = os.environ["GOV_OA_BEARER"]
DECISION_ID = os.environ["GOV_OA_DECISION_ID"]
UUID7_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

EVALUATING = {"/v1/evaluate", "/v1/sessions/start"}
CLIENT_AUTH = {"/v1/tokens/issue", "/v1/tokens/introspect", "/v1/tokens/revoke"}
KNOWN_PARAMS = {"grant_type", "client_id", "client_secret", "scope", "tenant", "ttl",
                "expires_in", "token", "token_type_hint"}
FORM_NAME_MAX = 64
AUTHZ_BODY_HEADERS = {"Content-Digest", "X-Original-Content-Length", "X-Original-Transfer-Encoding"}


def _valid(rx, value):
    return isinstance(value, str) and rx.fullmatch(value) is not None


@schemathesis.hook
def map_case(context, case):
    path = case.operation.path
    if path == "/v1/decisions/{tenant}/{decision_id}" and isinstance(case.path_parameters, dict):
        params = dict(case.path_parameters)
        if _valid(TENANT_RE, params.get("tenant")):
            params["tenant"] = TENANT
        if _valid(UUID7_RE, params.get("decision_id")) and params["decision_id"][0] in "01234567":
            params["decision_id"] = DECISION_ID
        if params != case.path_parameters:
            case.path_parameters = params
        return case
    if path.startswith("/v1/authz") and isinstance(case.headers, dict):
        uri = case.headers.get("X-Original-URI")
        if isinstance(uri, str) and len(uri) % 2 == 0:
            headers = {k: v for k, v in case.headers.items() if k not in AUTHZ_BODY_HEADERS}
            headers["X-Original-Method"] = "GET"
            headers["X-Original-URI"] = "/openapi/" + quote(uri, safe="")
            case.headers = headers
        return case
    if not isinstance(case.body, dict):
        return case
    body = dict(case.body)
    if path in EVALUATING and _valid(TENANT_RE, body.get("tenant")):
        body["tenant"] = TENANT
    if path in CLIENT_AUTH:
        body.pop("client_id", None)
        body.pop("client_secret", None)
    if case.media_type == "application/x-www-form-urlencoded":
        for name in [k for k in body if k not in KNOWN_PARAMS]:
            if len(quote_plus(str(name))) > FORM_NAME_MAX:
                del body[name]
    if path in ("/v1/tokens/verify", "/v1/tokens/introspect") and body.get("token") == "":
        body["token"] = BEARER
    if path == "/v1/tokens/issue":
        ttl = body.get("ttl")
        if isinstance(ttl, float) and ttl.is_integer():
            body["ttl"] = int(ttl)
        if _valid(SCOPE_RE, body.get("scope")) and body["scope"] != "":
            body["scope"] = SCOPE
        if _valid(TENANT_RE, body.get("tenant")):
            body["tenant"] = TENANT
    if body != case.body:
        case.body = body
    return case
