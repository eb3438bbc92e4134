"""What a cell's Lightning ``Trainer`` is given by name: its strategy and its loggers.

Strategies: single, ddp, fsdp (FSDP2), fsdp1 (GPU only). Loggers: Lightning's CSV logger
always, TensorBoard, Weights & Biases or MLflow when a grid names one (``logger: tensorboard``
or ``logger: {name: wandb, project: ...}``); each optional package is imported only when
asked, behind a one-line install hint. Lightning itself is imported only to build them, so a
grid checks these names without it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# -- strategies ---------------------------------------------------------------------------
STRATEGIES = ("single", "ddp", "fsdp", "fsdp1")


def trainer_kwargs(strategy: str = "single", devices: int = 1, num_nodes: int = 1) -> dict:
    """Keyword arguments for ``lightning.Trainer`` that select a strategy."""
    import torch
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, ModelParallelStrategy

    cuda = torch.cuda.is_available()
    accel = "gpu" if cuda else "cpu"
    if devices == -1:  # every visible GPU (ModelParallelStrategy needs the number)
        devices = max(1, torch.cuda.device_count()) if cuda else 1
    if strategy == "single":
        return {"accelerator": accel, "devices": 1, "strategy": "auto"}
    if strategy == "ddp":
        backend = "nccl" if cuda else "gloo"
        return {"accelerator": accel, "devices": devices, "num_nodes": num_nodes,
                "strategy": DDPStrategy(process_group_backend=backend)}
    if strategy == "fsdp":
        # FSDP2: fully_shard per decoder layer in UnlearningMethod.configure_model.
        world = devices * num_nodes
        return {"accelerator": accel, "devices": devices, "num_nodes": num_nodes,
                "strategy": ModelParallelStrategy(data_parallel_size=world, tensor_parallel_size=1)}
    if strategy == "fsdp1":
        if not cuda:
            raise ValueError("strategy 'fsdp1' (Lightning FSDPStrategy) needs CUDA GPUs; "
                             "use 'fsdp' (FSDP2) on CPU")
        from functools import partial

        from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

        # One FSDP unit per decoder layer of any HF architecture (Llama, Phi, Mistral...),
        # like fully_shard per layer in FSDP2; the rest stays in the root unit.
        policy = partial(lambda_auto_wrap_policy, lambda_fn=is_decoder_layer)
        return {"accelerator": accel, "devices": devices, "num_nodes": num_nodes,
                "strategy": FSDPStrategy(auto_wrap_policy=policy, sharding_strategy="FULL_SHARD")}
    raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")


def is_decoder_layer(module) -> bool:
    """True for a transformer block of a Hugging Face causal LM (``LlamaDecoderLayer``, ...)."""
    return type(module).__name__.endswith("DecoderLayer")


# -- loggers ------------------------------------------------------------------------------
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
