"""The wheel is complete: built from a copy of the checkout, installed into a bare folder, used from elsewhere.

``pip wheel --no-deps --no-build-isolation`` (the venv's setuptools; nothing downloaded), then
``pip install --no-deps --target``; a fresh interpreter whose working directory is outside the checkout and
whose ``sys.path`` holds the install folder (not the checkout) loads every shipped config by name and builds
a model. This is what a user's ``pip install segkit`` gets. About 20-40 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from segkit.config import CONFIG_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(
    ".venv",
    ".git",
    "work_dirs",
    "runs",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "*.pth",
    "*.tflite",
    "node_modules",  # npm ci's onnxruntime-web (150 MB): not part of the wheel
)

CHECK = r"""
import json, sys
import segkit
from segkit.config import CONFIG_DIR, load_config
from segkit.models import build_model
names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
cfgs = [load_config(name) for name in names]
model = build_model(load_config("demo_mnv2_os16"))
print(json.dumps({"segkit": segkit.__file__, "config_dir": str(CONFIG_DIR), "names": names,
                  "loaded": [c.name for c in cfgs], "params": sum(p.numel() for p in model.parameters())}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout (so no build/ or egg-info lands in the tree)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO_ROOT, src, symlinks=True, ignore=SKIP)
    out = tmp / "dist"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            str(src),
            "-w",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    (path,) = out.glob("segkit_deeplab-*.whl")  # the distribution name (pyproject.toml), normalised
    return path


@pytest.mark.slow  # builds the wheel (pip wheel in a subprocess)
def test_wheel_ships_configs_and_console_script(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(Path(n).name for n in names if n.startswith("segkit/configs/") and n.endswith(".yaml"))
    assert shipped == sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))
    assert {"segkit/export/web_template/index.html", "segkit/export/web_template/app.js"} <= set(names)  # --format web
    assert not [n for n in names if n.startswith(("tests/", "tools/", "benchmarks/", "configs/"))]
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "segkit = segkit.cli:main" in text.replace("  ", " ")


@pytest.mark.slow
def test_installed_wheel_loads_every_config(wheel: Path, tmp_path: Path):
    target = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"pip install --target failed:\n{proc.stdout}\n{proc.stderr}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(result["segkit"]).is_relative_to(target), f"imported the checkout, not the wheel: {result['segkit']}"
    assert Path(result["config_dir"]).is_relative_to(target)
    assert result["names"] == sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert result["loaded"] == result["names"]
    assert result["params"] > 100_000
    # the console script's entry point works from the install too
    proc = subprocess.run(
        [sys.executable, "-c", "from segkit.cli import main; raise SystemExit(main(['--help']))"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "prepare-data" in proc.stdout, proc.stderr
