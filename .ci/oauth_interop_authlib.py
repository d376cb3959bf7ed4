"""The service's OAuth 2.0 endpoints, driven by Authlib (PyPI) as a client application would.

Run by .ci/oauth-interop against the running service, configured only through the environment:
  OAUTH_ISSUER                        the issuer URL (everything else comes from discovery)
  OAUTH_PUBLIC_CLIENT_ID              the built-in public client (auth method "none")
  OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET    a confidential client: client_credentials, scope introspect
  OAUTH_OTHER_CLIENT_ID, OAUTH_OTHER_CLIENT_SECRET  a confidential client without any scope
  OAUTH_USERNAME, OAUTH_PASSWORD      a registered user
  OAUTH_ACCESS_TTL, OAUTH_REFRESH_TTL the service's token lifetimes in seconds

Uses Authlib's requests integration (OAuth2Session; its httpx one asks for httpx2 now) the way its
documentation shows: the session is built from the discovered metadata (token_endpoint), tokens
come from fetch_token / refresh_token, and introspect_token / revoke_token use the metadata's
endpoints. Token endpoint errors must surface as Authlib's OAuthError with the RFC 6749 code.
One line per step; on failure, the step, the last request and the raw answer, then exit 1.
"""

import os
import sys
import time
import traceback
from urllib.parse import parse_qs, urlsplit

ISSUER = os.environ["OAUTH_ISSUER"]
if urlsplit(ISSUER).hostname not in ("127.0.0.1", "localhost", "::1"):
    sys.exit(f"authlib: refusing a non-loopback issuer {ISSUER!r}")
# Authlib refuses http:// metadata unless told otherwise; the service here is on loopback only.
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

import authlib  # noqa: E402
import requests  # noqa: E402
from authlib.integrations.base_client import OAuthError  # noqa: E402
from authlib.integrations.requests_client import OAuth2Session  # noqa: E402
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata  # noqa: E402

PUBLIC_CLIENT_ID = os.environ["OAUTH_PUBLIC_CLIENT_ID"]
CLIENT_ID = os.environ["OAUTH_CLIENT_ID"]
CLIENT_SECRET = os.environ["OAUTH_CLIENT_SECRET"]
OTHER_CLIENT_ID = os.environ["OAUTH_OTHER_CLIENT_ID"]
OTHER_CLIENT_SECRET = os.environ["OAUTH_OTHER_CLIENT_SECRET"]
USERNAME = os.environ["OAUTH_USERNAME"]
PASSWORD = os.environ["OAUTH_PASSWORD"]
ACCESS_TTL = int(os.environ["OAUTH_ACCESS_TTL"])
REFRESH_TTL = int(os.environ["OAUTH_REFRESH_TTL"])
LEEWAY = 30  # the service's verification leeway (src/tokens: CLOCK_LEEWAY_SECS)
TIMEOUT = 10


class StepFailed(Exception):
    pass


class Recorder:
    """The last request and answer of every session, for the checks and failure messages
    (a requests response hook)."""

    def __init__(self):
        self.last = None

    def __call__(self, response, *args, **kwargs):
        self.last = response
        return response

    def describe(self):
        if self.last is None:
            return "no answer was received"
        request = self.last.request
        body = request.body or b""
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        answer = self.last.text
        if len(answer) > 2000:
            answer = answer[:2000] + "…"
        return (
            f"request: {request.method} {request.url} headers={headers} body={body!r}\n"
            f"answer: {self.last.status_code} {dict(self.last.headers)}\n{answer}"
        )


recorder = Recorder()


def check(condition, message):
    if not condition:
        raise StepFailed(message)


def session(client_id=None, client_secret=None, method=None, metadata=None):
    """An OAuth2Session as Authlib's own registry builds one: the client's credentials plus the
    server metadata as keyword arguments (token_endpoint among them)."""
    s = OAuth2Session(
        client_id=client_id,
        client_secret=client_secret,
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
        default_timeout=TIMEOUT,
        **(metadata or {}),
    )
    s.hooks["response"].append(recorder)
    return s


def last_request_form():
    body = recorder.last.request.body or ""
    if isinstance(body, bytes):
        body = body.decode()
    return {k: v[0] for k, v in parse_qs(body).items()}


