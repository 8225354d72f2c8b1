"""Every bad request becomes a 422 with one body shape (``schemas.ErrorResponse``).

Two sources: pydantic's validation of the body or query (types, ranges, enums, unknown keys), and
``SpecError`` raised by the catalog or the Python API (unknown ids, invalid plans). Both name the
field, the value received and what is valid, in ``message`` (one line) and ``detail`` (a list).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from mantile.specs import SpecError

MAX_VALUE_CHARS = 200


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "..."


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a received value (anything odd becomes its repr)."""
    try:
        encoded = jsonable_encoder(value)
        json.dumps(encoded, allow_nan=False)
        return encoded
    except (TypeError, ValueError):
        return _short(value)


def _response(items: list[dict[str, Any]], message: str) -> JSONResponse:
    return JSONResponse(status_code=422, content={"message": message, "detail": items})


def spec_error_item(e: SpecError) -> dict[str, Any]:
    root = e.where if e.where in ("body", "query") else "body"
    return {"loc": [root, *e.field.split(".")], "field": e.field, "input": _plain(e.value),
            "msg": f"{e.field} = {_short(e.value)} is invalid: {e.allowed}", "type": "value_error"}


def _pydantic_item(err: dict[str, Any]) -> dict[str, Any]:
    loc: Sequence[Any] = err.get("loc", ())
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
    items = [_pydantic_item(dict(e)) for e in exc.errors()]
    more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
    message = (items[0]["msg"] if items else "invalid request") + more
    return _response(items, message)


async def _on_http_error(request: Request, exc: Exception) -> Any:
    """A body that is not even text (FastAPI's 400) is a bad body like any other: 422."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:
        msg = f"body could not be parsed: {exc.detail}; send a JSON object (UTF-8)"
        item = {"loc": ["body"], "field": "body", "input": None, "type": "json_invalid", "msg": msg}
        return _response([item], msg)
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    """Register the handlers: SpecError anywhere in a request, request validation and unparsable
    bodies -> 422; other HTTP errors (404 unknown route, 405) keep FastAPI's answer."""
    app.add_exception_handler(SpecError, _on_spec_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
