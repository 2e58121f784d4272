"""The JSON API as a WSGI app: route, authenticate, validate, run one transaction, answer.

Every request is authenticated with a bearer token (``gateway.api_tokens``); a read-scope
token may only GET. A GET runs in a read session; any other method in one write transaction
(run again when it lost a race, ``gateway.preconditions.retrying``), which also holds the
``Idempotency-Key`` record of a POST. Refusals are problem details (``problems``); a domain
error's message is the ``detail``. Nothing is answered before the transaction commits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from gateway import api_tokens, idempotency
from gateway.api_tokens import Bearer
from gateway.config import Config
from gateway.conflicts import ConflictRefused, clash_json
from gateway.db import Store
from gateway.errors import Conflict, DomainError, Invalid, ReadOnly
from gateway.errors import NotFound as Missing
from gateway.linked_ops import RemoteRefused
from gateway.preconditions import PreconditionFailed, retrying
from gateway.web.api import openapi, resources
from gateway.web.api.problems import MEDIA_TYPE, Problem
from gateway.web.api.routing import ROUTES, Call, Reply, Route

log = logging.getLogger(__name__)
CHALLENGE = 'Bearer realm="crm-gateway API"'
PATH_TEXT_LIMIT = 320


class ApiApp:
    """The WSGI app mounted at ``/api/v1``."""

    def __init__(self, store: Store, config: Config):
        self.store, self.config = store, config
        resources.load()
        self.routes: list[Route] = list(ROUTES)
        self.map = Map([Rule(r.path, endpoint=i, methods=[r.method])
                        for i, r in enumerate(self.routes)],
                       strict_slashes=False, merge_slashes=False)
        self.document = json.dumps(openapi.document(self.routes)).encode()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except Problem as problem:
            response = problem_response(problem)
        except (OperationalError, InterfaceError) as exc:
            log.error("API: database unreachable: %s", type(exc.orig).__name__)
            response = problem_response(Problem(
                "unavailable", "the database is unreachable; try again later",
                headers={"Retry-After": "30"}))
        except Exception:  # a bug: logged with its traceback, answered without it
            log.exception("API %s %s failed", request.method, request.path)
            response = problem_response(Problem("internal", "the gateway failed to answer; "
                                                "the error is in its log"))
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        if request.path == "/openapi.json" and request.method in ("GET", "HEAD"):
            return Response(self.document, content_type="application/json")
        adapter = self.map.bind_to_environ(request.environ)
        try:
            index, matched = adapter.match()
        except MethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.valid_methods or ()))
            raise Problem("method-not-allowed",
                          f"{request.method} is not allowed here; allowed: {allowed}",
                          headers={"Allow": allowed}) from None
        except NotFound:
            raise Problem("not-found", f"no resource at {request.path}") from None
        route, params = self.routes[index], dict(matched)
        for value in params.values():
            if isinstance(value, str) and (len(value) > PATH_TEXT_LIMIT or "\x00" in value):
                raise Problem("not-found", f"no resource at {request.path}")
        # Who asks comes first: a stranger learns nothing from validation errors.
        if route.method == "GET":
            with self.store.reading() as session:
                bearer = self._authenticate(session, request)
                query = _validate(route.query, request.args.to_dict(), "query")
                return self._run(route, Call(session, params, query, None, bearer,
                                             request.headers, self.config, self.store))
        with self.store.reading() as session:
            bearer = self._authenticate(session, request)
        if not bearer.may_write:
            raise Problem("forbidden", f"token {bearer.name!r} has the read scope: "
                                       f"it may only GET ({request.method} needs admin)")
        query = _validate(route.query, request.args.to_dict(), "query")
        body = _body(route, request)
        if not route.transaction:
            with self.store.reading() as session:
                return self._run(route, Call(session, params, query, body, bearer,
                                             request.headers, self.config, self.store))
        key = request.headers.get("Idempotency-Key") if route.method == "POST" else None
        if key is not None:
            key = _checked(idempotency.check_key, key)
        print_ = idempotency.fingerprint(request.method, request.full_path,
                                         request.get_data(cache=True))

        def write() -> Response:
            with self.store.transaction() as session:
                if key is not None:
                    stored = _checked(idempotency.claim, session, bearer.id, key, print_)
                    if stored is not None:
                        return Response(stored.body, status=stored.status,
                                        headers={**stored.headers, "Idempotent-Replay": "true"})
                response = self._run(route, Call(session, params, query, body, bearer,
                                                 request.headers, self.config, self.store))
                if key is not None:
                    idempotency.settle(session, bearer.id, key, idempotency.Stored(
                        response.status_code, _kept_headers(response),
                        response.get_data(as_text=True)))
                return response

        try:
            return retrying(write)
        except Conflict as exc:  # lost every race: nothing was written
            raise Problem("conflict", str(exc)) from None

    def _authenticate(self, session: Any, request: Request) -> Bearer:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise Problem("unauthenticated", "send Authorization: Bearer <API token>",
                          headers={"WWW-Authenticate": CHALLENGE})
        bearer = None
        if scheme.lower() == "bearer":
            bearer = api_tokens.authenticate(session, token.strip())
        if bearer is None:
            raise Problem("unauthenticated", "the API token is wrong or revoked "
                          "(app passwords are for CalDAV only)",
                          headers={"WWW-Authenticate": CHALLENGE + ', error="invalid_token"'})
        if bearer.use_due:
            with self.store.transaction() as writer:
                api_tokens.record_use(writer, bearer.id)
        return bearer

    def _run(self, route: Route, call: Call) -> Response:
        try:
            answer = route.handler(call)
        except PreconditionFailed as exc:
            raise Problem("precondition-failed", str(exc)) from None
        except ReadOnly as exc:
            raise Problem("read-only", str(exc)) from None
        except ConflictRefused as exc:  # rolled back with the booking
            raise Problem("conflict-refused", str(exc),
                          errors=[clash_json(c) for c in exc.clashes]) from None
        except Missing as exc:
            raise Problem("not-found", str(exc)) from None
        except idempotency.KeyReused as exc:
            raise Problem("idempotency-key-reused", str(exc)) from None
        except Invalid as exc:
            raise Problem("invalid", str(exc)) from None
        except Conflict as exc:
            raise Problem("conflict", str(exc)) from None
        except RemoteRefused as exc:
            raise Problem("account-unreachable", str(exc)) from None
        except DomainError as exc:
            raise Problem("invalid", str(exc)) from None
        except DataError as exc:  # a value the database refuses that no model limit caught
            log.warning("API %s: the database refused a value: %s", route.operation_id,
                        type(exc.orig).__name__)
            raise Problem("invalid", "a value is out of the range the store accepts") from None
        reply = answer if isinstance(answer, Reply) else Reply(model=answer)
        status = reply.status or route.status
        if reply.raw is not None:
            return Response(reply.raw, status=status, headers=reply.headers,
                            content_type=reply.media_type or route.media_type)
        if reply.model is None:
            return Response(status=status, headers=reply.headers)
        return Response(reply.model.model_dump_json(), status=status, headers=reply.headers,
                        content_type="application/json")


def _checked(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except idempotency.KeyReused as exc:
        raise Problem("idempotency-key-reused", str(exc)) from None
    except Invalid as exc:
        raise Problem("invalid", str(exc)) from None


def _kept_headers(response: Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items()
            if name.lower() in ("etag", "location", "content-type")}


def _validate(model: type[BaseModel] | None, data: Any, where: str) -> Any:
    if model is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_problem(exc, where) from None


def _body(route: Route, request: Request) -> Any:
    if route.body is None:
        return None
    media = (request.mimetype or "").lower()
    if media != "application/json" and not media.endswith("+json"):
        raise Problem("unsupported-media-type",
                      f"send the body as application/json, not {media or 'nothing'}")
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem("malformed-request", f"the body is not JSON: {exc}") from None
    return _validate(route.body, data, "body")


def _validation_problem(exc: ValidationError, where: str) -> Problem:
    errors = [{"loc": [where, *error["loc"]], "msg": error["msg"]}
              for error in exc.errors(include_url=False)]
    first = errors[0]
    path = ".".join(str(part) for part in first["loc"][1:]) or where
    return Problem("validation", f"{path}: {first['msg']}", errors=errors)


def problem_response(problem: Problem) -> Response:
    return Response(problem.body(), status=problem.status, headers=problem.headers,
                    content_type=MEDIA_TYPE)
