"""`segkit tradeoff` and `segkit complexity --table7` measure the MAdds of 8 + extra configs (~20 s at 513 on a
2-core CPU): a bar says so instead of silence."""

from __future__ import annotations

from segkit.analysis.tradeoff import load_madds


def test_measuring_madds_shows_a_bar(capfd) -> None:
    madds = load_madds(None, 33)  # a small input: the same configs, counted quickly
    err = capfd.readouterr().err
    assert "measuring MAdds (Table 7 rows)" in err and "8/8" in err and "measuring MAdds (extra rows)" in err
    assert len(madds) >= 8
