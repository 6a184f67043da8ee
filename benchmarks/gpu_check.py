"""GPU check: every CUDA path of segkit, run for real on a fresh GPU machine in about 5 minutes.

    python benchmarks/gpu_check.py --out gpu_check_out [--stage NAME ...] [--wheels DIR] [--budget-s 300]
    python benchmarks/gpu_check.py --dry-run --out /tmp/gc     # every stage on CPU, tiny sizes (the test's run)

Stages, in order (``--stage`` runs some alone; ``data`` is added when a stage needs it):

- ``env``: Python, torch, CUDA, GPU, TF32 defaults; which needed packages are missing (with ``--wheels
  DIR`` they are installed from that folder: ``pip install --no-index --find-links DIR``).
- ``data``: a VOC-format tree of synthetic 500x375 JPEGs + palette masks (``--data-dir``), nothing downloaded.
- ``cuda_tests``: ``pytest -m cuda`` when that marker exists, else the test files that skip without CUDA.
- ``ddp_syncbn``: ``torchrun --nproc_per_node 1 tools/train.py ...`` (NCCL) with ``train.sync_bn=true``.
- ``resume``: ``train.deterministic=true``; a run stopped by SIGTERM and resumed with ``--resume`` vs an
  uninterrupted run (max abs weight difference), next to the difference between two uninterrupted runs.
- ``training``: ``benchmarks/training.py --device cuda`` at batch 16, 513 crops: fp32 (TF32 state
  reported), bf16, bf16 + channels_last; segkit voc_mnv2_os16, smp DeepLabV3-MobileNetV2, torchvision
  deeplabv3_mobilenet_v3_large; peak GPU memory.
- ``throughput``: a real ``tools/train.py`` run (bf16 + channels_last, 16 workers) for warm-up + 200
  logged iterations: sustained images/s and whether the loader or the GPU waits (GPU utilisation sampled
  with nvidia-smi, next to the loader's and the bench's rates).
- ``dataloader``: ``benchmarks/dataloader.py`` with 1/2/4/8/16 workers and the host -> device copy.
- ``compile``: the ``training`` models with bf16 + channels_last + ``torch.compile`` (one process per model).

Each stage writes ``OUT/<stage>.json`` (status ok/failed/skipped/timeout, reason, figures) the moment it
ends, and appends a line to ``OUT/summary.md``; subprocess output goes to ``OUT/logs/``. A run cut off
still reports what finished. Stages that need CUDA are skipped on a machine without it, with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python benchmarks/gpu_check.py): the checkout's benchmarks package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
STAGES = ("env", "data", "cuda_tests", "ddp_syncbn", "resume", "training", "throughput", "dataloader", "compile")
PEER_MODELS = ("voc_mnv2_os16", "smp_deeplabv3_mobilenet_v2", "tv_deeplabv3_mobilenet_v3_large")
# import name -> pip name; "core" packages are needed by segkit itself
PACKAGES = {
    "torch": "torch",
    "torchvision": "torchvision",
    "numpy": "numpy",
    "albumentations": "albumentations",
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "tqdm": "tqdm",
    "scipy": "scipy",
    "matplotlib": "matplotlib",
    "tensorboard": "tensorboard",
    "pytest": "pytest",
    "segmentation_models_pytorch": "segmentation-models-pytorch",
    "pycocotools": "pycocotools",
}
OPTIONAL = {
    "segmentation_models_pytorch": "the smp row of the training bench",
    "pycocotools": "COCO data only (not used here)",
    "pytest": "the cuda_tests stage",
}
# per-stage time limits (s); the resume stage gives each of its four runs this limit
LIMITS = {
    "env": 120,
    "data": 60,
    "cuda_tests": 120,
    "ddp_syncbn": 60,
    "resume": 90,
    "training": 120,
    "throughput": 120,
    "dataloader": 60,
    "compile": 180,
}


class Ctx:
    """What every stage needs: arguments, sizes, output folder, budget."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.args, self.out, self.dry = args, args.out, args.dry_run
        self.cuda = torch.cuda.is_available() and not args.dry_run
        self.device = "cuda" if self.cuda else "cpu"
        self.start = time.monotonic()
        self.data = args.data_dir
        tiny = self.dry
        self.crop = 65 if tiny else 513
        self.batch = 2 if tiny else 16
        self.workers = 1 if tiny else 16
        self.images = (6, 2) if tiny else (320, 8)  # train, val
        self.image_size = (160, 120) if tiny else (500, 375)
        self.results: dict[str, dict[str, Any]] = {}
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "PYTHONUNBUFFERED": "1",
        }

    def remaining(self) -> float:
        return self.args.budget_s - (time.monotonic() - self.start)

    def limit(self, stage: str) -> float:
        return max(5.0, min(LIMITS[stage], self.remaining()))


