"""``--web.config.file``: TLS and basic auth in the Prometheus exporter-toolkit format.

The file is the one every official exporter accepts (and ``promtool check web-config``
validates)::

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_ca_file: ca.crt            # optional: verify client certificates
      client_auth_type: RequireAndVerifyClientCert
      min_version: TLS12
    basic_auth_users:
      prometheus: $2b$12$...            # bcrypt hash, never the password

Relative paths are relative to the web config file, as in exporter-toolkit. Basic auth
guards every endpoint except ``/healthz`` and ``/readyz``, which reveal nothing and must
stay reachable by probes that carry no credentials.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import bcrypt
import yaml
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

__all__ = [
    "OPEN_PATHS",
    "WebConfig",
    "WebConfigError",
    "basic_auth_middleware",
    "headers_middleware",
    "load_web_config",
]

#: Paths served without basic auth (liveness and readiness probes).
OPEN_PATHS: Final = frozenset({"/healthz", "/readyz"})

_CLIENT_AUTH: Final = {
    "NoClientCert": ssl.CERT_NONE,
    # Python's ssl cannot ask for a certificate without verifying it; a requested but
    # unverified certificate authenticates nothing, so not asking is equivalent.
    "RequestClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNSUPPORTED_CLIENT_AUTH: Final = frozenset({"RequireAnyClientCert", "RequireClientCert"})
_TLS_VERSIONS: Final = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_TOP_KEYS: Final = frozenset({"tls_server_config", "basic_auth_users", "http_server_config"})
_TLS_KEYS: Final = frozenset(
    {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version"}
)
# Valid exporter-toolkit keys this exporter does not implement: refused, not ignored, so
# nobody believes a setting is in force when it is not.
_TLS_UNSUPPORTED: Final = frozenset(
    {
        "cert",
        "key",
        "client_ca",
        "cipher_suites",
        "curve_preferences",
        "prefer_server_cipher_suites",
        "client_allowed_sans",
    }
)
_HTTP_KEYS: Final = frozenset({"headers"})
_BCRYPT_PREFIXES: Final = (b"$2a$", b"$2b$", b"$2y$")
# A valid hash of a random password: unknown users are checked against it so that the
# response time does not reveal which user names exist.
_DUMMY_HASH: Final = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(rounds=10))


class WebConfigError(ValueError):
    """The web config file is invalid; ``problems`` lists every problem, path-qualified."""

    def __init__(self, problems: list[str], source: str) -> None:
        self.problems = list(problems)
        super().__init__(
            "\n".join([f"invalid web config file {source}:", *(f"  - {p}" for p in problems)])
        )


@dataclass(frozen=True, slots=True)
class WebConfig:
    """The parsed web configuration."""

    ssl_context: ssl.SSLContext | None = None
    # user -> bcrypt hash; hashes are not secrets but still kept out of repr.
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """Read and validate a web config file and build its SSL context.

    Raises:
        WebConfigError: listing every problem.

    """
    source = os.fspath(path)
    try:
        raw = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WebConfigError(["file not found"], source) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise WebConfigError([f"cannot read: {err.__class__.__name__}"], source) from None
    problems: list[str] = []
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise WebConfigError(["must be a mapping"], source)
    problems.extend(f"{k}: unknown key" for k in raw if k not in _TOP_KEYS)
    base = Path(source).resolve().parent
    context = _tls(raw.get("tls_server_config"), base, problems)
    users = _users(raw.get("basic_auth_users"), problems)
    headers = _headers(raw.get("http_server_config"), problems)
    if problems:
        raise WebConfigError(problems, source)
    return WebConfig(ssl_context=context, users=users, headers=headers)


def _tls(value: object, base: Path, problems: list[str]) -> ssl.SSLContext | None:
    if value is None:
        return None
    path = "tls_server_config"
    if not isinstance(value, dict):
        problems.append(f"{path}: must be a mapping")
        return None
    for key in value:
        if key in _TLS_UNSUPPORTED:
            problems.append(f"{path}.{key}: not supported by this exporter")
        elif key not in _TLS_KEYS:
            problems.append(f"{path}.{key}: unknown key")
    files = _tls_files(value, base, path, problems)
    verify = _client_auth(value, path, problems)
    versions = _tls_versions(value, path, problems)
    if problems or verify is None or "cert_file" not in files or "key_file" not in files:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = versions.get("min_version", ssl.TLSVersion.TLSv1_2)
    if "max_version" in versions:
        context.maximum_version = versions["max_version"]
    try:
        context.load_cert_chain(files["cert_file"], files["key_file"])
        if "client_ca_file" in files:
            context.load_verify_locations(cafile=files["client_ca_file"])
    except (ssl.SSLError, OSError) as err:
        problems.append(f"{path}: cannot load the certificates: {err.__class__.__name__}")
        return None
    context.verify_mode = verify
    return context


def _tls_files(
    value: dict[Any, Any], base: Path, path: str, problems: list[str]
) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for key in ("cert_file", "key_file", "client_ca_file"):
        name = value.get(key)
        if name is None:
            if key != "client_ca_file":
                problems.append(f"{path}.{key}: required")
        elif not isinstance(name, str) or not name:
            problems.append(f"{path}.{key}: must be a file path")
        elif not (base / name).is_file():
            problems.append(f"{path}.{key}: file not found: {base / name}")
        else:
            files[key] = base / name
    return files


def _client_auth(value: dict[Any, Any], path: str, problems: list[str]) -> ssl.VerifyMode | None:
    auth_name = value.get("client_auth_type") or "NoClientCert"
    verify = _CLIENT_AUTH.get(auth_name) if isinstance(auth_name, str) else None
    has_ca = "client_ca_file" in value
    if auth_name in _UNSUPPORTED_CLIENT_AUTH:
        problems.append(
            f"{path}.client_auth_type: {auth_name} is not supported "
            "(use RequireAndVerifyClientCert with client_ca_file)"
        )
    elif verify is None:
        problems.append(
            f"{path}.client_auth_type: must be one of {', '.join(_CLIENT_AUTH)}, got {auth_name!r}"
        )
    elif verify is ssl.CERT_NONE and has_ca:
        # exporter-toolkit refuses this too: a CA nobody checks against is a misconfiguration.
        problems.append(f"{path}.client_ca_file: set, but client_auth_type does not verify")
    elif verify is not ssl.CERT_NONE and not has_ca:
        problems.append(f"{path}.client_auth_type: {auth_name} needs client_ca_file")
    return verify


def _tls_versions(
    value: dict[Any, Any], path: str, problems: list[str]
) -> dict[str, ssl.TLSVersion]:
    versions: dict[str, ssl.TLSVersion] = {}
    for key in ("min_version", "max_version"):
        if key in value:
            version = _TLS_VERSIONS.get(value[key]) if isinstance(value[key], str) else None
            if version is None:
                problems.append(f"{path}.{key}: must be one of {', '.join(_TLS_VERSIONS)}")
            else:
                versions[key] = version
    return versions


def _users(value: object, problems: list[str]) -> dict[str, bytes]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append("basic_auth_users: must be a mapping of user name to bcrypt hash")
        return {}
    users: dict[str, bytes] = {}
    for user, hashed in value.items():
        where = f"basic_auth_users.{user}"
        if not isinstance(user, str) or not user or ":" in user:
            problems.append(f"{where}: user names must be non-empty strings without ':'")
            continue
        encoded = hashed.encode() if isinstance(hashed, str) else b""
        # Never echo the value: it could be a plain password pasted by mistake.
        if not encoded.startswith(_BCRYPT_PREFIXES) or len(encoded) != 60:
            problems.append(f"{where}: must be a bcrypt hash ($2y$/$2b$/$2a$, 60 characters)")
            continue
        users[user] = encoded
    return users


def _headers(value: object, problems: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append("http_server_config: must be a mapping")
        return {}
    for key in value:
        if key == "http2":
            continue  # aiohttp speaks HTTP/1.1 only; the flag is accepted and has no effect
        if key not in _HTTP_KEYS:
            problems.append(f"http_server_config.{key}: unknown key")
    headers = value.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        problems.append("http_server_config.headers: must map header names to strings")
        return {}
    return dict(headers)


class _Verifier:
    """Checks basic-auth credentials, off the event loop and with a cache.

    bcrypt is deliberately slow (tens to hundreds of milliseconds): it runs in a thread so a
    scrape never stalls the loop, and a successful check is remembered by a keyed digest so
    Prometheus' scrape every 15 s does not burn a CPU (exporter-toolkit caches likewise).
    """

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        self._key = os.urandom(32)
        self._good: set[bytes] = set()

    def _digest(self, user: str, password: str, hashed: bytes) -> bytes:
        message = b"\0".join((user.encode(), password.encode(), hashed))
        return hmac.new(self._key, message, hashlib.sha256).digest()

    async def check(self, user: str, password: str) -> bool:
        hashed = self._users.get(user)
        digest = self._digest(user, password, hashed or _DUMMY_HASH)
        if hashed is not None and digest in self._good:
            return True
        ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed or _DUMMY_HASH)
        if ok and hashed is not None:
            self._good.add(digest)
            return True
        return False


def _credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def basic_auth_middleware(users: Mapping[str, bytes]) -> Middleware:
    """Build a middleware answering 401 unless valid basic-auth credentials are sent."""
    verifier = _Verifier(users)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        credentials = _credentials(request.headers.get("Authorization", ""))
        if credentials is not None and await verifier.check(*credentials):
            return await handler(request)
        return web.Response(
            status=401,
            text="Unauthorized\n",
            headers={"WWW-Authenticate": 'Basic realm="softlayer-billing-exporter"'},
        )

    return middleware


def headers_middleware(headers: Mapping[str, str]) -> Middleware:
    """Build a middleware adding the configured response headers."""
    extra: dict[str, Any] = dict(headers)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        response.headers.update(extra)
        return response

    return middleware
