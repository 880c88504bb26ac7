"""``--web.config.file``: TLS, basic auth and headers in the Prometheus exporter-toolkit format.

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
    http_server_config:
      headers:
        X-Frame-Options: deny

Relative paths are relative to the web config file, as in exporter-toolkit. Basic auth
guards every endpoint except ``/healthz`` and ``/readyz``, which reveal nothing and must
stay reachable by probes that carry no credentials.

Behaviour matched to exporter-toolkit (``web/tls_config.go``, ``web/handler.go``):

- the certificate, key and client CA are read again when they change on disk, checked on
  every TLS handshake (the toolkit re-reads them per handshake), so a renewed certificate
  needs no restart; a half-written replacement keeps the previous one in use;
- only the five security headers the toolkit allows may be configured, with its value
  checks; a header name or value with a control character (CR/LF) is refused at load time;
- bcrypt runs one check at a time, off the event loop, and results are cached by a keyed
  digest of (user, password, hash); an unknown user is checked against a decoy hash of the
  highest configured cost, so response times do not reveal which users exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import hashlib
import hmac
import os
import re
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import bcrypt
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from exporter.yamlsafe import InputError, load_yaml, read_bounded

__all__ = [
    "ALLOWED_HEADERS",
    "OPEN_PATHS",
    "BasicAuth",
    "TlsFiles",
    "WebConfig",
    "WebConfigError",
    "load_web_config",
]

#: Paths served without basic auth (liveness and readiness probes).
OPEN_PATHS: Final = frozenset({"/healthz", "/readyz"})
#: The response headers exporter-toolkit lets a web config set, with the values it allows
#: (None: any value). Anything else could break responses (``Content-Length``) or lie.
ALLOWED_HEADERS: Final[Mapping[str, tuple[str, ...] | None]] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
#: A web config is a few lines; a file this large is a mistake (or /dev/zero).
MAX_WEB_CONFIG_BYTES: Final = 64 * 1024
#: Cached basic-auth results (successes and failures): Prometheus sends one user and
#: password, so a handful is plenty; the bound keeps guessing from growing memory.
AUTH_CACHE_SIZE: Final = 256

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
_HTTP_KEYS: Final = frozenset({"headers", "http2"})
_BCRYPT_HASH: Final = re.compile(rb"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")

_log = structlog.get_logger()


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

    tls: TlsFiles | None = None
    # user -> bcrypt hash; hashes are not secrets but still kept out of repr.
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The server's SSL context (certificates follow the files), or None for plain HTTP."""
        return None if self.tls is None else self.tls.context


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """Read and validate a web config file and build its SSL context.

    Raises:
        WebConfigError: listing every problem.

    """
    source = os.fspath(path)
    try:
        text = read_bounded(source, MAX_WEB_CONFIG_BYTES).decode("utf-8-sig")
        raw = load_yaml(text)
    except FileNotFoundError:
        raise WebConfigError(["file not found"], source) from None
    except UnicodeDecodeError:
        raise WebConfigError(["cannot read: not UTF-8 text"], source) from None
    except InputError as err:
        # "line 2, column 9: invalid YAML: did not find expected ',' or ']'", as promtool.
        raise WebConfigError([str(err)], source) from None
    except OSError as err:
        raise WebConfigError(
            [f"cannot read: {err.strerror or type(err).__name__}"], source
        ) from None
    problems: list[str] = []
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise WebConfigError(["must be a mapping"], source)
    problems.extend(f"{_key(k)}: unknown key" for k in raw if k not in _TOP_KEYS)
    base = Path(source).resolve().parent
    tls = _tls(raw.get("tls_server_config"), base, problems)
    users = _users(raw.get("basic_auth_users"), problems)
    headers = _headers(raw.get("http_server_config"), problems)
    if problems:
        raise WebConfigError(problems, source)
    return WebConfig(tls=tls, users=users, headers=headers)


def _key(key: object) -> str:
    # Keys are echoed in messages: keep them printable and short, whatever the file holds.
    text = key if isinstance(key, str) else repr(key)
    text = _CONTROL.sub("?", text)
    return text if len(text) <= 60 else text[:57] + "..."


# ----- TLS ----------------------------------------------------------------------------------


