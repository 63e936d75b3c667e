"""TLS with optional client certificates, and the peer certificate in each request.

kube-apiserver asks for a client certificate without requiring one
(`tls.RequestClientCert`), and its x509 authenticator verifies the chain
afterwards: a certificate from a CA it does not trust identifies nobody, and
the request goes on to the other authenticators (a bearer token) or is
anonymous. Python's `ssl` cannot ask for a certificate without verifying it
during the handshake (CERT_OPTIONAL still aborts on a bad one, which resets the
connection), so `server_context` installs an OpenSSL verify callback that
accepts any certificate, and `ClientCertProtocol` verifies the peer's
certificate against the cluster CA itself, with `cryptography`, and hands only
a verified certificate to authentication.

uvicorn terminates TLS but does not put the client's certificate in the ASGI
scope; the protocol reads it once per connection from the SSL object and adds
it as the `tls` extension, where authentication finds it.
"""

from __future__ import annotations

import asyncio
import ctypes
import datetime
import logging
import ssl
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("skiff.apiserver.tls")

SSL_VERIFY_PEER = 0x01
_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


_clear_errors: Any = None  # libcrypto's ERR_clear_error, once loaded


@_VERIFY_CALLBACK
def _accept_any(preverify_ok: int, _store: int | None) -> int:
    """OpenSSL's verdict on a client certificate is ignored: the app decides.

    A failed check leaves its reason on the thread's OpenSSL error queue, which
    the next read on the connection would report as its own failure; cleared.
    """
    if not preverify_ok and _clear_errors is not None:
        _clear_errors()
    return 1


def _loaded(name: str) -> ctypes.CDLL | None:
    """A shared library Python's `_ssl` module already loaded (libssl, libcrypto)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if f"/{name}.so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def _request_client_cert_without_verifying(context: ssl.SSLContext) -> bool:
    """SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept-any) on `context`'s SSL_CTX.

    The SSL_CTX pointer is the first field after the object header of CPython's
    PySSLContext; it is checked (the verify mode read through it must be the
    one Python set) before anything is written through it.
    """
    global _clear_errors
    lib, crypto = _loaded("libssl"), _loaded("libcrypto")
    if lib is None or crypto is None:
        return False
    crypto.ERR_clear_error.argtypes = []
    crypto.ERR_clear_error.restype = None
    _clear_errors = crypto.ERR_clear_error
    header = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)
    ctx = ctypes.c_void_p.from_address(id(context) + header).value
    if not ctx:
        return False
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    if lib.SSL_CTX_get_verify_mode(ctx) != SSL_VERIFY_PEER:
        return False
    lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CALLBACK]
    lib.SSL_CTX_set_verify.restype = None
    lib.SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, _accept_any)
    return True


def server_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    """TLS 1.2+, serving `cert`, asking for (not requiring, not yet verifying) a client cert."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    context.load_verify_locations(str(client_ca))  # also names the CA in the request
    context.verify_mode = ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["http/1.1"])
    if sys.implementation.name == "cpython" and _request_client_cert_without_verifying(context):
        context.skiff_client_cas = _load_cas(client_ca)  # type: ignore[attr-defined]
    else:
        # Verified by OpenSSL during the handshake instead: a certificate from
        # another CA then resets the connection rather than falling through.
        log.warning("cannot defer client certificate verification; OpenSSL verifies it")
    return context


def _load_cas(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def verified_client_cert(der: bytes, cas: list[x509.Certificate], now: datetime.datetime) -> bool:
    """Whether `der` is a client certificate issued by one of `cas` and valid `now`.

    The checks OpenSSL would make for a leaf signed directly by the CA (skiff's
    CA signs every client certificate itself): the issuer, the signature, the
    validity window of both, and, when the certificate restricts its use, that
    client authentication is among its uses.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return False
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return False
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
            return False
    except x509.ExtensionNotFound:
        pass
    for ca in cas:
        if cert.issuer != ca.subject:
            continue
        if not ca.not_valid_before_utc <= now <= ca.not_valid_after_utc:
            continue
        if _signed_by(cert, ca):
            return True
    return False


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:  # InvalidSignature, ValueError, TypeError: not issued by this CA
        return False
    return True


# Go's http.DefaultMaxHeaderBytes, which kube-apiserver keeps: request line and
# headers together; Go allows 4 KiB of slack on top. httptools has no limit at all.
MAX_HEADER_BYTES = 1 << 20
HEADER_SLACK = 4096
TOO_LARGE_HEADERS = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"431 Request Header Fields Too Large"
)


class ClientCertProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that exposes the verified client certificate to the app,
    and refuses request heads over MAX_HEADER_BYTES as Go's server does (431),
    instead of buffering headers without bound."""

    peer_cert: bytes | None = None
    _in_head: bool = True
    _head_bytes: int = 0

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEADER_BYTES + HEADER_SLACK:
                log.info("request headers over %d bytes: 431", MAX_HEADER_BYTES)
                self.transport.write(TOO_LARGE_HEADERS)
                self.transport.close()
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self.parser.get_method() == b"CONNECT" or self.parser.should_upgrade():
            # httptools parses nothing after CONNECT or an upgrade (what follows is a
            # tunnel's bytes, which uvicorn drops), so they are never a request head.
            return
        self._in_head, self._head_bytes = True, 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        cas = getattr(ssl_object.context, "skiff_client_cas", None) if ssl_object else None
        if der and cas is not None:
            now = datetime.datetime.now(datetime.UTC)
            if not verified_client_cert(der, cas, now):
                der = None  # identifies nobody; other authenticators may still apply
        self.peer_cert = der

    def on_message_begin(self) -> None:
        super().on_message_begin()
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})  # type: ignore[assignment]
        extensions["tls"] = {"client_cert_der": self.peer_cert}
