"""The routing REST router in-process (httpx ``ASGITransport``), with real SAS policy tokens."""

from __future__ import annotations

from tests.unit.adapters.routing.conftest import Api, make_message
from wellguard.core.ingest.ports import JournalEntry

JSON_UTF8 = {"contentType": "application/json", "contentEncoding": "utf-8"}


HOOK = {"kind": "webhook", "url": "https://example.com/in", "headers": {"Authorization": "k1"}}


def test_endpoint_lifecycle(api: Api) -> None:
    created = api.call("PUT", "/routing/endpoints/hook", json=HOOK)
    assert created.status_code == 201
    assert created.json()["headers"] == {"Authorization": "<redacted>"}
    assert api.store.get_endpoint("hook").headers == {"Authorization": "k1"}
    # GET-edit-PUT keeps the stored secret
    doc = api.call("GET", "/routing/endpoints/hook").json()
    doc["url"] = "https://example.com/v2"
    assert api.call("PUT", "/routing/endpoints/hook", json=doc).status_code == 200
    assert api.store.get_endpoint("hook").headers == {"Authorization": "k1"}
    names = [e["name"] for e in api.call("GET", "/routing/endpoints").json()]
    assert names == ["builtin", "hook"]
    assert api.call("DELETE", "/routing/endpoints/hook").status_code == 204
    missing = api.call("GET", "/routing/endpoints/hook")
    assert missing.status_code == 404


def test_endpoint_validation_errors(api: Api) -> None:
    http = {"kind": "webhook", "url": "http://example.com/in"}
    answer = api.call("PUT", "/routing/endpoints/hook", json=http)
    assert answer.status_code == 400
    assert "https" in answer.json()["message"]
    bad_kind = api.call("PUT", "/routing/endpoints/x", json={"kind": "ftp"})
    assert bad_kind.status_code == 400
    typo = api.call("PUT", "/routing/endpoints/x", json={"kind": "jsonl", "pth": "a"})
    assert "pth" in typo.json()["message"]
    escape = api.call("PUT", "/routing/endpoints/x", json={"kind": "jsonl", "path": "../x"})
    assert escape.status_code == 400
    assert api.call("DELETE", "/routing/endpoints/builtin").status_code == 400


def test_route_lifecycle_and_audit(api: Api) -> None:
    api.call("PUT", "/routing/endpoints/hook", json=HOOK)
    route = {"source": "DeviceMessages", "condition": "$body.t > 50", "endpointNames": ["hook"]}
    created = api.call("PUT", "/routing/routes/hot", json=route)
    assert created.status_code == 201
    assert created.json() == {"name": "hot", **route, "isEnabled": True}
    assert api.call("GET", "/routing/routes").json()[0]["name"] == "hot"
    in_use = api.call("DELETE", "/routing/endpoints/hook")
    assert in_use.status_code == 400
    assert "hot" in in_use.json()["message"]
    assert api.call("DELETE", "/routing/routes/hot").status_code == 204
    assert api.call("GET", "/routing/routes/hot").status_code == 404
    actions = [e.record.action for e in api.registry.store.list_audit(after=None, limit=100)]
    assert actions[-3:] == ["routing.endpoint.put", "routing.route.put", "routing.route.delete"]
    audit = api.registry.store.list_audit(after=None, limit=100)
    endpoint_entry = next(e for e in audit if e.record.action == "routing.endpoint.put")
    assert "k1" not in str(endpoint_entry.record.details)


def test_condition_errors_have_position(api: Api) -> None:
    route = {"condition": "a = 1 AND (b", "endpointNames": ["builtin"]}
    answer = api.call("PUT", "/routing/routes/r", json=route)
    assert answer.status_code == 400
    assert answer.json()["line"] == 1
    assert answer.json()["column"] > 1


def test_unknown_endpoint_in_route(api: Api) -> None:
    answer = api.call("PUT", "/routing/routes/r", json={"endpointNames": ["nope"]})
    assert answer.status_code == 400
    assert "unknown endpoint" in answer.json()["message"]


def test_fallback(api: Api) -> None:
    assert api.call("GET", "/routing/fallback").json()["isEnabled"] is True
    off = api.call("PUT", "/routing/fallback", json={"isEnabled": False})
    assert off.json()["isEnabled"] is False
    assert api.store.fallback_enabled() is False
    assert api.call("PUT", "/routing/fallback", json={}).status_code == 400


def test_rights(api: Api) -> None:
    assert api.call("GET", "/routing/routes", policy="registryRead").status_code == 200
    denied = api.call("PUT", "/routing/fallback", policy="registryRead", json={"isEnabled": 0})
    assert denied.status_code == 401
    assert api.call("GET", "/routing/routes", policy="service").status_code == 401
    assert api.call("GET", "/routing/routes", policy=None).status_code == 401


def test_test_endpoint_explains(api: Api) -> None:
    api.call("PUT", "/routing/endpoints/hook", json=HOOK)
    api.call(
        "PUT",
        "/routing/routes/hot",
        json={"condition": "$body.t > 50", "endpointNames": ["hook"]},
    )
    sample = {"body": {"t": 72}, "systemProperties": JSON_UTF8}
    hot = api.call("POST", "/routing/test", json=sample).json()
    assert hot["endpoints"] == ["hook"]
    assert hot["routes"] == [{"name": "hot", "matched": True, "reason": "condition is true"}]
    assert hot["fallback"] is False
    assert hot["warnings"] == []
    no_type = api.call("POST", "/routing/test", json={"body": {"t": 72}}).json()
    assert no_type["endpoints"] == ["builtin"]
    assert no_type["fallback"] is True
    assert no_type["bodyQueryable"] is False
    assert "contentType" in no_type["warnings"][0]


def test_test_endpoint_with_an_unsaved_condition(api: Api) -> None:
    sample = {
        "condition": "level = 'high' AND $connectionDeviceId = 'pump-9'",
        "appProperties": {"level": "high"},
        "deviceId": "pump-9",
    }
    answer = api.call("POST", "/routing/test", json=sample).json()
    assert answer["condition"] == {"text": sample["condition"], "matched": True}
    broken = api.call("POST", "/routing/test", json={"condition": "level = "})
    assert broken.status_code == 400
    assert "column" in broken.json()


def test_dead_letters_paged(api: Api) -> None:
    batch = [JournalEntry(seq=s, message=make_message(s)) for s in (1, 2, 3)]
    api.store.add_dead_letters("hook", batch, "HTTP 400")
    first = api.call("GET", "/routing/deadletters", params={"top": 2})
    assert [d["seq"] for d in first.json()] == [1, 2]
    assert first.json()[0]["message"]["body"] == '{"n": 0}'
    after = first.headers["x-ms-continuation"]
    rest = api.call("GET", "/routing/deadletters", params={"after": after})
    assert [d["seq"] for d in rest.json()] == [3]
    assert "x-ms-continuation" not in rest.headers
    assert api.call("GET", "/routing/deadletters", params={"top": 0}).status_code == 400


def test_stats_without_a_worker(api: Api) -> None:
    assert api.call("GET", "/routing/stats").json() == {"running": False}
