"""Memory of one server-side TLS connection: the gateway's ``TlsSession`` and the ``ssl`` module.

Run: ``.venv/bin/python bench/tls_memory.py`` (a few seconds). Each case runs in a fresh
process that makes ``--count`` server-side TLS objects over memory BIOs, handshakes each
with an ``ssl`` client (TLS 1.3, EC P-256 certificate from a throwaway CA), exchanges a
CONNECT/CONNACK-sized record each way, drops the client side and keeps the server side;
the RSS growth divided by the count is the figure. That is the TLS share of what
``bench/connections.py`` measures per idle device connection.

Cases: the gateway's ``TlsSession`` as the hub builds it (``TlsServerContext``), a bare
``SSL.Connection`` before any handshake (what OpenSSL's ``SSL_new`` costs), the same
context without ``MODE_RELEASE_BUFFERS``, and ``ssl.SSLObject`` (CPython's ``ssl``, its own
OpenSSL) for comparison.
"""

from __future__ import annotations

import argparse
import gc
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import psutil
from OpenSSL import SSL

from _peers import throwaway_pki
from wellguard.adapters.tls import TlsServerContext, TlsSession

CASES = {
    "session": "TlsSession after handshake (as the hub runs it)",
    "bare": "SSL.Connection before any handshake (SSL_new + 2 memory BIOs)",
    "no-release": "TlsSession after handshake, without MODE_RELEASE_BUFFERS",
    "stdlib": "ssl.SSLObject after handshake (CPython ssl)",
}


def _exchange(
    server_side: Callable[[bytes], bytes],
    client: ssl.SSLObject,
    out: ssl.MemoryBIO,
    back: ssl.MemoryBIO,
) -> None:
    """Handshake, then one 300-byte record up and a 4-byte record down."""
    for _ in range(10):
        try:
            client.do_handshake()
        except ssl.SSLWantReadError:
            pass
        data = out.read()
        if not data:
            break
        back.write(server_side(data))
    client.write(b"c" * 300)
    back.write(server_side(out.read()))
    client.read(4096)


def _gateway_maker(context: TlsServerContext, client: ssl.SSLContext) -> Callable[[], object]:
    def make() -> object:
        session = TlsSession(context)
        into, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        peer = client.wrap_bio(into, out, server_hostname="localhost")

        def server_side(data: bytes) -> bytes:
            plain, reply = session.receive(data)
            if plain:
                reply += session.send(b"\x20\x02\x00\x00")
            return reply

        _exchange(server_side, peer, out, into)
        return session

    return make


def _stdlib_maker(cert: Path, key: Path, client: ssl.SSLContext) -> Callable[[], object]:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)

    def make() -> object:
        s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = server.wrap_bio(s_in, s_out, server_side=True)
        into, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        peer = client.wrap_bio(into, out, server_hostname="localhost")

        def server_side(data: bytes) -> bytes:
            s_in.write(data)
            try:
                obj.do_handshake()
                while True:
                    if obj.read(4096):
                        obj.write(b"\x20\x02\x00\x00")
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                pass
            return s_out.read()

        _exchange(server_side, peer, out, into)
        return (obj, s_in, s_out)

    return make


def run_case(case: str, count: int) -> float:
    """KiB of RSS per kept server-side object."""
    with tempfile.TemporaryDirectory(prefix="wg-tls-memory-") as tmp:
        ca, cert, key = throwaway_pki(Path(tmp))
        client = ssl.create_default_context(cafile=str(ca))
        context = TlsServerContext(cert, key, "")
        if case == "session":
            make = _gateway_maker(context, client)
        elif case == "bare":

            def make() -> object:
                return TlsSession(context)

        elif case == "no-release":
            # TlsServerContext's settings less the mode (pyOpenSSL cannot clear a mode).
            plain = SSL.Context(SSL.TLS_SERVER_METHOD)
            plain.set_min_proto_version(SSL.TLS1_2_VERSION)
            plain.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
            plain.use_certificate_chain_file(str(cert))
            plain.use_privatekey_file(str(key))
            plain.set_verify(SSL.VERIFY_PEER, lambda *_args: True)
            plain.set_session_id(b"wellguard-gateway")
            context.context = plain
            make = _gateway_maker(context, client)
        else:
            make = _stdlib_maker(cert, key, client)
        kept = [make()]  # the first one pays for lazily made things
        gc.collect()
        process = psutil.Process()
        before = process.memory_info().rss
        kept.extend(make() for _ in range(count))
        gc.collect()
        return (process.memory_info().rss - before) / count / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--case", choices=sorted(CASES), help="run one case in this process")
    args = parser.parse_args()
    if args.case:
        print(f"{run_case(args.case, args.count):.1f}")
        return
    from OpenSSL.SSL import OPENSSL_VERSION, OpenSSL_version

    hub_openssl = OpenSSL_version(OPENSSL_VERSION).decode()
    print(f"server-side TLS memory - pyOpenSSL on {hub_openssl}; ssl on {ssl.OPENSSL_VERSION}")
    for case, label in CASES.items():
        out = subprocess.run(
            [sys.executable, __file__, "--case", case, "--count", str(args.count)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(f"{out:>7} KiB  {label}")


if __name__ == "__main__":
    main()
