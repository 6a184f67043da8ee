"""``segkit infer`` on a video: every frame segmented as the same frame given as an image, an overlay video out.

:func:`segment_video` decodes the frames with PyAV (FFmpeg), segments each with infer's per-image step
(:class:`segkit.evaluation.command.Segmenter`: same protocol, same fit of a fixed-size model, same label map as
``segkit infer`` on the frame saved as a PNG), blends the prediction over it (:func:`segkit.evaluation.viz.overlay`,
without the legend, so the video keeps the frame size) and encodes ``<stem>_overlay.mp4`` (H.264) at the input's
size and frame rate; optionally each frame's label map as ``<stem>_labels/<k>.png``. Audio is not copied::

    result = segment_video(model, cfg, "clip.mp4", "out/", labels=True)
    print(result.frames, result.frames_per_second)

PyAV is imported only when a video is read, so the rest of segkit works without it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from segkit.config import Config
from segkit.data.io import label_image
from segkit.errors import SegkitError
from segkit.evaluation.command import InferResult, Log, Segmenter, check_protocol, infer_report, note
from segkit.evaluation.pipeline import host_threads
from segkit.evaluation.predict import MAX_PIXELS, InferenceError, labels_pass_applies
from segkit.evaluation.protocol import protocol_name
from segkit.evaluation.report import format_report_json
from segkit.evaluation.style import DEFAULT_ALPHA, DEFAULT_CONTOUR
from segkit.evaluation.viz import overlay as overlay_image
from segkit.evaluation.viz import save_legend
from segkit.utils.io import OutputPathError, atomic_path, atomic_write_text, check_output

__all__ = [
    "VIDEO_SUFFIXES",
    "VideoError",
    "VideoInfo",
    "VideoResult",
    "is_video",
    "open_video",
    "segment_video",
    "video_frames",
]

# containers read as videos by `segkit infer --input` (any other file is read as an image)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".ogv")
OVERLAY_SUFFIX = "_overlay.mp4"
LABELS_SUFFIX = "_labels"
CRF = 18  # H.264 quality of the overlay video: visually lossless, a few times smaller than crf 0
DEFAULT_RATE = Fraction(25)  # when the container states no frame rate


class VideoError(SegkitError, ValueError):
    """A video that cannot be read: corrupt, not a video, no video stream, no frames, or no PyAV installed."""


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``segkit infer`` reads ``path`` as a video: a path (not a folder) ending in one of
    :data:`VIDEO_SUFFIXES`."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES and not Path(path).is_dir()


def _av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise VideoError(
            f"reading and writing videos needs PyAV, which is not installed ({exc}); install it with `pip install av` "
            "(segkit's dependencies include it: reinstall segkit-deeplab)."
        ) from exc
    return av


def _ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg's reason without the errno and the path PyAV adds (``[Errno 1094995529] Invalid data ...: 'x.mp4'``)."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds, as its container states it.

    Attributes:
        path: the file.
        width, height: the frame size (pixels).
        rate: frames per second (the stream's average rate; :data:`DEFAULT_RATE` when none is stated).
        frames: the frame count the container states (0: not stated; decoding counts them).
        codec: the video codec's name (``h264``, ``ffv1``, ...).
        container: the container format FFmpeg found (``mov,mp4,m4a,3gp,3g2,mj2``, ``matroska,webm``, ...).
        audio_streams: how many audio streams it has (not copied into the overlay).
    """

    path: Path
    width: int
    height: int
    rate: Fraction
    frames: int
    codec: str
    container: str
    audio_streams: int = 0


def open_video(path: str | os.PathLike) -> VideoInfo:
    """Open ``path``, read what it holds and decode its first frame (a video without frames is refused up front).

    Raises:
        VideoError: the file is missing, is not a video FFmpeg can read (corrupt, truncated, another kind of file),
            holds no video stream, holds no frame, or its first frame cannot be decoded.
    """
    info, container = _open(Path(path))
    try:
        first = next(_decode(container, info), None)
    finally:
        container.close()
    if first is None:
        raise _no_frames(info)
    return info


def _no_frames(info: VideoInfo) -> VideoError:
    return VideoError(
        f"--input {info.path} holds no video frames (a {info.codec} stream in '{info.container}' with none decoded); "
        "pass a video with at least one frame."
    )


