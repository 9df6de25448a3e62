"""The training run moved to `chainrule.cli.run`; this module keeps `chainrule.run` imports
working (re-exports only)."""

from .cli.config import (
    CNN_LR,
    DEFAULT_BATCH,
    DEFAULT_LR,
    NUM_CLASSES,
    RunError,
    TrainConfig,
    batches_per_epoch,
    build_model,
    class_names,
    describe_model,
    load_data,
    optimizer_for,
    replay_schedule,
    schedule_epochs,
    schedule_for,
    split_validation,
)
from .cli.run import IMAGE_SHAPE, PLOTS, PREPROCESSING, Run, blas_threads, module_rngs, write_json

__all__ = ["CNN_LR", "DEFAULT_BATCH", "DEFAULT_LR", "IMAGE_SHAPE", "NUM_CLASSES", "PLOTS",
           "PREPROCESSING", "Run", "RunError", "TrainConfig", "batches_per_epoch",
           "blas_threads", "build_model", "class_names", "describe_model", "load_data",
           "module_rngs", "optimizer_for", "replay_schedule", "schedule_epochs", "schedule_for",
           "split_validation", "write_json"]
