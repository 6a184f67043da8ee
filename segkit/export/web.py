"""``segkit export --format web``: a static folder that segments images in the browser with onnxruntime-web.

    report = export_web("best.pth", "site/", input_size=(513, 513))          # fp32 ONNX, exported and verified
    report = export_web("best.pth", "site/", model_file="model_int8.onnx")   # an int8 file of segkit quantize

The folder holds ``index.html`` and ``app.js`` (the page: an image the user picks or the camera, the overlay with
a legend, the latency per frame), ``model.onnx``, ``segkit.json`` (classes, palette, input size, normalisation,
where onnxruntime-web comes from) and onnxruntime-web's files, copied from ``node_modules/onnxruntime-web`` at the
pinned :data:`ORT_WEB_VERSION` (the folder then works offline) or, when that package is absent, linked from the
public CDN at the same version. The model file is verified in ONNX Runtime (native) against the PyTorch model
before anything appears at ``out``: the folder is built beside it and renamed into place only when it passed.

The page runs WASM by default and WebGPU when the browser has it and the model is float. WASM threads need
cross-origin isolation (the server sends ``Cross-Origin-Opener-Policy: same-origin`` and
``Cross-Origin-Embedder-Policy: require-corp``); without it the page runs one thread. :func:`serve` is a static
server that sends them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from segkit.export.errors import ExportError
from segkit.export.onnx import DEFAULT_EXPORTER, OPSET
from segkit.export.verify import AGREE_MIN, VerifyReport
from segkit.utils.io import check_output, stop_on_sigterm

__all__ = [
    "CDN",
    "ISOLATION_HEADERS",
    "ORT_WEB_ENV",
    "ORT_WEB_VERSION",
    "WebReport",
    "export_web",
    "find_ort_web",
    "serve",
]

ORT_WEB_VERSION = "1.31.1"  # the onnxruntime-web the page is tested with; package.json pins the same version
ORT_WEB_ENV = "SEGKIT_ORT_WEB"  # a node_modules/onnxruntime-web folder (or the node_modules holding it)
CDN = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ORT_WEB_VERSION}/dist/"
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}
INT8_AGREE_MIN = 0.99  # what segkit quantize requires of an int8 file (segkit.quantize.check; quantize sits above)
MODEL_FILE = "model.onnx"
PAGE_CONFIG = "segkit.json"
MARKER = "segkit-web"  # segkit.json's "format": a folder holding it is a web export that may be replaced
TEMPLATE = Path(__file__).with_name("web_template")
# the loader script: with WebGPU (JSEP) for a float model, the plain WASM one for an int8 model
LOADERS = {"fp32": "ort.min.mjs", "int8": "ort.wasm.min.mjs"}
_INT8_OPS = {"QuantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}
_METADATA_KEYS = (
    "config_name",
    "num_classes",
    "class_names",
    "palette",
    "mean",
    "std",
    "input_size",
    "input",
    "output",
    "layout",
    "input_layout",
    "align_corners",
    "argmax_fusion",
    "segkit_version",
)


@dataclass
class WebReport:
    """What :func:`export_web` wrote, where onnxruntime-web comes from, and the model file's verification."""

    path: Path
    precision: str  # "fp32" or "int8"
    input_size: tuple[int, int]
    metadata: dict[str, Any]
    runtime: str  # "copied <files> from <folder>" or "linked <CDN URL>"
    verification: VerifyReport | None = None
    agree_min: float = AGREE_MIN
    written: bool = True  # False: the verification failed and nothing was written to ``path``
    files: list[str] = field(default_factory=list)

    def line(self) -> str:
        """``Wrote site/ (web page, fp32 model.onnx 513x513, onnxruntime-web 1.31.1 copied from ...)``."""
        h, w = self.input_size
        return (
            f"Wrote {self.path}/ (web page, {self.precision} {MODEL_FILE} {h}x{w}, input {self.metadata['input']}, "
            f"output {self.metadata['output']}); onnxruntime-web {ORT_WEB_VERSION}: {self.runtime}"
        )

    def passed(self) -> bool:
        """True when the verification passed or was skipped."""
        if self.verification is None:
            return True
        rel_ok = self.precision == "int8" or self.verification.rel is None or self.verification.passed()
        return self.verification.agreement >= self.agree_min and rel_ok

    def failure(self) -> str:
        """What a failed verification means, on one line."""
        return (
            f"verification failed: the {self.precision} model needs pixel agreement >= {100 * self.agree_min:.1f}% "
            f"with the PyTorch model in ONNX Runtime{'' if self.precision == 'int8' else ' (and relative logit difference <= 1e-3)'}; "
            f"the folder was not written to {self.path} (what was there is unchanged; --no-verify writes it unchecked)."
        )