def expect_oauth_error(call, code, status):
    try:
        token = call()
    except OAuthError as error:
        check(error.error == code, f"OAuthError {error.error!r} ({error.description!r}), expected {code!r}")
        check(recorder.last.status_code == status, f"HTTP {recorder.last.status_code}, expected {status}")
        return error
    raise StepFailed(f"expected OAuthError {code!r}, got a token: {dict(token)!r}")


def validate_metadata(document, where):
    """Authlib's RFC 8414 validation of every registered field. response_types_supported is
    REQUIRED to be a JSON array (RFC 8414 §2); Authlib also refuses an empty one, which is what a
    server without an authorization endpoint has — that one field is checked here instead."""
    metadata = AuthorizationServerMetadata(document)
    for key in AuthorizationServerMetadata.REGISTRY_KEYS:
        if key == "response_types_supported":
            check(isinstance(document.get(key), list), f"{where}: response_types_supported is not a JSON array")
            continue
        try:
            getattr(metadata, f"validate_{key}")()
        except ValueError as error:
            raise StepFailed(f"{where}: Authlib's RFC 8414 validation: {error}") from error
    check(document.get("issuer") == ISSUER, f"{where}: issuer {document.get('issuer')!r}, expected {ISSUER!r}")
    check(
        document.get("token_endpoint") == ISSUER + "/oauth/token",
        f"{where}: token_endpoint {document.get('token_endpoint')!r}",
    )
    grants = set(metadata.grant_types_supported or [])
    check(
        {"password", "refresh_token", "client_credentials"} <= grants,
        f"{where}: grant_types_supported {sorted(grants)}",
    )
    methods = set(metadata.token_endpoint_auth_methods_supported)
    check(
        {"client_secret_basic", "client_secret_post", "none"} <= methods,
        f"{where}: token_endpoint_auth_methods_supported {sorted(methods)}",
    )
    introspection_methods = set(metadata.introspection_endpoint_auth_methods_supported)
    check(
        {"client_secret_basic", "client_secret_post"} <= introspection_methods,
        f"{where}: introspection_endpoint_auth_methods_supported {sorted(introspection_methods)}",
    )
    for endpoint in ("jwks_uri", "introspection_endpoint", "revocation_endpoint"):
        check(bool(document.get(endpoint)), f"{where}: no {endpoint}")
    check("introspect" in (metadata.scopes_supported or []), f"{where}: scopes_supported lacks introspect")
    id_token_fields = sorted(k for k in document if k.startswith("id_token_"))
    check(not id_token_fields, f"{where}: ID token fields {id_token_fields} but the service issues no ID tokens")


def check_user_token(token, where):
    for field in ("access_token", "refresh_token", "expires_in", "expires_at", "token_type"):
        check(field in token, f"{where}: no {field} in {dict(token)!r}")
    check(token["token_type"].lower() == "bearer", f"{where}: token_type {token['token_type']!r}")
    check(token["expires_in"] == ACCESS_TTL, f"{where}: expires_in {token['expires_in']}, expected {ACCESS_TTL}")
    check(abs(token["expires_at"] - (time.time() + ACCESS_TTL)) < 10, f"{where}: expires_at {token['expires_at']}")
    check(token.get("scope") == "", f"{where}: scope {token.get('scope')!r}, expected '' (built-in client)")
    check(not token.is_expired(leeway=0), f"{where}: Authlib considers the new token expired")


