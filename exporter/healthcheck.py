"""``python -m exporter.healthcheck``: the image's HEALTHCHECK, on whatever port it serves.

Docker runs the health check inside the container, beside the exporter. A port baked into
the image breaks as soon as someone starts it with ``--web.listen-address=:9000``, so this
reads the running exporter's own command line (``/proc/<pid>/cmdline``) and asks
``/healthz`` where that process listens: the flags' last ``--web.listen-address`` (default
``:29610``), over HTTPS when its ``--web.config.file`` has a ``tls_server_config``. The
exporter is PID 1 in the image; elsewhere the only exporter process, or ``--pid``.

Exit status 0 when ``/healthz`` answers 200, 1 otherwise (with the reason on stderr). It
imports nothing but the standard library and PyYAML: it runs every 30 seconds.
"""

from __future__ import annotations

import argparse
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import yaml

__all__ = ["find_exporter", "healthz_url", "main"]

#: The exporter's default port; a test keeps it equal to exporter.server.DEFAULT_PORT.
DEFAULT_PORT: Final = 29610
SCRIPT: Final = "softlayer-billing-exporter"
_LISTEN: Final = "--web.listen-address"
_WEB_CONFIG: Final = "--web.config.file"


def _is_exporter(argv: Sequence[str]) -> bool:
    # Console script: [python, /opt/venv/bin/softlayer-billing-exporter, ...] (or run
    # directly); module: [python, -m, exporter, ...].
    head = list(argv[:3])
    if any(Path(arg).name == SCRIPT for arg in head[:2]):
        return True
    return head[1:3] == ["-m", "exporter"]


def _arguments(argv: Sequence[str]) -> list[str]:
    """Return the exporter's own flags: what follows the script (or ``-m exporter``)."""
    for index, arg in enumerate(argv[:3]):
        if Path(arg).name == SCRIPT:
            return list(argv[index + 1 :])
        if arg == "exporter" and index > 0 and argv[index - 1] == "-m":
            return list(argv[index + 1 :])
    return list(argv[1:])


def find_exporter(proc: Path = Path("/proc")) -> list[str]:
    """Return the exporter's argv: PID 1's if it is the exporter, else the only exporter's."""
    found: dict[int, list[str]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile, or not ours to read
        argv = [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]
        if argv and _is_exporter(argv):
            found[int(entry.name)] = argv
    if 1 in found:
        return found[1]
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise LookupError("no softlayer-billing-exporter process found")
    raise LookupError(f"several exporter processes ({sorted(found)}): name one with --pid")


def _flag(arguments: Sequence[str], name: str) -> str | None:
    """Return the last ``--name=value`` or ``--name value``, the one argparse keeps."""
    value = None
    for index, arg in enumerate(arguments):
        if arg == "--":
            break
        if arg.startswith(name + "="):
            value = arg[len(name) + 1 :]
        elif arg == name and index + 1 < len(arguments):
            value = arguments[index + 1]
    return value


def _serves_tls(web_config: str | None) -> bool:
    if not web_config:
        return False
    with open(web_config, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return isinstance(data, dict) and bool(data.get("tls_server_config"))


def healthz_url(arguments: Sequence[str]) -> str:
    """Where the exporter started with these flags serves ``/healthz``, seen from inside."""
    address = _flag(arguments, _LISTEN) or f":{DEFAULT_PORT}"
    host, _, port = address.rpartition(":")
    if port in ("", "0"):
        raise LookupError(f"{_LISTEN}={address}: no fixed port to probe")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):  # noqa: S104  recognising "all interfaces", not binding
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if _serves_tls(_flag(arguments, _WEB_CONFIG)) else "http"
    return f"{scheme}://{shown}:{port}/healthz"


def check(url: str, timeout: float) -> int:
    """Return 0 when ``url`` answers 200, else 1 (the reason goes to stderr)."""
    context = None
    if url.startswith("https://"):
        # A liveness probe over loopback: the certificate names the service, not 127.0.0.1.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310  http(s) URL built above
            status = int(response.status)
    except (OSError, urllib.error.URLError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"healthcheck: {url}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Probe the running exporter's /healthz; 0 healthy, 1 not."""
    parser = argparse.ArgumentParser(prog="python -m exporter.healthcheck")
    parser.add_argument("--pid", type=int, help="the exporter's PID (default: find it)")
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds (default 4)")
    args = parser.parse_args(argv)
    try:
        if args.pid is not None:
            raw = Path(f"/proc/{args.pid}/cmdline").read_bytes()
            exporter_argv = [p.decode("utf-8", "replace") for p in raw.split(b"\0") if p]
        else:
            exporter_argv = find_exporter()
        url = healthz_url(_arguments(exporter_argv))
    except (LookupError, OSError, yaml.YAMLError) as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    return check(url, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
