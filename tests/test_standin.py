"""The stand-in skeleton (data/standin.py, the StandIn mixin of benchmarks/base.py): versioned cache keys,
fresh directories after a version bump, the concurrent-safe writer, the shared word maker."""

from __future__ import annotations

import dataclasses
import random

import pytest

from unlearnbench.benchmarks.halueval import HaluEvalSynthBenchmark
from unlearnbench.data import (copyright_synth, detox_synth, halueval_synth, harmful_synth, muse_synth,
                               tofu_synth, wmdp_synth)
from unlearnbench.data.hub_layout import write_dir
from unlearnbench.data.standin import Letters

SMALL_HALUEVAL = halueval_synth.SynthConfig(n_countries=6, pool_size=8, n_normal=6)


def test_default_keys_are_the_data_keys_the_committed_results_record():
    # The literals are the "data_key" of every committed result.json under results/: the
    # version entering the key (from version 2) must not change them at version 1.
    keys = {g.name: g.data_key(g.config()) for g in (
        tofu_synth.STAND_IN, wmdp_synth.STAND_IN, muse_synth.STAND_IN, copyright_synth.STAND_IN,
        harmful_synth.STAND_IN, halueval_synth.STAND_IN, detox_synth.STAND_IN)}
    assert keys == {"tofu-synth": "825814c6be66", "wmdp-synth": "wmdp-a96e3b268ee7",
                    "muse-synth": "muse-b915b0f5ea6e", "copyright-synth": "copyright-44a417f66720",
                    "harmful-synth": "harmful-3bbbdbb745bf", "halueval-synth": "halueval-6f2f80b5eec7",
                    "detox-synth": "detox-3bbbdbb745bf"}


def test_a_version_bump_writes_a_fresh_directory_and_a_new_data_key(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNBENCH_CACHE", str(tmp_path))
    v1 = halueval_synth.STAND_IN
    v2 = dataclasses.replace(v1, version=2)
    old = v1.directory(SMALL_HALUEVAL)
    stamp = (old / "halueval" / "qa-data.jsonl").stat().st_mtime_ns
    new = v2.directory(SMALL_HALUEVAL)
    assert new != old and new.parent == old.parent
    assert (new / "halueval" / "README.md").exists()  # generated afresh, not the v1 copy reused
    assert (old / "halueval" / "qa-data.jsonl").stat().st_mtime_ns == stamp  # the old one untouched
    assert v2.data_key(SMALL_HALUEVAL) != v1.data_key(SMALL_HALUEVAL)
    assert v2.data_key(SMALL_HALUEVAL).startswith("halueval-")
    # The benchmark built on the bumped generator reads and keys the fresh data.
    bench = type("Bumped", (HaluEvalSynthBenchmark,), {"generator": v2})(synth=SMALL_HALUEVAL)
    assert bench.path == str(new) and bench.data_key() == v2.data_key(SMALL_HALUEVAL)


def test_a_derived_stand_in_follows_its_base_generator_version():
    cfg = harmful_synth.SynthConfig()
    bumped_base = dataclasses.replace(detox_synth.STAND_IN, base=dataclasses.replace(harmful_synth.STAND_IN, version=2))
    bumped_own = dataclasses.replace(detox_synth.STAND_IN, version=2)
    keys = {detox_synth.STAND_IN.key(cfg), bumped_base.key(cfg), bumped_own.key(cfg)}
    assert len(keys) == 3


def test_a_config_field_named_like_the_key_parts_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Clash:
        generator: int = 0

    with pytest.raises(ValueError, match="reserved"):
        dataclasses.replace(tofu_synth.STAND_IN, config=Clash).key(Clash())


def test_writer_keeps_the_directory_another_process_published_first(tmp_path):
    target = tmp_path / "d"

    def fill(tmp):
        (tmp / "README.md").write_text("ours")
        # Another process finishes the same stand-in while this one is still writing.
        target.mkdir()
        (target / "README.md").write_text("theirs")

    assert write_dir(target, fill) == target
    assert (target / "README.md").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # our temporary copy is gone


def test_writer_leaves_nothing_when_the_generator_fails(tmp_path):
    def fill(tmp):
        (tmp / "half.jsonl").write_text("{}")
        raise RuntimeError("generator bug")

    with pytest.raises(RuntimeError):
        write_dir(tmp_path / "d", fill)
    assert list(tmp_path.iterdir()) == []


def test_word_draws_onset_vowel_pairs_then_a_coda():
    letters = Letters(onsets=("b", "k"), vowels=("a",), codas=("n",))
    rng = random.Random(0)
    w = letters.word(rng, 3)
    assert len(w) == 7 and w[1::2] == "aaa" and w[-1] == "n" and set(w[0:6:2]) <= {"b", "k"}
