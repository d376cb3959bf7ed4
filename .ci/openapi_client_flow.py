"""A new user's session, driven only through the Python client generated from /openapi.json.

Run by .ci/openapi after generating the client (package `library_api_client`, importable), against
the running service: python3 .ci/openapi_client_flow.py http://127.0.0.1:PORT

Generating is not enough: a generated client once had no "list authors" and no "logout" function.
This script uses the client as its documentation suggests (Client / AuthenticatedClient and the
api.<tag>.<operation>.sync_detailed functions, models for bodies) and checks every status code
and the parsed model of every answer. One line per step; on failure, the step, the request and
the raw answer, then exit 1. Unexpected statuses raise (raise_on_unexpected_status), so an answer
the document does not declare fails the step instead of parsing as None.
"""

import secrets
import sys
import traceback

import httpx
from library_api_client import AuthenticatedClient, Client
from library_api_client.api.authors import create_author, get_author, list_authors
from library_api_client.api.tokens import login, logout, refresh_token
from library_api_client.api.users import get_current_user, register
from library_api_client.errors import UnexpectedStatus
from library_api_client.models import (
    AuthorInput,
    AuthorPage,
    AuthorView,
    Credentials,
    ErrorBody,
    RefreshRequest,
    Registered,
    TokenResponse,
    UserView,
)

TIMEOUT = httpx.Timeout(10.0)


class StepFailed(Exception):
    pass


class Recorder:
    """The last request and answer, for failure messages only (an httpx event hook, passed through
    the generated client's documented `httpx_args`)."""

    def __init__(self):
        self.last = None

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        self.last = response

    def describe(self) -> str:
        if self.last is None:
            return "no answer was received"
        request = self.last.request
        body = self.last.content.decode("utf-8", "replace")
        if len(body) > 2000:
            body = body[:2000] + "…"
        return f"last exchange: {request.method} {request.url} → {self.last.status_code} {body}"


recorder = Recorder()


def client_kwargs() -> dict:
    return {
        "timeout": TIMEOUT,
        "raise_on_unexpected_status": True,
        "httpx_args": {"event_hooks": {"response": [recorder]}},
    }


def check(condition: bool, what: str) -> None:
    if not condition:
        raise StepFailed(what)


def expect(response, status: int, model: type, what: str = ""):
    """The parsed model of a response that must have `status` and parse as `model`."""
    check(
        response.status_code == status,
        f"{what}expected status {status}, got {int(response.status_code)}: {response.content!r}",
    )
    check(
        isinstance(response.parsed, model),
        f"{what}expected a {model.__name__}, parsed as {type(response.parsed).__name__}: {response.parsed!r}",
    )
    return response.parsed


def expect_error(response, status: int, code: str, what: str = "") -> ErrorBody:
    error = expect(response, status, ErrorBody, what)
    check(error.error == code, f"{what}expected error code {code!r}, got {error.error!r}")
    check(isinstance(error.message, str) and error.message != "", f"{what}empty error message: {error!r}")
    return error


def run(number: int, name: str, action):
    recorder.last = None
    try:
        summary = action()
    except StepFailed as failure:
        fail(number, name, str(failure))
    except UnexpectedStatus as failure:
        fail(number, name, f"status {failure.status_code} is not declared for this operation in the document")
    except Exception as failure:  # noqa: BLE001 — a model that does not fit the answer, a refused connection, ...
        detail = "".join(traceback.format_exception_only(type(failure), failure)).strip()
        fail(number, name, f"the client raised {detail}")
    print(f"step {number} {name}: ok — {summary}", flush=True)
    return summary


