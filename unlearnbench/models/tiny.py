"""The tiny model family the harness trains for the stand-ins.

tokenizer (BPE on the stand-in's text) → **base** (pre-trained on general text) → the
fine-tuned roles (TOFU: **target** on ``full``, **retain** on ``retainXX``, same recipe).
What each is trained on is the benchmark's ``TinyRecipe``. Each artefact is saved with ``save_pretrained`` under a
directory named by a hash of everything that determines it, so it loads exactly like a
hub model and a second build is a cache hit.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from unlearnbench.numerics import pinned_threads

# Bump when the training code changes what a key produces. 4: HF warm-up from lr 0. 5: every
# build runs on the pinned thread count (numerics.pinned_threads), whichever command starts it;
# a family that `unlearnbench train` or a script built before ran on all cores, differs from a
# grid job's build (docs/reproducibility.md §3) and must not be reused.
RECIPE_VERSION = 5


def _key(**parts) -> str:
    blob = json.dumps({"recipe": RECIPE_VERSION, **parts}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


PROGRESS = "[family]"  # the grid shows this build's lines (runner.run)


def _build_atomically(out: Path, build, label: str = "") -> Path:
    """Run ``build(tmp_dir)`` and rename into ``out``; a crash leaves no partial model.

    Grid jobs run side by side (runner.schedule), so two of them may need the same model at
    once: an ``flock`` on ``.<name>.lock`` beside it makes the second wait for the first's
    build and then load it, instead of training it a second time."""
    if _built(out):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{PROGRESS} {label or out.name}: another job is building it; waiting", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if _built(out):  # another process built it while this one waited
            return out
        return _build_unlocked(out, build, label)


def _built(out: Path) -> bool:
    return (out / "config.json").exists() or (out / "tokenizer.json").exists()


def _build_unlocked(out: Path, build, label: str) -> Path:
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        from unlearnbench.models.progress import stage

        with pinned_threads(), stage(PROGRESS, label or out.name):  # the same model from any command
            build(tmp)
        if out.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def train_tokenizer(texts: list[str], vocab_size: int, out_dir: Path):
    """Byte-level BPE trained on ``texts``, wrapped as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    bos = tok.token_to_id("<s>")
    # Like Llama's tokenizer: BOS added, EOS left to the caller (collation appends it).
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                       special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", model_max_length=4096)
    fast.save_pretrained(out_dir)
    return fast


def new_model(tiny, tokenizer, seed: int):
    """A randomly initialised Llama-architecture model of the tiny config."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=tiny.hidden_size,
        intermediate_size=tiny.intermediate_size, num_hidden_layers=tiny.num_layers,
        num_attention_heads=tiny.num_heads, num_key_value_heads=tiny.num_heads,
        max_position_embeddings=tiny.max_len, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)


class TinyFamily:
    """Builds (or finds in the cache) the tokenizer, base and fine-tuned models of a stand-in.

    ``recipe`` (a ``benchmarks.base.TinyRecipe``) says what each is trained on; the model
    spec's ``TinyConfig`` (with the recipe's overrides) says how.
    """

    def __init__(self, spec, recipe, root: Path | None = None):
        from dataclasses import replace

        from unlearnbench.files import cache_root

        if spec.tiny is None:
            raise ValueError(f"model {spec.name!r} is not a tiny model; it has hub checkpoints")
        self.spec = spec
        self.recipe = recipe
        self.tiny = replace(spec.tiny, **recipe.tiny) if recipe.tiny else spec.tiny
        self.root = Path(root or cache_root() / "models")

    def _dir(self, stage: str, **parts) -> Path:
        key = _key(tiny=asdict(self.tiny), synth=self.recipe.data_key, stage=stage, **parts)
        return self.root / f"{self.spec.name}-{stage}-{key}"

    def tokenizer_dir(self) -> Path:
        out = self._dir("tokenizer")
        build = self.recipe.build_tokenizer or train_tokenizer
        return _build_atomically(out, lambda tmp: build(self.recipe.tokenizer_texts(), self.tiny.vocab_size, tmp),
                                 f"{self.spec.name} tokenizer")

    def base(self) -> Path:
        """The base model, pre-trained on the recipe's base text."""
        out = self.path("base", "", 0)

        def build(tmp: Path) -> None:
            from unlearnbench.models.finetune import fit_causal_lm

            tok = _load_tokenizer(self.tokenizer_dir())
            model = new_model(self.tiny, tok, seed=0)
            fit_causal_lm(model, tok, texts=self.recipe.base_texts(), epochs=self.tiny.pretrain_epochs,
                          lr=self.tiny.pretrain_lr, tiny=self.tiny, seed=0, desc=f"{self.spec.name} base",
                          progress=PROGRESS)
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)

        return _build_atomically(out, build, f"{self.spec.name} base")

    def path(self, role: str, split: str, seed: int = 0) -> Path:
        """Where ``checkpoint(role, split, seed)`` is, or will be once built; builds nothing."""
        if role in self.recipe.finetuned_roles:
            parts = self.recipe.ft_key(role, split) if self.recipe.ft_key else {"role": role, "split": split}
            return self._dir("ft", **parts, seed=seed)
        if seed != 0:
            raise ValueError(f"role {role!r} is the base model of this stand-in; it has no other seeds")
        return self._dir("base")

    def finetuned(self, role: str, split: str, seed: int = 0) -> Path:
        """The base fine-tuned on what the recipe gives ``role`` for ``split`` (same recipe for all)."""
        out = self.path(role, split, seed)

        def build(tmp: Path) -> None:
            from transformers import AutoModelForCausalLM

            from unlearnbench.models.finetune import fit_causal_lm

            base = self.base()
            tok = _load_tokenizer(base)
            model = AutoModelForCausalLM.from_pretrained(base)
            qa, texts = self.recipe.finetune(role, split)
            # Replay of the base's pre-training text: a 1M-parameter model otherwise
            # overwrites its general knowledge in fine-tuning (a 7B model keeps it by
            # capacity), and utility would measure that artefact. Every fine-tuned role
            # gets the same replay, so the forget data stays the only difference.
            if self.tiny.replay:
                texts = list(texts or []) + self.recipe.base_texts()
            fit_causal_lm(model, tok, qa=qa, texts=texts, epochs=self.tiny.finetune_epochs,
                          lr=self.tiny.finetune_lr, tiny=self.tiny, seed=seed,
                          template=self.spec.template, desc=f"{self.spec.name} {role} {split} seed {seed}",
                          progress=PROGRESS)
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)

        return _build_atomically(out, build, f"{self.spec.name} {role} ({split}, seed {seed})")

    def checkpoint(self, role: str, split: str, seed: int = 0) -> Path:
        """A role the recipe fine-tunes, or else the base itself (WMDP unlearns the base)."""
        if role in self.recipe.finetuned_roles:
            return self.finetuned(role, split, seed)
        self.path(role, split, seed)  # the base has no other seeds
        return self.base()


def _load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)
