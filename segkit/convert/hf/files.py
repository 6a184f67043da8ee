"""Reading a Hugging Face model folder (``config.json`` + weights) and fetching one from the Hub.

The weights file is ``model.safetensors`` (read here, without the ``safetensors`` package: an 8-byte header
length, a JSON header, raw little-endian tensors) or ``pytorch_model.bin`` (``torch.load(weights_only=True)``:
a pickle that needs more than tensors is refused unread). ``hf:ID[@REVISION]`` is downloaded with
``huggingface_hub`` (optional) into the Hub's cache or a folder you name.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from segkit.errors import SegkitError

__all__ = [
    "HF_PREFIX",
    "HFConversionError",
    "HFFolder",
    "download_hub_model",
    "parse_hub_id",
    "read_hf_folder",
    "read_safetensors",
]

HF_PREFIX = "hf:"
SAFETENSORS, TORCH_BIN = "model.safetensors", "pytorch_model.bin"
HUB_FILES = ["config.json", "preprocessor_config.json", SAFETENSORS, TORCH_BIN]
_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class HFConversionError(SegkitError, ValueError):
    """A Hugging Face model folder or Hub id segkit cannot read or map; the message says what and how to fix it."""


@dataclass
class HFFolder:
    """What a model folder holds: ``config.json`` as a dict, the weights, and where they came from."""

    path: Path
    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    weights_file: Path
    preprocessor: dict[str, Any] | None = None
    repo_id: str | None = None
    revision: str | None = None


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file (CPU, copies).

    Raises:
        HFConversionError: the file is truncated or not a safetensors file.
    """
    path = Path(path)
    data = path.read_bytes()
    bad = f"{path} is not a readable safetensors file"
    if len(data) < 8:
        raise HFConversionError(f"{bad} (only {len(data)} bytes); download it again.")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise HFConversionError(f"{bad} (header of {header_len} bytes in a {len(data)}-byte file); download it again.")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except ValueError as exc:
        raise HFConversionError(f"{bad} (header: {_one_line(exc)}); download it again.") from exc
    body = memoryview(data)[8 + header_len :]
    state = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info.get("dtype"))
        start, end = info.get("data_offsets", (0, -1))
        if dtype is None or not 0 <= start <= end <= len(body):
            raise HFConversionError(f"{bad} (tensor {name!r}: dtype {info.get('dtype')}, offsets {start}..{end}).")
        tensor = (
            torch.frombuffer(bytearray(body[start:end]), dtype=dtype) if end > start else torch.empty(0, dtype=dtype)
        )
        state[name] = tensor.reshape(info["shape"])
    return state


def _read_bin(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle of Python objects, truncated, or not a torch file: nothing ran
        raise HFConversionError(
            f"Cannot read {path} with torch.load(weights_only=True) ({_one_line(exc, 120)}); segkit runs no code "
            f"from a pickle. Download the folder's {SAFETENSORS} instead (or convert the file to safetensors)."
        ) from exc
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise HFConversionError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors.")
    return obj


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except ValueError as exc:
        raise HFConversionError(f"{path} is not valid JSON ({_one_line(exc)}); download it again.") from exc
    if not isinstance(obj, dict):
        raise HFConversionError(f"{path} holds a JSON {type(obj).__name__}, expected an object.")
    return obj


def read_hf_folder(path: str | os.PathLike) -> HFFolder:
    """Read ``config.json``, ``preprocessor_config.json`` (if any) and the weights (safetensors preferred).

    Raises:
        HFConversionError: no folder, no ``config.json``, no weights file, a sharded checkpoint, or an unreadable file.
    """
    path = Path(path)
    if not path.is_dir():
        raise HFConversionError(f"Hugging Face model folder not found: {path}.")
    if not (path / "config.json").is_file():
        raise HFConversionError(
            f"{path} has no config.json: a Hugging Face model folder holds config.json and {SAFETENSORS} "
            f"(or {TORCH_BIN}), e.g. as `hf download ID --local-dir {path}` writes it."
        )
    config = _read_json(path / "config.json")
    preprocessor = (
        _read_json(path / "preprocessor_config.json") if (path / "preprocessor_config.json").is_file() else None
    )
    if (path / SAFETENSORS).is_file():
        weights = path / SAFETENSORS
        state = read_safetensors(weights)
    elif (path / TORCH_BIN).is_file():
        weights = path / TORCH_BIN
        state = _read_bin(weights)
    else:
        sharded = sorted(p.name for p in path.glob("*.index.json"))
        what = f"a sharded checkpoint ({sharded[0]}), which segkit does not read" if sharded else "no weights file"
        raise HFConversionError(
            f"{path} has {what}; expected {SAFETENSORS} or {TORCH_BIN} beside config.json. Download them with "
            f"`hf download ID --local-dir {path}`."
        )
    return HFFolder(path=path, config=config, state=state, weights_file=weights, preprocessor=preprocessor)


def parse_hub_id(source: str) -> tuple[str, str | None]:
    """``hf:ORG/NAME[@REVISION]`` -> ``(repo_id, revision)``."""
    spec = source[len(HF_PREFIX) :] if source.startswith(HF_PREFIX) else source
    repo_id, _, revision = spec.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise HFConversionError(
            f"{source!r} is not a Hub id: write hf:ORG/NAME or hf:ORG/NAME@REVISION, e.g. "
            "hf:google/deeplabv3_mobilenet_v2_1.0_513."
        )
    return repo_id, revision or None


def download_hub_model(source: str, local_dir: str | os.PathLike | None = None) -> Path:
    """Download ``hf:ORG/NAME[@REVISION]`` (config and weights only) with ``huggingface_hub``; returns the folder.

    Raises:
        HFConversionError: ``huggingface_hub`` is missing, or the Hub cannot be reached (offline) or refuses the id;
            the message says how to download the folder by hand.
    """
    repo_id, revision = parse_hub_id(source)
    where = "DIR" if local_dir is None else str(local_dir)
    then = "run `segkit convert DIR OUT`" if local_dir is None else "run this again"
    by_hand = (
        f"on a machine with internet run `hf download {repo_id} --local-dir {where}` (older huggingface_hub: "
        f"`huggingface-cli download {repo_id} --local-dir {where}`), copy the folder to {where} here and {then}"
    )
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise HFConversionError(
            f"{source} needs the huggingface_hub package to download: pip install huggingface_hub; or {by_hand}."
        ) from exc
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=HUB_FILES,
            local_dir=None if local_dir is None else str(local_dir),
        )
    except Exception as exc:  # offline, unknown repo, gated, HTTP errors: all one line with the way round
        raise HFConversionError(
            f"Cannot download {source} from the Hugging Face Hub ({_one_line(exc)}); {by_hand}."
        ) from exc
    return Path(folder)
