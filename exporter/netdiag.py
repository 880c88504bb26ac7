"""Transport failures in words an operator can act on, and the proxy the environment names.

aiohttp's own messages are written for developers: ``Cannot connect to host h:p ssl:default
[Connect call failed (...)]`` says ``ssl:default`` even for plain ``http://`` and never says
what to check. :func:`describe` turns a transport exception into a short, secret-free
message (host, port and the operating system's reason) and a hint naming what to look at:
the endpoint, DNS, the firewall, the proxy variables, the CA bundle.

:func:`proxy_for` resolves the proxy of a URL from the environment once per client, with the
standard library's rules (``HTTPS_PROXY`` for https URLs, ``HTTP_PROXY`` for http ones,
lower case winning, ``NO_PROXY`` by host suffix, as curl and the official softlayer-python
client read them). Loopback is proxied like any host unless ``NO_PROXY`` lists it. It is not
aiohttp's ``trust_env``: that also looks every request up in ``~/.netrc`` (whose credentials
would clash with our ``Authorization`` header) and moves each lookup to a worker thread,
which delays requests after the rate limiter has spaced them. :func:`proxy_environment`
reports the variables, without credentials, for the start-up log line.
"""

from __future__ import annotations

import os
import socket
import ssl
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from yarl import URL

__all__ = ["TransportProblem", "describe", "proxy_environment", "proxy_for"]

_PROXY_HINT: Final = (
    "the proxy comes from HTTPS_PROXY (https endpoints) or HTTP_PROXY (http endpoints): "
    "check its host and port, or list the endpoint's host in NO_PROXY to connect directly"
)
_CONNECT_HINT: Final = (
    "check the endpoint URL and that this host may reach it (firewall, routing); "
    "behind an egress proxy set HTTPS_PROXY, and NO_PROXY for hosts reached directly"
)
_DNS_HINT: Final = (
    "check the endpoint's host name and this host's DNS; without direct internet access set "
    "HTTPS_PROXY, or use endpoint: private from the SoftLayer private network"
)
_CERT_HINT: Final = (
    "the certificate does not verify against this host's CA bundle; behind a TLS-inspecting "
    "proxy point SSL_CERT_FILE at a bundle that includes its CA"
)
_TLS_HINT: Final = "check the endpoint's scheme and port: https:// needs a TLS port"
_PROXY_REFUSED_HINT: Final = (
    "the proxy (HTTPS_PROXY or HTTP_PROXY) does not allow this destination: ask for the "
    "endpoint's host and port to be allowed, or list it in NO_PROXY if it is reachable directly"
)
_PROXY_AUTH_HINT: Final = (
    "the proxy wants credentials: give them in the proxy URL, "
    "HTTPS_PROXY=http://user:password@proxy:port"
)


@dataclass(frozen=True, slots=True)
class TransportProblem:
    """A transport failure: a one-line message and what to check (``None``: nothing to add)."""

    message: str
    hint: str | None


def _address(host: str | None, port: int | None) -> str:
    shown = f"[{host}]" if host and ":" in host else (host or "?")
    return shown if port is None else f"{shown}:{port}"


def _os_reason(error: OSError) -> str:
    # aiohttp's strerror is its own sentence ("Connect call failed (...)"); errno says it plainly.
    if error.errno is not None and error.errno > 0:
        return os.strerror(error.errno)
    return error.strerror or str(error) or type(error).__name__


def describe(exc: aiohttp.ClientError) -> TransportProblem:
    """Describe an aiohttp transport exception: message (no ``ssl:default``) and hint."""
    hint: str | None = None
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        reason = getattr(cert_error, "verify_message", None) or str(cert_error)
        message = f"TLS certificate of {_address(exc.host, exc.port)} is not trusted: {reason}"
        hint = _CERT_HINT
    elif isinstance(exc, aiohttp.ClientSSLError):
        error = exc.os_error
        reason = (error.reason if isinstance(error, ssl.SSLError) else None) or _os_reason(error)
        message = f"TLS handshake with {_address(exc.host, exc.port)} failed: {reason}"
        hint = _TLS_HINT
    elif isinstance(exc, aiohttp.ClientProxyConnectionError):
        where = _address(exc.host, exc.port)
        message = f"cannot connect to the proxy {where}: {_os_reason(exc.os_error)}"
        hint = _PROXY_HINT
    elif isinstance(exc, aiohttp.ClientConnectorError) and isinstance(
        exc.os_error, socket.gaierror
    ):
        message = f"cannot resolve {exc.host}: {_os_reason(exc.os_error)}"
        hint = _DNS_HINT
    elif isinstance(exc, aiohttp.ClientConnectorError):
        message = f"cannot connect to {_address(exc.host, exc.port)}: {_os_reason(exc.os_error)}"
        hint = _CONNECT_HINT
    elif isinstance(exc, aiohttp.ClientHttpProxyError):
        # A CONNECT answered with an error status: the proxy itself said no.
        message = f"the proxy refused the tunnel: HTTP {exc.status} {exc.message}".rstrip()
        hint = _PROXY_AUTH_HINT if exc.status == 407 else _PROXY_REFUSED_HINT
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        message = "the server closed the connection before answering"
    else:
        detail = str(exc)
        message = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return TransportProblem(message, hint)


def proxy_environment() -> dict[str, str]:
    """Return the proxies the environment names (``*_proxy``, ``no_proxy``), minus credentials."""
    found: dict[str, str] = {}
    for scheme, value in sorted(urllib.request.getproxies_environment().items()):
        if scheme not in ("http", "https", "no"):
            continue
        if scheme == "no":
            found["no_proxy"] = value
            continue
        # user:password@ never reaches a log line.
        shown = value.rsplit("@", 1)[-1]
        try:
            url = URL(value)
        except ValueError:
            url = None
        if url is not None and url.absolute:
            shown = str(url.with_user(None))
            if url.scheme == "https":
                # aiohttp speaks plain HTTP to a proxy (then CONNECT); it skips https:// ones.
                shown += " (ignored: only http:// proxy URLs are used)"
        found[f"{scheme}_proxy"] = shown
    return found


def proxy_for(url: str) -> dict[str, Any]:
    """Return aiohttp request arguments (``proxy``, ``proxy_headers``) for ``url``; ``{}``: direct.

    Only ``http://`` proxy URLs are used (aiohttp speaks plain HTTP to the proxy, then
    ``CONNECT`` for https targets); a bare ``host:port`` means ``http://host:port``.
    """
    target = URL(url)
    proxies = urllib.request.getproxies_environment()
    value = proxies.get(target.scheme)
    if not value or not target.host:
        return {}
    # The environment's rules on every platform (urllib.request.proxy_bypass would consult
    # the system settings on macOS and Windows); typeshed does not declare this function.
    if urllib.request.proxy_bypass_environment(target.host, proxies):  # type: ignore[attr-defined]
        return {}
    proxy = URL(value if "://" in value else f"http://{value}")
    if proxy.scheme != "http" or not proxy.host:
        return {}
    found: dict[str, Any] = {"proxy": proxy.with_user(None)}
    if proxy.user is not None:
        # Sent to the proxy only (on CONNECT, or on the request it forwards).
        pair = f"{proxy.user}:{proxy.password or ''}".encode()
        found["proxy_headers"] = {"Proxy-Authorization": f"Basic {b64encode(pair).decode()}"}
    return found