def find_ort_web(ort_web: str | os.PathLike | None = None) -> Path | None:
    """The ``onnxruntime-web`` package folder: ``ort_web``, else ``$SEGKIT_ORT_WEB``, else ``node_modules`` in the
    current folder or one above it, or beside segkit's source tree (a checkout); None when none is there.

    Raises:
        ExportError: a folder given (argument or environment) that is not the package, or a package at another
            version than :data:`ORT_WEB_VERSION`.
    """
    given = ort_web if ort_web is not None else os.environ.get(ORT_WEB_ENV) or None
    if given is not None:
        found = _package_folder(Path(given))
        if found is None:
            how = "--ort-web" if ort_web is not None else f"${ORT_WEB_ENV}"
            raise ExportError(
                f"{how} {given} is not an onnxruntime-web package folder (no package.json and dist/ of onnxruntime-web); "
                "pass node_modules/onnxruntime-web after `npm ci` in the segkit checkout, or leave it out to link the CDN."
            )
        return _check_version(found)
    starts = [Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[2]]
    for folder in starts:
        found = _package_folder(folder / "node_modules" / "onnxruntime-web")
        if found is not None:
            return _check_version(found)
    return None


def _package_folder(path: Path) -> Path | None:
    for candidate in (path, path / "onnxruntime-web", path / "node_modules" / "onnxruntime-web"):
        manifest = candidate / "package.json"
        if manifest.is_file() and (candidate / "dist").is_dir():
            try:
                if json.loads(manifest.read_text()).get("name") == "onnxruntime-web":
                    return candidate
            except (OSError, ValueError):
                continue
    return None


def _check_version(package: Path) -> Path:
    version = json.loads((package / "package.json").read_text()).get("version")
    if version != ORT_WEB_VERSION:
        raise ExportError(
            f"{package} holds onnxruntime-web {version}, but segkit's page is made for {ORT_WEB_VERSION}; run "
            f"`npm ci` in the segkit checkout (package.json pins it), or pass --ort-web with version {ORT_WEB_VERSION}."
        )
    return package


def runtime_files(package: Path, precision: str) -> list[Path]:
    """The loader script of ``precision`` and the ``.mjs``/``.wasm`` pair it imports (named inside the loader)."""
    dist = package / "dist"
    loader = dist / LOADERS[precision]
    if not loader.is_file():
        raise ExportError(f"{loader} is missing: the onnxruntime-web package is incomplete; run `npm ci` again.")
    names = sorted(set(re.findall(r"ort-wasm-simd-threaded[a-z.]*?\.mjs", loader.read_text(errors="replace"))))
    if not names:
        raise ExportError(f"{loader} names no ort-wasm-simd-threaded*.mjs file; is {package} onnxruntime-web?")
    files = [loader]
    for name in names:
        files += [dist / name, dist / name.replace(".mjs", ".wasm")]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ExportError(
            f"{dist} lacks {', '.join(missing)}: the onnxruntime-web package is incomplete; run `npm ci`."
        )
    return files


