"""Token conventions of the token-level metrics: this harness's (EOS scored) against
open-unlearning's (``eval: {parity: open-unlearning}``), each metric on a hand-made answer
against values worked out by hand, and the option's validation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from unlearnbench.eval import tofu as tofu_eval
from unlearnbench.eval.scoring import Scored

OU = "open-unlearning"
EOS = 1


@pytest.fixture(scope="module")
def tok():
    """A word-level tokenizer with GPT-2's byte-level space marker: " in Paris" is two tokens,
    each carrying its leading space."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    t = Tokenizer(models.WordLevel({"<unk>": 0, "<eos>": EOS, "ĠParis": 2, "Ġin": 3}, unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    t.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<eos>", unk_token="<unk>")


def _answer(preds, labels=(3, 2, 3, EOS)) -> Scored:
    """The answer " in Paris in" + EOS: four scored positions, the last one the EOS."""
    lp = [-0.5, -2.0, -1.0, -3.0]
    return Scored(nll_sum=-sum(lp), n_tokens=4, token_logprobs=lp, preds=list(preds), labels=list(labels),
                  mu=[-1.0] * 4, sigma=[0.5, 1.0, 2.0, 1.0])


def test_min_k_and_min_k_plus_plus_drop_the_eos_only_under_open_unlearning(tok):
    s = _answer([3, 2, 3, EOS])
    ours, theirs = tofu_eval.mia_scores(s, "in Paris in", tok), tofu_eval.mia_scores(s, "in Paris in", tok, OU)
    # Min-40%: n = 4 keeps floor(1.6) = 1 lowest log-prob, -3.0 (the EOS); without it n = 3
    # keeps floor(1.2) = 1: -2.0.
    assert ours["mia_min_k"] == 3.0 and theirs["mia_min_k"] == 2.0
    # Min-K++: z = (lp - mu) / sigma = [0.5/0.5, -1/1, 0/2, -2/1] = [1, -1, 0, -2]; lowest one
    # of four is -2, of the first three -1.
    assert ours["mia_min_k_plus_plus"] == 2.0 and theirs["mia_min_k_plus_plus"] == 1.0
    # LOSS keeps the EOS in both: (0.5 + 2 + 1 + 3) / 4.
    assert ours["mia_loss"] == theirs["mia_loss"] == 1.625


def test_zlib_divides_by_the_decoded_labels_under_open_unlearning(tok):
    s = _answer([3, 2, 3, EOS])
    # zlib.compress(b"in Paris in") is 19 bytes; the decoded labels, b" in Paris in" (leading
    # space kept, EOS skipped), 20. The LOSS above it (1.625) keeps the EOS in both.
    assert tofu_eval.mia_scores(s, "in Paris in", tok)["mia_zlib"] == 1.625 / 19
    assert tofu_eval.mia_scores(s, "in Paris in", tok, OU)["mia_zlib"] == 1.625 / 20


def test_exact_memorisation_and_extraction_strength_under_both_conventions():
    # Argmax right at positions 0 and 2, wrong at 1 and at the EOS.
    s = _answer([3, 0, 3, 0])
    assert tofu_eval.token_metrics(s) == {"exact_memorisation": 2 / 4,
                                            "extraction_strength": 0.0}  # no suffix matches: k* = 4
    got = tofu_eval.token_metrics(s, OU)
    assert got["exact_memorisation"] == 2 / 3  # positions 0..2 only
    assert got["extraction_strength"] == 1 - 2 / 3  # suffix from k = 2 matches
    # Nothing matches: this harness gives 0; open-unlearning's loop stops at k = n - 1 = 2
    # without a match and reports 1 - 2/3.
    s = _answer([0, 0, 0, 0])
    assert tofu_eval.token_metrics(s) == {"exact_memorisation": 0.0, "extraction_strength": 0.0}
    assert tofu_eval.token_metrics(s, OU) == {"exact_memorisation": 0.0, "extraction_strength": 1 / 3}
    # Everything matches: both give 1.
    s = _answer([3, 2, 3, EOS])
    assert tofu_eval.token_metrics(s) == tofu_eval.token_metrics(s, OU) == \
        {"exact_memorisation": 1.0, "extraction_strength": 1.0}


