"""The ``segkit`` command: dispatch, ``--help`` of every subcommand, the tools/ shims, and the tree's habits
(no ``sys.path`` edits in segkit/, tools/, tests/; no test module imports another or loads tools/ by path)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from segkit.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]
PRESENT = [name for name, (module, _) in COMMANDS.items() if importlib.util.find_spec(module) is not None]


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, (_, description) in COMMANDS.items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(description)}$", out, re.M), name


def test_no_subcommand_and_unknown_subcommand(capsys):
    assert main([]) == 2
    assert "usage: segkit <subcommand>" in capsys.readouterr().err
    assert main(["tarin"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown subcommand 'tarin'" in err and "Did you mean 'train'?" in err


def test_missing_module_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(COMMANDS, "export", ("segkit.cli.no_such_module", "export"))
    assert main(["export", "--help"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "segkit export is not available" in err


@pytest.mark.parametrize("name", PRESENT)
def test_subcommand_help_prints_description_once(name, capsys):
    module = importlib.import_module(COMMANDS[name][0])
    assert callable(module.build_parser) and callable(module.main)
    first_line = module.__doc__.strip().splitlines()[0]
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: segkit {name}")
    assert out.count(first_line) == 1, f"segkit {name} --help prints its description {out.count(first_line)} times"


def test_python_m_segkit_cli_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "segkit.cli", "--version"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0 and proc.stdout.startswith("segkit ")


def test_tools_are_thin_shims():
    shim = re.compile(
        r'from segkit\.cli\.(\w+) import main\n\nif __name__ == "__main__":\n    raise SystemExit\(main\(\)\)\n'
    )
    modules = {module for module, _ in COMMANDS.values()}
    for path in sorted((ROOT / "tools").glob("*.py")):
        text = path.read_text()
        match = shim.fullmatch(text.removeprefix("#!/usr/bin/env python\n"))
        assert match, f"{path.relative_to(ROOT)} is not the 3-line shim over segkit.cli.<name>"
        assert f"segkit.cli.{match.group(1)}" in modules


def _python_files() -> list[Path]:
    return [p for d in ("segkit", "tools", "tests") for p in sorted((ROOT / d).rglob("*.py"))]


def test_no_sys_path_edits():
    bad = [
        str(p.relative_to(ROOT))
        for p in _python_files()
        if re.search(r"sys\.path\.(insert|append)", p.read_text()) and p.name != "test_cli.py"
    ]
    assert not bad, f"sys.path edits in {bad}: import segkit as an installed package instead"


def test_no_test_module_imports_another():
    """Tests share code through ``tests.helpers`` and fixtures in ``tests/conftest.py``, never through each other,
    and reach benchmark scripts as the ``benchmarks`` package or as commands, never by loading files by path."""
    tests = {p.stem for p in (ROOT / "tests").rglob("test_*.py")} | {"conftest"}
    bad = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names if node.level]
            if any(n.split(".")[-1] in tests for n in names):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        if path.name != "test_cli.py" and "spec_from_file_location" in path.read_text():
            bad.append(
                f"{path.relative_to(ROOT)}: loads a file by path (import segkit.cli.<name> or benchmarks.<name>)"
            )
    assert tests > {"test_cli", "test_layers", "conftest"}, "the scan found no test modules"
    assert not bad, f"tests importing other test modules or loading files by path (use tests.helpers): {bad}"
