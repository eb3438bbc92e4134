"""Experiment loggers of a cell: Lightning's CSV logger always, TensorBoard, Weights & Biases or
MLflow when a grid names one (``logger: tensorboard`` or ``logger: {name: wandb, project: ...}``).
Each optional package is imported only when asked, behind a one-line install hint."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# name -> (the package it needs, Lightning's class)
LOGGERS = {
    "csv": (None, "CSVLogger"),
    "tensorboard": ("tensorboard", "TensorBoardLogger"),
    "wandb": ("wandb", "WandbLogger"),
    "mlflow": ("mlflow", "MLFlowLogger"),
}


def logger_spec(value) -> dict:
    """``None`` / a name / ``{name: ..., <logger options>}`` as ``{"name": ..., **options}``, checked."""
    if value is None:
        return {}
    spec = {"name": value} if isinstance(value, str) else dict(value)
    name = spec.get("name")
    if name not in LOGGERS:
        raise ValueError(f"unknown logger {name!r}; choose one of {', '.join(LOGGERS)} "
                         "(a CSV log is always written)")
    package = LOGGERS[name][0]
    if package and importlib.util.find_spec(package) is None:
        raise ValueError(f"logger {name!r} needs the {package} package: pip install {package}")
    return spec


def make_loggers(log_dir: Path, run_name: str, spec: dict | None = None) -> list:
    """The CSV logger under ``log_dir``, plus the named one if any."""
    import lightning.pytorch.loggers as loggers

    out = [loggers.CSVLogger(save_dir=str(log_dir), name="", version="")]
    spec = dict(spec or {})
    name = spec.pop("name", None)
    if name and name != "csv":
        cls = getattr(loggers, LOGGERS[name][1])
        if name == "tensorboard":
            out.append(cls(save_dir=str(log_dir), name="tensorboard", version="", **spec))
        elif name == "wandb":
            out.append(cls(name=run_name, save_dir=str(log_dir), **spec))
        else:  # mlflow
            out.append(cls(run_name=run_name, save_dir=str(log_dir / "mlruns"), **spec))
    return out