def is_int8(path: str | os.PathLike) -> bool:
    """True when the ONNX file holds quantized operators (QDQ or QLinear/Integer ones)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return any(node.op_type in _INT8_OPS for node in graph.node)


def export_web(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model_file: str | os.PathLike | None = None,
    ort_web: str | os.PathLike | None = None,
    format: str = "web",  # noqa: A002 - --format: "web" (the CLI passes what it was given)
    dynamic: bool = False,
    input_size: int | Sequence[int] | None = None,
    input: str = "float",  # noqa: A002 - --input
    output: str = "logits",
    argmax_fusion: bool = False,
    opset: int = OPSET,
    exporter: str = DEFAULT_EXPORTER,
    verify_root: str | os.PathLike | None = None,
    verify_images: int = 8,
    skip_verify: bool = False,
    config: str | os.PathLike | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    log: Callable[[str], Any] | None = None,
) -> WebReport:
    """Write the web folder ``out`` for ``checkpoint`` (see the module docstring).

    Args:
        checkpoint: the segkit checkpoint (the model exported, or the reference ``model_file`` is verified against).
        out: the folder to write; an existing one must be empty or a previous web export (it is replaced).
        model_file: an ONNX file to ship instead of exporting one (e.g. ``segkit quantize --format onnx``'s int8
            file): it must carry segkit's metadata and a static input size.
        ort_web: the onnxruntime-web package folder (default: :func:`find_ort_web`).
        format, dynamic: what ``segkit export`` was given: only "web" and False (the page feeds one fixed size).
        input_size, input, output, argmax_fusion, opset, exporter, verify_root, verify_images, skip_verify, config,
            overrides: as :func:`~segkit.export.command.export_checkpoint` (``input_size``, ``input``, ``output``,
            ``argmax_fusion``, ``opset``, ``exporter`` only when the model is exported here).
        log: called with :meth:`WebReport.line` once the folder is at ``out``.

    Raises:
        ExportError: a ``model_file`` that is not a static segkit ONNX file, options that do not apply, an
            onnxruntime-web folder that is not the pinned package, or anything ``export_checkpoint`` refuses.
        OutputPathError: ``out`` is an input, a file, a folder holding other files, or cannot be written.
    """
    from segkit.export.command import _check_verify_options, _export_inputs, check_argmax_fusion

    if format != "web":
        raise ExportError(
            f"--model and --ort-web are options of --format web{'' if format is None else f', not {format}'}; add "
            "--format web, or leave them out."
        )
    if dynamic:
        raise ExportError("--format web needs a static input size (the page feeds one size); drop --dynamic.")
    out = Path(out)
    inputs = _export_inputs(checkpoint, config, verify_root) | {"--model": model_file}
    check_output(out, inputs=inputs, kind="folder", flag="--out")
    _check_replaceable(out)
    check_argmax_fusion(argmax_fusion, output)
    _check_verify_options(verify_root, verify_images, skip_verify)
    if model_file is not None:
        _check_model_file(Path(model_file), input_size, input, output, argmax_fusion)
    package = find_ort_web(ort_web)  # before any export: a wrong package folder is found in a second
    with _staged_folder(out) as stage:
        onnx_path = stage.path / MODEL_FILE
        if model_file is None:
            report = _export_fp32(
                checkpoint,
                onnx_path,
                input_size=input_size,
                input=input,
                output=output,
                argmax_fusion=argmax_fusion,
                opset=opset,
                exporter=exporter,
                verify_root=verify_root,
                verify_images=verify_images,
                skip_verify=skip_verify,
                config=config,
                overrides=overrides,
            )
        else:
            report = _copy_verified(
                checkpoint, Path(model_file), onnx_path, verify_root, verify_images, skip_verify, config, overrides
            )
        report.path = out
        if not report.passed():
            stage.keep = report.written = False
            return report
        report.runtime, report.files = _write_page(stage.path, report, package)
    if log is not None:
        log(report.line())
    return report


def _check_model_file(path: Path, input_size: Any, input: str, output: str, argmax_fusion: bool = False) -> None:  # noqa: A002
    from segkit.runtimes.metadata import read_metadata

    if path.suffix.lower() != ".onnx" or not path.is_file():
        raise ExportError(
            f"--model {path} is not an ONNX file; the web page runs .onnx files: pass one made by segkit export "
            "--format onnx or segkit quantize --format onnx, or leave --model out to export the checkpoint."
        )
    if input_size is not None or input != "float" or output != "logits" or argmax_fusion:
        raise ExportError(
            f"--input-size, --input, --output and --argmax-fusion shape the exported file, but --model {path} is shipped as it is; "
            "leave them out (the file's metadata gives them), or leave --model out to export the checkpoint."
        )
    try:
        meta = read_metadata(path)
    except Exception as exc:  # noqa: BLE001 - a corrupt file: said in one line
        raise ExportError(f"--model {path} cannot be read as ONNX ({type(exc).__name__}); pass a .onnx file.") from exc
    if meta is None:
        raise ExportError(
            f"--model {path} carries no segkit metadata (classes, palette, normalisation); pass a file written by "
            "segkit export or segkit quantize."
        )
    if meta.get("dynamic") or not meta.get("input_size"):
        raise ExportError(
            f"--model {path} has a dynamic input size; the page feeds one fixed size: pass a file exported with "
            "--input-size H W (segkit quantize always writes one)."
        )


def _export_fp32(checkpoint: Any, path: Path, **options: Any) -> WebReport:
    """The checkpoint as fp32 ONNX at ``path``, verified as ``segkit export --format onnx`` verifies it."""
    from segkit.export.command import export_checkpoint

    done = export_checkpoint(checkpoint, path, format="onnx", **options)
    return WebReport(
        path, "fp32", tuple(done.input_size), _page_metadata(done.metadata), "", done.verification, written=done.written
    )


def _copy_verified(
    checkpoint: Any,
    source: Path,
    path: Path,
    verify_root: Any,
    verify_images: int,
    skip_verify: bool,
    config: Any,
    overrides: Any,
) -> WebReport:
    """``source`` copied to ``path`` and run in ONNX Runtime next to the checkpoint's PyTorch model."""
    from segkit.checkpoint.load import load_model
    from segkit.export.command import refuse_qat_checkpoint
    from segkit.export.verify import verification_images, verify
    from segkit.runtimes.metadata import read_metadata

    shutil.copyfile(source, path)
    meta = read_metadata(path) or {}
    precision = "int8" if is_int8(path) else "fp32"
    report = WebReport(
        path,
        precision,
        tuple(meta["input_size"]),
        _page_metadata(meta),
        "",
        agree_min=INT8_AGREE_MIN if precision == "int8" else AGREE_MIN,
    )
    if skip_verify:
        return report
    refuse_qat_checkpoint(checkpoint, config, overrides)
    model = load_model(checkpoint, config=config, overrides=overrides, device="cpu")
    cfg = model.segkit_config
    root = verify_root if verify_root is not None else cfg.data.root
    images, found = verification_images(
        root if Path(root).exists() else None, limit=verify_images, split=cfg.data.val_split
    )
    report.verification = verify(model, path, images, runtime="onnxruntime", source=found)
    return report


