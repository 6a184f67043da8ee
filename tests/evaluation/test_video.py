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
import torch
from PIL import Image

from segkit.cli import main
from segkit.evaluation.command import segment_images
from segkit.evaluation.video import VideoError, is_video, segment_video, video_frames

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


def test_an_exported_model_in_its_runtime_segments_frames_as_it_segments_images(
    tiny_ckpt: Path, clip: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    pytest.importorskip(
        "onnxruntime", reason="the deploy extra is not installed (pip install 'segkit-deeplab[deploy]')"
    )
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "cache"))  # --runtime exports the checkpoint there once
    model = ["--checkpoint", tiny_ckpt, "--runtime", "onnxruntime", *QUIET]
    rc, err = segkit_infer([*model, "--input", clip, "--output", tmp_path / "out", "--frame-labels"], capsys)
    assert rc == 0, err
    assert len(read_video(tmp_path / "out" / "clip_overlay.mp4")[0]) == FRAMES
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    for k, rgb in enumerate(video_frames(clip)):
        if k in (0, FRAMES - 1):
            Image.fromarray(rgb).save(frames_dir / f"{k:06d}.png")
    rc, err = segkit_infer([*model, "--input", frames_dir, "--output", tmp_path / "img"], capsys)
    assert rc == 0, err
    for k in (0, FRAMES - 1):
        video_label = np.array(Image.open(tmp_path / "out" / "clip_labels" / f"{k:06d}.png"))
        assert np.array_equal(video_label, np.array(Image.open(tmp_path / "img" / f"{k:06d}.png"))), k


class ColourModel(torch.nn.Module):
    """Logits from each pixel's colour (a fixed 1x1 convolution over 5 classes): labels follow the moving shapes, so
    a frame segmented out of turn gives another label map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 5, 1)
        weights = [[0, 0, 0], [2, -1, -1], [-1, 2, -1], [-1, -1, 2], [1, 1, -2]]
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor(weights, dtype=torch.float32)[:, :, None, None])
            self.conv.bias.copy_(torch.tensor([0.5, 0.0, 0.0, 0.0, 0.0]))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.conv(x)}


def test_frame_k_is_segmented_as_frame_k_given_as_an_image(clip: Path, tiny_cfg, synth_root: Path, tmp_path) -> None:
    cfg, model = tiny_cfg(synth_root), ColourModel().eval()
    result = segment_video(model, cfg, clip, tmp_path / "out", device="cpu", labels=True, progress=False, log=print)
    assert (result.frames, result.size, result.rate, result.audio_streams) == (FRAMES, (HEIGHT, WIDTH), RATE, 1)
    assert result.overlay == tmp_path / "out" / "clip_overlay.mp4" and result.frames_per_second > 0
    frames = list(video_frames(clip))
    paths = []
    for k, rgb in enumerate(frames):
        paths.append(tmp_path / "frames" / f"{k:06d}.png")
        paths[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(rgb).save(paths[-1])
    segment_images(model, cfg, paths, tmp_path / "img", device="cpu", progress=False, log=print)
    labels = [np.array(Image.open(result.labels / f"{k:06d}.png")) for k in range(FRAMES)]
    for k in range(FRAMES):
        assert np.array_equal(labels[k], np.array(Image.open(tmp_path / "img" / f"{k:06d}.png"))), k
        assert len(np.unique(labels[k])) >= 3, k  # the shapes and the background get their own classes
    assert all(not np.array_equal(a, b) for a, b in zip(labels, labels[1:]))  # every frame's labels differ


def damaged_midway(clip: Path, path: Path) -> int:
    """``clip`` with 2000 random bytes over a later frame, written to ``path``: the index of the frame FFmpeg then
    cannot decode (the first try, over a few places, where decoding fails after a good frame)."""
    data = clip.read_bytes()
    rng = np.random.default_rng(0)
    for fraction in (0.7, 0.3, 0.8, 0.6, 0.4):
        start = int(len(data) * fraction)
        path.write_bytes(data[:start] + rng.integers(0, 256, 2000, dtype=np.uint8).tobytes() + data[start + 2000 :])
        decoded = 0
        try:
            for _ in video_frames(path):
                decoded += 1
        except VideoError:
            if decoded:
                return decoded
    raise AssertionError("no damage made decoding fail midway")


def test_a_frame_that_cannot_be_decoded_stops_the_run_and_leaves_nothing(
    tiny_ckpt: Path, tmp_path: Path, capsys
) -> None:
    video = tmp_path / "damaged.mp4"
    bad = damaged_midway(write_clip(tmp_path / "clip.mp4", frames=12), video)
    out = tmp_path / "out"
    argv = ["--checkpoint", tiny_ckpt, "--input", video, "--output", out, "--frame-labels", *QUIET]
    rc, err = segkit_infer(argv, capsys)
    assert rc == 2
    assert err.splitlines()[-1].startswith(f"error: --input {video}: frame {bad} cannot be decoded (FFmpeg: "), err
    assert not out.exists()  # neither the overlay, nor the label maps of the frames before, nor an empty folder


def test_no_overlay_writes_the_frame_labels_only(tiny_ckpt: Path, clip: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    base = ["--checkpoint", tiny_ckpt, "--input", clip, "--output", out, "--no-overlay", *QUIET]
    rc, err = segkit_infer(base, capsys)
    assert (
        rc == 2
        and err == "error: --no-overlay on a video leaves nothing to write; add --frame-labels for the label maps.\n"
    )
    rc, err = segkit_infer([*base, "--frame-labels"], capsys)
    assert rc == 0, err
    assert "audio" not in err and "overlay.mp4" not in err  # no video written, so no word about its audio
    assert sorted(p.name for p in out.iterdir()) == ["clip_labels"]
    assert len(list((out / "clip_labels").iterdir())) == FRAMES


def test_frame_labels_on_images_is_a_usage_error(tiny_ckpt: Path, tmp_path: Path, capsys) -> None:
    Image.fromarray(frame_picture(0)).save(tmp_path / "photo.png")
    argv = [
        "--checkpoint",
        tiny_ckpt,
        "--input",
        tmp_path / "photo.png",
        "--output",
        tmp_path / "out",
        "--frame-labels",
    ]
    rc, err = segkit_infer([*argv, *QUIET], capsys)
    assert rc == 2 and err.startswith("error: --frame-labels applies to a video --input") and len(err.splitlines()) == 1
