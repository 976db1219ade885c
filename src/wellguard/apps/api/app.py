"""The FastAPI application of the hub's HTTPS port."""

from __future__ import annotations

from fastapi import FastAPI

from wellguard import __version__
from wellguard.apps.api import routes_admin, routes_devicecomm, routes_registry, routes_routing
from wellguard.apps.api.context import ApiContext
from wellguard.apps.api.errors import install_error_handlers
from wellguard.apps.api.limits import BodyLimitMiddleware
from wellguard.apps.gateway import websocket

__all__ = ["create_app"]


def create_app(ctx: ApiContext) -> FastAPI:
    """Build the REST API over the hub's services."""
    app = FastAPI(
        title="wellguard hub",
        version=__version__,
        description="IoT Hub-compatible service API (api-version 2021-04-12) and wellguard "
        "administration: PKI, audit, policies, security events.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    app.include_router(routes_admin.router)
    app.include_router(routes_registry.router)
    app.include_router(routes_devicecomm.router)
    app.include_router(routes_routing.router)
    app.include_router(websocket.router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=ctx.config.api.max_body_bytes)
    return app
