"""An SSF receiver built from third-party libraries, against the running service's transmitter.

Run by .ci/ssf-interop, configured only with the issuer URL, a receiver's client credentials (a
confidential client with scope `ssf`) and a user's name and password (to cause events):
  SSF_ISSUER, SSF_CLIENT_ID, SSF_CLIENT_SECRET, SSF_USERNAME, SSF_PASSWORD

Discovery: /.well-known/ssf-configuration and /.well-known/oauth-authorization-server (read
with Authlib's RFC 8414 metadata class). Authlib's OAuth2Session (requests) gets the receiver's
client-credentials token and makes the management and poll calls. joserfc verifies each SET with
a KeySet imported from the transmitter's jwks_uri (RS256; joserfc does not check `typ`, so this
script does, as SSF §4 asks receivers to, and that `sub` and `exp` are absent). Steps: create a
poll stream, verification with state, a logout (session-revoked whose complex subject matches the
access token's sub and sid), a password change (session-revoked for the other session, then
credential-change), acknowledgement (nothing comes again), and a long poll woken by a logout.
One line per step; on failure the step and the answer, then exit 1.
"""

import base64
import json
import os
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

ISSUER = os.environ["SSF_ISSUER"]
if urlsplit(ISSUER).hostname not in ("127.0.0.1", "localhost", "::1"):
    sys.exit(f"ssf-interop: refusing a non-loopback issuer {ISSUER!r}")
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # loopback http only

import requests  # noqa: E402
from authlib.integrations.requests_client import OAuth2Session  # noqa: E402
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata  # noqa: E402
from joserfc import jwt  # noqa: E402
from joserfc.jwk import KeySet  # noqa: E402

CLIENT_ID = os.environ["SSF_CLIENT_ID"]
CLIENT_SECRET = os.environ["SSF_CLIENT_SECRET"]
USERNAME = os.environ["SSF_USERNAME"]
PASSWORD = os.environ["SSF_PASSWORD"]
POLL = "urn:ietf:rfc:8936"
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
SESSION_REVOKED = CAEP + "session-revoked"
CREDENTIAL_CHANGE = CAEP + "credential-change"
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"


def step(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}")
    if not ok:
        print(f"     {detail}")
        sys.exit(1)


def unverified_claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


ssf = requests.get(f"{ISSUER}/.well-known/ssf-configuration", timeout=10).json()
step("ssf-configuration names this issuer and poll delivery", ssf["issuer"] == ISSUER and POLL in ssf["delivery_methods_supported"], ssf)
# Read with Authlib's RFC 8414 model (its validate() insists on response_types_supported, which
# a server without an authorization endpoint leaves empty; .ci/oauth-interop covers the metadata).
oauth = AuthorizationServerMetadata(requests.get(f"{ISSUER}/.well-known/oauth-authorization-server", timeout=10).json())
keys = KeySet.import_key_set(requests.get(ssf["jwks_uri"], timeout=10).json())

http = OAuth2Session(CLIENT_ID, CLIENT_SECRET, token_endpoint_auth_method="client_secret_basic")
http.fetch_token(oauth["token_endpoint"], grant_type="client_credentials")
step("Authlib got a client-credentials token", "access_token" in http.token, http.token)

created = http.post(ssf["configuration_endpoint"], json={"delivery": {"method": POLL}}, timeout=10)
stream = created.json()
step("stream created (201) with our audience and a poll URL", created.status_code == 201 and stream["aud"] == CLIENT_ID, stream)
poll_url, stream_id = stream["delivery"]["endpoint_url"], stream["stream_id"]
claims_registry = jwt.JWTClaimsRegistry(
    iss={"essential": True, "value": ISSUER},
    aud={"essential": True, "value": CLIENT_ID},
    jti={"essential": True},
    iat={"essential": True},
    events={"essential": True},
    sub_id={"essential": True},
)


def verify(token):
    verified = jwt.decode(token, keys, algorithms=["RS256"])
    if verified.header.get("typ") != "secevent+jwt":
        raise ValueError(f"typ {verified.header.get('typ')!r}")
    claims_registry.validate(verified.claims)
    if "exp" in verified.claims or "sub" in verified.claims:
        raise ValueError("a SET must carry neither exp nor sub")
    return verified.claims


def take(expected, wait=True):
    """Polls until `expected` SETs arrived (long polls), verifies and acknowledges them."""
    events, ack = [], []
    deadline = time.time() + 15
    while len(events) < expected and time.time() < deadline:
        answer = http.post(poll_url, json={"ack": ack, "returnImmediately": not wait}, timeout=15).json()
        ack = []
        for jti, token in answer["sets"].items():
            claims = verify(token)
            if claims["jti"] != jti:
                raise ValueError("jti differs from its key")
            events.append(claims)
            ack.append(jti)
        if not wait:
            break
    http.post(poll_url, json={"ack": ack, "maxEvents": 0}, timeout=10)
    return [(next(iter(claims["events"])), claims["sub_id"], claims["events"]) for claims in events]


def login():
    answer = requests.post(f"{ISSUER}/login", auth=(USERNAME, PASSWORD), timeout=10).json()
    return answer["access_token"]


def session_of(access):
    claims = unverified_claims(access)
    return {
        "format": "complex",
        "user": {"format": "opaque", "id": claims["sub"]},
        "session": {"format": "opaque", "id": claims["sid"]},
    }


state = uuid.uuid4().hex
verified = http.post(ssf["verification_endpoint"], json={"stream_id": stream_id, "state": state}, timeout=10)
events = take(1)
step("verification event echoes state", verified.status_code == 204 and events and events[0][0] == VERIFICATION and events[0][2][VERIFICATION]["state"] == state, events)

access = login()
requests.post(f"{ISSUER}/logout", headers={"Authorization": f"Bearer {access}"}, timeout=10)
events = take(1)
step("logout: one session-revoked for that session", [(kind, sub) for kind, sub, _ in events] == [(SESSION_REVOKED, session_of(access))], events)

first, second = login(), login()
new_password = PASSWORD + " 2"
changed = requests.put(
    f"{ISSUER}/users/me/password",
    headers={"Authorization": f"Bearer {second}"},
    json={"current_password": PASSWORD, "new_password": new_password},
    timeout=10,
)
events = take(2)
user = {"format": "opaque", "id": unverified_claims(second)["sub"]}
step(
    "password change: the other session's session-revoked, then credential-change",
    changed.status_code == 204
    and [(kind, sub) for kind, sub, _ in events] == [(SESSION_REVOKED, session_of(first)), (CREDENTIAL_CHANGE, user)],
    events,
)
PASSWORD = new_password
step("acknowledged SETs never come again", take(0, wait=False) == [])

access = login()
result = {}


def long_poll():
    started = time.time()
    result["events"] = http.post(poll_url, json={}, timeout=15).json()["sets"]
    result["elapsed"] = time.time() - started


waiter = threading.Thread(target=long_poll)
waiter.start()
time.sleep(0.5)
logged_out = time.time()
requests.post(f"{ISSUER}/logout", headers={"Authorization": f"Bearer {access}"}, timeout=10)
waiter.join()
latency = time.time() - logged_out
step(f"a long poll is answered {latency * 1000:.0f} ms after the logout", len(result.get("events", {})) == 1 and latency < 2, result)
print("ssf-interop: Authlib + joserfc receive, verify and acknowledge our SETs")