# -- helpers -------------------------------------------------------------------------------------
def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def run_cmd(ctx: Ctx, name: str, cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` with a timeout, output to OUT/logs/<name>.log; returns rc, seconds, timed_out, tail."""
    log = ctx.out / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(
            cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env or ctx.env, start_new_session=True
        )
        try:
            rc, timed_out = proc.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc, timed_out = proc.wait(), True
    tail = log.read_text(errors="replace").splitlines()[-15:]
    return {
        "cmd": " ".join(cmd),
        "rc": rc,
        "seconds": round(time.monotonic() - start, 1),
        "timed_out": timed_out,
        "log": str(log),
        "tail": tail,
    }


def train_cmd(
    ctx: Ctx,
    work_dir: Path,
    iterations: int,
    *,
    sets: list[str] = (),
    torchrun: bool = False,
    resume: bool = False,
    workers: int | None = None,
    batch: int | None = None,
    crop: int | None = None,
) -> list[str]:
    """``python tools/train.py`` (or torchrun) on the check's VOC tree, no validation or checkpoints until the end."""
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
        if torchrun
        else [sys.executable]
    )
    cmd = launcher + [
        str(ROOT / "tools" / "train.py"),
        "--config",
        "voc_mnv2_os16",
        "--data-root",
        str(ctx.data),
        "--work-dir",
        str(work_dir),
        "--device",
        ctx.device,
        "--no-progress",
        "--set",
        "data.train_split=train",
        "data.val_split=val",
        f"train.iterations={iterations}",
        f"train.batch_size={batch or ctx.batch}",
        f"data.crop_size={crop or ctx.crop}",
        f"data.num_workers={ctx.workers if workers is None else workers}",
        "train.val_interval=1000000",
        "train.ckpt_interval=1000000",
        "train.log_interval=1",
        *sets,
    ]
    return cmd + (["--resume"] if resume else [])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line being written
    return out


def model_state(path: Path) -> dict[str, Any]:
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            return ckpt[key]
    return ckpt


def max_abs_diff(a: Path, b: Path) -> float:
    """Largest absolute difference over every floating tensor of two checkpoints' weights and buffers."""
    sa, sb = model_state(a), model_state(b)
    if sa.keys() != sb.keys():
        return float("inf")
    diff = 0.0
    for k, v in sa.items():
        if hasattr(v, "is_floating_point") and v.is_floating_point():
            diff = max(diff, float((v.float() - sb[k].float()).abs().max()) if v.numel() else 0.0)
    return diff


def needs(ctx: Ctx, *, cuda: bool = False, packages: tuple[str, ...] = ()) -> str | None:
    """Why a stage cannot run here, or None."""
    if cuda and not ctx.cuda:
        return "needs CUDA: " + ("--dry-run runs on CPU" if ctx.dry else "torch.cuda.is_available() is False")
    missing = [p for p in packages if p in ctx.results.get("env", {}).get("missing", [])]
    return f"missing packages: {', '.join(missing)} (see env.json)" if missing else None


# -- stages --------------------------------------------------------------------------------------
def stage_env(ctx: Ctx) -> dict[str, Any]:
    code = (
        "import importlib, json, sys; r = {}\n"
        f"for m in {list(PACKAGES)!r}:\n"
        "    try:\n        mod = importlib.import_module(m); r[m] = getattr(mod, '__version__', 'ok')\n"
        "    except Exception as e:\n        r[m] = 'MISSING: ' + type(e).__name__ + ': ' + str(e)[:200]\n"
        "print(json.dumps(r))"
    )

    def probe() -> dict[str, str]:
        res = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=ctx.env,
            timeout=ctx.limit("env"),
        )
        return json.loads(res.stdout.strip().splitlines()[-1])

    versions = probe()
    missing = [m for m, v in versions.items() if str(v).startswith("MISSING")]
    installed = None
    if missing and ctx.args.wheels:
        pip = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(ctx.args.wheels)]
        installed = run_cmd(ctx, "env_pip", pip + [PACKAGES[m] for m in missing], ctx.limit("env"))
        versions = probe()
        missing = [m for m, v in versions.items() if str(v).startswith("MISSING")]
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "versions": versions,
        "missing": missing,
        "pip_install_from_wheels": installed,
    }
    if torch.cuda.is_available():
        info.update(
            gpu=torch.cuda.get_device_name(0),
            gpu_count=torch.cuda.device_count(),
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            bf16_supported=torch.cuda.is_bf16_supported(),
            nccl=torch.distributed.is_nccl_available(),
            tf32={"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
        )
    smi = shutil.which("nvidia-smi")
    if smi:
        res = subprocess.run(
            [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        info["nvidia_smi"] = res.stdout.strip()
    core_missing = [m for m in missing if m not in OPTIONAL]
    if missing:
        py = "".join(platform.python_version_tuple()[:2])
        info["message"] = (
            f"missing: {', '.join(f'{m} (pip: {PACKAGES[m]})' for m in missing)}. This machine has no network: "
            f"bring wheels for Python {platform.python_version()} (cp{py}, {platform.machine()}) built against "
            f"torch {torch.__version__.split('+')[0]}, e.g. elsewhere `pip download --only-binary=:all: "
            f"--python-version {py} --platform manylinux2014_{platform.machine()} --no-deps -d wheels "
            f"{' '.join(PACKAGES[m] for m in missing)}` (+ their dependencies), carry the folder and rerun with "
            f"--wheels wheels. Optional ones only skip: "
            + "; ".join(f"{m}: {why}" for m, why in OPTIONAL.items() if m in missing)
        )
    info["status"] = "failed" if core_missing else "ok"
    if core_missing:
        info["reason"] = f"segkit cannot run without {', '.join(core_missing)}"
    return info


