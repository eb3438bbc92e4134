"""Which tokens the token-level metrics score: this harness's convention or open-unlearning's.

Every TOFU answer is scored as its tokens plus the closing EOS (docs/metrics.md §2). The
harness's default keeps the EOS in every metric: it is part of the answer the model was
fine-tuned to produce, and ending the answer there is part of what it memorised.
open-unlearning (locuslab/open-unlearning @d3d7cf9, ``evals/metrics/utils.py``
``tokenwise_logprobs`` / ``tokenwise_vocab_logprobs``) drops the final labelled position
(``[:-1]``, "ignore eos prediction") in Min-K, Min-K++, GradNorm, exact memorisation and
extraction strength, and keeps it in probability and LOSS (``evaluate_probability``). Its
zlib attack divides that LOSS by the compressed size of the decoded labels
(``tokenizer.decode(labels, skip_special_tokens=True)``: the answer as tokenised, a leading
space included), not of the answer string. ``parity="open-unlearning"`` reproduces all of
this so numbers can be read against its published logs.
"""

from __future__ import annotations

from unlearnbench.data.collate import IGNORE
from unlearnbench.metrics import mia, tofu

OPEN_UNLEARNING = "open-unlearning"


def drops_eos(parity) -> bool:
    """Whether ``parity`` drops the final scored position (the EOS) from the token metrics."""
    return parity == OPEN_UNLEARNING


def token_metrics(s, parity=False) -> dict:
    """Exact memorisation and extraction strength of a ``Scored`` answer."""
    if not drops_eos(parity):
        return {"exact_memorisation": tofu.exact_memorisation(s.preds, s.labels),
                "extraction_strength": tofu.extraction_strength(s.preds, s.labels)}
    preds, labels = s.preds[:-1], s.labels[:-1]
    return {"exact_memorisation": tofu.exact_memorisation(preds, labels),
            "extraction_strength": tofu.extraction_strength_open_unlearning(preds, labels)}


def mia_scores(s, text: str, tokenizer=None, parity=False) -> dict:
    """LOSS, zlib, Min-K% and Min-K%++ scores of a ``Scored`` text (``text``: the answer)."""
    lp, mu, sigma = s.token_logprobs, s.mu, s.sigma
    if drops_eos(parity):
        # LOSS (and the LOSS inside zlib) keeps the EOS there; only the Min-K family drops it.
        text = tokenizer.decode(s.labels, skip_special_tokens=True)
        short = lp[:-1], mu[:-1], sigma[:-1]
    else:
        short = lp, mu, sigma
    return {
        "mia_loss": mia.loss_score(lp),
        "mia_zlib": mia.zlib_score(lp, text),
        "mia_min_k": mia.min_k_score(short[0]),
        "mia_min_k_plus_plus": mia.min_k_plus_plus_score(*short),
    }


def gradnorm_labels(labels: list[int], parity=False) -> list[int]:
    """The labels GradNorm's loss averages over: without their final scored position under
    open-unlearning's convention (its GradNorm uses ``tokenwise_logprobs``)."""
    if not drops_eos(parity):
        return labels
    last = max(i for i, t in enumerate(labels) if t != IGNORE)
    return labels[:last] + [IGNORE] + labels[last + 1:]
