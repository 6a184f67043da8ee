"""``segkit complexity`` end to end: what it prints and writes, and its argument errors."""

from __future__ import annotations

import json

import pytest

from segkit.cli import main


def test_one_config_prints_and_writes(tmp_path, capsys):
    js, md = tmp_path / "c.json", tmp_path / "c.md"
    argv = ["complexity", "--config", "voc_mnv2_os16", "--set", "model.output_stride=8", "--input-size", "129"]
    assert main([*argv, "--json", str(js), "--markdown", str(md)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("voc_mnv2_os16: backbone mobilenet_v2, OS 8, ASPP False, decoder none; 1 pass at 129")
    assert out[1].startswith("  params                 2,113,557") and out[-2:] == [f"wrote {js}", f"wrote {md}"]
    assert json.loads(js.read_text())["os"] == 8
    assert md.read_text().startswith("| config | params | MAdds pytorch | MAdds tf1 |\n|---|---|---|---|\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "one of the arguments --table7 --config is required"),
        (["--table7", "--config", "voc_mnv2_os16"], "not allowed with argument --table7"),
        (["--table7", "--multi-scale"], "--set and --multi-scale apply to --config only"),
    ],
)
def test_argument_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["complexity", *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_input_errors_are_one_line(capsys):
    assert main(["complexity", "--config", "voc_mnv2_os16", "--input-size", "8"]) == 2
    assert capsys.readouterr().err == "error: --input-size must be >= 16, got 8.\n"
    assert main(["complexity", "--config", "no_such_config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