def _open(path: Path) -> tuple[VideoInfo, Any]:
    av = _av()
    if not path.is_file():
        raise VideoError(f"--input {path} does not exist; pass a video file (e.g. clip.mp4), an image or a folder.")
    try:
        container = av.open(str(path), "r")
    except (av.FFmpegError, OSError) as exc:
        raise VideoError(
            f"--input {path} is not a readable video (FFmpeg: {_ffmpeg_reason(exc)}): the file is corrupt, truncated "
            "or not a video; re-download it or re-encode it (e.g. `ffmpeg -i IN -c:v libx264 fixed.mp4`)."
        ) from exc
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
        fmt = container.format.name
        container.close()
        raise VideoError(
            f"--input {path} holds no video stream (FFmpeg reads it as '{fmt}' with {kinds}); pass a file with video "
            f"in one of {', '.join(VIDEO_SUFFIXES)}, or an image."
        )
    stream = container.streams.video[0]
    ctx = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    info = VideoInfo(
        path=path,
        width=int(ctx.width),
        height=int(ctx.height),
        rate=Fraction(rate) if rate else DEFAULT_RATE,
        frames=int(stream.frames or 0),
        codec=str(ctx.name),
        container=str(container.format.name),
        audio_streams=len(container.streams.audio),
    )
    return info, container


def video_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """The frames of ``path``'s first video stream in presentation order, each RGB uint8 [H, W, 3] (FFmpeg's
    conversion to ``rgb24``: the arrays :func:`segment_video` segments).

    Raises:
        VideoError: as :func:`open_video`, or a frame that cannot be decoded (named by its index).
    """
    info, container = _open(Path(path))
    try:
        yield from _decode(container, info)
    finally:
        container.close()


def _decode(container: Any, info: VideoInfo) -> Iterator[np.ndarray]:
    av = _av()
    frames = container.decode(container.streams.video[0])
    index = 0
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except av.FFmpegError as exc:
            raise VideoError(
                f"--input {info.path}: frame {index} cannot be decoded (FFmpeg: {_ffmpeg_reason(exc)}); the file is "
                "damaged: re-download it or re-encode it (e.g. `ffmpeg -i IN -c:v libx264 fixed.mp4`)."
            ) from exc
        yield frame.to_ndarray(format="rgb24")
        index += 1


