"""``segkit tradeoff`` end to end: the table printed and written, the figure, the notes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from segkit.analysis.complexity import TABLE7
from segkit.cli import main


def _complexity_json(path: Path) -> Path:
    """A ``segkit complexity --table7 --json`` file (made-up MAdds: the command only reads ``madds_tf1``)."""
    rows = [{"madds_tf1": 1e9 * (i + 1)} for i in range(len(TABLE7))]
    extra = [
        {"config": "voc_mnv2_os16_plus", "madds_tf1": 3e9},
        {"config": "voc_mnv2_os16_aspp_plus", "madds_tf1": 6e9},
    ]
    path.write_text(json.dumps({"rows": rows, "extra_rows": extra}))
    return path


def test_tradeoff_prints_and_writes(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    (results / "voc_mnv2_os16.json").write_text('{"miou": 0.7}')
    (results / "other.json").write_text('{"miou": 0.5}')
    (results / "inference.json").write_text('{"rows": [{"config": "voc_mnv2_os16", "latency_ms": 700.0}]}')
    out = tmp_path / "out"
    argv = ["tradeoff", "--results", str(results), "--complexity-json", str(_complexity_json(tmp_path / "t7.json"))]
    assert main([*argv, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(f"skipped {results / 'other.json'}: config 'other' is no Table 7 config")
    printed = captured.out.splitlines()
    assert "\n".join(printed[:-1]) + "\n" == (out / "tradeoff.md").read_text()
    assert "| MNet V2* | 16 |  |  | 2.75B | 5.00B | 75.32 | 70.00 | 700 |" in printed
    assert printed[-1] == (
        f"wrote {out / 'tradeoff.png'} and {out / 'tradeoff.md'} (1 mIoU result(s), 0 of them int8/fake-int8; "
        "1 latency row(s), 0 runtime latency row(s))"
    )
    assert (out / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"


def test_tradeoff_errors_are_one_line(tmp_path, capsys):
    assert main(["tradeoff", "--results", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == (
        f"error: --results {tmp_path / 'missing'}: not a folder. Pass the folder holding segkit test --json outputs.\n"
    )
    assert main(["tradeoff", "--latency", str(tmp_path / "absent.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and '{"rows": [{"config": NAME, "latency_ms": MS}, ...]}' in err