def main() -> int:
    print(f"authlib {authlib.__version__} (requests {requests.__version__}) against {ISSUER}")
    state = {}
    steps = []

    def step(name):
        def register(function):
            steps.append((name, function))
            return function

        return register

    @step("discovery: /.well-known/oauth-authorization-server (RFC 8414)")
    def _():
        # RFC 8414 §3: the well-known segment goes between host and the issuer's path (none here).
        parts = urlsplit(ISSUER)
        url = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path.rstrip('/')}"
        with session() as s:
            response = s.get(url, withhold_token=True)
        check(response.status_code == 200, f"HTTP {response.status_code}")
        check(response.headers.get("content-type", "").startswith("application/json"), "not JSON")
        document = response.json()
        validate_metadata(document, "oauth-authorization-server")
        state["metadata"] = document
        return f"issuer {document['issuer']}, token_endpoint {document['token_endpoint']}"

    @step("discovery: /.well-known/openid-configuration")
    def _():
        with session() as s:
            response = s.get(ISSUER.rstrip("/") + "/.well-known/openid-configuration", withhold_token=True)
        check(response.status_code == 200, f"HTTP {response.status_code}")
        document = response.json()
        validate_metadata(document, "openid-configuration")
        check(document == state["metadata"], "differs from /.well-known/oauth-authorization-server")
        return "same document as the RFC 8414 one"

    def public():
        return session(PUBLIC_CLIENT_ID, None, "none", state["metadata"])

    def confidential(method, client_id=CLIENT_ID, secret=CLIENT_SECRET):
        return session(client_id, secret, method, state["metadata"])

    @step("password grant, a token pair kept to expire (built-in public client)")
    def _():
        with public() as s:
            token = s.fetch_token(grant_type="password", username=USERNAME, password=PASSWORD)
        state["aging"] = (time.time(), dict(token))
        return f"refresh token kept until it expires ({REFRESH_TTL} s)"

    @step("password grant (public client, auth method none)")
    def _():
        with public() as s:
            token = s.fetch_token(grant_type="password", username=USERNAME, password=PASSWORD)
        request = recorder.last.request
        form = last_request_form()
        check("Authorization" not in request.headers, "Authlib sent an Authorization header for method none")
        check(form.get("client_id") == PUBLIC_CLIENT_ID, f"client_id in the form: {form.get('client_id')!r}")
        check_user_token(token, "password grant")
        headers = recorder.last.headers
        check("no-store" in headers.get("Cache-Control", ""), f"Cache-Control {headers.get('Cache-Control')!r}")
        check(headers.get("Pragma") == "no-cache", f"Pragma {headers.get('Pragma')!r}")
        state["user"] = dict(token)
        return f"token_type {token['token_type']}, expires_in {token['expires_in']}, scope {token['scope']!r}"

    @step("refresh_token grant (rotation)")
    def _():
        with public() as s:
            s.token = state["user"]
            token = s.refresh_token()
        check_user_token(token, "refresh")
        check(token["refresh_token"] != state["user"]["refresh_token"], "the refresh token was not rotated")
        check(token["access_token"] != state["user"]["access_token"], "the same access token again")
        state["spent"] = state["user"]["refresh_token"]
        state["user"] = dict(token)
        return "new access token and a new refresh token"

    @step("refresh with the spent refresh token → OAuthError invalid_grant")
    def _():
        with public() as s:
            error = expect_oauth_error(lambda: s.refresh_token(refresh_token=state["spent"]), "invalid_grant", 400)
        return f"OAuthError {error.error}: {error.description}"

    @step("password grant after reuse detection (a new login)")
    def _():
        with public() as s:
            token = s.fetch_token(grant_type="password", username=USERNAME, password=PASSWORD)
        check_user_token(token, "password grant")
        state["user"] = dict(token)
        return "fresh token pair"

    @step("client_credentials grant, client_secret_basic")
    def _():
        with confidential("client_secret_basic") as s:
            token = s.fetch_token(grant_type="client_credentials")
        request = recorder.last.request
        form = last_request_form()
        check(request.headers.get("Authorization", "").startswith("Basic "), "Authlib sent no HTTP Basic header")
        check("client_secret" not in form, "the secret went in the form too")
        check(token.get("token_type", "").lower() == "bearer", f"token_type {token.get('token_type')!r}")
        check("refresh_token" not in token, "a refresh token for client_credentials")
        check(token.get("scope") == "introspect", f"scope {token.get('scope')!r}, expected 'introspect'")
        check(token.get("expires_in") == ACCESS_TTL, f"expires_in {token.get('expires_in')}")
        state["service_basic"] = dict(token)
        return f"scope {token['scope']!r}, expires_in {token['expires_in']}, no refresh token"

    @step("client_credentials grant, client_secret_post")
    def _():
        with confidential("client_secret_post") as s:
            token = s.fetch_token(grant_type="client_credentials", scope="introspect")
        request = recorder.last.request
        form = last_request_form()
        check("Authorization" not in request.headers, "an Authorization header with client_secret_post")
        check(form.get("client_id") == CLIENT_ID and form.get("client_secret"), "no client_id/secret in the form")
        check(token.get("scope") == "introspect", f"scope {token.get('scope')!r}")
        check("refresh_token" not in token, "a refresh token for client_credentials")
        state["service_post"] = dict(token)
        return f"scope {token['scope']!r}"

    @step("client_credentials with a scope the client lacks → OAuthError invalid_scope")
    def _():
        with confidential("client_secret_basic") as s:
            error = expect_oauth_error(
                lambda: s.fetch_token(grant_type="client_credentials", scope="ssf"), "invalid_scope", 400
            )
        return f"OAuthError {error.error}"

    @step("client_credentials with a wrong secret → OAuthError invalid_client")
    def _():
        with confidential("client_secret_basic", secret=CLIENT_SECRET + "x") as s:
            error = expect_oauth_error(lambda: s.fetch_token(grant_type="client_credentials"), "invalid_client", 401)
        challenge = recorder.last.headers.get("WWW-Authenticate", "")
        check(challenge.lower().startswith("basic"), f"WWW-Authenticate {challenge!r}")
        return f"OAuthError {error.error}, WWW-Authenticate {challenge}"

    @step("password grant with a wrong password → OAuthError invalid_grant")
    def _():
        with public() as s:
            error = expect_oauth_error(
                lambda: s.fetch_token(grant_type="password", username=USERNAME, password=PASSWORD + "x"),
                "invalid_grant",
                400,
            )
        return f"OAuthError {error.error}"

    def introspect(s, token, hint=None):
        response = s.introspect_token(state["metadata"]["introspection_endpoint"], token=token, token_type_hint=hint)
        check(response.status_code == 200, f"HTTP {response.status_code}")
        check(response.headers.get("content-type", "").startswith("application/json"), "not JSON")
        answer = response.json()
        check(isinstance(answer.get("active"), bool), f"no boolean 'active': {answer!r}")
        return answer

    @step("introspect_token: a user access token (client_secret_basic)")
    def _():
        with confidential("client_secret_basic") as s:
            answer = introspect(s, state["user"]["access_token"], "access_token")
        check(recorder.last.request.headers.get("Authorization", "").startswith("Basic "), "no HTTP Basic")
        check(answer["active"] is True, f"not active: {answer!r}")
        expected = {"client_id": PUBLIC_CLIENT_ID, "token_type": "Bearer", "username": USERNAME, "iss": ISSUER, "scope": ""}
        for key, value in expected.items():
            check(answer.get(key) == value, f"{key} {answer.get(key)!r}, expected {value!r}")
        for key in ("sub", "exp", "iat", "aud", "sid", "jti"):
            check(key in answer, f"no {key}: {answer!r}")
        check(answer["exp"] > time.time(), f"exp {answer['exp']} is past")
        return f"active, client_id {answer['client_id']}, username {answer['username']}"

    @step("introspect_token: a user refresh token (client_secret_post)")
    def _():
        with confidential("client_secret_post") as s:
            answer = introspect(s, state["user"]["refresh_token"], "refresh_token")
        check(answer["active"] is True, f"not active: {answer!r}")
        check(answer.get("token_type") == "refresh_token", f"token_type {answer.get('token_type')!r}")
        check(answer.get("client_id") == PUBLIC_CLIENT_ID, f"client_id {answer.get('client_id')!r}")
        lifetime = answer.get("exp", 0) - answer.get("iat", 0)
        check(abs(lifetime - REFRESH_TTL) <= 1, f"exp - iat = {lifetime}, expected {REFRESH_TTL}")
        return f"active, token_type {answer['token_type']}, lifetime {lifetime} s"

    @step("introspect_token: a client_credentials token")
    def _():
        with confidential("client_secret_basic") as s:
            answer = introspect(s, state["service_post"]["access_token"])
        check(answer["active"] is True, f"not active: {answer!r}")
        check(answer.get("client_id") == CLIENT_ID and answer.get("sub") == CLIENT_ID, f"client_id/sub: {answer!r}")
        check(answer.get("scope") == "introspect", f"scope {answer.get('scope')!r}")
        return f"active, sub {answer['sub']}, scope {answer['scope']!r}"

    @step("introspect_token by a client without scope introspect → 403 insufficient_scope")
    def _():
        with confidential("client_secret_basic", OTHER_CLIENT_ID, OTHER_CLIENT_SECRET) as s:
            response = s.introspect_token(state["metadata"]["introspection_endpoint"], token=state["user"]["access_token"])
        check(response.status_code == 403, f"HTTP {response.status_code}")
        check(response.json().get("error") == "insufficient_scope", f"error {response.json().get('error')!r}")
        return "403 insufficient_scope"

    @step("introspect_token with a wrong secret → 401 invalid_client")
    def _():
        with confidential("client_secret_post", secret=CLIENT_SECRET + "x") as s:
            response = s.introspect_token(state["metadata"]["introspection_endpoint"], token=state["user"]["access_token"])
        check(response.status_code == 401, f"HTTP {response.status_code}")
        check(response.json().get("error") == "invalid_client", f"error {response.json().get('error')!r}")
        return "401 invalid_client"

    @step("revoke_token: the user's access token (public client) → introspection active: false")
    def _():
        with public() as s:
            response = s.revoke_token(
                state["metadata"]["revocation_endpoint"], token=state["user"]["access_token"], token_type_hint="access_token"
            )
        check(response.status_code == 200, f"revocation HTTP {response.status_code}")
        with confidential("client_secret_basic") as s:
            answer = introspect(s, state["user"]["access_token"])
        check(answer == {"active": False}, f"after revocation: {answer!r}")
        return "revoked; introspection {'active': False}"

    @step("revoke_token: the user's refresh token → introspection inactive, refresh → invalid_grant")
    def _():
        with public() as s:
            response = s.revoke_token(
                state["metadata"]["revocation_endpoint"], token=state["user"]["refresh_token"], token_type_hint="refresh_token"
            )
            check(response.status_code == 200, f"revocation HTTP {response.status_code}")
            with confidential("client_secret_post") as c:
                answer = introspect(c, state["user"]["refresh_token"], "refresh_token")
            check(answer == {"active": False}, f"after revocation: {answer!r}")
            error = expect_oauth_error(lambda: s.refresh_token(refresh_token=state["user"]["refresh_token"]), "invalid_grant", 400)
        return f"revoked; introspection inactive; refresh OAuthError {error.error}"

    @step("revoke_token: a client_credentials token (client_secret_basic) → active: false")
    def _():
        with confidential("client_secret_basic") as s:
            response = s.revoke_token(state["metadata"]["revocation_endpoint"], token=state["service_basic"]["access_token"])
            check(response.status_code == 200, f"revocation HTTP {response.status_code}")
            answer = introspect(s, state["service_basic"]["access_token"])
        check(answer == {"active": False}, f"after revocation: {answer!r}")
        return "revoked; introspection {'active': False}"

    @step("refresh with an unknown refresh token → OAuthError invalid_grant")
    def _():
        with public() as s:
            error = expect_oauth_error(lambda: s.refresh_token(refresh_token="not-a-refresh-token"), "invalid_grant", 400)
        return f"OAuthError {error.error}"

    @step("refresh with an expired refresh token → OAuthError invalid_grant")
    def _():
        issued, token = state["aging"]
        wait = issued + REFRESH_TTL + 2 - time.time()
        if wait > 0:
            print(f"  (waiting {wait:.0f} s for the refresh token to expire)", flush=True)
            time.sleep(wait)
        with public() as s:
            error = expect_oauth_error(lambda: s.refresh_token(refresh_token=token["refresh_token"]), "invalid_grant", 400)
        note = ""
        if time.time() > issued + ACCESS_TTL + LEEWAY + 1:
            with confidential("client_secret_basic") as s:
                answer = introspect(s, token["access_token"])
            check(answer == {"active": False}, f"the expired access token introspects as {answer!r}")
            note = "; its expired access token introspects as {'active': False}"
        return f"OAuthError {error.error}{note}"

    passed = failed = 0
    for name, function in steps:
        recorder.last = None
        try:
            detail = function()
            passed += 1
            print(f"ok   {name}: {detail}", flush=True)
        except Exception as error:  # noqa: BLE001 - every failure is reported with its step
            failed += 1
            print(f"FAIL {name}: {error}", flush=True)
            if not isinstance(error, (StepFailed, OAuthError)):
                traceback.print_exc(limit=3)
            print("  " + recorder.describe().replace("\n", "\n  "), flush=True)
            if name.startswith("discovery"):
                break  # nothing else can run without the metadata
    print(f"authlib: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