def fail(number: int, name: str, message: str) -> None:
    print(f"openapi client flow: step {number} ({name}) FAILED: {message}", file=sys.stderr)
    print(f"openapi client flow: {recorder.describe()}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    base_url = sys.argv[1]
    anonymous = Client(base_url=base_url, **client_kwargs())
    suffix = secrets.token_hex(4)
    user_name = f"client-{suffix}"
    password = f"pw {secrets.token_hex(8)}"
    state: dict = {}

    def authenticated(token: str) -> AuthenticatedClient:
        return AuthenticatedClient(base_url=base_url, token=token, **client_kwargs())

    def step_register():
        registered = expect(
            register.sync_detailed(client=anonymous, body=Credentials(name=user_name, password=password)),
            201,
            Registered,
        )
        check(registered.name == user_name, f"name {registered.name!r}, expected {user_name!r}")
        check(registered.admin is False, f"a new user is admin: {registered!r}")
        check(registered.public_id != "", "empty public_id")
        state["user"] = registered
        return f"{registered.name} public_id={registered.public_id} admin={registered.admin}"

    def step_login():
        tokens = expect(
            login.sync_detailed(client=anonymous, body=Credentials(name=user_name, password=password)),
            200,
            TokenResponse,
        )
        check(tokens.token_type.lower() == "bearer", f"token_type {tokens.token_type!r}")
        check(tokens.access_token != "" and tokens.refresh_token != "", "empty token")
        check(tokens.expires_in > 0, f"expires_in {tokens.expires_in}")
        check(tokens.token == tokens.access_token, "`token` differs from `access_token`")
        state["login"] = tokens
        return f"token_type={tokens.token_type} expires_in={tokens.expires_in}"

    def step_create_author():
        client = authenticated(state["login"].access_token)
        body = AuthorInput(name=f"Author {suffix}", book=f"Book {suffix}", country="Ireland", booker_prize=True)
        author = expect(create_author.sync_detailed(client=client, body=body), 201, AuthorView)
        check(
            (author.name, author.book, author.country, author.booker_prize)
            == (body.name, body.book, body.country, True),
            f"fields differ from the input: {author!r}",
        )
        check(author.created_by == state["user"].public_id, f"created_by {author.created_by!r}")
        state["author"] = author
        return f"id={author.id} name={author.name!r} created_by={author.created_by}"

    def step_list_authors():
        client = authenticated(state["login"].access_token)
        author = state["author"]
        page = expect(list_authors.sync_detailed(client=client, limit=100, offset=0), 200, AuthorPage)
        check(page.total >= 1, f"total {page.total}")
        check(len(page.authors) <= 100, f"{len(page.authors)} authors for limit=100")
        check(any(a.id == author.id for a in page.authors) or page.total > 100, "the new author is not listed")
        # Ordered by id: the newest author is the last one; limit and offset select exactly it.
        last = expect(list_authors.sync_detailed(client=client, limit=1, offset=page.total - 1), 200, AuthorPage)
        check(last.total == page.total, f"total {last.total}, was {page.total}")
        check([a.id for a in last.authors] == [author.id], f"limit=1 offset={page.total - 1}: {last.authors!r}")
        check(last.authors[0].name == author.name, f"listed as {last.authors[0]!r}")
        return f"total={page.total}; limit=1 offset={page.total - 1} → id={author.id}"

    def step_pages():
        # Keyset pages as an integrator walks them: httpx's own RFC 8288 parser
        # (Response.links) follows rel="next" from the first page to the last; the generated
        # client's `after` and If-None-Match parameters come from the document.
        client = authenticated(state["login"].access_token)
        for number in range(3):
            body = AuthorInput(name=f"Paged {suffix} {number}", book=f"Paged book {suffix} {number}", country="Chile")
            expect(create_author.sync_detailed(client=client, body=body), 201, AuthorView)
        http = client.get_httpx_client()
        response = http.get("/authors", params={"limit": 2})
        first = response
        seen, pages = [], 0
        while True:
            check(response.status_code == 200, f"GET {response.url}: status {response.status_code}")
            pages += 1
            seen += [author["id"] for author in response.json()["authors"]]
            following = response.links.get("next")
            if following is None:
                break
            check(pages < 10_000, "the Link chain does not end")
            response = http.get(response.url.join(following["url"]))
        total = first.json()["total"]
        check(seen == sorted(set(seen)), f"ids not strictly ascending across pages: {seen[:20]}…")
        check(len(seen) == total, f"{len(seen)} authors walked, total says {total}")
        second = expect(
            list_authors.sync_detailed(client=client, limit=2, after=seen[1]), 200, AuthorPage, "after: "
        )
        check([a.id for a in second.authors] == seen[2:4], f"after={seen[1]}: {second.authors!r}")
        etag = first.headers.get("etag")
        check(etag is not None, "no ETag on GET /authors")
        unchanged = list_authors.sync_detailed(client=client, limit=2, if_none_match=etag)
        check(unchanged.status_code == 304, f"If-None-Match {etag}: status {int(unchanged.status_code)}")
        check(unchanged.content == b"", "a 304 with a body")
        return f"{total} authors over {pages} pages by Link rel=next; after= and If-None-Match → 304 work"

    def step_get_author():
        client = authenticated(state["login"].access_token)
        author = state["author"]
        got = expect(get_author.sync_detailed(author.id, client=client), 200, AuthorView)
        check(got.to_dict() == author.to_dict(), f"{got!r} differs from the created {author!r}")
        return f"id={got.id} book={got.book!r}"

    def step_current_user():
        client = authenticated(state["login"].access_token)
        user = expect(get_current_user.sync_detailed(client=client), 200, UserView)
        registered = state["user"]
        check(
            (user.public_id, user.name, user.admin) == (registered.public_id, registered.name, False),
            f"{user!r} is not the registered {registered!r}",
        )
        return f"{user.name} public_id={user.public_id} created_at={user.created_at.isoformat()}"

    def step_refresh():
        old = state["login"]
        tokens = expect(
            refresh_token.sync_detailed(client=anonymous, body=RefreshRequest(refresh_token=old.refresh_token)),
            200,
            TokenResponse,
        )
        check(tokens.access_token != old.access_token, "the same access token again")
        check(tokens.refresh_token != old.refresh_token, "the same refresh token again")
        user = expect(get_current_user.sync_detailed(client=authenticated(tokens.access_token)), 200, UserView)
        check(user.public_id == state["user"].public_id, f"the new access token is {user!r}")
        state["refreshed"] = tokens
        return "a new pair; the new access token works"

    def step_logout():
        refreshed = state["refreshed"]
        response = logout.sync_detailed(client=authenticated(refreshed.access_token))
        check(response.status_code == 204, f"logout: expected status 204, got {int(response.status_code)}")
        for label, token in (("login", state["login"].access_token), ("refreshed", refreshed.access_token)):
            expect_error(
                get_current_user.sync_detailed(client=authenticated(token)),
                401,
                "invalid_token",
                f"get_current_user with the {label} access token after logout: ",
            )
        expect_error(
            refresh_token.sync_detailed(client=anonymous, body=RefreshRequest(refresh_token=refreshed.refresh_token)),
            400,
            "invalid_grant",
            "refresh_token with the refreshed refresh token after logout: ",
        )
        return "204; get_current_user with the old access tokens → 401 invalid_token; refresh → 400 invalid_grant"

    def step_error_body():
        # A fresh login: the session above has ended.
        tokens = expect(
            login.sync_detailed(client=anonymous, body=Credentials(name=user_name, password=password)),
            200,
            TokenResponse,
        )
        client = authenticated(tokens.access_token)
        missing = state["author"].id + 1_000_000
        error = expect_error(get_author.sync_detailed(missing, client=client), 404, "not_found")
        return f"get_author({missing}) → 404 ErrorBody(error={error.error!r}, message={error.message!r})"

    run(1, "register", step_register)
    run(2, "login", step_login)
    run(3, "create_author", step_create_author)
    run(3, "list_authors", step_list_authors)
    run(3, "pages by Link, after, ETag", step_pages)
    run(3, "get_author", step_get_author)
    run(3, "get_current_user", step_current_user)
    run(4, "refresh_token", step_refresh)
    run(5, "logout", step_logout)
    run(6, "error body", step_error_body)
    print("openapi client flow: the generated client works for a new user's session")


if __name__ == "__main__":
    main()
