"""TLS for the device listener, done in memory with pyOpenSSL.

Why not the standard ``ssl`` module: it has no certificate verification callback, so a
server that asks for client certificates either rejects self-signed device certificates
(IoT Hub's X.509 thumbprint devices) during the handshake or does not ask at all, and it
does not expose the chain a client sent. Here the handshake accepts any client
certificate, and ``wellguard.core.identity`` decides — with the precise reason for the
security log — once the device names itself in CONNECT. Doing TLS in memory also lets
the gateway apply the IP filter before a single TLS byte is processed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from OpenSSL import SSL

from wellguard.errors import ProtocolError

__all__ = ["TlsServerContext", "TlsSession"]

_READ_CHUNK = 256 * 1024


def _accept_any(_conn: SSL.Connection, _cert: object, _errno: int, _depth: int, _ok: int) -> bool:
    return True


class TlsServerContext:
    """Server certificate, key and policy (TLS 1.2+, client certificate requested)."""

    def __init__(self, cert_chain_file: Path, key_file: Path, key_password: str) -> None:
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
        # Free a connection's TLS record buffers (~25 KiB) while it is idle, as the ssl
        # module and nginx do: most device connections are idle most of the time.
        ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
        ctx.set_passwd_cb(lambda *_args: key_password.encode("ascii"))
        ctx.use_certificate_chain_file(str(cert_chain_file))
        ctx.use_privatekey_file(str(key_file))
        ctx.check_privatekey()
        ctx.set_verify(SSL.VERIFY_PEER, _accept_any)
        ctx.set_session_id(b"wellguard-gateway")
        self.context = ctx


class TlsSession:
    """One server-side TLS connection over memory buffers."""

    __slots__ = ("_conn", "handshake_done")

    def __init__(self, context: TlsServerContext) -> None:
        self._conn = SSL.Connection(context.context, None)
        self._conn.set_accept_state()
        self.handshake_done = False

    def receive(self, data: bytes) -> tuple[bytes, bytes]:
        """Feed bytes from the network; returns (application data, bytes to send)."""
        try:
            self._conn.bio_write(data)
            if not self.handshake_done:
                try:
                    self._conn.do_handshake()
                except SSL.WantReadError:
                    return b"", self._outgoing()
                self.handshake_done = True
            chunks = []
            while True:
                try:
                    chunk = self._conn.recv(_READ_CHUNK)
                except SSL.WantReadError:
                    break
                except SSL.ZeroReturnError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks), self._outgoing()
        except SSL.Error as exc:
            raise ProtocolError(f"tls_error: {_describe(exc)}") from None

    def send(self, data: bytes) -> bytes:
        """Encrypt application data; returns bytes to send."""
        try:
            view = memoryview(data)
            while view:
                sent = self._conn.send(view[:_READ_CHUNK])
                view = view[sent:]
        except SSL.Error as exc:
            raise ProtocolError(f"tls_error: {_describe(exc)}") from None
        return self._outgoing()

    def close(self) -> bytes:
        """A close_notify alert to send, if the session got that far."""
        try:
            self._conn.shutdown()
        except SSL.Error:
            pass
        return self._outgoing()

    def _outgoing(self) -> bytes:
        parts = []
        while True:
            try:
                chunk = self._conn.bio_read(_READ_CHUNK)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            parts.append(chunk)
        return b"".join(parts)

    def peer_chain(self) -> Sequence[x509.Certificate]:
        """The certificates the client sent, leaf first (empty when none)."""
        leaf = self._conn.get_peer_certificate(as_cryptography=True)
        if leaf is None:
            return []
        # On the server side OpenSSL leaves the leaf out of the peer chain.
        sent = list(self._conn.get_peer_cert_chain(as_cryptography=True) or [])
        if sent and sent[0] == leaf:
            return sent
        return [leaf, *sent]

    @property
    def version(self) -> str:
        """Negotiated protocol version, e.g. ``TLSv1.3``."""
        return str(self._conn.get_protocol_version_name())


def _describe(exc: SSL.Error) -> str:
    args = exc.args[0] if exc.args else None
    if isinstance(args, list) and args:
        return str(args[0][-1])[:120]
    return str(exc)[:120]