class TlsFiles:
    """The server's TLS settings and files; the context follows the files as they change.

    ``context`` is handed to the listening socket once. Its SNI callback runs on every
    handshake (with or without SNI): it compares the files' identity (inode, size, mtime)
    with the last load and, when they changed, builds a fresh context from them and hands
    the connection that one. A replacement that does not load (say the certificate was
    written before its key) is logged once and the previous context stays in use.
    """

    def __init__(
        self,
        cert: Path,
        key: Path,
        client_ca: Path | None,
        *,
        verify: ssl.VerifyMode,
        minimum: ssl.TLSVersion,
        maximum: ssl.TLSVersion | None,
    ) -> None:
        self._files = (cert, key) if client_ca is None else (cert, key, client_ca)
        self._verify = verify
        self._minimum = minimum
        self._maximum = maximum
        self._lock = threading.Lock()  # handshakes run on the loop; be safe anyway
        self._signature = self._stat()
        self._failed_signature: tuple[object, ...] | None = None
        self.context = self.build()
        self.context.sni_callback = self._on_handshake
        self._current = self.context
        self.reloads = 0

    def build(self) -> ssl.SSLContext:
        """Load the files into a new server context.

        Raises:
            ssl.SSLError, OSError: the files do not load.

        """
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = self._minimum
        if self._maximum is not None:
            context.maximum_version = self._maximum
        context.load_cert_chain(self._files[0], self._files[1])
        if len(self._files) == 3:
            context.load_verify_locations(cafile=self._files[2])
        context.verify_mode = self._verify
        return context

    def _stat(self) -> tuple[object, ...]:
        signature: list[object] = []
        for path in self._files:
            try:
                st = path.stat()
            except OSError as err:
                signature.append(err.errno)
            else:
                signature.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(signature)

    def _on_handshake(self, connection: ssl.SSLObject, _name: str | None, _ctx: Any) -> None:
        with self._lock:
            signature = self._stat()
            if signature not in (self._signature, self._failed_signature):
                try:
                    fresh = self.build()
                except (ssl.SSLError, OSError) as err:
                    self._failed_signature = signature
                    _log.warning(
                        "tls_reload_failed",
                        error=type(err).__name__,
                        files=[str(p) for p in self._files],
                        hint="the previous certificate stays in use",
                    )
                else:
                    self._current, self._signature = fresh, signature
                    self._failed_signature = None
                    self.reloads += 1
                    _log.info("tls_reloaded", files=[str(p) for p in self._files])
            connection.context = self._current


