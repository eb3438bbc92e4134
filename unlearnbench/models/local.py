"""A local model directory checked before it is used: a saved model, whole, or one line.

``from_pretrained`` on an empty directory asks to install sentencepiece, and on a truncated
file fails deep inside safetensors; this names the directory, the file and the fix, before
any reference is evaluated.
"""

from __future__ import annotations

import json
from pathlib import Path

from unlearnbench.errors import UserError

# A vocabulary, not only tokenizer_config.json: without one, from_pretrained cannot build a tokenizer.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def check_model_dir(path: str | Path) -> None:
    """Raise a one-line ``UserError`` unless ``path`` holds a config, a tokenizer and whole
    safetensors weights (``save_pretrained`` of a model and its tokenizer)."""
    d = Path(path)
    fix = "save the model and its tokenizer there with save_pretrained (or copy the whole directory again)"
    config = d / "config.json"
    if not config.is_file():
        what = "it is empty" if not any(d.iterdir()) else "not a saved model"
        raise UserError(f"model directory {d} has no config.json ({what}); {fix}")
    try:
        if not isinstance(json.loads(config.read_text(encoding="utf-8")), dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{config} is not valid JSON ({exc}); the file is truncated or damaged: {fix}") from None
    index = d / "model.safetensors.index.json"
    if index.is_file():  # a sharded checkpoint: every shard its index names must be there
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise UserError(f"{index} is not a readable weight index; the file is truncated or damaged: "
                            f"{fix}") from None
        missing = [s for s in shards if not (d / s).is_file()]
        if missing:
            raise UserError(f"model directory {d} lacks weight shard(s) {', '.join(missing)} named by its index; {fix}")
    weights = sorted(d.glob("*.safetensors"))
    if not weights:
        raise UserError(f"model directory {d} has no *.safetensors weights (the harness loads safetensors "
                        f"only); {fix}, with safe_serialization=True")
    for file in weights:
        _check_safetensors(file, fix)
    if not any((d / name).is_file() for name in _TOKENIZER_FILES):
        raise UserError(f"model directory {d} has no tokenizer ({', '.join(_TOKENIZER_FILES)}); "
                        "save it there with tokenizer.save_pretrained")


def _check_safetensors(file: Path, fix: str) -> None:
    """The header parses and the file is as long as the tensors it declares."""
    size = file.stat().st_size
    try:
        with open(file, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 or n > size - 8:
                raise ValueError(f"header of {n} bytes in a file of {size}")
            header = json.loads(fh.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise UserError(f"{file} is not a readable safetensors file ({exc}); it is truncated or damaged: "
                        f"{fix}") from None
    if size < 8 + n + end:
        raise UserError(f"{file} is truncated: its header declares {8 + n + end} bytes, the file has {size}; {fix}")
