"""``segkit infer`` on a video: the overlay video keeps the frame count, size and rate, frame k's label map is the one
``segkit infer`` gives frame k saved as an image, and unreadable videos are one-line errors (exit 2) that write
nothing. The videos are written here with PyAV (H.264 crf 0, 4:4:4: lossless but for the RGB <-> YUV rounding)."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segkit.cli import main
from segkit.evaluation.video import VideoError, is_video, video_frames

av = pytest.importorskip("av", reason="PyAV is not installed (pip install av)")

pytestmark = pytest.mark.usefixtures("one_thread")

QUIET = ["--no-progress", "--device", "cpu"]
FRAMES, WIDTH, HEIGHT, RATE = 6, 96, 72, 10


def frame_picture(k: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Frame ``k`` of the test clip: a textured background with a square and a disc moving across it."""
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([(xx * 5 + yy * 3) % 256, (yy * 7) % 256, (xx * 2 + 60) % 256], axis=-1).astype(np.uint8)
    rgb[10:40, 4 + 9 * k : 34 + 9 * k] = (220, 40, 30)
    rgb[((xx - 70 + 6 * k) ** 2 + (yy - 50) ** 2) < 15**2] = (20, 200, 90)
    return rgb


def write_clip(path: Path, frames: int = FRAMES, width: int = WIDTH, height: int = HEIGHT, audio: bool = False) -> Path:
    """A lossless H.264 clip (``frames`` frames at :data:`RATE` fps), with a silent audio stream if asked."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = width, height, "yuv444p"
        video.options = {"crf": "0", "preset": "ultrafast"}
        sound = container.add_stream("aac", rate=8000) if audio else None
        for k in range(frames):
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame_picture(k, width, height), format="rgb24")))
        container.mux(video.encode(None))
        if sound is not None:
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
            samples.sample_rate = 8000
            container.mux(sound.encode(samples))
            container.mux(sound.encode(None))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("video") / "clip.mp4", audio=True)


def segkit_infer(argv: list[object], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """``segkit infer ARGV``: (exit code, stderr); nothing goes to stdout."""
    rc = main(["infer", *map(str, argv)])
    out, err = capsys.readouterr()
    assert out == ""
    return rc, err


def read_video(path: Path) -> tuple[list[np.ndarray], Fraction, str]:
    """Every frame (RGB), the stream's average rate and its codec."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, stream.average_rate, stream.codec_context.name


def test_overlay_video_and_frame_labels_equal_infer_on_each_frame_as_an_image(
    tiny_ckpt: Path, clip: Path, tmp_path: Path, capsys
) -> None:
    out, report = tmp_path / "out", tmp_path / "video.json"
    argv = ["--checkpoint", tiny_ckpt, "--input", clip, "--output", out, "--frame-labels", "--json", report, *QUIET]
    rc, err = segkit_infer(argv, capsys)
    assert rc == 0, err
    lines = err.splitlines()
    assert (
        lines[0] == f"Segmenting {clip} ({FRAMES} frames, {WIDTH}x{HEIGHT}, {RATE} fps) on cpu; protocol: whole image"
    )
    assert lines[1].startswith(f"note: the audio of {clip} (1 stream(s)) is not copied into the overlay video")
    assert lines[2:-1] == [
        f"Wrote {out / 'clip_overlay.mp4'} ({FRAMES} frames, {WIDTH}x{HEIGHT}, {RATE} fps)",
        f"Wrote the label maps of {FRAMES} frames to {out / 'clip_labels'}",
        f"Wrote {report}",
    ]
    assert lines[-1].startswith(f"{FRAMES} frames in ") and lines[-1].endswith(" frames/s")
    assert sorted(p.name for p in out.iterdir()) == ["clip_labels", "clip_overlay.mp4"]  # no temporary file left

    overlay_frames, rate, codec = read_video(out / "clip_overlay.mp4")
    assert (len(overlay_frames), overlay_frames[0].shape, rate, codec) == (FRAMES, (HEIGHT, WIDTH, 3), RATE, "h264")
    assert sorted(p.name for p in (out / "clip_labels").iterdir()) == [f"{k:06d}.png" for k in range(FRAMES)]

    # the same frames, decoded here and given to `segkit infer` as images
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    decoded = list(video_frames(clip))
    for k, rgb in enumerate(decoded):
        assert np.abs(rgb.astype(int) - frame_picture(k)).max() <= 3  # lossless YUV: RGB<->YUV rounding only
        Image.fromarray(rgb).save(frames_dir / f"{k:06d}.png")
    as_images = ["--checkpoint", tiny_ckpt, "--input", frames_dir, "--output", tmp_path / "img", *QUIET]
    rc, err = segkit_infer(as_images, capsys)
    assert rc == 0, err
    for k in range(FRAMES):
        video_label = np.array(Image.open(out / "clip_labels" / f"{k:06d}.png"))
        image_label = np.array(Image.open(tmp_path / "img" / f"{k:06d}.png"))
        assert video_label.shape == (HEIGHT, WIDTH) and np.array_equal(video_label, image_label), k
        # the overlay frame is the image overlay without its legend (up to H.264 at crf 18)
        image_overlay = np.asarray(Image.open(tmp_path / "img" / f"{k:06d}_overlay.jpg"))[:HEIGHT, :WIDTH]
        assert np.abs(overlay_frames[k].astype(int) - image_overlay.astype(int)).mean() < 6, k
    assert any(not np.array_equal(o, f) for o, f in zip(overlay_frames, decoded))  # the prediction is drawn

    data = json.loads(report.read_text())
    (entry,) = data["images"]
    assert entry["frames"] == FRAMES and entry["frame_rate"] == str(RATE) and entry["size"] == [HEIGHT, WIDTH]
    assert entry["overlay"] == "clip_overlay.mp4" and entry["label_maps"] == "clip_labels"
    assert entry["audio_copied"] is False and entry["frames_per_second"] > 0
    assert data["model_file"]["path"].endswith("tiny.pth")


