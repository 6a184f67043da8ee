"""A config file that is not valid YAML gives one line, ``file:line:column: not valid YAML: the problem``, instead of
PyYAML's marks (each quotes the line with a caret under the column, over several lines)."""

from __future__ import annotations

import pytest

import segkit
from segkit.cli import main as segkit_main
from segkit.config import ConfigError

BAD = {
    # text, (line, column) of the problem, words of the problem
    "flow": ("model:\n  num_classes: 21\n  atrous_rates: [6, 12\ntrain:\n  lr: 0.1\n", (4, 6), "expected ',' or ']'"),
    "tab": ("model:\n  num_classes: 21\n\ttrain: 1\n", (3, 1), "found character '\\t'"),
    "quote": ('name: "demo\n', (2, 1), "found unexpected end of stream"),
    "indent": ("model:\n  num_classes: 21\n output_stride: 8\n", (3, 2), "expected <block end>"),
}


def _one_line(message: str) -> None:
    assert "\n" not in message and "^" not in message and "<unicode string>" not in message


@pytest.mark.parametrize("kind", sorted(BAD))
def test_yaml_syntax_error_is_one_line_with_file_line_column(tmp_path, kind) -> None:
    text, (line, column), problem = BAD[kind]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        segkit.load_config(path)
    message = str(info.value)
    _one_line(message)
    assert message.startswith(f"{path}:{line}:{column}: not valid YAML: ") and problem in message


def test_yaml_error_in_the_base_config_names_the_base_file(tmp_path) -> None:
    (tmp_path / "base.yaml").write_text("model: {num_classes: 21\n")
    child = tmp_path / "child.yaml"
    child.write_text("_base_: base.yaml\ntrain:\n  lr: 0.1\n")
    with pytest.raises(ConfigError) as info:
        segkit.load_config(child)
    _one_line(str(info.value))
    assert str(info.value).startswith(f"{tmp_path / 'base.yaml'}:2:1: not valid YAML: ")


def test_unreadable_characters_are_one_line(tmp_path) -> None:
    control = tmp_path / "control.yaml"
    control.write_text("name: a\x07b\n")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    for path in (control, binary):
        with pytest.raises(ConfigError) as info:
            segkit.load_config(path)
        _one_line(str(info.value))
        assert str(info.value).startswith(f"{path}: ")


def test_yaml_error_through_the_cli_is_one_line(tmp_path, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD["flow"][0])
    assert segkit_main(["train", "--config", str(path), "--work-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:4:6: not valid YAML: ") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_valid_config_still_loads(tmp_path) -> None:
    path = tmp_path / "ok.yaml"
    cfg = segkit.load_config("demo_mnv2_os16")
    path.write_text(cfg.to_yaml())
    assert segkit.load_config(path) == cfg