def stage_data(ctx: Ctx) -> dict[str, Any]:
    from benchmarks.dataloader import write_voc_tree

    start = time.monotonic()
    marker = ctx.data / "gpu_check_data.json"
    want = {"train": ctx.images[0], "val": ctx.images[1], "size": list(ctx.image_size)}
    if marker.is_file() and json.loads(marker.read_text()) == want:
        return {"status": "ok", "root": str(ctx.data), **want, "reused": True}
    shutil.rmtree(ctx.data / "VOCdevkit", ignore_errors=True)
    write_voc_tree(ctx.data, ctx.images[0], num_val=ctx.images[1], size=ctx.image_size)
    marker.write_text(json.dumps(want))
    return {"status": "ok", "root": str(ctx.data), **want, "seconds": round(time.monotonic() - start, 1)}


def _cuda_test_selection() -> tuple[list[str], str]:
    try:
        import tomllib

        markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    except Exception:  # no tomllib (Python 3.10) or no markers
        markers = []
    if any(m.split(":")[0].strip() == "cuda" for m in markers):
        return ["tests", "-m", "cuda"], "pytest -m cuda"
    pattern = re.compile(r"skipif\(\s*not torch\.cuda\.is_available\(\)|mark\.cuda|needs_cuda|requires_cuda")
    files = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py") if pattern.search(p.read_text())
    )
    return files, "test files that skip without CUDA: " + ", ".join(files)


def stage_cuda_tests(ctx: Ctx) -> dict[str, Any]:
    why = needs(ctx, cuda=True, packages=("pytest",))
    selection, how = _cuda_test_selection()
    if why:
        return {"status": "skipped", "reason": why, "would_run": how}
    xml = ctx.out / "cuda_tests.junit.xml"
    res = run_cmd(
        ctx,
        "cuda_tests",
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", f"--junitxml={xml}", *selection],
        ctx.limit("cuda_tests"),
    )
    cases: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}
    if xml.is_file():
        for case in ET.parse(xml).iter("testcase"):
            name = f"{case.get('classname')}::{case.get('name')}"
            kind = (
                "failed"
                if case.find("failure") is not None or case.find("error") is not None
                else "skipped"
                if case.find("skipped") is not None
                else "passed"
            )
            cases[kind].append(name)
    status = "timeout" if res["timed_out"] else "ok" if res["rc"] == 0 else "failed"
    return {"status": status, "selection": how, **{k: len(v) for k, v in cases.items()}, "tests": cases, "run": res}


