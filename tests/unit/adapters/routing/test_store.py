"""RoutingStore: configuration CRUD that always validates, sealed headers, dead letters,
the security inbox. On SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from tests.unit.adapters.routing.conftest import make_message
from wellguard.adapters.routing import RoutingStore
from wellguard.adapters.sql import schema
from wellguard.core.ingest.ports import JournalEntry
from wellguard.core.ingest.routing import BUILTIN_ENDPOINT, Endpoint, EndpointKind, Route
from wellguard.core.secretbox import SecretBox, generate_master_key
from wellguard.errors import InvalidInputError, NotFoundError, QueryError, StorageError
from wellguard.model.message import MessageSource

T = MessageSource.TELEMETRY


def hook(name: str = "hook", **kw: object) -> Endpoint:
    return Endpoint(name, EndpointKind.WEBHOOK, url="https://example.com/in", **kw)  # type: ignore[arg-type]


def test_empty_store_routes_everything_to_builtin(any_engine: Engine) -> None:
    store = RoutingStore(any_engine)
    table = store.load_table()
    assert table.routes == ()
    assert list(table.endpoints) == [BUILTIN_ENDPOINT]
    assert table.fallback_enabled
    assert store.fallback_enabled()


def test_endpoint_crud(any_engine: Engine) -> None:
    store = RoutingStore(any_engine)
    assert store.put_endpoint(hook(headers={"Authorization": "Bearer x"})) is True
    assert store.put_endpoint(Endpoint("file", EndpointKind.JSONL, path="a/b.jsonl")) is True
    assert store.get_endpoint("hook").headers == {"Authorization": "Bearer x"}
    changed = Endpoint("hook", EndpointKind.JSONL, path="c.jsonl")
    assert store.put_endpoint(changed) is False
    assert store.get_endpoint("hook") == changed
    assert [e.name for e in store.list_endpoints()] == [BUILTIN_ENDPOINT, "file", "hook"]
    store.delete_endpoint("file")
    with pytest.raises(NotFoundError):
        store.get_endpoint("file")
    with pytest.raises(NotFoundError):
        store.delete_endpoint("file")


def test_builtin_endpoint_is_fixed(any_engine: Engine) -> None:
    store = RoutingStore(any_engine)
    with pytest.raises(InvalidInputError):
        store.delete_endpoint(BUILTIN_ENDPOINT)
    with pytest.raises(InvalidInputError):
        store.put_endpoint(Endpoint(BUILTIN_ENDPOINT, EndpointKind.BUILTIN))
    assert store.get_endpoint(BUILTIN_ENDPOINT).kind is EndpointKind.BUILTIN


def test_route_crud(any_engine: Engine) -> None:
    store = RoutingStore(any_engine)
    store.put_endpoint(hook())
    hot = Route("hot", T, "$body.t > 50", ("hook", "events"))
    assert store.put_route(hot) is True
    assert store.get_route("hot") == Route("hot", T, "$body.t > 50", ("hook", BUILTIN_ENDPOINT))
    assert store.put_route(Route("hot", T, "t > 60", ("hook",), enabled=False)) is False
    assert store.get_route("hot").enabled is False
    assert store.get_route("hot").condition == "t > 60"
    store.put_route(Route("twins", MessageSource.TWIN_CHANGE, "", ("hook",)))
    assert [r.name for r in store.list_routes()] == ["hot", "twins"]
    store.delete_route("hot")
    with pytest.raises(NotFoundError):
        store.get_route("hot")
    with pytest.raises(NotFoundError):
        store.delete_route("hot")


def test_routed_sources_are_those_of_enabled_routes(any_engine: Engine) -> None:
    store = RoutingStore(any_engine)
    assert store.routed_sources() == frozenset()  # the fallback route is not a route
    store.put_endpoint(hook())
    store.put_route(Route("hot", T, "true", ("hook",)))
    store.put_route(Route("states", MessageSource.CONNECTION_STATE, "true", ("hook",)))
    store.put_route(Route("off", MessageSource.TWIN_CHANGE, "true", ("hook",), enabled=False))
    assert store.routed_sources() == {T, MessageSource.CONNECTION_STATE}
    store.delete_route("states")
    assert store.routed_sources() == {T}


def test_writes_keep_the_table_valid(any_engine: Engine) -> None:
    store = RoutingStore(any_engine)
    with pytest.raises(InvalidInputError, match="unknown endpoint"):
        store.put_route(Route("r", T, "", ("hook",)))
    store.put_endpoint(hook())
    store.put_route(Route("r", T, "", ("hook",)))
    with pytest.raises(InvalidInputError, match="used by route"):
        store.delete_endpoint("hook")
    assert store.get_endpoint("hook")


def test_bad_condition_never_reaches_the_store() -> None:
    with pytest.raises(QueryError):
        Route("r", T, "a = ", ("builtin",))


def test_version_counts_writes(any_engine: Engine) -> None:
    store = RoutingStore(any_engine)
    assert store.version == 0
    store.put_endpoint(hook())
    store.put_route(Route("r", T, "", ("hook",)))
    store.set_fallback(False)
    assert store.version == 3
    with pytest.raises(InvalidInputError):
        store.delete_endpoint("hook")
    assert store.version == 3


def test_fallback_flag(any_engine: Engine) -> None:
    store = RoutingStore(any_engine)
    store.set_fallback(False)
    assert not store.fallback_enabled()
    assert not store.load_table().fallback_enabled
    store.set_fallback(True)
    assert store.fallback_enabled()


def test_headers_are_sealed_with_a_box(engine: Engine) -> None:
    box = SecretBox(generate_master_key())
    store = RoutingStore(engine, box=box)
    store.put_endpoint(hook(headers={"Authorization": "Bearer top-secret"}))
    with engine.connect() as conn:
        raw = conn.execute(select(schema.routing_endpoints.c.headers)).scalar_one()
    assert "top-secret" not in str(raw)
    assert store.get_endpoint("hook").headers == {"Authorization": "Bearer top-secret"}
    with pytest.raises(StorageError):
        RoutingStore(engine).load_table()


def test_plain_headers_without_a_box(engine: Engine) -> None:
    store = RoutingStore(engine)
    store.put_endpoint(hook(headers={"X-Key": "k"}))
    assert RoutingStore(engine).get_endpoint("hook").headers == {"X-Key": "k"}


def test_dead_letters_kept_and_paged(any_engine: Engine) -> None:
    store = RoutingStore(any_engine)
    batch = [JournalEntry(seq=s, message=make_message(s, b"\xff" * s)) for s in (1, 2, 3)]
    assert store.add_dead_letters("hook", batch, "webhook refused the batch: HTTP 400") == 3
    assert store.add_dead_letters("hook", [], "nothing") == 0
    first = store.list_dead_letters(limit=2)
    assert [(d.seq, d.endpoint) for d in first] == [(1, "hook"), (2, "hook")]
    assert first[0].reason.endswith("HTTP 400")
    assert first[1].body == b"\xff\xff"
    assert first[0].message["deviceId"] == "pump-1"
    assert "body" not in first[0].message
    rest = store.list_dead_letters(after=first[-1].id)
    assert [d.seq for d in rest] == [3]


def test_security_inbox_is_idempotent_by_seq(any_engine: Engine) -> None:
    store = RoutingStore(any_engine)
    batch = [JournalEntry(seq=s, message=make_message(s)) for s in (5, 6)]
    assert store.add_security_messages(batch) == 2
    again = [*batch, JournalEntry(seq=7, message=make_message(7))]
    assert store.add_security_messages(again) == 1
    with any_engine.connect() as conn:
        rows = conn.execute(select(schema.security_inbox).order_by("seq")).all()
    assert [r.seq for r in rows] == [5, 6, 7]
    assert rows[0].device_id == "pump-1"
    assert rows[0].app_properties == {"n": "5"}
    assert rows[0].body == b'{"n": 0}'


def test_driver_errors_become_storage_errors(engine: Engine) -> None:
    store = RoutingStore(engine)
    schema.dead_letters.drop(engine)
    with pytest.raises(StorageError):
        store.list_dead_letters()
