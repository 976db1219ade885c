"""``wellguard route ...`` against the real router, in-process (no hub process needed)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from tests.unit.adapters.routing.conftest import Api
from wellguard.apps.cli import commands_routing, options
from wellguard.apps.cli.client import HubClient, HubRequestError


class InProcessClient:
    """``HubClient``'s surface, answered by the app in-process."""

    path = staticmethod(HubClient.path)

    def __init__(self, api: Api) -> None:
        self.api = api
        self.calls: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        self.calls.append((method, path, json))
        query = {k: v for k, v in (params or {}).items() if v is not None}
        response = self.api.call(method, path, json=json, params=query)
        if response.status_code >= 400:
            body = response.json()
            raise HubRequestError(response.status_code, body["errorCode"], body["message"])
        return response

    def json(self, method: str, path: str, **kw: Any) -> Any:
        response = self.request(method, path, **kw)
        return response.json() if response.content else None

    def close(self) -> None:
        pass


@pytest.fixture
def cli(api: Api, monkeypatch: pytest.MonkeyPatch) -> Any:
    client = InProcessClient(api)
    monkeypatch.setattr(options, "hub_client", lambda _data: client)
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None) -> Any:
        result = runner.invoke(commands_routing.route, list(args), env=env)
        result.client = client
        return result

    return run


def test_endpoint_route_and_test_commands(cli: Any, api: Api) -> None:
    added = cli(
        "endpoint", "add", "hook", "--kind", "webhook", "--url", "https://example.com/in",
        "--header-env", "Authorization:HOOK_TOKEN", "--header", "X-Site: north",
        "--format", "json",
        env={"HOOK_TOKEN": "Bearer s3cret"},
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "s3cret" not in added.output
    assert api.store.get_endpoint("hook").headers == {
        "Authorization": "Bearer s3cret",
        "X-Site": "north",
    }
    route = cli(
        "add", "hot", "--condition", "$body.t > 50", "--endpoint", "hook",
        "--endpoint", "builtin",
    )  # fmt: skip
    assert route.exit_code == 0, route.output
    assert api.store.get_route("hot").endpoints == ("hook", "builtin")
    listed = cli("list", "--format", "json")
    assert [r["name"] for r in orjson.loads(listed.output)] == ["hot"]
    hot = cli("test", "--body", '{"t": 72}')
    assert hot.exit_code == 0, hot.output
    assert "goes to: hook, builtin" in hot.output
    cold = cli("test", "--body", '{"t": 7}', "--condition", "$body.t < 10")
    assert "goes to: builtin (fallback)" in cold.output
    assert "condition matches: yes" in cold.output


def test_test_warns_when_body_is_not_queryable(cli: Any) -> None:
    result = cli("test", "--body", '{"t": 1}', "--sys", "contentType=text/plain")
    assert result.exit_code == 0
    assert "warning: $body is undefined" in result.output


def test_fallback_and_removal(cli: Any, api: Api) -> None:
    assert cli("fallback", "off").exit_code == 0
    assert api.store.fallback_enabled() is False
    shown = cli("fallback", "--format", "json")
    assert orjson.loads(shown.output)["isEnabled"] is False
    cli("endpoint", "add", "file", "--kind", "jsonl", "--path", "out/t.jsonl")
    assert cli("endpoint", "remove", "file").exit_code == 0
    assert [e.name for e in api.store.list_endpoints()] == ["builtin"]


def test_errors_are_reported(cli: Any) -> None:
    bad = cli("add", "r", "--condition", "a = ", "--endpoint", "builtin")
    assert isinstance(bad.exception, HubRequestError)
    assert "column" in bad.exception.message
    usage = cli("endpoint", "add", "x", "--kind", "jsonl", "--url", "https://e.x")
    assert usage.exit_code == 2
    missing = cli("endpoint", "add", "x", "--kind", "webhook", "--url", "https://e.x",
                  "--header-env", "A:NOT_SET_ANYWHERE")  # fmt: skip
    assert missing.exit_code == 2


def test_deadletters_command(cli: Any, api: Api) -> None:
    from tests.unit.adapters.routing.conftest import make_message
    from wellguard.core.ingest.ports import JournalEntry

    api.store.add_dead_letters("hook", [JournalEntry(1, make_message(1))], "HTTP 400")
    result = cli("deadletters", "--format", "json")
    assert [d["seq"] for d in orjson.loads(result.output)] == [1]
    table = cli("deadletters")
    assert "HTTP 400" in table.output
