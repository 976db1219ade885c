"""The CLI's client for a running hub: finds it through the data folder, signs each
request with a fresh policy SAS token, and trusts only the hub's root CA."""

from __future__ import annotations

import ssl
import time
from typing import Any
from urllib.parse import quote

import httpx

from wellguard.adapters.datadir import DataDir
from wellguard.core.identity import generate_sas_token
from wellguard.errors import ConfigError, WellguardError

__all__ = ["API_VERSION", "HubClient", "HubRequestError"]

API_VERSION = "2021-04-12"


class HubRequestError(WellguardError):
    """The hub answered with an error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class HubClient:
    """Calls the REST API of the hub whose data folder is given."""

    def __init__(self, data: DataDir, *, timeout: float = 60.0) -> None:
        self._admin = data.read_admin()
        info = data.read_run_info()
        self.base_url = str(info["apiUrl"])
        self.api_port = int(info["apiPort"])
        self.hostname = self._admin["hostName"]
        self._http = httpx.Client(
            base_url=self.base_url,
            verify=ssl.create_default_context(cafile=str(data.root_ca_file)),
            timeout=timeout,
        )

    @property
    def resource_host(self) -> str:
        """The host name (with port when not 443) that tokens are scoped to."""
        return self.hostname if self.api_port == 443 else f"{self.hostname}:{self.api_port}"

    def _token(self) -> str:
        return generate_sas_token(
            self.resource_host,
            self._admin["sharedAccessKey"],
            int(time.time()) + 300,
            key_name=self._admin["sharedAccessKeyName"],
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; raise ``HubRequestError`` for an error answer."""
        query = {
            "api-version": API_VERSION,
            **{k: v for k, v in (params or {}).items() if v is not None},
        }
        all_headers = {"Authorization": self._token(), **(headers or {})}
        try:
            response = self._http.request(
                method, path, json=json, params=query, headers=all_headers
            )
        except httpx.ConnectError as exc:
            raise ConfigError(f"cannot reach the hub at {self.base_url}: {exc}") from None
        except httpx.HTTPError as exc:
            raise ConfigError(f"request to {self.base_url} failed: {exc}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
                code, message = str(body.get("errorCode")), str(body.get("message"))
            except ValueError:
                code, message = "Error", response.text[:200]
            raise HubRequestError(response.status_code, code, message)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request and decode its JSON answer."""
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None

    @staticmethod
    def path(*parts: str) -> str:
        """A URL path with each part percent-encoded."""
        return "/" + "/".join(quote(p, safe="") for p in parts)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()
