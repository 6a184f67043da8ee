"""The distribution name: every install hint (pip install, the name in quotes, an extra in brackets) in the code,
tests and docs names the project's own distribution (pyproject.toml), not ``segkit`` (an unrelated project on PyPI)."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
HINT = re.compile(r"pip install\s+['\"]?([A-Za-z0-9_.-]+)\\?\[")  # pip install + quoted name + [extra]


def _distribution() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]


def test_distribution_name_is_not_the_taken_one() -> None:
    assert _distribution() != "segkit"  # pypi.org/project/segkit is someone else's package


def test_install_hints_name_the_distribution() -> None:
    files = [*(ROOT / "segkit").rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "docs").glob("*.md")]
    files.append(ROOT / "README.md")
    hints = {(str(p.relative_to(ROOT)), m.group(1)) for p in files for m in HINT.finditer(p.read_text())}
    assert any(name == _distribution() for _, name in hints)  # the pattern finds the hints at all
    wrong = sorted((path, name) for path, name in hints if name not in (_distribution(), "-e", "."))
    assert not wrong, f"pip install hints naming another distribution than {_distribution()!r}: {wrong}"


def test_extras_refer_to_the_distribution() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    own = [dep for deps in extras.values() for dep in deps if re.match(r"segkit[\w.-]*\[", dep)]
    assert own and all(dep.startswith(_distribution() + "[") for dep in own)
