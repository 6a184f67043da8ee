"""How segkit is started: ``python -m segkit`` (like the ``segkit`` script and ``python -m segkit.cli``), and
``--help`` that answers at once: building a subcommand's parser must not import torch (2-4 s of the 0.1 s a help
screen needs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from segkit.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]

# What a help screen must not import: torch and the runtimes, converters and plotting/data libraries behind it (seconds
# of the 0.1 s a help screen needs). Choices and limits come from light modules (segkit.evaluation.limits,
# segkit.runtimes.names, segkit.export.formats, segkit.quantize.formats, segkit.data.sources); package __init__s are
# lazy (segkit.utils.lazy); heavy modules are imported inside the commands' run functions.
HEAVY = (
    "torch",
    "numpy",
    "PIL",
    "onnx",
    "onnxruntime",
    "openvino",
    "tensorflow",
    "nncf",
    "matplotlib",
    "scipy",
    "albumentations",
)
_REPORT_HEAVY = f"print(','.join(sorted(k for k in {HEAVY!r} if k in sys.modules)), file=sys.stderr)"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_python_m_segkit_runs_the_command_line() -> None:
    for args in (["--version"], ["--help"]):
        proc = subprocess.run(
            [sys.executable, "-m", "segkit", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("segkit " if args == ["--version"] else "usage: segkit <subcommand>")
    proc = subprocess.run([sys.executable, "-m", "segkit", "tarin"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Did you mean 'train'?" in proc.stderr


def test_top_level_help_imports_no_torch() -> None:
    code = "import sys; from segkit.cli import main; main(['--help']); print('torch' in sys.modules, file=sys.stderr)"
    proc = _run(code)
    assert proc.returncode == 0 and proc.stderr.strip() == "False", proc.stderr


@pytest.mark.parametrize("name", list(COMMANDS))
def test_building_a_parser_imports_nothing_heavy(name: str) -> None:
    """Every subcommand, including ones added later: COMMANDS is the list ``segkit --help`` shows."""
    module = COMMANDS[name][0]
    proc = _run(f"import sys, {module} as m\nm.build_parser()\n{_REPORT_HEAVY}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.strip() == "", f"segkit {name} --help imports {proc.stderr.strip()}"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_subcommand_help_prints_usage_without_heavy_imports(name: str) -> None:
    """``segkit <name> --help`` end to end: the usage is printed and nothing heavy was imported on the way."""
    code = (
        "import sys\nfrom segkit.cli import main\n"
        f"try:\n    main([{name!r}, '--help'])\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        f"{_REPORT_HEAVY}"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: segkit {name}"), proc.stdout[:200]
    assert proc.stderr.strip() == "", f"segkit {name} --help imports {proc.stderr.strip()}"


def test_version_imports_nothing_heavy() -> None:
    proc = _run(f"import sys\nfrom segkit.cli import main\nmain(['--version'])\n{_REPORT_HEAVY}")
    assert proc.returncode == 0 and proc.stdout.startswith("segkit "), proc.stdout + proc.stderr
    assert proc.stderr.strip() == "", f"segkit --version imports {proc.stderr.strip()}"
