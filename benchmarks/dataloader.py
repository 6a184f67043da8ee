"""Training input-path benchmark: images/s of segkit's data loading per DataLoader worker count.

    python benchmarks/dataloader.py [--workers 1 2 4 8 16] [--max-workers N] [--batch 16] [--images 96]
        [--batches 12] [--config voc_mnv2_os16] [--root VOC_ROOT] [--quick] [--json OUT] [--markdown OUT]

What one training batch costs before the GPU sees it: JPEG + PNG decode, segkit's own training
transform of ``--config`` (random scale 0.5-2.0, pad, 513 crop, flip, normalise, to tensor), the
DataLoader's collate into batches of ``--batch``, pinned memory and, with CUDA, the host -> device copy.

- The benchmark writes its own VOC-format tree (``--images`` JPEGs of 500x375, like VOC's, with
  textured backgrounds and objects, plus palette-PNG masks with 255 borders) into a temporary folder;
  ``--root`` reads an existing VOC tree instead (``--split``, default train).
- **Throughput rows**: a ``DataLoader`` as training builds it (shuffled, ``drop_last``, persistent
  workers, ``pin_memory`` with CUDA) per worker count; the first round of batches (worker start-up) is
  untimed, then at least ``--batches`` batches (a multiple of the worker count) are timed.
  Worker counts above ``--max-workers`` (default: the CPUs this process may use) are not run: running 16
  workers on 2 cores measures the 2 cores. Their row is still printed, with the linear projection
  ``workers x the 1-worker rate`` (what a machine with that many free cores would approach).
- **Stage rows**: per-image cost of each stage in this process with one torch and one OpenCV thread
  (one core): decode, each transform of the pipeline, the whole transform call, collate, pin and the
  host -> device copy (the last two only with CUDA; pinning needs a CUDA driver).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python benchmarks/<name>.py): the checkout's benchmarks package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.benchutils import machine_info, markdown_table, write_outputs  # noqa: E402

VOC_SIZE = (500, 375)  # (W, H): the typical PASCAL VOC image
DEFAULT_WORKERS = (1, 2, 4, 8, 16)


# -- data ---------------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, amplitude: float) -> np.ndarray:
    import cv2

    small = rng.normal(0.0, amplitude, (max(2, h // cells), max(2, w // cells), 3)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def synthetic_photo(
    rng: np.random.Generator, size: tuple[int, int] = VOC_SIZE, num_classes: int = 21
) -> tuple[np.ndarray, np.ndarray]:
    """A photo-like RGB uint8 image and its label mask (objects 1..K-1, 255 on their borders).

    Texture at several scales keeps the JPEG as hard to decode as a real photo (files of ~50-100 KB
    at 500x375, quality 90, where flat synthetic images compress to a few KB and decode too fast).
    """
    import cv2

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 200, 3).astype(np.float32)
    grad = rng.uniform(-60, 60, 3).astype(np.float32)
    image = base + grad * (yy / h)[..., None] + _smooth_noise(rng, h, w, 40, 30) + _smooth_noise(rng, h, w, 6, 14)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        label = int(rng.integers(1, num_classes))
        obj = np.zeros((h, w), np.uint8)
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(w // 12, w // 3)), int(rng.integers(h // 12, h // 3)))
        cv2.ellipse(obj, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        region = obj.astype(bool)
        image[region] = colour + _smooth_noise(rng, h, w, 3, 20)[region]
        mask[region] = label
    image += rng.normal(0, 4, image.shape).astype(np.float32)
    edges = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)) > 0
    mask[edges] = 255  # VOC marks object borders with the ignore label
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_voc_tree(
    root: str | os.PathLike,
    num_train: int,
    *,
    num_val: int = 0,
    size: tuple[int, int] = VOC_SIZE,
    seed: int = 0,
    quality: int = 90,
) -> Path:
    """Write a VOC-format tree of synthetic photos under ``root`` (``train`` and, with ``num_val``, ``val``).

    Returns:
        ``root`` (pass it as ``data.root`` / ``--data-root``).
    """
    from PIL import Image

    from segkit.data import VOC_PALETTE

    base = Path(root) / "VOCdevkit" / "VOC2012"
    dirs = {name: base / name for name in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(VOC_PALETTE)] = VOC_PALETTE
    palette[255] = (224, 224, 192)
    rng = np.random.default_rng(seed)
    ids: dict[str, list[str]] = {"train": [], "val": []}
    for i in range(num_train + num_val):
        split = "train" if i < num_train else "val"
        sample_id = f"synth_{i:05d}"
        image, mask = synthetic_photo(rng, size)
        Image.fromarray(image).save(dirs["JPEGImages"] / f"{sample_id}.jpg", quality=quality)
        png = Image.fromarray(mask, mode="P")
        png.putpalette(palette.reshape(-1).tolist())
        png.save(dirs["SegmentationClass"] / f"{sample_id}.png")
        ids[split].append(sample_id)
    for split, names in ids.items():
        if names:
            (dirs["ImageSets/Segmentation"] / f"{split}.txt").write_text("\n".join(names) + "\n")
    return Path(root)


def _pinning_available() -> bool:
    return torch.cuda.is_available()


# -- measurements -------------------------------------------------------------------------------
def loader_rate(dataset: Any, workers: int, batch: int, batches: int, device: torch.device, seed: int = 0) -> dict:
    """Images/s of a training-style DataLoader with ``workers`` processes (the copy to ``device`` included)."""
    from torch.utils.data import DataLoader, RandomSampler

    rounds = max(1, workers)
    warmup = rounds  # the first batch of every worker carries its start-up
    timed = max(batches, rounds) if workers == 0 else rounds * math.ceil(max(batches, rounds) / rounds)
    sampler = RandomSampler(
        dataset, replacement=True, num_samples=batch * (warmup + timed), generator=torch.Generator().manual_seed(seed)
    )
    loader = DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )
    it = iter(loader)
    start = time.perf_counter()
    for _ in range(warmup):
        _consume(next(it), device)
    startup = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(timed):
        _consume(next(it), device)
    elapsed = time.perf_counter() - start
    del it, loader
    return {
        "workers": workers,
        "images_per_s": timed * batch / elapsed,
        "s_per_batch": elapsed / timed,
        "timed_batches": timed,
        "warmup_s": startup,
        "measured": True,
    }


def _consume(batch: dict[str, Any], device: torch.device) -> None:
    if device.type == "cuda":
        batch["image"].to(device, non_blocking=True)
        batch["mask"].to(device, non_blocking=True)
        torch.cuda.synchronize(device)


def stage_costs(
    dataset: Any, paths: Sequence[tuple[Path, Path]], transform: Any, num_images: int, batch: int, device: torch.device
) -> list[dict[str, Any]]:
    """Milliseconds per image of each input stage, on one core (one torch and one OpenCV thread)."""
    import cv2

    from segkit.data import read_image, read_mask

    threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        totals: dict[str, float] = {}
        order: list[str] = []

        def add(name: str, seconds: float) -> None:
            if name not in totals:
                order.append(name)
                totals[name] = 0.0
            totals[name] += seconds

        steps = list(transform.compose.transforms)
        transform.reseed(0)
        for step in steps:  # every transform draws its own parameters when called alone
            if hasattr(step, "set_random_seed"):
                step.set_random_seed(0)
        n = min(num_images, len(paths))
        for i in range(n):
            image_path, mask_path = paths[i % len(paths)]
            t0 = time.perf_counter()
            image = read_image(image_path)
            mask = read_mask(mask_path)
            add("decode (JPEG + PNG)", time.perf_counter() - t0)
            data = {"image": image, "mask": mask}
            for step in steps:
                t0 = time.perf_counter()
                data = step(**data)
                add(f"  {type(step).__name__}", time.perf_counter() - t0)
            t0 = time.perf_counter()
            torch.as_tensor(data["mask"]).long()
            add("  mask to int64", time.perf_counter() - t0)
            t0 = time.perf_counter()
            transform(image=image, mask=mask)
            add("transform, whole call", time.perf_counter() - t0)
        per_image = {k: v / n for k, v in totals.items()}
        samples = [dataset[i % len(dataset)] for i in range(batch)]
        from torch.utils.data import default_collate

        reps = max(1, n // batch)
        t0 = time.perf_counter()
        for _ in range(reps):
            collated = default_collate(samples)
        per_image["collate"] = (time.perf_counter() - t0) / (reps * batch)
        order.append("collate")
        notes: dict[str, str] = {}
        for name in ("pin memory", "host -> device copy"):
            order.append(name)
            per_image[name] = float("nan")
            notes[name] = "needs CUDA (not available here)"
        if _pinning_available():
            t0 = time.perf_counter()
            for _ in range(reps):
                pinned = {k: collated[k].pin_memory() for k in ("image", "mask")}
            per_image["pin memory"] = (time.perf_counter() - t0) / (reps * batch)
            notes.pop("pin memory")
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                for _ in range(reps):
                    for v in pinned.values():
                        v.to(device, non_blocking=True)
                torch.cuda.synchronize(device)
                per_image["host -> device copy"] = (time.perf_counter() - t0) / (reps * batch)
                notes.pop("host -> device copy")
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv2_threads)
    stage_total = sum(v for k, v in per_image.items() if not k.startswith("  ") and math.isfinite(v))
    rows = []
    for name in order:
        value = per_image[name]
        rows.append(
            {
                "stage": name.strip(),
                "part_of_transform": name.startswith("  "),
                "ms_per_image": value * 1e3,
                "share": value / stage_total if math.isfinite(value) else None,
                "note": notes.get(name, ""),
            }
        )
    rows.append(
        {
            "stage": "total (decode + whole transform + collate + pin + copy)",
            "part_of_transform": False,
            "ms_per_image": stage_total * 1e3,
            "share": 1.0,
            "note": "",
        }
    )
    return rows


# -- command line -------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=list(DEFAULT_WORKERS),
        help="DataLoader worker counts, one row each (default 1 2 4 8 16; 0 = main process)",
    )
    parser.add_argument(
        "--max-workers", type=int, help="run rows up to this many workers, project the others (default: usable CPUs)"
    )
    parser.add_argument("--batch", type=int, default=16, help="batch size (default 16, the recipe's)")
    parser.add_argument("--batches", type=int, default=12, help="timed batches per row, at least (default 12)")
    parser.add_argument("--images", type=int, default=96, help="synthetic JPEGs written (default 96)")
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=list(VOC_SIZE),
        metavar=("W", "H"),
        help="synthetic image size (default 500 375)",
    )
    parser.add_argument("--profile-images", type=int, default=48, help="images timed stage by stage (default 48)")
    parser.add_argument("--config", default="voc_mnv2_os16", help="config whose train transform is used")
    parser.add_argument("--crop", type=int, help="override data.crop_size (default: the config's, 513)")
    parser.add_argument("--root", type=Path, help="an existing VOC tree to read instead of writing one")
    parser.add_argument("--split", default="train", help="split of --root (default train)")
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where batches are copied (default: cuda when available)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 8 images of 160x120, batch 4, 2 batches, workers 0 1, crop 129",
    )
    parser.add_argument("--json", type=Path, help="write results as JSON")
    parser.add_argument("--markdown", type=Path, help="write the tables as markdown")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.batch, args.batches, args.profile_images = 8, 4, 2, 4
        args.image_size, args.crop = [160, 120], args.crop or 129
        if args.workers == list(DEFAULT_WORKERS):
            args.workers = [0, 1]
    for key in ("batch", "batches", "images", "profile_images"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}.")
    if any(w < 0 for w in args.workers):
        parser.error(f"--workers must be >= 0, got {args.workers}.")
    if args.root is None and args.images < args.batch:
        parser.error(f"--images ({args.images}) must be >= --batch ({args.batch}).")
    return args


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Write (or find) the data, time every worker count and every stage; returns the result dict."""
    from segkit.config import load_config
    from segkit.data import build_dataset, build_train_transform

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SystemExit("error: --device cuda was requested but CUDA is not available; use --device cpu.")
    info = machine_info()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    max_workers = args.max_workers if args.max_workers is not None else usable_cpus()
    print(f"{info['date']}  {info['cpu']}  usable CPUs {usable_cpus()}  device {device}", flush=True)
    tmp = None
    if args.root is None:
        tmp = Path(tempfile.mkdtemp(prefix="segkit_dataloader_"))
        t0 = time.perf_counter()
        root = write_voc_tree(tmp, args.images, size=tuple(args.image_size))
        print(
            f"wrote {args.images} synthetic {args.image_size[0]}x{args.image_size[1]} JPEGs in "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        split = "train"
    else:
        root, split = args.root, args.split
    try:
        overrides = [f"data.root={root}", f"data.train_split={split}", "data.dataset=voc"]
        if args.crop:
            overrides.append(f"data.crop_size={args.crop}")
        cfg = load_config(args.config, overrides)
        transform = build_train_transform(cfg.data, cfg.model.input_mean, cfg.model.input_std)
        dataset = build_dataset(cfg.data, split, transform, num_classes=cfg.model.num_classes)
        voc = Path(root) / "VOCdevkit" / "VOC2012"
        mask_dir = "SegmentationClassAug" if split == "train_aug" else "SegmentationClass"
        paths = [(voc / "JPEGImages" / f"{i}.jpg", voc / mask_dir / f"{i}.png") for i in dataset.ids]
        jpeg_kb = float(np.mean([p.stat().st_size for p, _ in paths[:200]]) / 1024)
        stages = stage_costs(dataset, paths, transform, args.profile_images, args.batch, device)
        one_core = 1e3 / stages[-1]["ms_per_image"]
        rows: list[dict[str, Any]] = []
        for workers in args.workers:
            if workers > max_workers:
                rows.append(
                    {
                        "workers": workers,
                        "measured": False,
                        "note": f"not run: {workers} workers > --max-workers {max_workers} (usable CPUs here: "
                        f"{usable_cpus()})",
                    }
                )
                continue
            print(f"  {workers} workers ...", flush=True)
            rows.append(loader_rate(dataset, workers, args.batch, args.batches, device))
        ref = next((r for r in rows if r["measured"] and r["workers"] == 1), None)
        for r in rows:
            if ref is not None:
                if r["measured"]:
                    r["vs_1_worker"] = r["images_per_s"] / ref["images_per_s"]
                else:
                    r["projected_images_per_s"] = r["workers"] * ref["images_per_s"]
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    settings = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("json", "markdown")
    }
    settings.update(
        max_workers=max_workers, crop_size=cfg.data.crop_size, pin_memory=device.type == "cuda", device=str(device)
    )
    transform_desc = (
        f"scale {cfg.data.scale_min}-{cfg.data.scale_max} step {cfg.data.scale_step}, pad, "
        f"{cfg.data.crop_size} crop, {'flip, ' if cfg.data.hflip else ''}normalise"
    )
    return {
        "machine": info,
        "settings": settings,
        "data": {
            "source": "synthetic" if tmp is not None else str(root),
            "split": split,
            "images": len(dataset),
            "mean_jpeg_kb": round(jpeg_kb, 1),
            "transform": transform_desc,
        },
        "rows": rows,
        "stages": stages,
        "one_core_images_per_s": one_core,
    }


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def to_markdown(result: dict[str, Any]) -> str:
    info, s, data = result["machine"], result["settings"], result["data"]
    title = (
        f"Training input path, {info['date']}, {info['cpu']}, {info['cpu_count']} CPUs, torch {info['torch']}; "
        f"`{s['config']}` train transform ({data['transform']}) on {data['images']} "
        f"{'synthetic ' + 'x'.join(map(str, s['image_size'])) if data['source'] == 'synthetic' else data['source']} "
        f"JPEGs (mean {data['mean_jpeg_kb']} KB), batch {s['batch']}, pin_memory "
        f"{'on' if s['pin_memory'] else 'off (no CUDA)'}, copy to {s['device']}; "
        f"1-min load average at start {info['load_average_1min_at_start']}."
    )
    rows = []
    for r in result["rows"]:
        if r["measured"]:
            rows.append(
                [
                    str(r["workers"]),
                    _fmt(r["images_per_s"]),
                    f"{r['s_per_batch'] * 1e3:.0f}",
                    str(r["timed_batches"]),
                    _fmt(r.get("vs_1_worker"), ".2f") + ("x" if "vs_1_worker" in r else ""),
                    "",
                ]
            )
        else:
            proj = r.get("projected_images_per_s")
            rows.append(
                [
                    str(r["workers"]),
                    "-",
                    "-",
                    "-",
                    "-",
                    (f"~{proj:.0f} img/s projected (workers x 1-worker rate); " if proj else "") + r["note"],
                ]
            )
    table = markdown_table(["workers", "img/s", "ms/batch", "timed batches", "vs 1 worker", "note"], rows)
    stage_rows = [
        [
            ("- " if r["part_of_transform"] else "") + r["stage"],
            _fmt(r["ms_per_image"], ".2f"),
            _fmt(r["share"] * 100 if r["share"] is not None else None, ".0f") + ("%" if r["share"] is not None else ""),
            r["note"],
        ]
        for r in result["stages"]
    ]
    stages = markdown_table(["stage (one core)", "ms/image", "share", "note"], stage_rows)
    return "\n".join(
        [
            title,
            "",
            table,
            "",
            f"Per-image cost by stage, main process, one torch + one OpenCV thread; the `-` rows are the "
            f"transform's steps called one by one (the whole call adds albumentations' bookkeeping). "
            f"One core: {result['one_core_images_per_s']:.0f} img/s.",
            "",
            stages,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = parse_args(argv)
    result = run(args)
    markdown = to_markdown(result)
    print(markdown)
    write_outputs(result, markdown, args.json, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
