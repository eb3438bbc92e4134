"""Lightning strategies by name: single, ddp, fsdp (FSDP2), fsdp1 (GPU only)."""

from __future__ import annotations

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
