"""The training engine: the loop (``loop``), resumable state (``state``), signals, the work dir, and ``segkit train``
as one function (``command``).

from segkit.engine import train
result = train(segkit.load_config("demo_mnv2_os16"), work_dir="work_dirs/demo")
"""

from __future__ import annotations

from segkit.engine.command import train_command, training_config
from segkit.engine.loop import TrainingDiverged, build_training, check_finite, exit_code, train, train_step, validate
from segkit.engine.state import Training
from segkit.engine.workdir import CheckpointWriteError, WorkDirError

__all__ = [
    "CheckpointWriteError",
    "Training",
    "TrainingDiverged",
    "WorkDirError",
    "build_training",
    "check_finite",
    "exit_code",
    "train",
    "train_command",
    "train_step",
    "training_config",
    "validate",
]
