"""Device and module identities, one after the other: connect, send, report, read the twin.

Each entry of ``identities`` is either ``{"x509": {"cert", "key", "device_id"}}`` (a device
with a certificate, through ``create_from_x509_certificate``) or ``{"connection_string"}``
(a device or, with ``ModuleId=``, a module through ``IoTHubModuleClient``). Each one sends
``message_id`` with ``body``, patches ``reported`` and then reads its twin; the results
are keyed by the entry's ``label``. A failure is recorded and the next identity goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from azure.iot.device import X509, IoTHubDeviceClient, IoTHubModuleClient, Message
from scenario import emit, read_arguments


def make_client(entry: dict[str, Any], root_ca: str, gateway: str) -> Any:
    """The client the entry describes, trusting the hub's CA and reaching it via ``gateway``."""
    x509 = entry.get("x509")
    if x509 is not None:
        return IoTHubDeviceClient.create_from_x509_certificate(
            x509=X509(cert_file=x509["cert"], key_file=x509["key"]),
            hostname=entry["hostname"],
            device_id=x509["device_id"],
            server_verification_cert=root_ca,
            gateway_hostname=gateway,
            connection_retry=False,
        )
    kind = IoTHubModuleClient if "ModuleId=" in entry["connection_string"] else IoTHubDeviceClient
    return kind.create_from_connection_string(
        entry["connection_string"], server_verification_cert=root_ca, connection_retry=False
    )


def run(entry: dict[str, Any], root_ca: str, gateway: str) -> dict[str, Any]:
    client = make_client(entry, root_ca, gateway)
    try:
        client.connect()
        client.send_message(Message(entry["body"], message_id=entry["message_id"]))
        client.patch_twin_reported_properties(entry["reported"])
        return {"twin": client.get_twin()}
    except Exception as exc:  # the test reports what the SDK raised
        return {"error": repr(exc)}
    finally:
        client.shutdown()


def main() -> None:
    args = read_arguments()
    root_ca = Path(args["root_ca"]).read_text()
    emit({e["label"]: run(e, root_ca, args["gateway"]) for e in args["identities"]})


if __name__ == "__main__":
    main()