def stage_ddp_syncbn(ctx: Ctx) -> dict[str, Any]:
    wd = ctx.out / "work" / "ddp"
    shutil.rmtree(wd, ignore_errors=True)
    res = run_cmd(
        ctx,
        "ddp_syncbn",
        train_cmd(
            ctx, wd, 4 if ctx.dry else 20, torchrun=True, workers=2 if ctx.cuda else 0, sets=["train.sync_bn=true"]
        ),
        ctx.limit("ddp_syncbn"),
    )
    setup = next((r for r in read_jsonl(wd / "metrics.jsonl") if r.get("kind") == "setup"), {})
    out = {
        "run": res,
        "backend": "nccl" if ctx.cuda else "gloo (CPU)",
        "world_size": setup.get("world_size"),
        "sync_bn_layers": setup.get("sync_bn_layers"),
        "last_iteration": max(
            (r["iter"] for r in read_jsonl(wd / "metrics.jsonl") if r.get("kind") == "train"), default=0
        ),
    }
    ok = res["rc"] == 0 and setup.get("world_size") == 1 and (not ctx.cuda or (setup.get("sync_bn_layers") or 0) > 0)
    out["status"] = "timeout" if res["timed_out"] else "ok" if ok else "failed"
    if not ctx.cuda:
        out["note"] = "SyncBatchNorm is CUDA-only: on CPU segkit keeps BatchNorm (sync_bn_layers 0 expected)"
    return out


def stage_resume(ctx: Ctx) -> dict[str, Any]:
    n = 6 if ctx.dry else 40
    stop_after = n // 2
    base = ctx.out / "work" / "resume"
    shutil.rmtree(base, ignore_errors=True)
    env = {**ctx.env, "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}  # deterministic cuBLAS
    sets = ["train.deterministic=true", "train.seed=3"]
    batch, crop, workers = (2, 65, 0) if ctx.dry else (8, 321, 4)
    runs: dict[str, Any] = {}
    for name in ("uninterrupted_a", "uninterrupted_b"):
        runs[name] = run_cmd(
            ctx,
            f"resume_{name}",
            train_cmd(ctx, base / name, n, sets=sets, batch=batch, crop=crop, workers=workers),
            ctx.limit("resume"),
            env,
        )
    wd = base / "stopped"
    cmd = train_cmd(ctx, wd, n, sets=sets, batch=batch, crop=crop, workers=workers)
    log = ctx.out / "logs" / "resume_stopped.log"
    start = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)
        sent_at = None
        while proc.poll() is None and time.monotonic() - start < ctx.limit("resume"):
            its = [r["iter"] for r in read_jsonl(wd / "metrics.jsonl") if r.get("kind") == "train"]
            if its and max(its) >= stop_after and sent_at is None:
                proc.send_signal(signal.SIGTERM)
                sent_at = max(its)
            time.sleep(0.05)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        rc_stop = proc.wait()
    ckpt = wd / "latest.pth"
    stopped_at = None
    if ckpt.is_file():
        import torch

        stopped_at = torch.load(ckpt, map_location="cpu", weights_only=True).get("iteration")
    runs["stopped"] = {
        "rc": rc_stop,
        "sigterm_sent_after_iteration": sent_at,
        "checkpoint_iteration": stopped_at,
        "seconds": round(time.monotonic() - start, 1),
        "log": str(log),
    }
    runs["resumed"] = run_cmd(
        ctx,
        "resume_resumed",
        train_cmd(ctx, wd, n, sets=sets, batch=batch, crop=crop, workers=workers, resume=True),
        ctx.limit("resume"),
        env,
    )
    finals = {k: base / k / "latest.pth" for k in ("uninterrupted_a", "uninterrupted_b", "stopped")}
    out: dict[str, Any] = {"iterations": n, "batch": batch, "crop": crop, "runs": runs}
    if not all(p.is_file() for p in finals.values()) or runs["resumed"]["rc"] != 0:
        out.update(status="failed", reason="a run did not finish (see runs / logs)")
        return out
    two_runs = max_abs_diff(finals["uninterrupted_a"], finals["uninterrupted_b"])
    resumed = max_abs_diff(finals["uninterrupted_a"], finals["stopped"])
    out.update(
        max_abs_diff_resumed_vs_uninterrupted=resumed,
        max_abs_diff_two_uninterrupted=two_runs,
        resumed_equal=resumed == 0.0,
        status="ok" if resumed <= max(two_runs, 0.0) else "failed",
    )
    if rc_stop != 128 + signal.SIGTERM:
        out.update(status="failed", reason=f"the stopped run exited {rc_stop}, expected {128 + signal.SIGTERM}")
    return out


