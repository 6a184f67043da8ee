"""``segkit train`` end to end: exit codes (0 done, 2 a usage/config/data error) and one-line errors and warnings.
The training itself is tested through the library (tests/engine/)."""

from __future__ import annotations

import pytest

from segkit.cli import main
from segkit.config import available_configs, load_config


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(["train", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    """The error line of ``err``: exactly one, the last line, after nothing but one-line warnings."""
    *before, last = err.splitlines()
    assert last.startswith("error: ") and all(line.startswith("warning: ") for line in before), err
    return last


def test_help_lists_the_shipped_configs(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "configs (--config NAME):" in out and all(name in out for name in available_configs())
    assert "--device DEVICE cpu, cuda or cuda:N (default: cuda when available, else cpu)" in out


def test_print_config_applies_repeated_overrides_in_order(capsys):
    code, out, _ = run(capsys, "--config", "voc_mnv2_os16", "--set", "train.lr=1e-3", "--set",
                       "model.output_stride=8", "train.lr=0.002", "--seed", "5", "--data-root", "/d", "--print-config")  # fmt: skip
    expected = load_config("voc_mnv2_os16", ["train.lr=0.002", "model.output_stride=8", "data.root=/d", "train.seed=5"])
    assert code == 0 and out == expected.to_yaml()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--config", "voc_mnv2_os61"], "Did you mean 'voc_mnv2_os16'?"),
        (["--config", "demo_mnv2_os16", "--set", "train.lrr=0.1"], "Unknown config key 'train.lrr'"),
        (["--config", "demo_mnv2_os16", "--set", "data.dataset=imagenet"], "allowed values are 'voc', 'coco'"),
        (["--config", "demo_mnv2_os16", "--resume", "--overwrite"], "--resume continues the run in the work dir"),
        (["--config", "demo_mnv2_os16", "--device", "tpu"], "--device 'tpu' is not a device"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, argv, message):
    code, _, err = run(capsys, *argv, "--work-dir", str(tmp_path / "w"))
    assert code == 2 and message in one_line_error(err)
    assert not (tmp_path / "w").exists()


def test_missing_data_names_the_installed_command(tmp_path, capsys):
    code, _, err = run(capsys, "--config", "voc_mnv2_os16", "--set", "model.width_mult=0.35", "--data-root",
                       str(tmp_path / "nowhere"), "--work-dir", str(tmp_path / "w"), "--device", "cpu")  # fmt: skip
    assert code == 2 and "PASCAL VOC 2012 not found" in one_line_error(err)
    assert f"`segkit prepare-data voc --download --root {tmp_path / 'nowhere'}`" in err
    assert "`segkit train --config demo_mnv2_os16`" in err
    assert not (tmp_path / "w").exists()  # nothing written for a run that could not start


@pytest.mark.slow
def test_a_tiny_run_then_a_second_one_into_its_work_dir(synth_root, tmp_path, tiny_overrides, capsys):
    argv = ["--config", "demo_mnv2_os16", "--work-dir", str(tmp_path), "--device", "cpu", "--no-progress"]
    code, out, err = run(capsys, *argv, "--set", *tiny_overrides(synth_root, iterations=2))
    assert code == 0 and (tmp_path / "latest.pth").is_file() and "Done: 2 iterations" in out
    assert "warning: BatchNorm is trained with 4 images per step" in err  # warnings as one line each
    assert "warnings.warn(" not in err and "Traceback" not in err
    code, _, err = run(capsys, *argv, "--set", *tiny_overrides(synth_root, iterations=3))
    assert code == 2 and "--resume" in one_line_error(err) and "--overwrite" in err  # never silently replaced
    code, out, _ = run(capsys, *argv, "--resume", "--reschedule", "--set", *tiny_overrides(synth_root, iterations=3))
    assert code == 0 and "Done: 3 iterations" in out