class _Unigram(torch.nn.Module):
    """Logits = one bias vector at every position: d(mean NLL)/d(bias) = softmax(bias) − the
    mean one-hot of the scored labels, by hand."""

    def __init__(self, vocab: int):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(vocab))

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.bias.expand(*input_ids.shape, -1))


def test_gradnorm_drops_the_eos_from_its_loss_under_open_unlearning():
    from unlearnbench.data.collate import IGNORE
    from unlearnbench.metrics import mia

    # Prompt token 2, answer 0 0, then the EOS (2 here); vocabulary of 3, bias 0: p = 1/3 each.
    ids = [2, 0, 0, 2]
    labels = [IGNORE, 0, 0, 2]
    assert tofu_eval.gradnorm_labels(labels) == labels
    assert tofu_eval.gradnorm_labels(labels, OU) == [IGNORE, 0, 0, IGNORE]

    def score(lab):
        batch = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, 4, dtype=torch.long),
                 "labels": torch.tensor([lab])}
        return mia.gradnorm_scores(_Unigram(3), [batch])[0]

    # Labels {0, 0, 2}: grad = (1/3 − 2/3, 1/3 − 0, 1/3 − 1/3) = (−1/3, 1/3, 0): ‖g‖ = √2/3.
    assert score(tofu_eval.gradnorm_labels(labels)) == pytest.approx(2 ** 0.5 / 3, abs=1e-7)
    # Labels {0, 0}: grad = (1/3 − 1, 1/3, 1/3) = (−2/3, 1/3, 1/3): ‖g‖ = √6/3.
    assert score(tofu_eval.gradnorm_labels(labels, OU)) == pytest.approx(6 ** 0.5 / 3, abs=1e-7)


def test_parity_values_are_checked_per_benchmark():
    from unlearnbench.benchmarks.base import BenchmarkError
    from unlearnbench.benchmarks.muse import MuseBenchmark
    from unlearnbench.benchmarks.tofu import TofuBenchmark, TofuSynthBenchmark

    assert TofuBenchmark.check_eval_options({})["parity"] is False  # the harness's convention
    assert TofuSynthBenchmark.check_eval_options({"parity": OU})["parity"] == OU
    assert TofuBenchmark.check_eval_options({"parity": True})["parity"] == OU  # its only mode
    assert MuseBenchmark.check_eval_options({"parity": True})["parity"] == "muse_bench"
    with pytest.raises(BenchmarkError) as err:
        TofuBenchmark.check_eval_options({"parity": "muse_bench"})
    assert str(err.value) == ("benchmark 'tofu': unknown eval option parity='muse_bench'; "
                              "use false or one of: open-unlearning")
    with pytest.raises(BenchmarkError, match="parity='open-unlearning'; use false or one of: muse_bench"):
        MuseBenchmark.check_eval_options({"parity": OU})


def test_cli_and_grid_refuse_an_unknown_parity_in_one_line(tmp_path, capsys):
    from unlearnbench.cli import main
    from unlearnbench.runner.grid import GridError, load_grid

    rc = main(["eval", "--model", "tiny-test", "--benchmark", "tofu-synth", "--split", "forget10",
               "--out", str(tmp_path / "o"), "--set", "parity=bogus"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "parity='bogus'" in err and "open-unlearning" in err
    grid = tmp_path / "g.yaml"
    grid.write_text("name: g\nmodels: [tiny-test]\nbenchmark: tofu-synth\nsplits: [forget10]\n"
                    "methods: [ga]\neval: {parity: bogus}\n")
    with pytest.raises(GridError, match="parity='bogus'; use false or one of: open-unlearning"):
        load_grid(grid)
