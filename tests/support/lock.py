"""The lock files, read: constraints.txt and templates/requirements.txt (scripts/lock.py writes both)."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints.txt"
IMAGE_REQUIREMENTS = ROOT / "templates" / "requirements.txt"


def exact_pins(path: Path) -> dict[str, Requirement]:
    """Canonical name → requirement of a file of ``name[extras]==version`` lines (checked exact, once each)."""
    pins: dict[str, Requirement] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            requirement = Requirement(line)
            assert re.fullmatch(r"==[^,*]+", str(requirement.specifier)), f"{path.name}: not an exact pin: {line}"
            name = canonicalize_name(requirement.name)
            assert name not in pins, f"{path.name}: pinned twice: {line}"
            pins[name] = requirement
    return pins


def versions(path: Path) -> dict[str, str]:
    """Canonical name → pinned version."""
    return {name: str(pin.specifier).removeprefix("==") for name, pin in exact_pins(path).items()}


def locked_versions() -> dict[str, str]:
    """constraints.txt: canonical name → the version CI tests."""
    return versions(CONSTRAINTS)
