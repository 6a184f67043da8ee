"""``segkit convert`` end to end, the paths that need no .tflite file: one-line errors (the conversions themselves:
tests/convert/test_convert_tflite.py)."""

from __future__ import annotations

import pytest

from segkit.cli import main


def test_missing_files_are_one_line(tmp_path, capsys):
    model, out = tmp_path / "absent.tflite", tmp_path / "out.pth"
    assert main(["convert", str(model), str(out)]) == 2
    assert capsys.readouterr().err == f"error: TFLite model not found: {model}.\n"
    assert main(["convert", str(model), str(out), "--labels", str(tmp_path / "labels.txt")]) == 2
    assert capsys.readouterr().err == f"error: labels file not found: {tmp_path / 'labels.txt'}\n"
    assert not out.exists()


def test_out_or_print_graph_is_required(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["convert", str(tmp_path / "m.tflite")])
    assert exc.value.code == 2 and "give OUT.pth" in capsys.readouterr().err