def _tls(value: object, base: Path, problems: list[str]) -> TlsFiles | None:
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
            problems.append(f"{path}.{_key(key)}: unknown key")
    files = _tls_files(value, base, path, problems)
    verify = _client_auth(value, path, problems)
    versions = _tls_versions(value, path, problems)
    if problems or verify is None or "cert_file" not in files or "key_file" not in files:
        return None
    try:
        return TlsFiles(
            files["cert_file"],
            files["key_file"],
            files.get("client_ca_file"),
            verify=verify,
            minimum=versions.get("min_version", ssl.TLSVersion.TLSv1_2),
            maximum=versions.get("max_version"),
        )
    except (ssl.SSLError, OSError) as err:
        problems.append(f"{path}: cannot load the certificates: {err.__class__.__name__}")
        return None


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
    if not isinstance(auth_name, str):
        problems.append(f"{path}.client_auth_type: must be one of {', '.join(_CLIENT_AUTH)}")
        return None
    verify = _CLIENT_AUTH.get(auth_name)
    has_ca = "client_ca_file" in value
    if auth_name in _UNSUPPORTED_CLIENT_AUTH:
        problems.append(
            f"{path}.client_auth_type: {auth_name} is not supported "
            "(use RequireAndVerifyClientCert with client_ca_file)"
        )
    elif verify is None:
        problems.append(
            f"{path}.client_auth_type: must be one of {', '.join(_CLIENT_AUTH)}, "
            f"got {_key(auth_name)!r}"
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
    low = versions.get("min_version", ssl.TLSVersion.TLSv1_2)
    high = versions.get("max_version")
    if high is not None and low > high:
        # Every handshake would fail: refuse it at start instead.
        names = {version: name for name, version in _TLS_VERSIONS.items()}
        problems.append(f"{path}: min_version {names[low]} is above max_version {names[high]}")
    return versions


# ----- basic auth ---------------------------------------------------------------------------


def _users(value: object, problems: list[str]) -> dict[str, bytes]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append("basic_auth_users: must be a mapping of user name to bcrypt hash")
        return {}
    users: dict[str, bytes] = {}
    for user, hashed in value.items():
        where = f"basic_auth_users.{_key(user)}"
        if not isinstance(user, str) or not user or ":" in user or _CONTROL.search(user):
            problems.append(f"{where}: user names must be non-empty strings without ':'")
            continue
        encoded = hashed.encode() if isinstance(hashed, str) else b""
        match = _BCRYPT_HASH.fullmatch(encoded)
        # Never echo the value: it could be a plain password pasted by mistake.
        if match is None or not 4 <= int(match.group(1)) <= 31:
            problems.append(f"{where}: must be a bcrypt hash ($2y$/$2b$/$2a$, 60 characters)")
            continue
        users[user] = encoded
    return users


def _cost(hashed: bytes) -> int:
    return int(hashed[4:6])


class BasicAuth:
    """Checks basic-auth credentials: one bcrypt at a time, off the loop, results cached.

    bcrypt is deliberately slow (about 0.25 s at cost 12): checks run in a worker thread so
    a scrape never stalls the loop, behind a lock so that a flood of guesses uses one core,
    not all of them; each result, success or failure, is remembered under a keyed digest so
    Prometheus' scrape every 15 s costs nothing and a repeated guess costs nothing either
    (exporter-toolkit caches likewise). :meth:`prepare` makes the decoy hash for unknown
    users before the server takes requests.
    """

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        self._key = os.urandom(32)
        self._results: collections.OrderedDict[bytes, bool] = collections.OrderedDict()
        self._lock = asyncio.Lock()
        self._decoy: bytes | None = None
        self.bcrypt_checks = 0

    async def prepare(self, _app: web.Application | None = None) -> None:
        """Hash a random password at the highest configured cost, as the unknown-user decoy."""
        if self._decoy is None:
            rounds = max((_cost(h) for h in self._users.values()), default=10)
            secret = os.urandom(16).hex().encode()
            self._decoy = await asyncio.to_thread(bcrypt.hashpw, secret, bcrypt.gensalt(rounds))

    @property
    def decoy_cost(self) -> int | None:
        """The bcrypt cost of the unknown-user decoy (None before :meth:`prepare`)."""
        return None if self._decoy is None else _cost(self._decoy)

    def _digest(self, user: str, password: str, hashed: bytes) -> bytes:
        message = b"\0".join((user.encode(), password.encode(), hashed))
        return hmac.new(self._key, message, hashlib.sha256).digest()

    async def check(self, user: str, password: str) -> bool:
        """Tell whether ``user`` may come in with ``password``."""
        await self.prepare()
        assert self._decoy is not None  # noqa: S101  set by prepare()
        known = self._users.get(user)
        hashed = self._decoy if known is None else known
        digest = self._digest(user, password, hashed)
        async with self._lock:
            cached = self._results.get(digest)
            if cached is None:
                self.bcrypt_checks += 1
                matches = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed)
                cached = matches and known is not None
                self._results[digest] = cached
                if len(self._results) > AUTH_CACHE_SIZE:
                    self._results.popitem(last=False)
            else:
                self._results.move_to_end(digest)
        return cached

    @property
    def middleware(self) -> Middleware:
        """A middleware answering 401 unless valid basic-auth credentials are sent."""

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path in OPEN_PATHS:
                return await handler(request)
            credentials = _credentials(request.headers.get("Authorization", ""))
            if credentials is not None and await self.check(*credentials):
                return await handler(request)
            return web.Response(
                status=401,
                text="Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="softlayer-billing-exporter"'},
            )

        return middleware


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


# ----- headers ------------------------------------------------------------------------------


def _headers(value: object, problems: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append("http_server_config: must be a mapping")
        return {}
    for key in value:
        # http2: aiohttp speaks HTTP/1.1 only; the flag is accepted and has no effect.
        if key not in _HTTP_KEYS:
            problems.append(f"http_server_config.{_key(key)}: unknown key")
    headers = value.get("headers") or {}
    if not isinstance(headers, dict):
        problems.append("http_server_config.headers: must map header names to strings")
        return {}
    result: dict[str, str] = {}
    for name, text in headers.items():
        where = f"http_server_config.headers.{_key(name)}"
        if not isinstance(name, str) or not isinstance(text, str):
            problems.append(f"{where}: must map a header name to a string")
        elif _CONTROL.search(name) or _CONTROL.search(text):
            # A CR/LF would split the response; every response would then fail.
            problems.append(f"{where}: contains a control character (CR, LF, ...)")
        elif name not in ALLOWED_HEADERS:
            problems.append(
                f"{where}: this header can not be configured "
                f"(allowed: {', '.join(ALLOWED_HEADERS)})"
            )
        elif (allowed := ALLOWED_HEADERS[name]) is not None and text not in allowed:
            problems.append(f"{where}: must be one of {', '.join(allowed)}, got {text!r}")
        else:
            result[name] = text
    return result
