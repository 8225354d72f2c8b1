"""Every error answer has one body shape (``schemas.ErrorResponse``): ``message`` (one line) and
``detail`` (a list of ``{loc, field, input, msg, type}``), whatever its status.

Bad requests are 422s from two sources: pydantic's validation of the body or query (types, ranges,
enums, unknown keys), and ``SpecError`` raised by the catalog or the Python API (unknown ids, invalid
plans). Both name the field, the value received and what is valid. Other HTTP errors (404 unknown
route, 405 wrong method, 413 body too large, ...) name what was asked for in the same shape:
``error_response`` builds that body for any status. An error never echoes more than a short excerpt
of what was sent (``MAX_VALUE_CHARS`` per value, ``MAX_ERRORS`` items), so a bad request costs the
server no more than a good one.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from mantile.specs import SpecError

MAX_VALUE_CHARS = 200  # characters of a received value echoed in an error
MAX_ERRORS = 20  # error items in one answer; the message counts the rest
_EXCERPT = reprlib.Repr()  # keyword arguments only from Python 3.12
_EXCERPT.maxlevel, _EXCERPT.maxstring, _EXCERPT.maxlong, _EXCERPT.maxother = 3, MAX_VALUE_CHARS, 40, MAX_VALUE_CHARS
_EXCERPT.maxdict = _EXCERPT.maxlist = _EXCERPT.maxtuple = _EXCERPT.maxset = 8


def _short(value: Any) -> str:
    """An excerpt of ``value``'s repr: its cost does not grow with the size of ``value``."""
    text = _EXCERPT.repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "..."


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a small received value; a large or odd one becomes a short excerpt."""
    if isinstance(value, (dict, list, tuple, set)) and len(value) > 8 or \
            isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return _short(value)
    try:
        encoded = jsonable_encoder(value)
        text = json.dumps(encoded, allow_nan=False)
    except (TypeError, ValueError):
        return _short(value)
    return encoded if len(text) <= MAX_VALUE_CHARS else _short(value)


def error_response(status: int, items: list[dict[str, Any]], message: Any,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The one error body: ``{"message": ..., "detail": [{loc, field, input, msg, type}, ...]}``."""
    return JSONResponse(status_code=status, content={"message": str(message), "detail": items},
                        headers=dict(headers or {}))


def _response(items: list[dict[str, Any]], message: Any) -> JSONResponse:
    return error_response(422, items, message)


def spec_error_item(e: SpecError) -> dict[str, Any]:
    root = e.where if e.where in ("body", "query") else "body"
    return {"loc": [root, *e.field.split(".")], "field": e.field, "input": _plain(e.value),
            "msg": f"{e.field} = {_short(e.value)} is invalid: {e.allowed}", "type": "value_error"}


def _union_tag(part: Any) -> bool:
    """A loc part that names a branch of a union (``int | list[int]``), not a request field."""
    return isinstance(part, str) and (part.startswith(("list[", "literal[", "function-", "constrained-"))
                                      or part in ("int", "str", "float", "bool", "none"))


def _wrong_branch(err: dict[str, Any]) -> bool:
    """An error of the union branch the value was not meant for: a list given to the single-value
    branch, or a single value given to the list branch."""
    tags = [p for p in err.get("loc", ()) if _union_tag(p)]
    if not tags:
        return False
    listed = tags[-1].startswith("list[")
    return (not listed and isinstance(err.get("input"), list)) or (listed and err.get("type") == "list_type")


def _pydantic_item(err: dict[str, Any]) -> dict[str, Any]:
    loc: Sequence[Any] = [p for p in err.get("loc", ()) if not _union_tag(p)]
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    field = ".".join(parts) or "body"
    kind = str(err.get("type", "value_error"))
    if kind == "missing":
        msg = f"{field} is required"
    elif kind in ("extra_forbidden",):
        msg = f"{field} is not a known field ({_short(err.get('input'))} given)"
    else:
        msg = f"{field} = {_short(err.get('input'))} is invalid: {err.get('msg', '')}"
    return {"loc": [str(p) if not isinstance(p, int) else p for p in loc], "field": field,
            "input": _plain(err.get("input")) if kind != "missing" else None, "msg": msg, "type": kind}


async def _on_spec_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SpecError)
    item = spec_error_item(exc)
    return _response([item], item["msg"])


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = [dict(e) for e in exc.errors()]
    raw = [e for e in raw if not _wrong_branch(e)] or raw
    items = [_pydantic_item(e) for e in raw[:MAX_ERRORS]]
    more = f" (and {len(raw) - 1} more)" if len(raw) > 1 else ""
    message = (items[0]["msg"] if items else "invalid request") + more
    return _response(items, message)


def http_error_item(request: Request, exc: HTTPException) -> dict[str, Any]:
    """What an HTTP error is about, as an error item: the path (404), the method (405), the body."""
    route = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        return {"loc": ["path"], "field": "path", "input": request.url.path, "type": "not_found",
                "msg": f"no such route: {route}; routes are listed at /docs and /openapi.json"}
    if exc.status_code == 405:
        allowed = next((v for k, v in (exc.headers or {}).items() if k.lower() == "allow"), "")
        return {"loc": ["method"], "field": "method", "input": request.method, "type": "method_not_allowed",
                "msg": f"method {request.method} is not allowed on {request.url.path}; allowed: {allowed}"}
    where = "body" if exc.status_code in (400, 411, 413, 415) else "request"
    return {"loc": [where], "field": where, "input": None, "type": f"http_{exc.status_code}",
            "msg": f"{route}: {exc.detail}"}


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    """A body that is not even text (FastAPI's 400) is a bad body like any other: 422. Any other
    HTTP error keeps its status and headers (``Allow`` on a 405) and gets the one error shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:
        item = {"loc": ["body"], "field": "body", "input": None, "type": "json_invalid",
                "msg": f"body could not be parsed: {exc.detail}; send a JSON object (UTF-8)"}
        return _response([item], item["msg"])
    item = http_error_item(request, exc)
    return error_response(exc.status_code, [item], item["msg"], headers=exc.headers)


def install(app: FastAPI) -> None:
    """Register the handlers: SpecError anywhere in a request, request validation and unparsable
    bodies -> 422; every other HTTP error (404, 405, 413, ...) -> its status, in the same shape."""
    app.add_exception_handler(SpecError, _on_spec_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