def _training_bench(ctx: Ctx, name: str, models: list[str], flags: list[str], timeout: float) -> dict[str, Any]:
    out_json = ctx.out / f"{name}.bench.json"
    sizes = (
        ["--batch", "2", "--size", "65", "--steps", "1", "--warmup", "0"]
        if ctx.dry
        else ["--batch", "16", "--size", "513", "--steps", "10", "--warmup", "3"]
    )
    if ctx.dry and "--compile" in flags:
        sizes[-1] = "1"
    cmd = [
        sys.executable,
        str(BENCH / "training.py"),
        "--device",
        ctx.device,
        "--models",
        *models,
        *sizes,
        *flags,
        "--json",
        str(out_json),
    ]
    res = run_cmd(ctx, name, cmd, timeout)
    result = json.loads(out_json.read_text()) if out_json.is_file() and res["rc"] == 0 else None
    rows = {
        r["model"]: {k: r.get(k) for k in ("images_per_s", "step_s", "peak_gpu_mem_mb", "input_size")}
        for r in (result or {}).get("rows", [])
    }
    return {"run": res, "rows": rows, "tf32": (result or {}).get("machine", {}).get("tf32")}


def _models(ctx: Ctx) -> tuple[list[str], str | None]:
    if "segmentation_models_pytorch" in ctx.results.get("env", {}).get("missing", []):
        return [m for m in PEER_MODELS if not m.startswith("smp")], "smp missing: its row is left out"
    return list(PEER_MODELS), None


def stage_training(ctx: Ctx) -> dict[str, Any]:
    models, note = _models(ctx)
    variants = {"fp32": [], "bf16": ["--amp", "bf16"], "bf16_channels_last": ["--amp", "bf16", "--channels-last"]}
    out: dict[str, Any] = {"variants": {}, "note": note}
    for name, flags in variants.items():
        if flags and not ctx.cuda:
            out["variants"][name] = {
                "status": "skipped",
                "reason": "bf16 variants need CUDA (CPU autocast is no GPU proxy)",
            }
            continue
        out["variants"][name] = _training_bench(ctx, f"training_{name}", models, flags, ctx.limit("training") / 3)
        write_json(ctx.out / "training.json", {**out, "status": "running"})  # partial results survive a cut-off
    rates = {
        k: v["rows"].get("voc_mnv2_os16", {}).get("images_per_s")
        for k, v in out["variants"].items()
        if isinstance(v.get("rows"), dict)
    }
    if rates.get("fp32") and rates.get("bf16_channels_last"):
        out["segkit_speedup_bf16_cl_vs_fp32"] = rates["bf16_channels_last"] / rates["fp32"]
    ran = [v for v in out["variants"].values() if "run" in v]
    out["status"] = "ok" if ran and all(v["run"]["rc"] == 0 for v in ran) else "failed"
    return out


def stage_compile(ctx: Ctx) -> dict[str, Any]:
    if ctx.dry:
        return {"status": "skipped", "reason": "torch.compile takes minutes per model on CPU; runs on CUDA only"}
    why = needs(ctx, cuda=True)
    if why:
        return {"status": "skipped", "reason": why}
    models, note = _models(ctx)
    out: dict[str, Any] = {"rows": {}, "note": note, "runs": {}}
    for model in models:  # segkit first: a cut-off run still has it
        r = _training_bench(
            ctx, f"compile_{model}", [model], ["--amp", "bf16", "--channels-last", "--compile"], ctx.limit("compile")
        )
        out["rows"].update(r["rows"])
        out["runs"][model] = r["run"]
        write_json(ctx.out / "compile.json", {**out, "status": "running"})
        if ctx.remaining() < 20:
            out["note"] = (note or "") + " budget spent before all models compiled"
            break
    fp32 = ctx.results.get("training", {}).get("variants", {}).get("fp32", {}).get("rows", {})
    seg = out["rows"].get("voc_mnv2_os16", {}).get("images_per_s")
    if seg and fp32.get("voc_mnv2_os16", {}).get("images_per_s"):
        out["segkit_speedup_vs_fp32_eager"] = seg / fp32["voc_mnv2_os16"]["images_per_s"]
    out["status"] = "ok" if out["runs"] and all(r["rc"] == 0 for r in out["runs"].values()) else "failed"
    return out


