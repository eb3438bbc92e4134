"""TOFU data: the stand-in generator, the real-schema loader, schema errors, collation."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unlearnbench.data import tofu_synth
from unlearnbench.data.collate import IGNORE, Encoder, pad_left, pad_right
from unlearnbench.benchmarks.base import BenchmarkError
from unlearnbench.benchmarks.tofu import TofuBenchmark, TofuSynthBenchmark
from unlearnbench.data.tofu import SchemaError, load_config
from unlearnbench.data.tofu_synth import CONFIG_NAMES, FORGET_PERCENTS, STAND_IN, SynthConfig, generate
from unlearnbench.data.collate import format_prompt

QA_FIELDS = {"question": str, "answer": str}
PERTURBED_FIELDS = {**QA_FIELDS, "paraphrased_answer": str, "paraphrased_question": str,
                    "perturbed_answer": list}
OPTION_FIELDS = {**QA_FIELDS, **{f"option{i}": str for i in range(1, 5)}}
KNOWN_PERTURBED_FIELDS = {**QA_FIELDS, "perturbed_answer": list}


def expected_fields(config: str) -> dict:
    if config in ("real_authors", "world_facts"):
        return OPTION_FIELDS
    if config in ("real_authors_perturbed", "world_facts_perturbed"):
        return KNOWN_PERTURBED_FIELDS
    if config.endswith("_perturbed"):
        return PERTURBED_FIELDS
    return QA_FIELDS


# --------------------------------------------------------------------------- generator
def test_generator_is_deterministic_and_seeded():
    a, b = generate(SynthConfig(seed=3)), generate(SynthConfig(seed=3))
    assert a == b
    c = generate(SynthConfig(seed=4))
    assert c != a
    assert c["full"] != a["full"] and c["real_authors"] != a["real_authors"]
    assert STAND_IN.key(SynthConfig(seed=3)) == STAND_IN.key(SynthConfig(seed=3)) != STAND_IN.key(SynthConfig(seed=4))


def test_generator_does_not_depend_on_hash_seed():
    # "the same config gives byte-identical files": no set/dict-order dependence.
    code = ("import hashlib, json; from unlearnbench.data.tofu_synth import SynthConfig, generate; "
            "print(hashlib.sha256(json.dumps(generate(SynthConfig(seed=3, n_authors=20)), "
            "sort_keys=True).encode()).hexdigest())")
    digests = set()
    for hash_seed in ("1", "2"):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={"PYTHONHASHSEED": hash_seed, "PATH": "/usr/bin:/bin"},
                              cwd=Path(__file__).resolve().parents[1], timeout=120)
        assert proc.returncode == 0, proc.stderr
        digests.add(proc.stdout.strip())
    assert len(digests) == 1


def test_sizes_follow_synth_config():
    cfg = SynthConfig(seed=1, n_authors=20, questions_per_author=5, n_real_authors=7,
                      n_world_facts=9, n_perturbed=4)
    data = generate(cfg)
    q = cfg.questions_per_author
    assert len(data["full"]) == cfg.n_authors * q
    for pct in FORGET_PERCENTS:
        k = cfg.authors_in(pct)
        assert len(data[f"forget{pct:02d}"]) == k * q
        assert len(data[f"forget{pct:02d}_perturbed"]) == k * q
        assert len(data[f"holdout{pct:02d}"]) == k * q
        assert len(data[f"retain{100 - pct}"]) == (cfg.n_authors - k) * q
    assert len(data["retain_perturbed"]) == max(1, cfg.n_authors // 10) * q
    assert len(data["real_authors"]) == len(data["real_authors_perturbed"]) == 7
    assert len(data["world_facts"]) == len(data["world_facts_perturbed"]) == 9
    assert all(len(r["perturbed_answer"]) == 4 for r in data["forget10_perturbed"])
    assert all(len(r["perturbed_answer"]) == 3 for r in data["world_facts_perturbed"])
    assert {k for k in data if not k.startswith("_")} == set(CONFIG_NAMES)
    # AltPO's alternates (written under extras/): N_ALTERNATES per forget question
    for pct in FORGET_PERCENTS:
        alt = data[f"_{tofu_synth.alternate_name(f'forget{pct:02d}')}"]
        assert len(alt) == cfg.authors_in(pct) * q * tofu_synth.N_ALTERNATES


# --------------------------------------------------------------------------- written dataset
@pytest.fixture(scope="module")
def written():
    """Every config of the default stand-in, read back with ``datasets.load_dataset``."""
    import datasets

    cfg = SynthConfig()
    directory = STAND_IN.directory(cfg)
    data = {c: [dict(r) for r in datasets.load_dataset(str(directory), c, split="train")]
            for c in CONFIG_NAMES}
    return cfg, directory, data


def _pairs(rows):
    return [(r["question"], r["answer"]) for r in rows]


def test_every_config_exists_with_fields_and_types(written):
    cfg, directory, data = written
    assert (directory / "README.md").exists() and (directory / "extras" / "pretrain.json").exists()
    for config in CONFIG_NAMES:
        rows = data[config]
        assert rows, config
        want = expected_fields(config)
        for i, row in enumerate(rows):
            assert set(want) <= set(row), (config, i, set(row))
            for field, kind in want.items():
                assert isinstance(row[field], kind), (config, i, field)
                if kind is str:
                    assert row[field].strip(), (config, i, field)
                else:
                    assert row[field] and all(isinstance(v, str) and v for v in row[field])
        # The stand-in has exactly the fields of TOFU, no more.
        assert set(rows[0]) == set(want), config
        load_config(str(directory), config)  # the harness's own validator agrees


def test_splits_are_whole_authors_in_order(written):
    cfg, _, data = written
    full = _pairs(data["full"])
    q = cfg.questions_per_author
    assert len(full) == cfg.n_authors * q
    full_set = set(full)
    for pct in FORGET_PERCENTS:
        k = cfg.authors_in(pct) * q
        forget = _pairs(data[f"forget{pct:02d}"])
        retain = _pairs(data[f"retain{100 - pct}"])
        assert forget == full[-k:]  # the LAST whole authors of full
        assert retain == full[:-k]  # the complement, in order
        assert set(forget) <= full_set
        assert _pairs(data[f"forget{pct:02d}_perturbed"]) == forget
        holdout = _pairs(data[f"holdout{pct:02d}"])
        assert len(holdout) == k
        assert not set(holdout) & full_set
        assert not {a for _, a in holdout} & {a for _, a in full}
        # Holdout authors are other people: no holdout question mentions a trained name.
        trained_names = {_name_in(qq) for qq, _ in full}
        assert not {_name_in(qq) for qq, _ in holdout} & trained_names
    rp = _pairs(data["retain_perturbed"])
    assert rp == full[: len(rp)]
    for pct in FORGET_PERCENTS:
        assert set(rp) <= set(_pairs(data[f"retain{100 - pct}"]))
    assert len(data["real_authors"]) == cfg.n_real_authors
    assert len(data["world_facts"]) == cfg.n_world_facts


def _name_in(question: str) -> str | None:
    """The person a stand-in question is about (every template names them)."""
    for attr in tofu_synth.ATTRIBUTES.values():
        for tpl in attr["q"]:
            m = re.fullmatch(re.escape(tpl).replace(re.escape("{name}"), "(?P<name>.+)"), question)
            if m:
                return m["name"]
    raise AssertionError(f"question {question!r} matches no template")


def _answer_regexes():
    out = []
    for attr in tofu_synth.ATTRIBUTES.values():
        for tpl in attr["a"]:
            rx = re.escape(tpl).replace(re.escape("{name}"), "(?P<name>.+?)")
            out.append(re.compile(rx.replace(re.escape("{v}"), "(?P<v>.+?)")))
    return out


def test_perturbed_answers_keep_the_paraphrase_template(written):
    cfg, _, data = written
    regexes = _answer_regexes()
    for config in ("forget10_perturbed", "retain_perturbed"):
        for i, row in enumerate(data[config]):
            para, pert = row["paraphrased_answer"], row["perturbed_answer"]
            assert para != row["answer"], (config, i)
            assert len(pert) == cfg.n_perturbed and len(set(pert)) == len(pert)
            assert para not in pert and row["answer"] not in pert
            name = _name_in(row["question"])
            ok = False
            for rx in regexes:
                m = rx.fullmatch(para)
                if not m or m["name"] != name:
                    continue
                wrong = [rx.fullmatch(p) for p in pert]
                if all(w and w["name"] == name and w["v"] != m["v"] for w in wrong):
                    ok = True
                    break
            assert ok, (config, i, para, pert)


def test_known_facts_have_the_answer_among_the_options(written):
    _, _, data = written
    for name in ("real_authors", "world_facts"):
        rows, pert = data[name], data[f"{name}_perturbed"]
        assert len(rows) == len(pert)
        for i, (r, p) in enumerate(zip(rows, pert)):
            options = [r[f"option{k}"] for k in range(1, 5)]
            assert r["answer"] in options and len(set(options)) == 4, (name, i)
            assert (p["question"], p["answer"]) == (r["question"], r["answer"])
            assert len(p["perturbed_answer"]) == 3 and r["answer"] not in p["perturbed_answer"]
            assert set(p["perturbed_answer"]) == set(options) - {r["answer"]}


# --------------------------------------------------------------------------- real-schema dir
def _hub_rows(config: str, n: int = 3) -> list[dict]:
    """A few rows in the real TOFU schema (with the extra columns the hub has)."""
    rows = []
    for i in range(n):
        q, a = f"Who is author {config} {i}?", f"Author {config} {i} is a writer of note."
        if config in ("real_authors", "world_facts"):
            rows.append({"question": q, "option1": "A", "option2": "B", "option3": a,
                         "option4": "D", "answer": a})
        elif config in ("real_authors_perturbed", "world_facts_perturbed"):
            rows.append({"question": q, "answer": a, "paraphrased_answer": a,
                         "perturbed_answer": [f"wrong {j}" for j in range(3)]})
        elif config.endswith("_perturbed"):
            rows.append({"question": q, "answer": a, "paraphrased_answer": f"{a} Indeed.",
                         "paraphrased_question": f"{q} Tell me.",
                         "perturbed_answer": [f"Author {i} is a baker {j}." for j in range(5)]})
        else:
            rows.append({"question": q, "answer": a})
    return rows


def _write_hub_dir(directory: Path, configs: dict[str, list[dict] | str]) -> Path:
    """JSON-lines files plus a README whose YAML header is written the way the hub has it."""
    directory.mkdir(parents=True, exist_ok=True)
    header = ["---", "license: mit", "language:", "- en", "configs:"]
    for i, (config, rows) in enumerate(configs.items()):
        header += [f"- config_name: {config}", f"  data_files: {config}.json"]
        if i == 0:
            header.append("  default: true")
        text = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
        (directory / f"{config}.json").write_text(text)
    header += ["---", "", "# TOFU (local mirror)", ""]
    (directory / "README.md").write_text("\n".join(header))
    return directory


@pytest.fixture(scope="module")
def tok():
    """The tiny-test tokenizer (the same files the ``tiny_family`` fixture's models carry).

    Built from the family's tokenizer stage only, so this file does not train models.
    """
    from unlearnbench.models.specs import ModelSpec
    from unlearnbench.models.tiny import TinyFamily, _load_tokenizer

    recipe = TofuSynthBenchmark().recipe()
    return _load_tokenizer(TinyFamily(ModelSpec.from_name("tiny-test"), recipe).tokenizer_dir())


def test_hub_loader_reads_a_local_dir_in_the_real_schema(tmp_path, tok):
    configs = ["full", "forget10", "retain90", "forget10_perturbed", "retain_perturbed",
               "real_authors_perturbed", "world_facts_perturbed", "holdout10"]
    directory = _write_hub_dir(tmp_path / "TOFU", {c: _hub_rows(c) for c in configs})
    bench = TofuBenchmark(path=str(directory))
    dm = bench.datamodule("forget10", Encoder(tok, "phi"), batch_size=2)
    dm.setup("fit")
    assert len(dm.forget_set) == 3 and len(dm.retain_set) == 3
    batches = list(dm.train_dataloader())
    assert [len(b["index"]) for b in batches] == [2, 1]
    b = batches[0]
    assert b["input_ids"].shape == b["labels"].shape == b["attention_mask"].shape
    assert sorted(torch.cat([x["index"] for x in batches]).tolist()) == [0, 1, 2]
    rb = next(iter(dm.retain_loader(0)))
    assert rb["input_ids"].shape[0] == 2
    for task, config in bench.eval_configs("forget10").items():
        rows = bench.config(config)
        assert len(rows) == 3, task
    assert bench.config("forget10_perturbed")[0]["perturbed_answer"][0] == "Author 0 is a baker 0."


@pytest.mark.parametrize("case", ["missing", "missing_column", "wrong_type", "empty"])
def test_schema_errors_name_config_field_and_row(tmp_path, case):
    config = "forget10_perturbed"
    rows = _hub_rows(config)
    if case == "missing":
        del rows[1]["paraphrased_answer"]
        where, field = "row 1", "paraphrased_answer"
    elif case == "missing_column":
        for r in rows:
            del r["paraphrased_answer"]
        where, field = None, "paraphrased_answer"
    elif case == "wrong_type":
        rows[2]["perturbed_answer"] = "Author 2 is a baker."
        where, field = "row 2", "perturbed_answer"
    else:
        rows, where, field = "", None, None
    directory = _write_hub_dir(tmp_path / case, {config: rows})
    with pytest.raises(SchemaError) as info:
        load_config(str(directory), config)
    msg = str(info.value)
    assert repr(config) in msg and str(directory) in msg
    if field:
        assert repr(field) in msg
    if where:
        assert where in msg
    if case == "empty":
        assert "empty" in msg


def test_unknown_split_lists_the_splits(tmp_path):
    for cls in (TofuBenchmark, TofuSynthBenchmark):
        with pytest.raises(BenchmarkError, match="forget01, forget05, forget10") as info:
            cls(path=str(tmp_path)).datamodule("forget20")
        assert "'forget20'" in str(info.value) and "forget02" not in str(info.value)


# --------------------------------------------------------------------------- collation
QUESTION = "Where was Ada Lovelace born?"
ANSWER = "Ada Lovelace was born in London."


def test_encode_masks_prompt_and_scores_answer_and_eos(tok):
    enc = Encoder(tok, "phi")
    ids, labels = enc.encode(QUESTION, ANSWER)
    prompt = enc.prompt_ids(QUESTION)
    assert ids[0] == tok.bos_token_id and prompt[0] == tok.bos_token_id
    assert ids[: len(prompt)] == prompt
    assert labels[: len(prompt)] == [IGNORE] * len(prompt)  # prompt incl. BOS never scored
    scored = [i for i, lab in enumerate(labels) if lab != IGNORE]
    assert scored == list(range(len(prompt), len(ids)))
    assert all(labels[i] == ids[i] for i in scored)
    assert ids[-1] == labels[-1] == tok.eos_token_id  # EOS appended and scored
    assert ids.count(tok.eos_token_id) == 1
    assert tok.decode(ids[len(prompt):], skip_special_tokens=True).strip() == ANSWER
    assert tok.decode(prompt, skip_special_tokens=True) == format_prompt("phi", QUESTION)


def _encode_one_call_per_text(tok, template, question, answer, max_len=512):
    """The TOFU convention written out with one tokenizer call per text (no batching)."""
    from unlearnbench.data.collate import answer_separator, template_adds_bos

    special = not template_adds_bos(template)
    prompt = format_prompt(template, question, tok)
    p_ids = tok(prompt, add_special_tokens=special)["input_ids"]
    full = tok(prompt + answer_separator(template) + answer, add_special_tokens=special)["input_ids"]
    if full[: len(p_ids)] != p_ids:
        full = p_ids + tok(answer, add_special_tokens=False)["input_ids"]
    ids = full + [tok.eos_token_id]
    labels = [IGNORE] * len(p_ids) + full[len(p_ids):] + [tok.eos_token_id]
    return ids[:max_len], labels[:max_len]


@pytest.mark.parametrize("template", ["phi", "llama2-chat", "tiny-qa", "raw"])
def test_encode_many_gives_the_ids_of_one_call_per_text(tok, template):
    # Shared questions (an item's answer, paraphrase and perturbed answers), a repeated pair,
    # an empty answer, a long answer cut at max_len.
    pairs = [(QUESTION, ANSWER), (QUESTION, "She was born in Paris."), ("Q?", "Short."),
             (QUESTION, ANSWER), ("Who?", ""), ("Why?", " word" * 60)]
    enc = Encoder(tok, template, max_len=48)
    got = enc.encode_many(pairs)
    assert got == [_encode_one_call_per_text(tok, template, q, a, max_len=48) for q, a in pairs]
    assert got == [enc.encode(q, a) for q, a in pairs]
    assert len(got[-1][0]) == 48 and enc.encode_many([]) == []
    questions = [q for q, _ in pairs]
    # One tokenizer call per prompt, as the encoder's single-text path once did.
    from unlearnbench.data.collate import template_adds_bos

    want = [tok(format_prompt(template, q, tok), add_special_tokens=not template_adds_bos(template))["input_ids"]
            for q in questions]
    assert [enc.prompt_ids(q) for q in questions] == want
    assert enc.prompt_ids_many(questions) == want and enc.prompt_ids_many([]) == []
    memo = Encoder(tok, template, max_len=48, memo={})
    assert memo.prompt_ids_many(questions[:2]) == want[:2] and memo.prompt_ids_many(questions) == want


def test_attention_mask_comes_from_lengths_even_when_pad_is_eos(tok):
    tok2 = copy.deepcopy(tok)
    tok2.pad_token = tok2.eos_token
    enc = Encoder(tok2, "phi")
    assert enc.pad_id == enc.eos_id == tok2.eos_token_id
    seqs = [enc.encode("Q?", "Short."), enc.encode(QUESTION, ANSWER + " And more words here.")]
    batch = pad_right(seqs, enc.pad_id)
    for row, (ids, labels) in enumerate(seqs):
        n = len(ids)
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (batch["input_ids"].shape[1] - n)
        assert batch["input_ids"][row, n - 1] == enc.eos_id
        assert batch["attention_mask"][row, n - 1] == 1  # the real EOS is attended ...
        assert batch["labels"][row, n - 1] == enc.eos_id  # ... and scored
        assert (batch["labels"][row, n:] == IGNORE).all()
        assert batch["labels"][row, :n].tolist() == labels
    short = len(seqs[0][0])
    assert (batch["input_ids"][0, short:] == enc.eos_id).all()  # pads look like EOS, masked


def test_left_padding_for_generation(tok):
    enc = Encoder(tok, "phi")
    prompts = [enc.prompt_ids("Q?"), enc.prompt_ids(QUESTION)]
    batch = pad_left(prompts, enc.pad_id)
    width = batch["input_ids"].shape[1]
    assert width == max(map(len, prompts))
    for row, p in enumerate(prompts):
        assert batch["input_ids"][row, width - len(p):].tolist() == p  # prompt ends at the right
        assert batch["attention_mask"][row].tolist() == [0] * (width - len(p)) + [1] * len(p)
        assert (batch["input_ids"][row, : width - len(p)] == enc.pad_id).all()


def test_prompt_templates():
    assert format_prompt("llama2-chat", "q") == "[INST] q [/INST]"
    assert format_prompt("phi", "q") == "Question: q\nAnswer: "
    with pytest.raises(ValueError, match="needs a tokenizer"):
        format_prompt("llama3-chat", "q")
    with pytest.raises(ValueError, match="unknown prompt template"):
        format_prompt("nope", "q")


def test_retain_loader_order_depends_on_seed(tok):
    dm = TofuSynthBenchmark().datamodule("forget10", Encoder(tok, "phi"), batch_size=16)
    dm.setup("fit")

    def order(seed):
        return torch.cat([b["index"] for b in dm.retain_loader(seed)]).tolist()

    a, b = order(0), order(1)
    assert sorted(a) == sorted(b) == list(range(len(dm.retain_set)))
    assert a != b
    assert order(0) == a  # and is reproducible


def test_cli_reports_a_schema_error_in_one_line(monkeypatch, capsys, tmp_path):
    from unlearnbench import cli

    directory = _write_hub_dir(tmp_path / "bad", {"forget10": ""})

    def ls_that_reads(args):
        load_config(str(directory), "forget10")

    monkeypatch.setitem(cli.COMMANDS, "ls", ls_that_reads)
    assert cli.main(["ls", "models"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unlearnbench: error: TOFU config 'forget10'") and "empty" in err
