"""Request plumbing every route module shares: the hub's services, JSON bodies, paging."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from wellguard.apps.api.context import ApiContext
from wellguard.errors import InvalidInputError

__all__ = ["MAX_PAGE", "api_context", "check_page_size", "json_object"]

MAX_PAGE = 1000


def api_context(request: Request) -> ApiContext:
    """The hub's services, as wired into the app."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


def json_object(body: Any) -> dict[str, Any]:
    """The request body, which must be a JSON object."""
    if not isinstance(body, dict):
        raise InvalidInputError("request body must be a JSON object")
    return body


def check_page_size(top: int, field: str = "top") -> int:
    """``top`` if it is a page size the API serves (1-1000)."""
    if not 1 <= top <= MAX_PAGE:
        raise InvalidInputError(f"{field} must be 1-{MAX_PAGE}", field=field)
    return top
