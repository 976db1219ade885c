"""docs/api.md lists every route the app serves (and none it does not)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.routing import APIRoute, APIWebSocketRoute

from wellguard.apps.api import routes_admin, routes_devicecomm, routes_registry, routes_routing
from wellguard.apps.gateway import websocket

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _served() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    routers = (routes_admin, routes_registry, routes_devicecomm, routes_routing)
    for router in (module.router for module in routers):
        for route in router.routes:
            if isinstance(route, APIRoute):
                found |= {(method, route.path) for method in route.methods}
    for route in websocket.router.routes:
        if isinstance(route, APIWebSocketRoute):
            found.add(("WebSocket", route.path))
    return found


def test_every_route_is_documented() -> None:
    documented = set(re.findall(r"^\| (\w+) \| `([^`]+)` \|", DOC.read_text(), flags=re.MULTILINE))
    served = _served()
    assert served - documented == set(), "routes missing from docs/api.md"
    assert documented - served == set(), "docs/api.md lists routes the app does not serve"