def test_odd_sized_frames_keep_their_size_and_a_rerun_replaces_the_overlay(
    tiny_ckpt: Path, tmp_path: Path, capsys
) -> None:
    odd = write_clip(tmp_path / "odd.mkv", frames=2, width=35, height=27)
    out = tmp_path / "out"
    for _ in range(2):  # infer replaces its own outputs, as for images
        rc, err = segkit_infer(["--checkpoint", tiny_ckpt, "--input", odd, "--output", out, *QUIET], capsys)
        assert rc == 0, err
    frames, rate, _ = read_video(out / "odd_overlay.mp4")
    assert (len(frames), frames[0].shape, rate) == (2, (27, 35, 3), RATE)
    assert sorted(p.name for p in out.iterdir()) == ["odd_overlay.mp4"]  # no label maps unless asked


def zero_frame_avi(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=RATE)
        stream.width, stream.height = WIDTH, HEIGHT
        container.start_encoding()


def audio_only(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        samples.sample_rate = 8000
        container.mux(stream.encode(samples))
        container.mux(stream.encode(None))


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("random.mp4", lambda p: p.write_bytes(os.urandom(4096)), "is not a readable video (FFmpeg: Invalid data"),
        ("notes.avi", lambda p: p.write_text("not a video\n" * 50), "is not a readable video (FFmpeg: Invalid data"),
        ("sound.mkv", audio_only, "holds no video stream (FFmpeg reads it as 'matroska,webm' with audio)"),
        ("empty.avi", zero_frame_avi, "holds no video frames (a mpeg4 stream in 'avi' with none decoded)"),
    ],
)
def test_an_unreadable_video_is_one_line_exit_2_and_writes_nothing(
    tiny_ckpt: Path, tmp_path: Path, capsys, name: str, make, message: str
) -> None:
    video = tmp_path / name
    make(video)
    out = tmp_path / "out"
    rc, err = segkit_infer(["--checkpoint", tiny_ckpt, "--input", video, "--output", out, *QUIET], capsys)
    assert rc == 2 and not out.exists()
    assert err.startswith(f"error: --input {video} {message}") and len(err.splitlines()) == 1, err  # before the model


def test_frames_over_the_pixel_budget_are_refused_before_anything_is_written(
    tiny_ckpt: Path, clip: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    argv = ["--checkpoint", tiny_ckpt, "--input", clip, "--output", out, "--max-pixels", "5000", *QUIET]
    rc, err = segkit_infer(argv, capsys)
    assert rc == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: {clip}: frames of {WIDTH}x{HEIGHT} px: ") and "--resize-longer" in last, err
    assert not out.exists()


def test_the_output_may_not_be_the_videos_folder(tiny_ckpt: Path, tmp_path: Path, capsys) -> None:
    video = write_clip(tmp_path / "clip.mp4", frames=1)
    rc, err = segkit_infer(["--checkpoint", tiny_ckpt, "--input", video, "--output", tmp_path, *QUIET], capsys)
    assert rc == 2 and err.startswith(f"error: --output {tmp_path} holds the --input {video}"), err


def test_video_suffixes_pick_the_video_path() -> None:
    assert is_video("a/clip.MP4") and is_video("b.mkv") and is_video("c.webm")
    assert not is_video("photo.jpg") and not is_video("frames/")


def test_a_missing_video_is_a_video_error(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="does not exist"):
        next(video_frames(tmp_path / "nope.mp4"))
