"""The generic registry: lookups, errors, plugins, entry points, docstrings, CLI listing."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from unlearnbench import registry as reg
from unlearnbench.registry import (
    DuplicateNameError,
    PluginError,
    Registry,
    UnknownNameError,
    load_plugin,
)

REPO = Path(__file__).resolve().parents[1]


def test_unknown_name_lists_known_names_and_suggests():
    with pytest.raises(UnknownNameError) as info:
        reg.methods.get("grad_dif")
    msg = str(info.value)
    assert "'grad_dif'" in msg
    assert "Did you mean 'grad_diff'" in msg
    assert "Known methods:" in msg
    for name in ("ga", "npo", "simnpo", "rmu"):
        assert name in msg
    assert isinstance(info.value, KeyError)  # `except KeyError` callers keep working
    # No suggestion when nothing is close, but the listing is still there.
    with pytest.raises(UnknownNameError, match="Known things: alpha, beta") as info:
        Registry("things", {"alpha": "json:dumps", "beta": "json:loads"}).get("zzzzzz")
    assert "Did you mean" not in str(info.value)


def test_duplicate_names_are_refused():
    r = Registry("things", {"lazy": "json:dumps"})
    r.register("x", 1)
    with pytest.raises(DuplicateNameError, match="'x' is already registered"):
        r.register("x", 2)
    with pytest.raises(DuplicateNameError, match="json:dumps"):  # names the existing origin
        r.register("lazy", 3)

    @r.register("deco")
    def deco():
        """A decorated object."""

    assert r.get("deco") is deco and r.get("x") == 1
    with pytest.raises(DuplicateNameError):
        r.register("deco")(lambda: None)


def test_broken_builtin_is_reported_by_name_and_others_still_work():
    r = Registry("things", {"good": "json:dumps",
                            "bad": "unlearnbench_no_such_module_xyz:Thing",
                            "bad_attr": "json:no_such_attr"})
    with pytest.raises(PluginError) as info:
        r.get("bad")
    assert "'bad'" in str(info.value) and "unlearnbench_no_such_module_xyz" in str(info.value)
    with pytest.raises(PluginError, match="'bad_attr'.*json:no_such_attr"):
        r.get("bad_attr")
    assert r.get("good") is json.dumps
    rows = dict(r.describe())
    assert set(rows) == {"good", "bad", "bad_attr"}
    assert rows["bad"].startswith("[broken]") and "unlearnbench_no_such_module_xyz" in rows["bad"]
    assert rows["bad_attr"].startswith("[broken]")
    assert rows["good"] == inspect.getdoc(json.dumps).splitlines()[0]


@pytest.fixture
def fresh_methods(monkeypatch):
    """A fresh, empty ``methods`` registry in place of the real one (plugins import it)."""
    fresh = Registry("methods", {"ga": "unlearnbench.methods.ga:GradientAscent"})
    monkeypatch.setattr(reg, "methods", fresh)
    monkeypatch.setitem(reg.REGISTRIES, "methods", fresh)
    return fresh


def _plugin(tmp_path: Path, stem: str, body: str) -> Path:
    path = tmp_path / f"{stem}.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_load_plugin_that_raises_names_the_file(tmp_path, fresh_methods):
    path = _plugin(tmp_path, "ub_broken_plugin_t1", """
        raise RuntimeError("boom at import")
    """)
    try:
        with pytest.raises(PluginError) as info:
            load_plugin(str(path))
        msg = str(info.value)
        assert str(path) in msg and "boom at import" in msg and "RuntimeError" in msg
        # A failed plugin leaves no half-imported module behind, and the built-ins work.
        assert "unlearnbench_plugin_ub_broken_plugin_t1" not in sys.modules
        assert fresh_methods.names() == ["ga"]
        assert reg.benchmarks.get("tofu-synth").__name__ == "TofuSynthBenchmark"
        assert "tiny" in reg.models
        with pytest.raises(PluginError, match="no such file"):
            load_plugin(str(tmp_path / "does_not_exist.py"))
        with pytest.raises(PluginError, match="unlearnbench_no_such_plugin_module"):
            load_plugin("unlearnbench_no_such_plugin_module")
    finally:
        sys.modules.pop("unlearnbench_plugin_ub_broken_plugin_t1", None)


def test_load_plugin_registers_its_names(tmp_path, fresh_methods):
    path = _plugin(tmp_path, "ub_good_plugin_t2", '''
        from unlearnbench.registry import methods

        @methods.register("my_method")
        class MyMethod:
            """My plugin method: does nothing."""
    ''')
    try:
        load_plugin(str(path))
        assert "my_method" in fresh_methods.names()
        assert fresh_methods.get("my_method").__name__ == "MyMethod"
        assert dict(fresh_methods.describe())["my_method"] == "My plugin method: does nothing."
        load_plugin(str(path))  # loading twice is a no-op, not a duplicate-name error
    finally:
        sys.modules.pop("unlearnbench_plugin_ub_good_plugin_t2", None)


def test_entry_points_are_listed_and_loadable(monkeypatch):
    calls = []

    def fake_entry_points(**kw):
        calls.append(kw)
        if kw.get("group") != "unlearnbench.things":
            return []
        return [importlib.metadata.EntryPoint("jd", "json:dumps", "unlearnbench.things"),
                importlib.metadata.EntryPoint("clash", "json:loads", "unlearnbench.things")]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    r = Registry("things", {"clash": "json:JSONDecoder"})
    with pytest.warns(UserWarning, match="'clash'"):
        names = r.names()
    assert names == ["clash", "jd"]
    assert calls == [{"group": "unlearnbench.things"}]
    assert r.get("jd") is json.dumps
    assert r.get("clash") is json.JSONDecoder  # the built-in wins over the entry point
    assert not dict(r.describe())["jd"].startswith("[broken]")


def test_empty_registry_and_cli_ls(monkeypatch, capsys):
    from unlearnbench import cli

    empty = Registry("widgets")
    assert empty.describe() == []
    assert empty.names() == []
    monkeypatch.setitem(reg.REGISTRIES, "widgets", empty)
    monkeypatch.setattr(cli, "REGISTRIES", reg.REGISTRIES)
    assert cli.cmd_ls(argparse.Namespace(kind="widgets")) == 0
    assert capsys.readouterr().out.strip() == "(no widgets registered)"


def test_ls_methods_params_lists_every_setting_with_its_default_and_doc(capsys):
    from dataclasses import fields

    from unlearnbench import cli
    from unlearnbench.methods.npo import NPOSettings

    assert cli.main(["ls", "methods", "--params"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split(None, 2) for line in lines]
    # The loop settings once, first, each with its default and its meaning.
    loop = lines.index(next(line for line in lines if line.startswith("LoopSettings")))
    assert rows[loop + 1][:2] == ["lr", "1e-05"] and "learning rate" in rows[loop + 1][2]
    assert ["steps", "None"] == rows[loop + 5][:2] and "budget" in rows[loop + 5][2]
    # Then each method with its own: npo's beta, 0.1, the log-ratio's inverse temperature.
    npo = lines.index("npo:")
    assert rows[npo + 1][:2] == ["beta", "0.1"] and rows[npo + 1][2] == NPOSettings.__dataclass_fields__[
        "beta"].metadata["doc"] and "inverse temperature" in rows[npo + 1][2]
    assert not lines[npo + 2].startswith(" ")  # npo has no other setting
    # A method's own default of a shared setting is listed under it, not as a new setting.
    undial = lines.index("undial:")
    assert ["lr", "0.0001"] == rows[undial + 3][:2] and "this method's default" in rows[undial + 3][2]
    assert lines.index("ga: (the shared settings only)") > loop
    assert sum(1 for r in rows if r[:2] == ["lr", "1e-05"]) == 1
    # Every registered method has its header, and every setting a one-line doc.
    for name in reg.methods.names():
        assert any(line.startswith(f"{name}:") for line in lines), name
    for name in reg.methods.names():
        own = getattr(reg.methods.get(name), "Settings", None)
        for f in fields(own) if own else ():
            assert f.metadata["doc"].strip() and "\n" not in f.metadata["doc"], (name, f.name)


def test_ls_params_refuses_other_kinds(capsys):
    from unlearnbench import cli

    assert cli.main(["ls", "models", "--params"]) == 2
    assert "use `unlearnbench ls methods --params`" in capsys.readouterr().err


def _module_exists(target: str) -> bool:
    module = target.partition(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize("kind", ["methods", "benchmarks", "models", "attacks"])
def test_every_registered_name_has_a_description(kind):
    r = reg.REGISTRIES[kind]
    rows = dict(r.describe())
    missing_modules, bad = [], []
    for name in r.names():
        target = r._lazy.get(name)
        if target is not None and kind == "methods" and not _module_exists(target):
            missing_modules.append(f"{name} ({target})")
            continue
        obj = r.get(name)  # a broken module that exists fails here, loudly
        doc = getattr(obj, "description", None)
        if doc is None:
            # The object's own docstring: a class must not borrow its base class's.
            doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else inspect.getdoc(obj)
        first = (doc or "").strip().splitlines()[0].strip() if (doc or "").strip() else ""
        if not first:
            bad.append(name)
        assert not rows[name].startswith("[broken]"), rows[name]
    assert not bad, f"{kind} without a docstring/description: {bad}"
    if missing_modules:
        pytest.skip(f"{kind} whose module does not exist yet: {', '.join(missing_modules)}")


def test_cli_ls_models_in_a_subprocess():
    proc = subprocess.run([sys.executable, "-m", "unlearnbench.cli", "ls", "models"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    assert "tiny" in names and "llama2-7b" in names
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("llama2-7b"))
    assert "Llama-2-7b-chat" in line


def test_cli_unknown_method_exits_2_before_building_anything(monkeypatch, capsys):
    from unlearnbench import cli
    from unlearnbench.models import tiny

    def no_build(*a, **k):
        raise AssertionError("an unknown method must be reported before any model is built")

    monkeypatch.setattr(tiny.TinyFamily, "checkpoint", no_build)
    assert cli.main(["train", "--method", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'nope'" in err and "Known methods" in err
    assert cli.main(["train", "--method", "grad_dif", "--model", "tiny-test"]) == 2
    assert "Did you mean 'grad_diff'" in capsys.readouterr().err


def test_entry_point_clashing_with_a_bootstrapped_builtin_warns(tmp_path, monkeypatch):
    # Built-in *objects* (model specs) are registered by a bootstrap module; an entry point
    # of the same name must be refused with a warning, not silently shadowed.
    (tmp_path / "ub_test_bootstrap_gadgets.py").write_text(textwrap.dedent("""
        from unlearnbench.registry import REGISTRIES
        REGISTRIES["gadgets"].register("clash", {"from": "bootstrap"})
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    r = Registry("gadgets", bootstrap="ub_test_bootstrap_gadgets")
    monkeypatch.setitem(reg.REGISTRIES, "gadgets", r)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [
        importlib.metadata.EntryPoint("clash", "json:dumps", "unlearnbench.gadgets")])
    try:
        with pytest.warns(UserWarning, match="'clash' is already defined"):
            assert r.names() == ["clash"]
        assert r.get("clash") == {"from": "bootstrap"}
    finally:
        sys.modules.pop("ub_test_bootstrap_gadgets", None)


