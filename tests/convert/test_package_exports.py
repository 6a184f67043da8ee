"""``segkit.convert`` offers both converters by name: ``convert_tflite`` and ``convert_hf`` (Hugging Face models)."""

from __future__ import annotations


def test_convert_package_exports_both_converters():
    import segkit.convert as convert
    from segkit.convert.hf import HFConversionError, convert_hf
    from segkit.convert.tflite import convert_tflite

    assert convert.convert_hf is convert_hf and convert.convert_tflite is convert_tflite
    assert convert.HFConversionError is HFConversionError
    assert all(hasattr(convert, name) for name in convert.__all__)