@dataclass
class VideoResult:
    """What :func:`segment_video` did.

    Attributes:
        input: the video read.
        overlay: the overlay video written (``<stem>_overlay.mp4``); None when not asked for.
        labels: the folder of per-frame label maps (``<stem>_labels``); None when not asked for.
        frames: frames segmented (every frame of the video).
        size: (height, width) of the frames and of the overlay.
        rate: frames per second of both videos.
        seconds: wall time of decoding, segmenting and encoding every frame (the model's loading excluded).
        protocol: the protocol in words (:meth:`Segmenter.describe`).
        fitted: the frames were larger than a fixed-size model's input and resized to fit it.
        fit_protocol: the protocol they got ('' when the model is not fixed-size).
        audio_streams: audio streams of the input, not copied.
        report: what ``json_path`` holds (:func:`segkit.evaluation.command.infer_report`).
    """

    input: Path
    overlay: Path | None
    labels: Path | None
    frames: int = 0
    size: tuple[int, int] = (0, 0)
    rate: Fraction = DEFAULT_RATE
    seconds: float = 0.0
    protocol: str = ""
    fitted: bool = False
    fit_protocol: str = ""
    audio_streams: int = 0
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        """Frames segmented per second of wall time (decoding and encoding included)."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _rate_text(rate: Fraction) -> str:
    return str(rate.numerator) if rate.denominator == 1 else f"{float(rate):.3f}".rstrip("0")


class _OverlayEncoder:
    """H.264 frames into an MP4 at ``path`` (its suffix may be a temporary one): yuv420p, or yuv444p when a side is
    odd (4:2:0 needs even sides; 4:4:4 keeps the exact size, though some browsers do not play it)."""

    def __init__(self, path: Path, width: int, height: int, rate: Fraction) -> None:
        av = _av()
        if "libx264" not in av.codecs_available:
            raise VideoError(
                "this PyAV's FFmpeg has no H.264 encoder (libx264) to write the overlay video; install PyAV's wheel "
                "from PyPI, which bundles it: pip install --force-reinstall av"
            )
        self.av = av
        self.container = av.open(str(path), "w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        self.stream.options = {"crf": str(CRF)}
        self.index = 0

    def add(self, rgb: np.ndarray) -> None:
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.index
        self.index += 1
        self.container.mux(self.stream.encode(frame))

    def close(self, flush: bool = True) -> None:
        try:
            if flush:
                self.container.mux(self.stream.encode(None))
        finally:
            self.container.close()


def segment_video(
    model: Any,
    cfg: Config,
    path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    labels: bool = False,
    overlay: bool = True,
    alpha: float = DEFAULT_ALPHA,
    contour: str = DEFAULT_CONTOUR,
    fit: bool = True,
    progress: bool = True,
    max_pixels: int | None = MAX_PIXELS,
    json_path: str | os.PathLike | None = None,
    legend_path: str | os.PathLike | None = None,
    model_file: str | os.PathLike | None = None,
    log: Log = note,
) -> VideoResult:
    """Write ``<stem>_overlay.mp4`` into ``output``: every frame of the video ``path`` with its prediction blended
    over it and class boundaries drawn (no legend: the frame keeps its size), at the input's size and frame rate;
    ``segkit infer``'s work on a video. Frame k's label map is the one :func:`segkit.evaluation.command.segment_images`
    gives that frame saved as an image (:class:`Segmenter`).

    The video is written to a temporary file beside its target and renamed onto it when every frame is done (a
    previous ``<stem>_overlay.mp4`` is replaced, as infer replaces its other outputs); nothing is written for a
    video that cannot be read. A line naming the video and the protocol goes to ``log`` first, and one when the
    input's audio is left out.

    Args:
        labels: also write each frame's label map, a palette PNG, as ``<stem>_labels/<k>.png`` (k from 000000).
        overlay: write the overlay video (False: the label maps only, with ``labels``).
        fit: a fixed-size model's protocol (pad to N) shrinks frames larger than N x N to fit (:class:`Segmenter`).
        json_path: write :func:`segkit.evaluation.command.infer_report` there (atomically), the video as its one input.
        legend_path: write a PNG legend of every class of the model there.
        model_file: the checkpoint or exported file, recorded in the report (default: the model's ``path``, if any).
        Others: as :func:`segkit.evaluation.command.segment_images`.

    Raises:
        VideoError: the video is missing, corrupt, not a video, holds no video stream or no frames, or a frame cannot
            be decoded.
        InferenceError: the frames are over the pixel budget under the protocol (the message names the fix), or a
            protocol no frame could run.
        OutputPathError: ``output``, ``json_path`` or ``legend_path`` is the video, holds it, or cannot be written.
    """
    path = Path(path)
    if not overlay and not labels:
        raise InferenceError(
            "overlay=False without labels=True would write nothing; keep the overlay video or ask for the frames' "
            "label maps (segkit infer: --frame-labels with --no-overlay)."
        )
    seg = Segmenter.of(model, cfg, device=device, max_pixels=max_pixels, fit=fit, alpha=alpha, contour=contour)
    inputs = {"--input": [path]}
    out = check_output(output, inputs=inputs, kind="folder", flag="--output", beside_inputs=False)
    for flag, extra in (("--json", json_path), ("--legend", legend_path)):
        if extra is not None:
            check_output(extra, inputs=inputs, flag=flag)
    folder = out / f"{path.stem}{LABELS_SUFFIX}"
    if labels and folder.exists() and not folder.is_dir():
        raise OutputPathError(
            f"--frame-labels writes the folder {folder}, which is an existing file; move it, or leave out --frame-labels."
        )
    check_protocol(cfg.eval, max_pixels)
    info = open_video(path)  # nothing is written or logged for a video that cannot be read
    fit_proto = seg.fit_protocol()
    result = VideoResult(
        input=path,
        overlay=out / f"{path.stem}{OVERLAY_SUFFIX}" if overlay else None,
        labels=folder if labels else None,
        size=(info.height, info.width),
        rate=info.rate,
        protocol=seg.describe(),
        fit_protocol=protocol_name(fit_proto) if fit_proto else "",
        audio_streams=info.audio_streams,
    )
    counted = f"{info.frames} frames" if info.frames else "frames"
    log(
        f"Segmenting {path} ({counted}, {info.width}x{info.height}, {_rate_text(info.rate)} fps) on {seg.device}; "
        f"protocol: {result.protocol}"
    )
    frames = video_frames(path)
    first = next(frames, None)  # before anything is written: a video without frames writes nothing
    if first is None:  # open_video found one: the file changed since
        raise _no_frames(info)
    if info.audio_streams and result.overlay is not None:
        log(
            f"note: the audio of {path} ({info.audio_streams} stream(s)) is not copied into the overlay video; to add "
            f"it back: ffmpeg -i {result.overlay} -i {path} -map 0:v -map 1:a -c copy WITH_AUDIO.mp4"
        )
    if legend_path is not None:
        save_legend(legend_path, seg.palette, seg.names)
    start = time.perf_counter()
    bar = tqdm(total=info.frames or None, desc="infer", unit="frame", disable=not progress, dynamic_ncols=True)
    created = not out.exists()
    try:
        one_view = labels_pass_applies(model, cfg.eval.scales, cfg.eval.flip, cfg.eval.slide)
        with host_threads(model, active=one_view):  # torch on one thread while a runtime runs the model
            first_label = _label(seg, first, result, path)  # over the pixel budget: refused before anything is written
            _write_outputs(seg, result, _labelled(seg, result, path, first, first_label, frames), bar)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a video that fails midway leaves no empty output folder behind
        raise
    finally:
        frames.close()
        bar.close()
    result.seconds = time.perf_counter() - start
    record: dict[str, Any] = {
        "input": str(path),
        "size": [info.height, info.width],
        "protocol": protocol_name(seg.protocol((info.height, info.width))),
        "overlay": result.overlay.name if result.overlay is not None else None,
        "frames": result.frames,
        "frame_rate": _rate_text(info.rate),
        "frames_per_second": round(result.frames_per_second, 2),
        "audio_copied": False if info.audio_streams else None,
    }
    if result.labels is not None:
        record["label_maps"] = result.labels.name
    summary = InferResult([path], out, protocol=result.protocol, fit_protocol=result.fit_protocol)
    result.report = infer_report(seg, summary, [record], model_file)
    if json_path is not None:
        atomic_write_text(json_path, format_report_json(result.report))
    return result


def _labelled(
    seg: Segmenter, result: VideoResult, path: Path, first: np.ndarray, label: np.ndarray, rest: Iterator[np.ndarray]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(frame, label map)`` of every frame, the first one's already predicted."""
    yield first, label
    for rgb in rest:
        yield rgb, _label(seg, rgb, result, path)


def _label(seg: Segmenter, rgb: np.ndarray, result: VideoResult, path: Path) -> np.ndarray:
    """The frame's label map; the fit of a fixed-size model recorded; the budget error names the frames' size."""
    try:
        label, protocol = seg.label(rgb)
    except InferenceError as exc:
        raise InferenceError(f"{path}: frames of {rgb.shape[1]}x{rgb.shape[0]} px: {exc}") from exc
    result.fitted = result.fitted or protocol is not seg.cfg.eval
    return label


def _write_outputs(
    seg: Segmenter, result: VideoResult, frames: Iterator[tuple[np.ndarray, np.ndarray]], bar: tqdm
) -> None:
    """Encode every frame's overlay into ``result.overlay`` and write its label map into ``result.labels`` (each
    when asked for): both staged beside their targets and moved into place only when every frame is done (the label
    maps first, the video last), so a failure midway leaves the previous outputs, or none, as they were."""
    height, width = result.size
    staged_video = atomic_path(result.overlay) if result.overlay is not None else contextlib.nullcontext(None)
    with staged_video as tmp, _staged_folder(result.labels) as stage:
        encoder = _OverlayEncoder(tmp, width, height, result.rate) if tmp is not None else None
        done = False
        try:
            for rgb, label in frames:
                if stage is not None:
                    label_image(label, seg.palette).save(stage / f"{result.frames:06d}.png", format="PNG")
                if encoder is not None:
                    blended = overlay_image(rgb, label, seg.palette, seg.names, seg.alpha, contour=seg.contour)
                    encoder.add(np.asarray(blended)[:height, :width])  # the frame, without the legend beside it
                result.frames += 1
                bar.update(1)
            done = True
        finally:
            if encoder is not None:
                encoder.close(flush=done)


@contextlib.contextmanager
def _staged_folder(folder: Path | None) -> Iterator[Path | None]:
    """A hidden folder beside ``folder`` whose files move into ``folder`` (created; same-named files replaced) when
    the block succeeds; removed in every case. None for None."""
    if folder is None:
        yield None
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        yield stage
        folder.mkdir(exist_ok=True)
        for item in sorted(stage.iterdir()):
            os.replace(item, folder / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
