"""Settings as dataclasses (methods.settings): a flat params mapping split by field name into the
loop, the loss weights, the run options and the method's own settings; checked before a model loads."""

from __future__ import annotations

from dataclasses import fields

import pytest

from unlearnbench.errors import UserError
from unlearnbench.methods import settings as S
from unlearnbench.registry import methods


def test_a_flat_mapping_is_split_by_field_name():
    cls = methods.get("undial")
    (loop, weights, options, own), rest = S.split(cls, {"lr": 3e-4, "beta": 2, "epochs": 2, "parity": "paper",
                                                         "gamma_forget": 0.5, "k_random": 3})
    assert (loop.lr, loop.epochs, loop.batch_size) == (3e-4, 2, 32)
    assert (weights.gamma_forget, weights.lambda_retain) == (0.5, 0.0)  # undial's own λ default
    assert options.parity == "paper" and options.reference == "cached"
    assert own.beta == 2.0 and isinstance(own.beta, float) and own.positions == "answer"
    assert rest == {"k_random": 3}  # not a setting: the caller refuses or forwards it
    # the method's default of a shared setting applies only when the mapping does not give it
    (loop, *_), _ = S.split(cls, {})
    assert loop.lr == 1e-4
    (loop, *_), _ = S.split(methods.get("npo"), {})
    assert loop.lr == 1e-5 and loop.epochs == 5


@pytest.mark.parametrize("params, message", [
    ({"lr": 0}, "method 'npo': lr must be > 0, got 0"),
    ({"lr": -1e-5}, "method 'npo': lr must be > 0, got -1e-05"),
    ({"epochs": 0}, "method 'npo': epochs must be >= 1, got 0"),
    ({"steps": 0}, "method 'npo': steps must be >= 1, got 0"),
    ({"steps": 2.5}, "method 'npo': steps must be an integer >= 1 or unset, got 2.5"),
    ({"gamma_forget": float("nan")}, "method 'npo': gamma_forget must be >= 0, got nan"),
    ({"reference": "disk"}, "method 'npo': reference must be one of cached, resident, got 'disk'"),
    ({"beta": 0.0}, "method 'npo': beta must be > 0, got 0.0"),
])
def test_values_are_checked_before_any_model_is_loaded(params, message):
    with pytest.raises(ValueError) as err:
        methods.get("npo")(model_path="/nonexistent", **params)
    assert str(err.value) == message


def test_an_unknown_key_at_construction_gets_the_grid_checks_did_you_mean():
    with pytest.raises(UserError, match=r"unknown parameter 'betta' for method 'npo' \(did you mean 'beta'\?\); "
                                        r"known: .*\blr\b"):
        methods.get("npo")(model_path="/nonexistent", betta=0.2)


def test_reference_choices_are_the_reference_modes():
    from unlearnbench.methods.reference import MODES

    (reference,) = [f for f in fields(S.RunOptions) if f.name == "reference"]
    assert reference.metadata["choices"] == MODES


def test_wagle_reads_the_loop_settings_from_the_dataclasses():
    from unlearnbench.methods.wagle import LOOP_KEYS

    # What WAGLE runs for its inner method, so inner_params may not carry it.
    assert set(LOOP_KEYS) == {"lr", "weight_decay", "warmup_epochs", "epochs", "steps", "batch_size", "grad_clip",
                              "seed", "reference", "lora", "gradient_checkpointing", "dtype", "ref_dtype",
                              "k_random", "template", "max_steps", "micro_batch_size"}


def test_every_setting_has_a_doc_and_every_method_declares_its_own_in_its_own_file():
    for group in S.SHARED:
        for f in fields(group):
            assert f.metadata["doc"].strip(), f.name
    for name in methods.names():
        cls = methods.get(name)
        own = getattr(cls, "Settings", None)
        if own is None:
            continue
        assert own.__module__ == cls.__module__, name
        for f in fields(own):
            assert f.metadata["doc"].strip(), (name, f.name)
            assert f.name not in S.names(*S.SHARED), (name, f.name)  # a shared name goes in shared_defaults
        for key in getattr(cls, "shared_defaults", {}):
            assert key in S.names(*S.SHARED), (name, key)