def stage_throughput(ctx: Ctx) -> dict[str, Any]:
    warmup, timed = (2, 4) if ctx.dry else (30, 200)
    wd = ctx.out / "work" / "throughput"
    shutil.rmtree(wd, ignore_errors=True)
    sets = ["train.amp=bf16", "train.channels_last=true"] if ctx.cuda else []
    smi, sampler = shutil.which("nvidia-smi"), None
    util_log = ctx.out / "logs" / "throughput_gpu_util.csv"
    if smi and ctx.cuda:
        util_log.parent.mkdir(parents=True, exist_ok=True)
        sampler = subprocess.Popen(
            [smi, "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-lms", "200"],
            stdout=open(util_log, "w"),
            stderr=subprocess.DEVNULL,
        )
    try:
        res = run_cmd(ctx, "throughput", train_cmd(ctx, wd, warmup + timed, sets=sets), ctx.limit("throughput"))
    finally:
        if sampler is not None:
            sampler.terminate()
            sampler.wait()
    records = [r for r in read_jsonl(wd / "metrics.jsonl") if r.get("kind") == "train" and r.get("iter", 0) > warmup]
    out: dict[str, Any] = {
        "run": res,
        "iterations_timed": len(records),
        "warmup_iterations": warmup,
        "batch": ctx.batch,
        "crop": ctx.crop,
        "workers": ctx.workers,
        "settings": sets,
    }
    speeds = [r["images_per_s"] for r in records if r.get("images_per_s")]
    if speeds:
        seconds = sum(ctx.batch / s for s in speeds)
        out["sustained_images_per_s"] = ctx.batch * len(speeds) / seconds
        out["goal_270_images_per_s_met"] = out["sustained_images_per_s"] >= 270
        extra = sorted({k for r in records for k in r if re.search(r"data|wait|load", k)})
        out["data_wait_keys"] = {k: sum(r.get(k, 0) or 0 for r in records) / len(records) for k in extra}
    if util_log.is_file():
        values = [
            float(line.split(",")[0])
            for line in util_log.read_text().splitlines()
            if line.split(",")[0].strip().isdigit()
        ]
        if values:
            busy = values[len(values) // 3 :]  # skip start-up
            out["gpu_util_mean_pct"] = sum(busy) / len(busy)
    bench = ctx.results.get("training", {}).get("variants", {}).get("bf16_channels_last", {}).get("rows", {})
    gpu_rate = bench.get("voc_mnv2_os16", {}).get("images_per_s")
    out["bench_gpu_only_images_per_s"] = gpu_rate
    if "sustained_images_per_s" in out and gpu_rate:
        ratio = out["sustained_images_per_s"] / gpu_rate
        util = out.get("gpu_util_mean_pct")
        out["bottleneck"] = (
            "GPU (the run reaches the synthetic-batch rate)"
            if ratio > 0.85
            else f"input pipeline / host: {ratio:.0%} of the synthetic-batch rate"
            + (f", GPU {util:.0f}% busy" if util is not None else "")
        )
    ok = res["rc"] == 0 and len(speeds) >= timed
    out["status"] = "timeout" if res["timed_out"] else "ok" if ok else "failed"
    return out


def stage_dataloader(ctx: Ctx) -> dict[str, Any]:
    out_json = ctx.out / "dataloader.bench.json"
    flags = (
        ["--quick", "--workers", "0", "1"]
        if ctx.dry
        else ["--workers", "1", "2", "4", "8", "16", "--images", "128", "--batches", "16", "--max-workers", "64"]
    )
    res = run_cmd(
        ctx,
        "dataloader",
        [sys.executable, str(BENCH / "dataloader.py"), *flags, "--json", str(out_json)],
        ctx.limit("dataloader"),
    )
    result = json.loads(out_json.read_text()) if out_json.is_file() and res["rc"] == 0 else {}
    rows = {r["workers"]: r.get("images_per_s") for r in result.get("rows", [])}
    return {
        "status": "timeout" if res["timed_out"] else "ok" if result else "failed",
        "images_per_s_by_workers": rows,
        "stages_ms_per_image": {r["stage"]: r["ms_per_image"] for r in result.get("stages", [])},
        "run": res,
    }


RUNNERS = {
    "env": stage_env,
    "data": stage_data,
    "cuda_tests": stage_cuda_tests,
    "ddp_syncbn": stage_ddp_syncbn,
    "resume": stage_resume,
    "training": stage_training,
    "throughput": stage_throughput,
    "dataloader": stage_dataloader,
    "compile": stage_compile,
}
NEEDS_DATA = {"ddp_syncbn", "resume", "throughput"}


def summary_line(name: str, r: dict[str, Any]) -> str:
    keys = (
        "missing",
        "passed",
        "failed",
        "skipped",
        "sync_bn_layers",
        "max_abs_diff_resumed_vs_uninterrupted",
        "max_abs_diff_two_uninterrupted",
        "segkit_speedup_bf16_cl_vs_fp32",
        "sustained_images_per_s",
        "gpu_util_mean_pct",
        "bottleneck",
        "segkit_speedup_vs_fp32_eager",
        "images_per_s_by_workers",
    )
    facts = "; ".join(f"{k}={r[k]:.4g}" if isinstance(r[k], float) else f"{k}={r[k]}" for k in keys if k in r)
    return (
        f"- **{name}**: {r.get('status')} ({r.get('seconds', 0)} s){' - ' + r['reason'] if r.get('reason') else ''}"
        f"{'; ' + facts if facts else ''}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument(
        "--out", type=Path, default=Path("gpu_check_out"), help="results folder (default gpu_check_out)"
    )
    parser.add_argument(
        "--stage", nargs="+", choices=STAGES, metavar="NAME", help=f"run only these: {', '.join(STAGES)}"
    )
    parser.add_argument("--dry-run", action="store_true", help="every stage on CPU with tiny sizes (CUDA ones skip)")
    parser.add_argument("--wheels", type=Path, help="folder of wheels to install missing packages from (no network)")
    parser.add_argument("--data-dir", type=Path, help="where the VOC tree is written (default: a temp folder)")
    parser.add_argument(
        "--budget-s", type=float, default=300.0, help="total seconds; stages are cut to fit (default 300)"
    )
    args = parser.parse_args(argv)
    if args.data_dir is None:
        args.data_dir = Path(tempfile.gettempdir()) / (
            "segkit_gpu_check_tiny" if args.dry_run else "segkit_gpu_check_data"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the stages in order; each writes OUT/<stage>.json as it ends. Returns 1 when a stage failed."""
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(args)
    chosen = list(args.stage or STAGES)
    if any(s in NEEDS_DATA for s in chosen) and "data" not in chosen:
        chosen.insert(0, "data")
    if "env" not in chosen:
        chosen.insert(0, "env")  # cheap, and later stages read what is missing
    chosen = [s for s in STAGES if s in chosen]
    summary = args.out / "summary.md"
    summary.write_text(
        f"# segkit GPU check{' (dry run, CPU, tiny sizes)' if ctx.dry else ''}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
    )
    failed = False
    for name in chosen:
        print(f"[gpu_check] {name} ...", flush=True)
        start = time.monotonic()
        if ctx.remaining() < 5:
            result = {"status": "skipped", "reason": f"budget of {args.budget_s:.0f} s spent"}
        elif ctx.results.get("env", {}).get("status") == "failed" and name != "env":
            result = {"status": "skipped", "reason": "env check failed: " + ctx.results["env"].get("reason", "")}
        else:
            try:
                result = RUNNERS[name](ctx)
            except Exception as exc:  # a broken stage must not stop the others
                result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        result["seconds"] = round(time.monotonic() - start, 1)
        ctx.results[name] = result
        write_json(args.out / f"{name}.json", result)
        line = summary_line(name, result)
        with open(summary, "a") as f:
            f.write(line + "\n")
        print(line, flush=True)
        failed |= result["status"] in ("failed", "timeout")
    print(f"[gpu_check] done in {time.monotonic() - ctx.start:.0f} s; results in {args.out}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