def _page_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What the page reads of a file's segkit metadata (the full config stays inside the ONNX file)."""
    page = {key: meta.get(key) for key in _METADATA_KEYS}
    n = page["num_classes"] or len(page["palette"] or []) or 0
    if page["class_names"] is None:
        page["class_names"] = [f"class {i}" for i in range(n)]
    if page["palette"] is None:  # a fixed pseudo-random palette, as the page would otherwise draw nothing
        page["palette"] = [[(37 * i) % 256, (97 * i + 80) % 256, (173 * i + 40) % 256] for i in range(n)]
    return page


def _write_page(folder: Path, report: WebReport, package: Path | None) -> tuple[str, list[str]]:
    """The page, its script, ``segkit.json`` and onnxruntime-web (copied, or the CDN named) into ``folder``."""
    for item in TEMPLATE.iterdir():
        if item.is_file() and not item.name.startswith("."):
            shutil.copyfile(item, folder / item.name)
    loader = LOADERS[report.precision]
    if package is not None:
        files = runtime_files(package, report.precision)
        for item in files:
            shutil.copyfile(item, folder / item.name)
        runtime = f"copied {', '.join(f.name for f in files)} from {package / 'dist'} (works offline)"
        source = {"source": "copied", "script": f"./{loader}", "wasm_paths": "./"}
    else:
        runtime = f"linked {CDN}{loader} (no node_modules/onnxruntime-web here: the page needs the network)"
        source = {"source": "cdn", "script": f"{CDN}{loader}", "wasm_paths": CDN}
    verification = report.verification
    page = {
        "format": MARKER,
        "version": 1,
        "model": {"file": MODEL_FILE, "precision": report.precision, "bytes": (folder / MODEL_FILE).stat().st_size},
        "runtime": {"package": "onnxruntime-web", "version": ORT_WEB_VERSION, **source},
        "verification": None
        if verification is None
        else {"runtime": verification.runtime, "images": verification.num_images, "agreement": verification.agreement},
        "metadata": report.metadata,
    }
    (folder / PAGE_CONFIG).write_text(json.dumps(page, indent=1) + "\n")
    return runtime, sorted(p.name for p in folder.iterdir())


