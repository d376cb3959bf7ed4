"""Shared Signals delivery figures (issue 15), against a running service. Standard library only.

  python3 bench/ssf.py BASE_URL ADMIN_NAME ADMIN_PASSWORD [LOGOUTS]

1. Logout → SET latency: a receiver long-polls its stream (acknowledging as it goes) on a thread
   of its own; the main thread logs a user in, then times from just before `POST /logout` to the
   moment the receiver holds the session-revoked SET naming that session. LOGOUTS (default 200)
   logouts, one at a time; prints p50 and p99 in ms.
2. SETs delivered per second to one receiver: the stream is paused, one user logs in 1,000 times
   and logs out everywhere (1,000 session-revoked events in one transaction), the stream is
   enabled, and the receiver polls (maxEvents 1000, acknowledging) until it has all 1,000; the
   rate is 1,000 over that time (each SET is signed when delivered).
Output: one line `logout_to_set_p50_ms=… logout_to_set_p99_ms=… logouts=… sets_per_second=…`.
"""

import base64
import json
import statistics
import sys
import threading
import time
import urllib.request
import uuid

BASE, ADMIN, ADMIN_PASSWORD = sys.argv[1], sys.argv[2], sys.argv[3]
LOGOUTS = int(sys.argv[4]) if len(sys.argv) > 4 else 200
BULK = 1000


def call(method, path, body=None, token=None, basic=None, form=None, timeout=20):
    headers = {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    if form is not None:
        data = "&".join(f"{k}={v}" for k, v in form.items()).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
    url = path if path.startswith("http") else BASE + path
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        text = answer.read()
        return json.loads(text) if text else None


def claims_of(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


admin = call("POST", "/login", basic=(ADMIN, ADMIN_PASSWORD))["access_token"]
client = call("POST", "/admin/clients", {"name": f"bench receiver {uuid.uuid4().hex[:8]}", "confidential": True, "scope": "ssf"}, token=admin)
receiver = call("POST", "/oauth/token", form={"grant_type": "client_credentials"}, basic=(client["client_id"], client["client_secret"]))["access_token"]
stream = call("POST", "/ssf/stream", {"delivery": {"method": "urn:ietf:rfc:8936"}}, token=receiver)
poll_url, stream_id = stream["delivery"]["endpoint_url"], stream["stream_id"]
user, password = f"ssf-bench-{uuid.uuid4().hex[:8]}", "ssf bench password"
call("POST", "/register", {"name": user, "password": password})

arrived = {}  # sid -> time the receiver held its SET
arrived_lock = threading.Condition()
stop = threading.Event()


def receive():
    ack = []
    while not stop.is_set():
        answer = call("POST", poll_url, {"ack": ack, "returnImmediately": False}, token=receiver)
        now = time.perf_counter()
        ack = list(answer["sets"])
        with arrived_lock:
            for token in answer["sets"].values():
                subject = claims_of(token)["sub_id"]
                if subject.get("format") == "complex":
                    arrived[subject["session"]["id"]] = now
            arrived_lock.notify_all()
    call("POST", poll_url, {"ack": ack, "maxEvents": 0}, token=receiver)


receiver_thread = threading.Thread(target=receive, daemon=True)
receiver_thread.start()
latencies = []
for _ in range(LOGOUTS):
    access = call("POST", "/login", basic=(user, password))["access_token"]
    sid = claims_of(access)["sid"]
    started = time.perf_counter()
    call("POST", "/logout", token=access)
    with arrived_lock:
        arrived_lock.wait_for(lambda: sid in arrived, timeout=10)
        if sid not in arrived:
            sys.exit(f"the SET of session {sid} did not arrive within 10 s")
        latencies.append((arrived[sid] - started) * 1000)
stop.set()
# Wake the long poll so the thread can end: one more logout.
call("POST", "/logout", token=call("POST", "/login", basic=(user, password))["access_token"])
receiver_thread.join(timeout=15)
latencies.sort()
p50 = statistics.median(latencies)
p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]

call("POST", "/ssf/status", {"stream_id": stream_id, "status": "paused"}, token=receiver)
last = None
for _ in range(BULK):
    last = call("POST", "/login", basic=(user, password))["access_token"]
call("POST", "/logout?all=true", token=last)
call("POST", "/ssf/status", {"stream_id": stream_id, "status": "enabled"}, token=receiver)
received, ack = 0, []
started = time.perf_counter()
while received < BULK:
    answer = call("POST", poll_url, {"ack": ack, "maxEvents": 1000, "returnImmediately": True}, token=receiver)
    ack = list(answer["sets"])
    received += len(ack)
    if not ack:
        sys.exit(f"only {received} of {BULK} SETs were delivered")
elapsed = time.perf_counter() - started
call("POST", poll_url, {"ack": ack, "maxEvents": 0}, token=receiver)
print(f"logout_to_set_p50_ms={p50:.2f} logout_to_set_p99_ms={p99:.2f} logouts={len(latencies)} sets_per_second={BULK / elapsed:.0f}")
