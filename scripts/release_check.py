"""Check that a release version is the one every file ships, or print its changelog section.

    python3 scripts/release_check.py 1.2.3           exit 0, or 1 listing each mismatch
    python3 scripts/release_check.py --notes 1.2.3   print CHANGELOG.md's section of 1.2.3

One version names everything a release publishes: the wheel (``pyproject.toml``), the
``--version`` output (``exporter/__init__.py``), the image tag (the chart's ``appVersion``)
and the chart itself (``version`` in ``Chart.yaml``). The release workflow runs this on the
pushed tag before anything is built; it needs only the standard library (no PyYAML on the
runner), so Chart.yaml is read with a pattern for its two top-level scalar keys.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "softlayer-billing-exporter" / "Chart.yaml"
CHANGELOG = ROOT / "CHANGELOG.md"
_SEMVER = re.compile(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?")


def _chart_key(text: str, key: str) -> str | None:
    match = re.search(rf"^{key}:\s*[\"']?([^\"'\s#]+)", text, re.MULTILINE)
    return match.group(1) if match else None


def shipped_versions(root: Path = ROOT) -> dict[str, str | None]:
    """Return the version each file states, by a short name of the file."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    init = (root / "exporter" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', init, re.MULTILINE)
    chart = (root / CHART.relative_to(ROOT)).read_text(encoding="utf-8")
    return {
        "pyproject.toml version": project["project"]["version"],
        "exporter.__version__": match.group(1) if match else None,
        "Chart.yaml appVersion": _chart_key(chart, "appVersion"),
        "Chart.yaml version": _chart_key(chart, "version"),
    }


def changelog_section(version: str, text: str) -> str | None:
    """Return the body of ``## [version]`` in a Keep a Changelog file, or None."""
    heading = re.compile(rf"^## \[{re.escape(version)}\](?: - \d{{4}}-\d{{2}}-\d{{2}})?\s*$")
    lines = text.splitlines()
    for start, line in enumerate(lines):
        if heading.match(line):
            end = next(
                (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                len(lines),
            )
            # Link references ("[1.2.3]: https://...") close the file, not the section.
            body = [ln for ln in lines[start + 1 : end] if not re.match(r"^\[[^\]]+\]: ", ln)]
            return "\n".join(body).strip() + "\n"
    return None


def problems(version: str, root: Path = ROOT) -> list[str]:
    """Return every reason ``version`` cannot be released from ``root``; empty when it can."""
    found = []
    if not _SEMVER.fullmatch(version):
        found.append(f"{version!r} is not a semantic version (X.Y.Z)")
    for name, shipped in shipped_versions(root).items():
        if shipped != version:
            found.append(f"{name} is {shipped!r}, the tag says {version!r}")
    section = changelog_section(version, (root / "CHANGELOG.md").read_text(encoding="utf-8"))
    if not section or not section.strip():
        found.append(f"CHANGELOG.md has no (or an empty) '## [{version}] - YYYY-MM-DD' section")
    return found


def main(argv: list[str] | None = None) -> int:
    """Run the check (exit 1 on mismatches) or print the release notes."""
    parser = argparse.ArgumentParser(prog="release_check.py", description=__doc__.split("\n")[0])
    parser.add_argument("version", help="the release version, without the tag's leading v")
    parser.add_argument("--notes", action="store_true", help="print the changelog section")
    args = parser.parse_args(argv)
    version = args.version.removeprefix("v")
    if args.notes:
        section = changelog_section(version, CHANGELOG.read_text(encoding="utf-8"))
        if section is None:
            print(f"CHANGELOG.md has no section for {version}", file=sys.stderr)
            return 1
        sys.stdout.write(section)
        return 0
    found = problems(version)
    for problem in found:
        print(f"release {version}: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
