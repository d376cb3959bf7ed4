"""The seeds' Flask + PyJWT design, as a peer for bench/run's `/verify` and `GET /authors` rows.

It verifies library-api's own RS256 access tokens the way a careful seed would: the public keys
come from the service's JWKS (fetched once at start), and PyJWT checks the signature, `iss`,
`aud`, `exp` and `nbf`. `GET /authors?limit=N&offset=M` reads the service's SQLite database
read-only and answers the same JSON as the service (`AuthorPage`/`AuthorView` in
src/http/authors.rs: same keys, same order, RFC 3339 UTC times as chrono writes them).

Settings (environment): LIBRARY_JWKS_URL, LIBRARY_ISSUER, LIBRARY_AUDIENCE (default
"library-api"), LIBRARY_DB (path of the SQLite file). Run: gunicorn -w 4 app:app
"""

import json
import os
import sqlite3
import threading
import urllib.request

import jwt
from flask import Flask, Response, request

ISSUER = os.environ["LIBRARY_ISSUER"]
AUDIENCE = os.environ.get("LIBRARY_AUDIENCE", "library-api")
DB_URI = "file:" + os.environ["LIBRARY_DB"] + "?mode=ro"

with urllib.request.urlopen(os.environ["LIBRARY_JWKS_URL"], timeout=10) as reply:
    KEYS = {key["kid"]: jwt.PyJWK(key, algorithm="RS256") for key in json.load(reply)["keys"]}

app = Flask(__name__)
local = threading.local()


def db():
    """One read-only connection per worker thread, opened on first use."""
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = local.conn = sqlite3.connect(DB_URI, uri=True, check_same_thread=False)
    return conn


def unauthorized(description):
    body = json.dumps({"error": "invalid_token", "error_description": description})
    return Response(body, status=401, mimetype="application/json",
                    headers={"WWW-Authenticate": 'Bearer realm="library-api", error="invalid_token"'})


def claims():
    """The verified claims of the request's bearer token, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = KEYS.get(kid)
        if key is None:
            return None
        return jwt.decode(token, key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER,
                          options={"require": ["exp", "nbf", "iss", "aud", "sub"]})
    except jwt.InvalidTokenError:
        return None


@app.route("/verify")
def verify():
    verified = claims()
    if verified is None:
        return unauthorized("the access token is invalid")
    return Response(status=200, headers={
        "X-Auth-User": verified["sub"],
        "X-Auth-Name": verified.get("name") or "",
        "X-Auth-Groups": ",".join(verified.get("groups") or []),
        "X-Auth-Scope": verified.get("scope") or "",
        "Cache-Control": "no-store",
    })


def rfc3339(stored):
    """SQLite's "YYYY-MM-DD HH:MM:SS[.fffffffff]" as chrono's serde writes a DateTime<Utc>
    (SecondsFormat::AutoSi: no fraction, or 3, 6 or 9 digits, and "Z")."""
    seconds, _, fraction = stored.partition(".")
    nanos = int((fraction + "000000000")[:9])
    text = seconds.replace(" ", "T")
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{text}.{nanos // 1_000:06d}Z"
    return f"{text}.{nanos:09d}Z"


@app.route("/authors")
def authors():
    if claims() is None:
        return unauthorized("the access token is invalid")
    try:
        limit = int(request.args.get("limit", 50))
        offset = int(request.args.get("offset", 0))
    except ValueError:
        return Response('{"error":"invalid_query"}', status=400, mimetype="application/json")
    if not 1 <= limit <= 100 or offset < 0:
        return Response('{"error":"invalid_query"}', status=422, mimetype="application/json")
    conn = db()
    rows = conn.execute(
        "SELECT a.id, a.name, a.book, a.country, a.booker_prize, u.public_id, a.created_at, a.updated_at"
        " FROM authors a LEFT JOIN users u ON u.id = a.created_by ORDER BY a.id LIMIT ? OFFSET ?",
        (limit, offset),
    ).fetchall()
    (total,) = conn.execute("SELECT count FROM row_counts WHERE name = 'authors'").fetchone()
    page = {
        "authors": [
            {"id": id_, "name": name, "book": book, "country": country, "booker_prize": bool(booker),
             "created_by": created_by, "created_at": rfc3339(created_at), "updated_at": rfc3339(updated_at)}
            for (id_, name, book, country, booker, created_by, created_at, updated_at) in rows
        ],
        "total": total,
    }
    body = json.dumps(page, ensure_ascii=False, separators=(",", ":"))
    return Response(body, mimetype="application/json", headers={"Cache-Control": "private, no-cache"})
