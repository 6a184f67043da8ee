"""What ``segkit train`` does, as one function: a config name (or path) and its overrides -> a finished run.

    code = train_command("demo_mnv2_os16", ["train.iterations=100"], work_dir="work_dirs/demo")

``training_config`` is the config such a run trains with (``segkit train --print-config`` prints it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from segkit.config import Config, load_config
from segkit.engine.loop import exit_code, train
from segkit.engine.workdir import WorkDirError

__all__ = ["train_command", "training_config"]


def training_config(
    config: str | os.PathLike, overrides: Sequence[str] = (), *, data_root: str | None = None, seed: int | None = None
) -> Config:
    """``config`` with ``overrides`` (``section.key=value``, later ones win), then ``data.root=data_root`` and
    ``train.seed=seed`` where given.

    Raises:
        ConfigError: an unknown config, key or value.
    """
    overrides = list(overrides)
    if data_root:
        overrides.append(f"data.root={data_root}")
    if seed is not None:
        overrides.append(f"train.seed={seed}")
    return load_config(config, overrides)


def train_command(
    config: str | os.PathLike,
    overrides: Sequence[str] = (),
    *,
    data_root: str | None = None,
    seed: int | None = None,
    work_dir: str | os.PathLike | None = None,
    resume: bool | str | os.PathLike | None = None,
    overwrite: bool = False,
    device: str | None = None,
    progress: bool = True,
    reschedule: bool = False,
) -> int:
    """Train :func:`training_config` (see :func:`segkit.engine.loop.train` for the other arguments); returns the exit
    code: 0 done, 128 + N stopped by signal N (``latest.pth`` saved, the resume command logged).

    Raises:
        SegkitError: a usage, config or data error (exit code 2), or a failed run (``exit_code`` 1: diverged, a
            checkpoint that could not be written).
    """
    if resume and overwrite:
        raise WorkDirError("--resume continues the run in the work dir and --overwrite replaces it; pass one of them.")
    cfg = training_config(config, overrides, data_root=data_root, seed=seed)
    if reschedule and not resume:
        raise WorkDirError("--reschedule changes the schedule of a resumed run; pass it with --resume.")
    if not progress and cfg.data.dataset == "synthetic":  # --no-progress: generate it here, without its bar
        from segkit.data.synthetic import generate_synthetic_voc

        d = cfg.data
        generate_synthetic_voc(
            d.root, d.synthetic_num_train, d.synthetic_num_val, d.synthetic_image_size, d.synthetic_seed, progress=False
        )
    result = train(
        cfg,
        work_dir=work_dir,
        resume=resume,
        device=device,
        progress=progress,
        overwrite=overwrite,
        reschedule=reschedule,
    )
    return exit_code(result)
