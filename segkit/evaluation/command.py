"""What ``segkit test`` and ``segkit infer`` do with a loaded model, as functions (no argument parsing)::

    model, cfg = load_eval_model("best.pth")                      # segkit.checkpoint.load
    result = evaluate_model(model, cfg, json_path="val.json")     # cfg.data's val split: metrics, JSON report
    result = segment_images(model, cfg, list_images(Path("photos")), "out")  # <name>.png, <name>_overlay.jpg
    seg = Segmenter.of(model, cfg); label, protocol = seg.label(rgb)         # infer's per-image step, for any frames

Loading what a command names (a checkpoint, an exported file, a checkpoint in a runtime) happens one layer up:
:func:`segkit.export.source.evaluate_checkpoint` and :func:`segkit.export.source.infer_images` load the model and
call these.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from segkit.config import Config, EvalConfig
from segkit.data import (
    DatasetError,
    build_dataset,
    build_eval_transform,
    collate_drop_bad,
    read_image,
    resolve_data_root,
)
from segkit.data.sources import COCO_DEFAULT_SPLIT
from segkit.data.workers import loader_workers
from segkit.evaluation.evaluator import evaluate, protocol_dict
from segkit.evaluation.image import (
    StagedImage,
    finish_labels,
    label_map,
    labels_of_staged,
    run_staged,
    stage_image,
)
from segkit.evaluation.metrics import SegMetrics
from segkit.evaluation.pipeline import BackgroundWriter, ThreadLoader, host_threads, prefetch
from segkit.evaluation.predict import MAX_PIXELS, InferenceError, check_budget, labels_pass_applies, slide_windows
from segkit.evaluation.protocol import fitted_protocol, fixed_input_size, protocol_name, protocol_record
from segkit.evaluation.report import (
    PredictionWriter,
    file_record,
    format_report_json,
    metrics_to_json,
    model_identity,
)
from segkit.evaluation.viz import (
    CONTOURS,
    DEFAULT_ALPHA,
    DEFAULT_CONTOUR,
    class_palette,
    legend_names,
    save_label_png,
    save_legend,
    save_overlay,
)
from segkit.utils.device import resolve_device
from segkit.utils.io import OutputPathError, atomic_write_text, check_output

__all__ = [
    "COCO_DEFAULT_SPLIT",
    "IMAGE_SUFFIXES",
    "EvalResult",
    "InferResult",
    "Segmenter",
    "check_protocol",
    "check_eval_outputs",
    "default_split",
    "evaluate_model",
    "infer_report",
    "list_images",
    "note",
    "output_names",
    "segment",
    "segment_images",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm")

Log = Callable[[str], Any]


def note(message: str) -> None:
    """Write ``message`` on stderr, above a progress bar if one is drawn (the commands' default ``log``)."""
    tqdm.write(message, file=sys.stderr)


# -- segkit test --------------------------------------------------------------------------------------------------


def default_split(cfg: Config) -> str:
    """The split to evaluate when none is given: ``data.val_split``, except for COCO when that split has no
    annotation file (a VOC checkpoint's ``val``), then :data:`COCO_DEFAULT_SPLIT` (``val2017``)."""
    split = cfg.data.val_split
    if cfg.data.dataset == "coco" and not (Path(cfg.data.root) / "annotations" / f"instances_{split}.json").is_file():
        return COCO_DEFAULT_SPLIT
    return split


@dataclass
class EvalResult:
    """What :func:`evaluate_model` found.

    Attributes:
        metrics: the split's metrics; ``metrics.num_images`` 0 when every sample failed to load (nothing scored).
        class_names: the data set's class names (the rows of ``metrics``).
        dataset: ``data.dataset`` evaluated.
        split: the split evaluated.
        report: the JSON report (:func:`segkit.evaluation.report.metrics_to_json`); None when nothing was scored.
        bad_samples_report: the data set's list of the samples left out ('' when none).
    """

    metrics: SegMetrics
    class_names: list[str]
    dataset: str
    split: str
    report: dict[str, Any] | None = None
    bad_samples_report: str = ""

    def extra_means(self) -> list[tuple[str, float | None, str]]:
        """``[(label, mean IoU, what it averages)]`` of the report's other means printed beside the mIoU: MLPerf's
        over classes 1..31 of ``ade20k_top31`` (``miou_mlperf``); empty for other data sets."""
        report = self.report or {}
        if "miou_mlperf" not in report:
            return []
        return [("mIoU MLPerf", report["miou_mlperf"], f"MLPerf's: over classes {report['miou_mlperf_classes']}")]


def check_eval_outputs(
    json_path: str | os.PathLike | None,
    save_pred: str | os.PathLike | None,
    inputs: Mapping[str, Any] | None = None,
) -> None:
    """``segkit test``'s outputs, before the evaluation: ``--json`` a writable file and ``--save-pred`` a writable
    folder, neither of them one of ``inputs`` (:func:`segkit.utils.io.check_output`) nor the other one.

    Raises:
        OutputPathError: with the fix.
    """
    if json_path is not None:
        check_output(json_path, inputs=inputs, flag="--json")
    if save_pred is not None:
        check_output(save_pred, inputs=inputs, kind="folder", flag="--save-pred")
        if json_path is not None and Path(os.path.abspath(json_path)) == Path(os.path.abspath(save_pred)):
            raise OutputPathError(f"--json {json_path} is also --save-pred's folder; name a file outside it.")


def _dataset_inputs(dataset: Any) -> dict[str, Any]:
    """The folders a data set reads its samples from (images, masks, a mask cache), by what they are."""
    masks = [getattr(dataset, attr, None) for attr in ("mask_dir", "cache_dir")]
    return {
        "data set's image folder": getattr(dataset, "image_dir", None),
        "data set's mask folder": [m for m in masks if m is not None],
    }


def evaluate_model(
    model: Any,
    cfg: Config,
    *,
    split: str | None = None,
    device: str | torch.device | None = None,
    identity: Mapping[str, Any] | None = None,
    json_path: str | os.PathLike | None = None,
    save_pred: str | os.PathLike | None = None,
    progress: bool = True,
    max_pixels: int | None = MAX_PIXELS,
    name: str | None = None,
    model_file: str | os.PathLike | None = None,
    log: Log = note,
) -> EvalResult:
    """Evaluate ``model`` on ``split`` of ``cfg.data`` under the protocol ``cfg.eval``: ``segkit test``'s work.

    A relative ``data.root`` is made absolute (read from the current folder); with ``data.skip_bad_samples`` a bad
    sample is left out, not replaced (each scored image counts once), and listed in ``bad_samples_report``. A line
    saying what is evaluated goes to ``log`` first.

    Args:
        model: a segkit model or a runtime's runner (any callable returning ``{"out": logits}``), on ``device``.
        cfg: its effective config (data set, preprocessing, protocol).
        split: default :func:`default_split`.
        device: where inputs go (default: CUDA when available).
        identity: what the report records about the model (default :func:`segkit.evaluation.report.model_identity`).
        json_path: write the JSON report there (atomically), when an image was scored.
        save_pred: write ``<id>.png`` and ``<id>_overlay.jpg`` (ground truth | prediction) per image into this folder.
        progress: show a progress bar.
        max_pixels: pixel budget of one forward pass (None: no limit).
        name: what the log line calls the model (e.g. its file).
        model_file: the checkpoint or exported file the model was read from, recorded in the report with its size,
            time and sha256 (:func:`segkit.evaluation.report.file_record`; default: the model's ``path``, if any).
        log: where the line goes (default: stderr).
    """
    device = resolve_device(device)
    data_line = resolve_data_root(cfg)
    split = split or default_split(cfg)
    transform = build_eval_transform(cfg.model.input_mean, cfg.model.input_std)
    # "drop": with data.skip_bad_samples a bad sample is left out, not replaced (no image counts twice)
    dataset = build_dataset(cfg.data, split, transform, num_classes=cfg.model.num_classes, skip_mode="drop")
    workers = loader_workers(cfg.data.num_workers, log, flag="--num-workers N")  # at most the CPUs (one line)
    if isinstance(model, torch.nn.Module) or device.type != "cpu":
        loader: Any = DataLoader(
            dataset,
            batch_size=1,
            shuffle=False,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            collate_fn=collate_drop_bad,
        )
    else:  # a runtime's runner on the CPU: samples read on threads, no worker processes to start and feed
        loader = ThreadLoader(dataset, collate_drop_bad, workers=workers)  # at least one thread
    check_eval_outputs(json_path, save_pred, _dataset_inputs(dataset))  # never into the data set, before the work
    names = list(dataset.class_names)
    ident = dict(identity) if identity is not None else model_identity(model, cfg)
    # the file's own scheme where it says more than the report's precision: an official uint8 file is "uint8"
    kind = ", ".join(
        str(v) for v in (ident.get("scheme") or ident["precision"], ident["runtime"], ident["quantization"]) if v
    )
    log(
        f"Evaluating {name or type(model).__name__} ({kind}) on {cfg.data.dataset} '{split}' ({len(dataset)} images, "
        f"{dataset.num_classes} classes), protocol: {protocol_name(cfg.eval)}, on {device}; {data_line}"
    )
    writer = None
    if save_pred is not None:
        mean, std = cfg.model.input_mean, cfg.model.input_std
        writer = PredictionWriter(save_pred, mean, std, dataset.palette, names, dataset.ignore_index)
    with BackgroundWriter() as background:  # --save-pred's pictures encoded behind the model, in order
        metrics = evaluate(
            model,
            loader,
            dataset.num_classes,
            ignore_index=dataset.ignore_index,
            device=device,
            protocol=cfg.eval,
            progress=progress,
            on_batch=None if writer is None else lambda *batch: background.submit(writer, *batch),
            max_pixels=max_pixels,
        )
    result = EvalResult(
        metrics, names, cfg.data.dataset, split, bad_samples_report=dataset.bad_samples_report(metrics.bad_samples)
    )
    if metrics.num_images == 0:
        return result
    result.report = metrics_to_json(
        metrics,
        names,
        {**protocol_dict(cfg.eval), "name": protocol_name(cfg.eval), "dataset": cfg.data.dataset, "split": split},
        ident["config"],
        decoder=ident["model"]["decoder"],
        model=ident["model"],
        precision=ident["precision"],
        runtime=ident["runtime"],
        quantization=ident["quantization"],
        model_file=file_record(model_file if model_file is not None else getattr(model, "path", None)),
        data={"dataset": cfg.data.dataset, "root": str(cfg.data.root), "split": split},
    )
    scored = getattr(dataset, "miou_classes", None)  # ADE20K top31: MLPerf's mIoU over classes 1..31
    if scored:
        result.report["miou_mlperf"] = _mean_iou_over(metrics, scored)
        result.report["miou_mlperf_classes"] = f"{min(scored)}..{max(scored)} present in the ground truth"
    if json_path is not None:
        atomic_write_text(json_path, format_report_json(result.report))
    return result


def _mean_iou_over(metrics: SegMetrics, classes: Sequence[int]) -> float | None:
    """The mean IoU over ``classes`` that occur in the ground truth (None when none does)."""
    present = set(metrics.gt_classes.tolist())
    values = [float(metrics.per_class_iou[c]) for c in classes if c in present]
    return sum(values) / len(values) if values else None


# -- segkit infer -------------------------------------------------------------------------------------------------


def list_images(path: str | os.PathLike) -> list[Path]:
    """``path`` itself, or the image files directly inside the folder ``path`` (sorted).

    Raises:
        DatasetError: ``path`` does not exist, or the folder holds no image files.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DatasetError(f"--input {path} does not exist; pass an image file or a folder of images.")
    images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(f"--input folder {path} holds no images (looked for {', '.join(IMAGE_SUFFIXES)}).")
    return images


def output_names(paths: Sequence[Path]) -> list[str]:
    """Output stems: the file stem, made unique (``a.jpg`` and ``a.png`` -> ``a_jpg``, ``a_png``)."""
    stems = [p.stem for p in paths]
    return [f"{p.stem}_{p.suffix.lstrip('.').lower()}" if stems.count(p.stem) > 1 else p.stem for p in paths]


def check_protocol(protocol: EvalConfig, max_pixels: int | None = MAX_PIXELS) -> None:
    """Refuse, before any image, what no image could run: a bad ``slide``, a ``pad_to`` pass over the budget.

    Raises:
        InferenceError: with the fix.
    """
    if protocol.slide is not None:
        slide_windows((1, 1), *(int(v) for v in protocol.slide))
    check_budget(1, (1, 1), pad_to=protocol.pad_to, max_pixels=max_pixels)


def segment(
    model: Any,
    image: np.ndarray,
    cfg: Config,
    device: str | torch.device,
    budget: int | None = MAX_PIXELS,
    protocol: EvalConfig | None = None,
) -> np.ndarray:
    """The label map [H, W] of an RGB image under ``protocol`` (default ``cfg.eval``):
    :func:`segkit.evaluation.image.label_map`."""
    return label_map(model, image, cfg, device, budget, protocol)


@dataclass
class Segmenter:
    """The per-image step of ``segkit infer`` for one model: the protocol an image gets, its label map, and its two
    pictures. :func:`segment_images` runs it over files; any other source of RGB frames can run it the same way::

        seg = Segmenter.of(model, cfg, device="cpu")
        label, protocol = seg.label(rgb)               # InferenceError when the image is over the pixel budget
        seg.write(Path("out"), "frame_0001", rgb, label)

    Attributes:
        fit: give a fixed-size model's protocol (pad to N) the fixed-input protocol for an image larger than N x N
            (:func:`segkit.evaluation.protocol.fitted_protocol`); False: ``cfg.eval`` as it is for every image.
        alpha: weight of the class colours in the overlay.
        contour: class boundaries in the overlay: ``"class"``, ``"white"`` or ``"none"``
            (:data:`segkit.evaluation.viz.CONTOURS`).
    """

    model: Any
    cfg: Config
    device: torch.device
    palette: np.ndarray
    names: list[str]
    max_pixels: int | None = MAX_PIXELS
    fit: bool = True
    alpha: float = DEFAULT_ALPHA
    contour: str = DEFAULT_CONTOUR

    @classmethod
    def of(cls, model: Any, cfg: Config, *, device: str | torch.device | None = None, **options: Any) -> Segmenter:
        """A segmenter with the model's colours and names (``palette``, ``class_names``), else VOC's
        (:func:`segkit.evaluation.viz.class_palette`); ``options``: ``max_pixels``, ``fit``, ``alpha``, ``contour``."""
        num_classes = cfg.model.num_classes
        names = legend_names(num_classes, getattr(model, "class_names", None))
        palette = class_palette(num_classes, getattr(model, "palette", None))
        seg = cls(model, cfg, resolve_device(device), palette, names, **options)
        if not 0.0 <= seg.alpha <= 1.0:
            raise InferenceError(f"alpha must be in [0, 1], got {seg.alpha}; e.g. {DEFAULT_ALPHA} (the default).")
        if seg.contour not in CONTOURS:
            raise InferenceError(f"contour must be one of {', '.join(CONTOURS)}, got {seg.contour!r}.")
        return seg

    def protocol(self, size: tuple[int, int]) -> EvalConfig:
        """The protocol an image of ``size`` (H, W) gets."""
        return fitted_protocol(self.cfg.eval, size) if self.fit else self.cfg.eval

    def fit_protocol(self) -> EvalConfig | None:
        """The protocol an image larger than a fixed-size model's input gets; None when no image is fitted."""
        side = fixed_input_size(self.cfg.eval) if self.fit else None
        return fitted_protocol(self.cfg.eval, (side + 1, side + 1)) if side is not None else None

    def describe(self) -> str:
        """The protocol in words, with the fixed-size fit when it applies."""
        fit = self.fit_protocol()
        if fit is None:
            return protocol_name(self.cfg.eval)
        side = fit.resize_longer
        return f"{protocol_name(self.cfg.eval)}; images larger than {side}x{side}: {protocol_name(fit)}"

    def label(self, rgb: np.ndarray) -> tuple[np.ndarray, EvalConfig]:
        """``(label map [H, W], the protocol used)`` of an RGB uint8 image.

        Raises:
            InferenceError: the image is over the pixel budget under its protocol (the message names the fix).
        """
        protocol = self.protocol((int(rgb.shape[0]), int(rgb.shape[1])))
        return segment(self.model, rgb, self.cfg, self.device, self.max_pixels, protocol), protocol

    def stage(self, rgb: np.ndarray) -> StagedImage:
        """The host work before the model (:func:`segkit.evaluation.image.stage_image`), for a reader thread.

        Raises:
            InferenceError: the image is over the pixel budget under its protocol (the message names the fix).
        """
        protocol = self.protocol((int(rgb.shape[0]), int(rgb.shape[1])))
        return stage_image(self.model, rgb, self.cfg, self.device, self.max_pixels, protocol)

    def run(self, staged: StagedImage) -> Any:
        """The model's work on a staged image (:func:`segkit.evaluation.image.run_staged`); :meth:`finish` makes its
        output the image's label map."""
        return run_staged(self.model, staged, self.cfg, self.device, self.max_pixels)

    def finish(self, staged: StagedImage, out: Any) -> np.ndarray:
        """The label map [H, W] of the image from :meth:`run`'s output (a logits file's argmax, the resize to the
        image: host work, for the writer thread)."""
        return finish_labels(labels_of_staged(self.model, staged, out), staged.size, self.cfg)

    def finish_and_write(
        self, folder: Path, stem: str, staged: StagedImage, out: Any, overlay: bool = True
    ) -> tuple[Path, Path | None]:
        """:meth:`finish` then :meth:`write`: the writer thread's job in ``segkit infer``."""
        return self.write(folder, stem, staged.rgb, self.finish(staged, out), overlay)

    def write(
        self, folder: Path, stem: str, rgb: np.ndarray, label: np.ndarray, overlay: bool = True
    ) -> tuple[Path, Path | None]:
        """Write ``<stem>.png`` (palette label map) and, with ``overlay``, ``<stem>_overlay.jpg`` into ``folder``
        (created); their paths (None: no overlay)."""
        folder.mkdir(parents=True, exist_ok=True)
        png, jpg = folder / f"{stem}.png", (folder / f"{stem}_overlay.jpg" if overlay else None)
        save_label_png(png, label, self.palette, compress_level=1)  # the writer thread's cost, halved
        if jpg is not None:
            save_overlay(jpg, rgb, label, self.palette, self.names, alpha=self.alpha, contour=self.contour)
        return png, jpg


@dataclass
class InferResult:
    """What :func:`segment_images` did.

    Attributes:
        paths: the images it was given.
        output: the output folder (created only when an image was written).
        failed: ``(path, reason)`` of the images skipped: unreadable, or over the pixel budget.
        protocol: the protocol in words (:meth:`Segmenter.describe`).
        fitted: the images a fixed-size model's protocol resized to fit.
        fit_protocol: the protocol those got, in words ('' when the model is not fixed-size).
        report: what ``json_path`` holds (:func:`infer_report`).
    """

    paths: list[Path]
    output: Path
    failed: list[tuple[Path, str]] = field(default_factory=list)
    protocol: str = ""
    fitted: list[Path] = field(default_factory=list)
    fit_protocol: str = ""
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """How many images were segmented."""
        return len(self.paths) - len(self.failed)


def _read_reason(exc: DatasetError) -> str:
    cause = exc.__cause__
    return f"not a readable image ({type(cause).__name__}: {cause})" if cause else f"not a readable image ({exc})"


def segment_images(
    model: Any,
    cfg: Config,
    paths: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    alpha: float = DEFAULT_ALPHA,
    contour: str = DEFAULT_CONTOUR,
    fit: bool = True,
    progress: bool = True,
    max_pixels: int | None = MAX_PIXELS,
    json_path: str | os.PathLike | None = None,
    legend_path: str | os.PathLike | None = None,
    model_file: str | os.PathLike | None = None,
    log: Log = note,
    overlay: bool = True,
    readers: int = 1,
) -> InferResult:
    """Write ``<name>.png`` (the label map in the class colours) and ``<name>_overlay.jpg`` (the prediction over the
    image, with class boundaries and a legend) into ``output`` for each image: ``segkit infer``'s work
    (:class:`Segmenter` per image).

    A line naming the protocol goes to ``log`` first. An image that cannot be read, or that is over the pixel budget
    under its protocol, is skipped with one ``warning: skipping <path>: <reason>`` line to ``log`` and listed in the
    result's ``failed``; the others are still processed. ``output`` is created with the first image written (not at
    all when none is).

    Args:
        fit: a fixed-size model's protocol (pad to N) shrinks an image larger than N x N to fit (:class:`Segmenter`).
        json_path: write :func:`infer_report` there (atomically), also when nothing was segmented.
        legend_path: write a PNG legend of every class of the model there (:func:`segkit.evaluation.viz.save_legend`).
        model_file: the checkpoint or exported file, recorded in the report (default: the model's ``path``, if any).
        overlay: also write ``<name>_overlay.jpg`` (False: label maps only; the JPEG encoding costs about as much
            as an int8 model's forward pass at 513).
        readers: threads decoding the next images while the model runs (:func:`segkit.evaluation.pipeline.prefetch`;
            0: in turn); the files are written behind the model by one thread
            (:class:`segkit.evaluation.pipeline.BackgroundWriter`), in order.

    Raises:
        OutputPathError: ``output``, ``json_path`` or ``legend_path`` is an input, is of the wrong kind or not
            writable, or ``output`` holds the images (before any image is read).
        InferenceError: a protocol no image could run (a bad slide, a pad over the budget), before any image.
    """
    paths = [Path(p) for p in paths]
    seg = Segmenter.of(model, cfg, device=device, max_pixels=max_pixels, fit=fit, alpha=alpha, contour=contour)
    inputs = {"--input": paths}
    # never over or beside the images read (:func:`segkit.utils.io.check_output`), and writable, before any image
    out = check_output(output, inputs=inputs, kind="folder", flag="--output", beside_inputs=False)
    for flag, path in (("--json", json_path), ("--legend", legend_path)):
        if path is not None:
            check_output(path, inputs=inputs, flag=flag)
    check_protocol(cfg.eval, max_pixels)
    fit = seg.fit_protocol()
    result = InferResult(paths, out, protocol=seg.describe(), fit_protocol=protocol_name(fit) if fit else "")
    log(f"Segmenting {len(paths)} image(s) on {seg.device}; protocol: {result.protocol}")
    if legend_path is not None:
        save_legend(legend_path, seg.palette, seg.names)
    records: list[dict[str, Any]] = []
    items = list(zip(paths, output_names(paths)))
    bar = tqdm(total=len(items), desc="infer", unit="img", disable=not progress, dynamic_ncols=True)

    def read_and_stage(item: tuple[Path, str]) -> tuple[np.ndarray, StagedImage | InferenceError]:
        image = read_image(item[0])  # a DatasetError comes back as the item's error
        try:
            return image, seg.stage(image)
        except InferenceError as exc:  # over the pixel budget: skipped by the main loop, with the image's size
            return image, exc

    # decode and prepare the next images while the model runs; finish and encode the outputs behind it
    # (segkit.evaluation.pipeline); torch on one thread when a runtime runs the model (host_threads)
    one_view = labels_pass_applies(model, cfg.eval.scales, cfg.eval.flip, cfg.eval.slide)  # fitting keeps it one view
    with host_threads(model, active=one_view), BackgroundWriter() as writer:
        for (path, stem), fetched in prefetch(read_and_stage, items, workers=readers):
            bar.update()
            record: dict[str, Any] = {"input": str(path)}
            records.append(record)
            image, staged = fetched.value if fetched.value is not None else (None, None)  # RGB uint8 [H, W, 3]
            try:
                if fetched.error is not None:
                    raise fetched.error
                record["size"] = [int(image.shape[0]), int(image.shape[1])]
                if isinstance(staged, InferenceError):
                    raise staged
                label = seg.run(staged)
            except (DatasetError, InferenceError) as exc:  # unreadable, or over the pixel budget: skip it, go on
                reason = (
                    _read_reason(exc)
                    if isinstance(exc, DatasetError)
                    else f"{image.shape[1]}x{image.shape[0]} px: {exc}"
                )
                result.failed.append((path, reason))
                record["skipped"] = reason
                log(f"warning: skipping {path}: {reason}")
                continue
            if staged.protocol is not cfg.eval:
                result.fitted.append(path)
            writer.submit(seg.finish_and_write, out, stem, staged, label, overlay)
            jpg = f"{stem}_overlay.jpg" if overlay else None
            record.update(protocol=protocol_name(staged.protocol), label_map=f"{stem}.png", overlay=jpg)
    bar.close()
    result.report = infer_report(seg, result, records, model_file)
    if json_path is not None:
        atomic_write_text(json_path, format_report_json(result.report))
    return result


def infer_report(
    seg: Segmenter, result: InferResult, images: list[dict[str, Any]], model_file: str | os.PathLike | None = None
) -> dict[str, Any]:
    """``segkit infer --json``: model_file (:func:`segkit.evaluation.report.file_record`), model (config name,
    architecture, precision, runtime), protocol (the model's, name and parameters), fit_larger_images (the protocol
    an image larger than a fixed-size model's input gets; null when none), output, segmented, skipped, and images
    (``input``, ``size`` [H, W], and ``protocol``, ``label_map``, ``overlay`` or ``skipped`` with the reason)."""
    fit = seg.fit_protocol()
    path = model_file if model_file is not None else getattr(seg.model, "path", None)
    return {
        "model_file": file_record(path),
        "model": model_identity(seg.model, seg.cfg),
        "protocol": protocol_record(seg.cfg.eval),
        "fit_larger_images": protocol_record(fit) if fit is not None else None,
        "output": str(result.output),
        "segmented": result.done,
        "skipped": len(result.failed),
        "images": images,
    }
