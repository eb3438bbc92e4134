"""Throwaway prototype (not part of the package): tiny family for harmful-synth / halueval-synth, target rates, crude GA.

Run from the worktree root: PYTHONPATH=$PWD OMP_NUM_THREADS=1 UNLEARNBENCH_CACHE=/tmp/ubscen HF_HUB_OFFLINE=1 python docs/prototype/proto_scenarios.py harmful|halueval
"""
import copy, json, sys, time
import torch
from dataclasses import replace
from unlearnbench.models.specs import TinyConfig
from unlearnbench.models.tiny import train_tokenizer, new_model
from unlearnbench.models.finetune import fit_causal_lm
from unlearnbench.data.collate import Encoder, pad_right
torch.set_num_threads(1)
which = sys.argv[1]
tiny = TinyConfig()
if len(sys.argv) > 2:
    tiny = replace(tiny, **json.loads(sys.argv[2]))
T = {}
t0 = time.time()
if which == "harmful":
    from unlearnbench.data import harmful_synth as S
    from unlearnbench.data.harmful import harmful_data
    d = S.synth_dir(); data = harmful_data(str(d / "pku"), str(d / "truthfulqa"))
else:
    from unlearnbench.data import halueval_synth as S
    from unlearnbench.data.halueval import hallucination_data
    d = S.synth_dir(); data = hallucination_data(str(d / "halueval"), str(d / "truthfulqa"))
tok = train_tokenizer(S.tiny_texts(d, "tokenizer"), tiny.vocab_size, f"/tmp/scen/tok-{which}")
T["tokenizer"] = time.time() - t0; t = time.time()
base = new_model(tiny, tok, seed=0)
fit_causal_lm(base, tok, texts=S.tiny_texts(d, "base"), epochs=tiny.pretrain_epochs, lr=tiny.pretrain_lr, tiny=tiny, seed=0, desc="base")
T["base"] = time.time() - t; t = time.time()
target = copy.deepcopy(base)
fit_causal_lm(target, tok, texts=S.tiny_texts(d, "target"), epochs=tiny.finetune_epochs, lr=tiny.finetune_lr, tiny=tiny, seed=0, desc="target")
T["target"] = time.time() - t
enc = Encoder(tok, "tiny-qa", max_len=tiny.max_len)
from unlearnbench.eval.scenarios import evaluate_harmful, evaluate_hallucination
from unlearnbench.eval.judges import get_judge

def ev(model, name):
    t = time.time()
    if which == "harmful":
        s, recs = evaluate_harmful(model, enc, data, get_judge("harmful-synth"), original=target)
        row = {k: round(s[k], 3) for k in ("harmful_rate_forget", "harmful_rate_unseen", "normal_similarity")}
    else:
        s, recs = evaluate_hallucination(model, enc, data, original=target)
        row = {k: round(s[k], 3) for k in ("hallucination_rate_heldout", "hallucination_rate_forget", "normal_similarity")}
    row["diversity_normal"] = round(s["normal"]["diversity"], 3); row["fluency_normal"] = round(s["normal"]["fluency"], 2)
    row["fluency_" + ("forget")] = round(s["forget"]["fluency"], 2)
    row["eval_s"] = round(time.time() - t, 1)
    print(name, json.dumps(row), flush=True)
    return recs

ev(base, "base")
recs = ev(target, "target")
for r in recs[:3] + [r for r in recs if r["task"] == ("unseen" if which == "harmful" else "heldout")][:3] + [r for r in recs if r["task"] == "normal"][:2]:
    print("  ", r["task"], "|", r["question"], "->", r["generation"][:120])
# crude GA: answer-only NLL ascent on the forget rows
model = copy.deepcopy(target); model.train()
opt = torch.optim.AdamW(model.parameters(), lr=float(sys.argv[3]) if len(sys.argv) > 3 else 1e-4)
g = torch.Generator().manual_seed(0)
forget = data.forget
for step in range(1, 31):
    idx = torch.randperm(len(forget), generator=g)[:16].tolist()
    b = pad_right([enc.encode(forget[i]["question"], forget[i]["answer"]) for i in idx], enc.pad_id)
    loss = model(**b).loss
    (-loss).backward(); opt.step(); opt.zero_grad()
    if step in (5, 10, 20, 30):
        print(f"GA step {step}: forget NLL {loss.item():.2f}")
        model.eval(); ev(model, f"ga{step}"); model.train()
print("times", json.dumps({k: round(v, 1) for k, v in T.items()}), "family", round(sum(T.values()), 1))
