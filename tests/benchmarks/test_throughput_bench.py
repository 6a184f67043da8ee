"""benchmarks/throughput.py's report: the end-to-end rows beside the model-only rows, the ratios, batch and threads."""

from __future__ import annotations

from benchmarks.throughput import to_markdown


def test_markdown_puts_end_to_end_beside_model_only_with_ratios():
    result = {
        "machine": {"date": "2026-12-03 14:00", "cpu": "AMD EPYC", "load_average_1min_at_start": 0.1,
                    "load_average_1min_at_end": 0.9, "torch": "2.14.1"},
        "settings": {"images": 16, "rounds": 5, "threads": 2},
        "sizes": [{
            "input_size": 513, "images": 16, "gemm_fp32_macs_per_s": 87e9,
            "rows": [{"row": "ONNX Runtime int8 labels", "model_images_per_s": 37.5, "infer_images_per_s": 30.8,
                      "infer_vs_model": 0.82, "test_images_per_s": 28.0, "test_vs_model": 0.73}],
            "latency_ratios": {"int8_vs_fp32_ort": 0.57, "fast_vs_ort_fp32": 1.01},
            "batch": [{"threads": t, "batch": b, "images_per_s": 10.0 * t + b} for t in (1, 2) for b in (1, 4, 8)],
            "memory": [{"case": "513 VOC image", "peak_rss_mb": 770.0, "error": None}],
        }],
    }  # fmt: skip
    text = to_markdown(result)
    assert "AMD EPYC" in text and "87 GMAC/s" in text and "load 0.1 at start" in text
    assert "| ONNX Runtime int8 labels | 37.5 | 30.8 | 0.82x |  |  | 28.0 | 0.73x |" in text
    assert "ONNX Runtime int8 / fp32 (logits files) latency (model only): 0.57x" in text
    assert "`--fast` on the checkpoint / ONNX Runtime fp32 latency (model only): 1.01x" in text
    assert "| 2 thread(s) | 21.0 | 24.0 | 28.0 |" in text  # batch 1/4/8 with 2 threads
    assert "Peak RSS of segkit infer, 513 VOC image: 770 MB." in text