def test_a_local_model_directory_names_its_reference_checkpoints(tmp_path):
    """`make bench MODEL=<dir>` on TOFU needs a retain model: the directory's unlearnbench.json
    names it like a spec's published checkpoints; without it, one line says what to add."""
    from unlearnbench.benchmarks.base import BenchmarkError
    from unlearnbench.benchmarks.tofu import TofuBenchmark
    from unlearnbench.models.specs import LOCAL_META, ModelSpec

    from transformers import LlamaConfig, LlamaForCausalLM

    model = tmp_path / "my-tofu-target"
    # A whole saved model (the directory is checked before use); only its checkpoints matter here.
    LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2)).save_pretrained(model)
    (model / "tokenizer.json").write_text("{}")
    bench = TofuBenchmark()
    spec = ModelSpec.from_name(str(model))
    assert bench.checkpoint(spec, "target", "forget10") == str(model)  # a directory is its own target
    with pytest.raises(BenchmarkError) as err:
        bench.checkpoint(spec, "retain", "forget10")
    msg = str(err.value)
    assert "\n" not in msg and str(model) in msg and "retain90" in msg and LOCAL_META in msg
    meta = {"base": "phi-1.5", "checkpoints": {"tofu": {"retain90": "/ckpt/retain"}}}
    (model / LOCAL_META).write_text(json.dumps(meta))
    spec = ModelSpec.from_name(str(model))
    assert bench.checkpoint(spec, "retain", "forget10") == "/ckpt/retain"
    assert bench.checkpoint(spec, "base", "forget10") == "phi-1.5"
    with pytest.raises(BenchmarkError, match="retain95"):
        bench.checkpoint(spec, "retain", "forget05")
