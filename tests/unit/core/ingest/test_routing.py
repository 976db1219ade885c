"""Routing table semantics: what ``select_endpoints`` decides for each kind of message."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from wellguard.core.ingest import routing
from wellguard.core.ingest.routing import (
    BUILTIN_ENDPOINT,
    SECURITY_ENDPOINT,
    Endpoint,
    EndpointKind,
    Route,
    RoutingTable,
    body_document,
)
from wellguard.errors import InvalidInputError, QueryError
from wellguard.model.message import (
    SECURITY_INTERFACE_ID,
    DeviceMessage,
    MessageSource,
    SystemProperty,
)

T = MessageSource.TELEMETRY
JSON_UTF8 = {"contentType": "application/json", "contentEncoding": "utf-8"}
AT = datetime(2026, 11, 22, 5, 17, 47, tzinfo=UTC)


def message(
    body: bytes = b"{}",
    *,
    system: dict[str, str] | None = None,
    app: dict[str, str] | None = None,
    source: MessageSource = T,
    device: str = "pump-1",
    module: str | None = None,
) -> DeviceMessage:
    return DeviceMessage(device, module, AT, source, body, system or {}, app or {})


def hook(name: str) -> Endpoint:
    return Endpoint(name, EndpointKind.WEBHOOK, url=f"https://example.com/{name}")


def table(*routes: Route, fallback: bool = True, endpoints: tuple[str, ...] = ()) -> RoutingTable:
    names = {e for r in routes for e in r.endpoints if e != BUILTIN_ENDPOINT} | set(endpoints)
    return RoutingTable(routes, [hook(n) for n in sorted(names)], fallback_enabled=fallback)


def route(name: str, condition: str, *endpoints: str, **kw: Any) -> Route:
    return Route(name, kw.pop("source", T), condition, endpoints, **kw)


# -- fallback and sources -------------------------------------------------------------


def test_no_routes_means_builtin_for_telemetry() -> None:
    assert table().select_endpoints(message()) == (BUILTIN_ENDPOINT,)


def test_no_routes_and_fallback_off_drops_telemetry() -> None:
    assert table(fallback=False).select_endpoints(message()) == ()


@pytest.mark.parametrize(
    "source",
    [MessageSource.TWIN_CHANGE, MessageSource.LIFECYCLE, MessageSource.CONNECTION_STATE],
)
def test_other_sources_without_a_match_are_dropped(source: MessageSource) -> None:
    assert table().select_endpoints(message(source=source)) == ()


def test_route_of_another_source_does_not_apply() -> None:
    t = table(route("twins", "true", "a", source=MessageSource.TWIN_CHANGE))
    assert t.select_endpoints(message()) == (BUILTIN_ENDPOINT,)
    assert t.select_endpoints(message(source=MessageSource.TWIN_CHANGE)) == ("a",)


def test_a_match_replaces_the_fallback() -> None:
    t = table(route("hot", "level = 'high'", "a"))
    assert t.select_endpoints(message(app={"level": "high"})) == ("a",)
    assert t.select_endpoints(message(app={"level": "low"})) == (BUILTIN_ENDPOINT,)


def test_route_can_send_to_builtin_too_as_events() -> None:
    t = table(route("both", "", "a", "events"))
    assert t.routes[0].endpoints == ("a", BUILTIN_ENDPOINT)
    assert t.select_endpoints(message()) == ("a", BUILTIN_ENDPOINT)


def test_union_of_matching_routes_each_endpoint_once() -> None:
    t = table(
        route("r1", "a = '1'", "x", "y"),
        route("r2", "b = '2'", "y", "z"),
        route("r3", "c = '3'", "w"),
    )
    assert t.select_endpoints(message(app={"a": "1", "b": "2"})) == ("x", "y", "z")


def test_disabled_route_is_ignored() -> None:
    t = table(route("off", "true", "a", enabled=False))
    assert t.select_endpoints(message()) == (BUILTIN_ENDPOINT,)


# -- security messages ----------------------------------------------------------------


def security_message(**kw: Any) -> DeviceMessage:
    system = {SystemProperty.INTERFACE_ID.value: SECURITY_INTERFACE_ID, **JSON_UTF8}
    return message(b'{"x": 1}', system=system, **kw)


def test_security_message_goes_only_to_security() -> None:
    t = table(route("all", "true", "a"), route("body", "$body.x = 1", "b"))
    assert t.select_endpoints(security_message()) == (SECURITY_ENDPOINT,)


def test_security_message_even_with_fallback_off() -> None:
    assert table(fallback=False).select_endpoints(security_message()) == (SECURITY_ENDPOINT,)


def test_explain_security_message() -> None:
    trace = table(route("all", "true", "a")).explain(security_message())
    assert trace.security
    assert trace.endpoints == (SECURITY_ENDPOINT,)
    assert trace.routes == ()


# -- conditions: $body, properties ----------------------------------------------------


def test_body_only_with_json_content_type_and_utf_encoding() -> None:
    t = table(route("hot", "$body.temperature > 50", "a"), fallback=False)
    body = b'{"temperature": 72}'
    assert t.select_endpoints(message(body, system=JSON_UTF8)) == ("a",)
    assert t.select_endpoints(message(body)) == ()
    assert t.select_endpoints(message(body, system={"contentType": "application/json"})) == ()
    assert t.select_endpoints(message(body, system={"contentEncoding": "utf-8"})) == ()
    wrong = {"contentType": "text/plain", "contentEncoding": "utf-8"}
    assert t.select_endpoints(message(body, system=wrong)) == ()


@pytest.mark.parametrize("encoding", ["utf-8", "UTF-8", "utf-16", "utf-32"])
def test_body_in_each_utf_encoding(encoding: str) -> None:
    t = table(route("hot", "$body.t = 'é'", "a"), fallback=False)
    system = {"contentType": "application/json; charset=x", "contentEncoding": encoding}
    body = '{"t": "é"}'.encode(encoding.lower())
    assert t.select_endpoints(message(body, system=system)) == ("a",)


def test_body_that_is_not_json_is_undefined() -> None:
    t = table(route("hot", "NOT IS_DEFINED($body.t)", "a"), fallback=False)
    assert t.select_endpoints(message(b"{not json", system=JSON_UTF8)) == ("a",)


def test_body_is_parsed_once_per_message(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = routing.body_document

    def counting(msg: DeviceMessage) -> Any:
        calls.append(msg.body)
        return real(msg)

    monkeypatch.setattr(routing, "body_document", counting)
    t = table(route("r1", "$body.a = 1", "x"), route("r2", "$body.b = 2", "y"))
    assert t.select_endpoints(message(b'{"a": 1, "b": 2}', system=JSON_UTF8)) == ("x", "y")
    assert len(calls) == 1


def test_body_not_parsed_when_no_condition_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(_msg: DeviceMessage) -> Any:
        raise AssertionError("body parsed")

    monkeypatch.setattr(routing, "body_document", boom)
    t = table(route("r1", "a = '1'", "x"))
    assert t.select_endpoints(message(b'{"a": 1}', system=JSON_UTF8, app={"a": "1"})) == ("x",)


def test_no_condition_evaluated_without_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_args: Any, **_kw: Any) -> Any:
        raise AssertionError("evaluated")

    monkeypatch.setattr(routing, "routing_resolver", boom)
    monkeypatch.setattr(routing, "evaluate_condition", boom)
    assert table().select_endpoints(message(app={"a": "1"})) == (BUILTIN_ENDPOINT,)
    # a match-all route needs no evaluation either
    assert table(route("all", "*", "x")).select_endpoints(message()) == ("x",)


def test_app_properties_read_as_numbers_when_compared_with_numbers() -> None:
    t = table(route("hot", "temperature > 50 AND site = 'north'", "a"), fallback=False)
    assert t.select_endpoints(message(app={"temperature": "72", "site": "north"})) == ("a",)
    assert t.select_endpoints(message(app={"temperature": "12", "site": "north"})) == ()
    assert t.select_endpoints(message(app={"site": "north"})) == ()


def test_system_properties() -> None:
    t = table(route("json", "$contentType = 'application/json'", "a"), fallback=False)
    assert t.select_endpoints(message(system=JSON_UTF8)) == ("a",)
    assert t.select_endpoints(message()) == ()


def test_connection_device_and_module_id() -> None:
    t = table(
        route("dev", "$connectionDeviceId = 'pump-1'", "a"),
        route("mod", "$connectionModuleId = 'filter'", "b"),
        route("nomod", "NOT IS_DEFINED($connectionModuleId)", "c"),
        fallback=False,
    )
    assert t.select_endpoints(message()) == ("a", "c")
    assert t.select_endpoints(message(module="filter")) == ("a", "b")
    assert t.select_endpoints(message(device="pump-2")) == ("c",)


def test_device_cannot_spoof_connection_properties() -> None:
    t = table(route("dev", "$connectionDeviceId = 'admin'", "a"), fallback=False)
    spoof = {"iothub-connection-device-id": "admin", "connectionDeviceId": "admin"}
    assert t.select_endpoints(message(system=spoof)) == ()


def test_enqueued_time_is_hub_supplied() -> None:
    t = table(route("t", "$enqueuedTime = '2026-11-22T05:17:47Z'", "a"), fallback=False)
    assert t.select_endpoints(message()) == ("a",)


# -- validation -----------------------------------------------------------------------


def test_condition_errors_carry_position() -> None:
    with pytest.raises(QueryError) as caught:
        route("bad", "a = 1 AND\n  (b = ", "x")
    assert caught.value.line == 2
    assert caught.value.column > 1


def test_unknown_function_is_a_query_error() -> None:
    with pytest.raises(QueryError):
        route("bad", "NOPE(a)", "x")


def test_unknown_endpoint_refused() -> None:
    with pytest.raises(InvalidInputError, match="unknown endpoint"):
        RoutingTable([route("r", "", "missing")], [])


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "ünï", "a/b", "$security"])
def test_bad_names_refused(name: str) -> None:
    with pytest.raises(InvalidInputError):
        route(name, "", "builtin")
    with pytest.raises(InvalidInputError):
        hook(name)


def test_duplicate_names_refused() -> None:
    with pytest.raises(InvalidInputError, match="duplicate route"):
        table(route("r", "", "a"), route("r", "", "b"))
    with pytest.raises(InvalidInputError, match="duplicate endpoint"):
        RoutingTable([], [hook("a"), hook("a")])


def test_route_endpoint_list_checked() -> None:
    with pytest.raises(InvalidInputError):
        route("r", "")
    with pytest.raises(InvalidInputError):
        route("r", "", "a", "a")
    with pytest.raises(InvalidInputError):
        Route("r", T, "", "builtin")  # type: ignore[arg-type]


def test_reserved_endpoint_names() -> None:
    for name in ("builtin", "events"):
        with pytest.raises(InvalidInputError, match="reserved"):
            hook(name)


@pytest.mark.parametrize(
    ("url", "allow_http", "ok"),
    [
        ("https://example.com/x", False, True),
        ("http://example.com/x", False, False),
        ("http://example.com/x", True, False),
        ("http://127.0.0.1:8080/x", False, False),
        ("http://127.0.0.1:8080/x", True, True),
        ("http://localhost/x", True, True),
        ("http://[::1]:9/x", True, True),
        ("ftp://example.com/x", False, False),
        ("https://user:pw@example.com/x", False, False),
        ("https:///x", False, False),
        ("https://example.com:99999/x", False, False),
    ],
)
def test_webhook_url_rules(url: str, allow_http: bool, ok: bool) -> None:
    def make() -> Endpoint:
        return Endpoint("w", EndpointKind.WEBHOOK, url=url, allow_http=allow_http)

    if ok:
        make()
    else:
        with pytest.raises(InvalidInputError):
            make()


def test_webhook_headers_checked() -> None:
    ok = Endpoint("w", EndpointKind.WEBHOOK, url="https://e.x", headers={"Authorization": "x"})
    assert ok.headers == {"Authorization": "x"}
    for headers in ({"Bad Name": "x"}, {"X-A": "a\r\nb"}, {"Content-Type": "x"}):
        with pytest.raises(InvalidInputError):
            Endpoint("w", EndpointKind.WEBHOOK, url="https://e.x", headers=headers)


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("out.jsonl", True),
        ("site/a/out.jsonl", True),
        ("/etc/passwd", False),
        ("../out.jsonl", False),
        ("a/../../b", False),
        ("a//b", False),
        ("a\\b", False),
        ("", False),
    ],
)
def test_jsonl_path_rules(path: str, ok: bool) -> None:
    if ok:
        Endpoint("j", EndpointKind.JSONL, path=path)
    else:
        with pytest.raises(InvalidInputError):
            Endpoint("j", EndpointKind.JSONL, path=path)


def test_settings_belong_to_their_kind() -> None:
    with pytest.raises(InvalidInputError):
        Endpoint("j", EndpointKind.JSONL, path="a", url="https://e.x")
    with pytest.raises(InvalidInputError):
        Endpoint("w", EndpointKind.WEBHOOK, url="https://e.x", path="a")
    with pytest.raises(InvalidInputError):
        Endpoint("b", EndpointKind.BUILTIN)


def test_table_knows_builtin_and_route_users() -> None:
    t = table(route("r1", "", "a"), route("r2", "", "a", "builtin"))
    assert set(t.endpoints) == {BUILTIN_ENDPOINT, "a"}
    assert t.users_of("a") == ["r1", "r2"]
    assert t.users_of(BUILTIN_ENDPOINT) == ["r2"]


def test_explain_reports_each_route() -> None:
    t = table(
        route("hot", "$body.t > 50", "a"),
        route("off", "true", "b", enabled=False),
        route("twin", "true", "c", source=MessageSource.TWIN_CHANGE),
    )
    trace = t.explain(message(b'{"t": 10}', system=JSON_UTF8))
    assert trace.endpoints == (BUILTIN_ENDPOINT,)
    assert trace.fallback
    assert trace.body_readable
    verdicts = {r.name: (r.matched, r.reason) for r in trace.routes}
    assert verdicts == {
        "hot": (False, "condition is false or undefined"),
        "off": (False, "disabled"),
        "twin": (False, "source is TwinChangeEvents"),
    }
    hot = t.explain(message(b'{"t": 90}', system=JSON_UTF8))
    assert hot.endpoints == ("a",)
    assert not hot.fallback


def test_body_document_requires_declared_json() -> None:
    assert body_document(message(b'{"a": 1}', system=JSON_UTF8)) == {"a": 1}
    assert body_document(message(b'{"a": 1}')) is None
    assert body_document(message(b"\xff", system=JSON_UTF8)) is None


@pytest.fixture
def many_routes() -> RoutingTable:
    return table(*(route(f"r{i}", f"n = '{i}'", f"e{i % 5}") for i in range(100)))


def test_limits(many_routes: RoutingTable) -> None:
    assert len(many_routes.routes) == 100
    with pytest.raises(InvalidInputError, match="at most"):
        RoutingTable(
            [*many_routes.routes, route("extra", "", "builtin")],
            many_routes.endpoints.values(),
        )
    assert many_routes.select_endpoints(message(app={"n": "42"})) == ("e2",)
