"""Translating wellguard errors to HTTP answers, IoT Hub style, leaking nothing internal."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from wellguard.errors import (
    AlreadyExistsError,
    AuthError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
    QueryError,
    WellguardError,
)

__all__ = ["error_response", "install_error_handlers"]

_log = logging.getLogger("wellguard.api")

_NOT_FOUND_CODES = {
    "device": "DeviceNotFound",
    "module": "ModuleNotFound",
    "twin": "DeviceNotFound",
    "configuration": "ConfigurationNotFound",
    "certificate": "CertificateNotFound",
    "policy": "PolicyNotFound",
}


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """An error body IoT Hub clients understand, plus plain ``errorCode``/``message``."""
    tracking = secrets.token_hex(8)
    body = {
        "Message": f"ErrorCode:{code};{message}",
        "ExceptionMessage": f"Tracking ID:{tracking}",
        "errorCode": code,
        "message": message,
        "trackingId": tracking,
        **extra,
    }
    return JSONResponse(body, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Map the error tree at the edge."""

    @app.exception_handler(AuthError)
    async def _auth(_request: Request, _exc: AuthError) -> JSONResponse:
        # One opaque answer; the reason is already in the security log.
        response = error_response(401, "IotHubUnauthorizedAccess", "Unauthorized")
        response.headers["WWW-Authenticate"] = "SharedAccessSignature"
        return response

    @app.exception_handler(NotFoundError)
    async def _not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
        return error_response(404, _NOT_FOUND_CODES.get(exc.kind, "NotFound"), str(exc))

    @app.exception_handler(AlreadyExistsError)
    async def _exists(_request: Request, exc: AlreadyExistsError) -> JSONResponse:
        code = "ModuleAlreadyExistsOnDevice" if exc.kind == "module" else "DeviceAlreadyExists"
        if exc.kind == "configuration":
            code = "ConfigurationAlreadyExists"
        return error_response(409, code, str(exc))

    @app.exception_handler(PreconditionFailedError)
    async def _precondition(_request: Request, exc: PreconditionFailedError) -> JSONResponse:
        return error_response(412, "PreconditionFailed", str(exc))

    @app.exception_handler(QueryError)
    async def _query(_request: Request, exc: QueryError) -> JSONResponse:
        return error_response(400, "BadRequest", str(exc), line=exc.line, column=exc.column)

    @app.exception_handler(InvalidInputError)
    async def _invalid(_request: Request, exc: InvalidInputError) -> JSONResponse:
        extra = {"field": exc.field} if exc.field else {}
        return error_response(400, "ArgumentInvalid", str(exc), **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body')}: {err.get('msg')}"
            for err in exc.errors()[:10]
        ]
        return error_response(400, "ArgumentInvalid", "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "NotFound", 405: "MethodNotAllowed", 413: "RequestEntityTooLarge"}
        return error_response(exc.status_code, codes.get(exc.status_code, "Error"), str(exc.detail))

    @app.exception_handler(WellguardError)
    async def _other(_request: Request, exc: WellguardError) -> JSONResponse:
        _log.error("request failed: %s", exc, exc_info=exc)
        return error_response(500, "ServerError", "internal error")

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> JSONResponse:
        _log.error("unexpected error", exc_info=exc)
        return error_response(500, "ServerError", "internal error")
