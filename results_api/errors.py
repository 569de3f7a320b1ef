"""One error shape for every response: {"error": {"code": ..., "message": ...}}."""

import logging
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from results_api.store import StoreError, StoreUnavailable
from schemas import ErrorCode, ErrorInfo

log = logging.getLogger(__name__)


class ErrorResponse(BaseModel):
    error: ErrorInfo

    model_config = {
        "json_schema_extra": {
            "examples": [{"error": {"code": "job_not_found", "message": "no job with id 'abc'"}}]
        }
    }


class ApiError(Exception):
    def __init__(
        self, status: int, code: ErrorCode, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorResponse(error=ErrorInfo(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


_HTTP_CODES = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    503: ErrorCode.UNAVAILABLE,
}


def _validation_message(errors: list[Any], limit: int = 3) -> str:
    parts = []
    for err in errors[:limit]:
        where = ".".join(str(loc) for loc in err.get("loc", ())) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts) or "invalid request"


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, ErrorCode.INVALID_REQUEST, _validation_message(list(exc.errors())))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, ErrorCode.INVALID_REQUEST)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), headers)


async def _broker_error(_: Request, exc: Exception) -> JSONResponse:
    log.warning("broker: %s", exc)
    message = f"the broker is unavailable: {exc}; try again"
    return error_response(503, ErrorCode.UNAVAILABLE, message, {"Retry-After": "1"})


async def _store_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("store: %s", exc)
    if isinstance(exc, StoreUnavailable):
        message = f"the result store is unavailable: {exc}; try again"
        return error_response(503, ErrorCode.UNAVAILABLE, message, {"Retry-After": "1"})
    return error_response(500, ErrorCode.INTERNAL, str(exc))


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, ErrorCode.INTERNAL, "internal error; see the service log")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(KafkaError, _broker_error)
    app.add_exception_handler(Exception, _unexpected)