def _check_replaceable(out: Path) -> None:
    """OutputPathError unless ``out`` is absent, an empty folder or a previous web export (replaced as a whole)."""
    from segkit.utils.io import OutputPathError

    if not out.is_dir() or not any(out.iterdir()) or _is_web_export(out):
        return
    raise OutputPathError(
        f"--out {out} is a folder holding other files, which a web export would replace; name a new or empty folder "
        f"(a folder written by segkit export --format web is replaced as a whole)."
    )


def _is_web_export(folder: Path) -> bool:
    try:
        return json.loads((folder / PAGE_CONFIG).read_text()).get("format") == MARKER
    except (OSError, ValueError, AttributeError):
        return False


@dataclass
class _Stage:
    path: Path
    keep: bool = True


class _staged_folder:  # noqa: N801 - used as a context manager like segkit.utils.io.staged_output
    """Build a folder beside ``out`` and swap it in only when the block succeeds with ``keep`` True.

    A previous web export at ``out`` is moved aside, the new folder renamed onto ``out``, and the old one removed;
    an exception, ``keep = False`` or an interruption (SIGINT, SIGTERM) leaves ``out`` as it was.
    """

    def __init__(self, out: Path) -> None:
        self.out = out

    def __enter__(self) -> _Stage:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.stage = _Stage(Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", suffix=".tmp", dir=self.out.parent)))
        self.sigterm = stop_on_sigterm()
        self.sigterm.__enter__()
        return self.stage

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        old = None
        try:
            if kind is None and self.stage.keep:
                os.chmod(self.stage.path, 0o777 & ~_umask())
                if self.out.is_dir():
                    old = self.out.with_name(f".{self.out.name}.{os.getpid()}.old")
                    os.replace(self.out, old)
                os.replace(self.stage.path, self.out)
        finally:
            self.sigterm.__exit__(kind, value, tb)
            shutil.rmtree(self.stage.path, ignore_errors=True)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _Handler(SimpleHTTPRequestHandler):
    """Static files with the cross-origin isolation headers (WASM threads), quietly."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript", ".wasm": "application/wasm"}

    def end_headers(self) -> None:
        for key, value in ISOLATION_HEADERS.items():
            self.send_header(key, value)
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def serve(
    folder: str | os.PathLike, host: str = "127.0.0.1", port: int = 0, isolated: bool = True
) -> ThreadingHTTPServer:
    """A static HTTP server of ``folder`` (not started: call ``serve_forever``, e.g. in a thread).

    ``isolated``: send the cross-origin isolation headers (:data:`ISOLATION_HEADERS`) that WASM threads need;
    False serves plain files, as most static hosts do (the page then runs one thread). ``port`` 0 picks a free one
    (``server.server_address[1]``).
    """
    handler = partial(_Handler if isolated else _PlainHandler, directory=str(folder))
    return ThreadingHTTPServer((host, port), handler)


class _PlainHandler(SimpleHTTPRequestHandler):
    extensions_map = _Handler.extensions_map

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass
