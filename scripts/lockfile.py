#!/usr/bin/env python3
"""The lock files, read: which package is pinned at which version, under which marker, with which hashes.

``requirements.lock`` (everything archiver and its tests run with) and ``requirements-tools.lock`` (uv, which
only ``make lock`` and ``make update-extractors`` need) are pip requirement files written by ``uv pip compile
--generate-hashes --universal``: one ``name==version [; marker]`` per package, hashes on continuation lines.
Used by the Makefile (``unlocked``: what `make setup` removes so the venv equals the lock), by
``scripts/update-extractors`` (``pin yt-dlp``) and by ``tests/test_lock.py``.

    python scripts/lockfile.py unlocked     # installed distributions neither lock pins here, one a line
    python scripts/lockfile.py pin NAME     # the version requirements.lock pins NAME at here
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
TOOLS_LOCK = ROOT / "requirements-tools.lock"
# Distributions a venv holds that no lock pins on purpose: pip itself only when the lock does not pin it, and
# archiver, installed editable from this checkout.
ALWAYS_KEPT = {"pip", "archiver"}

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;]+)\s*(?:;\s*(?P<marker>.+))?$")


class LockError(Exception):
    """A lock file line that is not `name==version [; marker] --hash=sha256:...`."""


@dataclass(frozen=True)
class Pin:
    name: str  # normalised (PEP 503)
    version: str
    marker: str | None
    hashes: tuple[str, ...]
    line: int  # where the requirement starts, 1-based

    def applies(self) -> bool:
        """Whether pip installs this line on the running interpreter (its marker holds here)."""
        if self.marker is None:
            return True
        from packaging.markers import Marker  # installed by the lock itself (pytest needs it)

        return Marker(self.marker).evaluate()


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read(path: Path = LOCK) -> list[Pin]:
    """Every requirement of a lock file, in order. Raises LockError on a line pip --require-hashes would refuse."""
    pins: list[Pin] = []
    logical, start = "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not logical:
            start = number
        logical += " " + text.removesuffix("\\").strip()
        if text.endswith("\\"):
            continue
        if logical.strip():
            pins.append(_parse(logical.strip(), path, start))
        logical = ""
    if logical.strip():
        pins.append(_parse(logical.strip(), path, start))
    return pins


def _parse(requirement: str, path: Path, line: int) -> Pin:
    words = requirement.split(" --hash=")
    match = _PIN.match(words[0].strip())
    if not match:
        raise LockError(f"{path.name}:{line}: not a pinned requirement (name==version): {words[0].strip()}")
    return Pin(normalize(match["name"]), match["version"], match["marker"], tuple(h.strip() for h in words[1:]), line)


def applicable(path: Path = LOCK) -> dict[str, Pin]:
    """The pins pip installs from this lock on the running interpreter, by normalised name."""
    return {pin.name: pin for pin in read(path) if pin.applies()}


def unlocked() -> list[str]:
    """Installed distributions of the running interpreter that neither lock pins here."""
    from importlib.metadata import distributions

    kept = set(applicable(LOCK)) | set(applicable(TOOLS_LOCK)) | ALWAYS_KEPT
    return sorted({normalize(d.metadata["Name"]) for d in distributions()} - kept)


def main(argv: list[str]) -> int:
    if argv == ["unlocked"]:
        print("\n".join(unlocked()))
        return 0
    if len(argv) == 2 and argv[0] == "pin":
        pin = applicable().get(normalize(argv[1]))
        if pin is None:
            print(f"lockfile: {LOCK.name} pins no {argv[1]} for this interpreter", file=sys.stderr)
            return 2
        print(pin.version)
        return 0
    print("usage: scripts/lockfile.py unlocked | pin NAME", file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (LockError, OSError) as exc:
        print(f"lockfile: {exc}", file=sys.stderr)
        sys.exit(2)
