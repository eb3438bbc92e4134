"""Every user error: one line on stderr naming the thing and the fix, exit status 2, no traceback.

Table-driven, one table per category; each case runs the real CLI in a subprocess (the cases
of a table run concurrently). None of them may compute anything: each fails before a model
is built or evaluated, which the timeout also guards.

Read-only and full-disk cases are also simulated with a fault-injection plugin (``--plugin``),
because a root user (CI containers) writes through permission bits.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Raises OSError(FAULT_ERRNO) on any write or mkdir under FAULT_DIR: a read-only or full disk.
FAULTS = textwrap.dedent("""
    import builtins, errno, os, pathlib

    ROOT, CODE = os.environ["FAULT_DIR"], getattr(errno, os.environ["FAULT_ERRNO"])

    def _hit(path):
        return str(os.path.abspath(os.fspath(path))).startswith(ROOT)

    def _fail(path):
        raise OSError(CODE, os.strerror(CODE), os.fspath(path))

    _open, _osopen, _mkdir = builtins.open, os.open, pathlib.Path.mkdir

    def fake_open(file, mode="r", *a, **k):
        if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+") and _hit(file):
            _fail(file)
        return _open(file, mode, *a, **k)

    def fake_osopen(path, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and _hit(path):
            _fail(path)
        return _osopen(path, flags, *a, **k)

    def fake_mkdir(self, *a, **k):
        if _hit(self) and not self.is_dir():
            _fail(self)
        return _mkdir(self, *a, **k)

    builtins.open, os.open, pathlib.Path.mkdir = fake_open, fake_osopen, fake_mkdir
""")


def _cli(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unlearnbench.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def _in_process(args: list[str], capsys) -> subprocess.CompletedProcess:
    from unlearnbench import cli

    rc = cli.main(args)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, captured.out, captured.err)


def _check_table(cases: list[tuple[str, list[str], str, dict | None]], capsys=None) -> None:
    """Each case: (name, CLI args, text the message must contain, extra env).

    A subprocess each (the CLI as a user runs it); with ``capsys``, ``cli.main`` in this
    process instead, for the relatives of the issue's cases (each subprocess imports torch)."""
    if capsys is not None:
        procs = [_in_process(c[1], capsys) for c in cases]
    else:
        with ThreadPoolExecutor(max_workers=2) as pool:
            procs = list(pool.map(lambda c: _cli(c[1], c[3]), cases))
    bad = []
    for (name, _, want, _), proc in zip(cases, procs):
        err = proc.stderr.strip()
        lines = err.splitlines()
        if proc.returncode != 2 or len(lines) != 1 or "Traceback" in err or want not in err \
                or not lines[0].startswith("unlearnbench: error: "):
            bad.append(f"{name}: rc={proc.returncode}, stderr={err[-600:]!r}")
    assert not bad, "\n".join(bad)


def _grid(tmp_path: Path, fname: str, **change) -> str:
    raw = {"name": "g", "benchmark": "tofu-synth", "splits": ["forget01"], "models": ["tiny-test"],
           "references": {"retain_seeds": [0]}, "methods": ["npo"], **change}
    path = tmp_path / f"{fname}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def test_set_problems(tmp_path):
    train = ["train", "--model", "tiny-test", "--split", "forget01", "--method", "npo", "--set"]
    _check_table([
        ("lr=abc", train + ["lr=abc"], "parameter 'lr' of method 'npo' must be a number, got 'abc'", None),
        ("unknown key", train + ["lrr=1e-4"], "unknown parameter 'lrr' for method 'npo' (did you mean 'lr'?)", None),
        ("batch_size=0", train + ["batch_size=0"], "parameter 'batch_size' of method 'npo' must be >= 1, got 0", None),
        ("no =", train + ["lr"], "--set 'lr': expected KEY=VALUE", None),
        ("negative lr", train + ["lr=-1"], "parameter 'lr' of method 'npo' must be > 0, got -1", None),
    ])


def test_set_problems_relatives(tmp_path, capsys):
    train = ["train", "--model", "tiny-test", "--split", "forget01", "--method", "npo", "--set"]
    _check_table([
        ("bad yaml", train + ["lora={r: 8"], "is neither a number nor valid YAML", None),
        ("run lr=abc", ["run", "--method", "ga", "--model", "tiny-test", "--split", "forget01",
                        "--out", str(tmp_path / "run"), "--set", "lr=abc"], "must be a number", None),
        ("eval --set batch_size=abc",
         ["eval", "--model", "tiny-test", "--split", "forget01", "--set", "batch_size=abc"],
         "eval option 'batch_size' must be an integer >= 1 (default 32), got 'abc'", None),
        ("finetune lr=abc", ["finetune", "--model", "tiny-test", "--out", str(tmp_path / "ft"), "--set", "lr=abc"],
         "--set lr='abc' must be a positive number", None),
    ], capsys)


def test_grid_parameters_fail_at_read_time(tmp_path):
    """`--dry-run` catches what used to fail in every cell after the references."""
    _check_table([
        ("{lr: abc}", ["grid", _grid(tmp_path, "a", defaults={"lr": "abc"}), "--dry-run"],
         "method 'npo': parameter 'lr' of method 'npo' must be a number, got 'abc'", None),
        ("{lrr: 1e-4}", ["grid", _grid(tmp_path, "b", methods=[{"name": "npo", "params": {"lrr": 1e-4}}]), "--dry-run"],
         "unknown parameter 'lrr' for method 'npo' (did you mean 'lr'?)", None),
        ("{lr: -1}",
         ["grid", _grid(tmp_path, "c", methods=[{"name": "npo", "sweep": {"lr": [1e-4, -1]}}]), "--dry-run"],
         "method 'npo[lr=-1]': parameter 'lr' of method 'npo' must be > 0, got -1", None),
        ("300-char label", ["grid", _grid(tmp_path, "f", methods=[{"name": "npo", "label": "x" * 300}]), "--dry-run"],
         "give it a shorter `label:`", None),
        ("name ../../etc", ["grid", _grid(tmp_path, "h", name="../../etc"), "--dry-run"],
         "must be a plain directory name", None),
    ])


def test_grid_relatives(tmp_path, capsys):
    _check_table([
        ("wagle inner beta",
         ["grid", _grid(tmp_path, "d", methods=[{"name": "wagle", "params": {"inner": "npo", "beta": 0}}]),
          "--dry-run"], "parameter 'beta' of method 'npo' must be > 0", None),
        ("attack param", ["grid", _grid(tmp_path, "e", attacks={"relearn": {"fractionn": 0.5}}), "--dry-run"],
         "fractionn", None),
        ("--only zzz", ["grid", _grid(tmp_path, "i"), "--only", "zzz", "--out", str(tmp_path / "o")],
         "e.g. --only npo__tofu-synth-forget01__tiny-test__s42", None),
        ("grid model dir", ["grid", _grid(tmp_path, "m", models=[str(tmp_path)]), "--dry-run"],
         "has no config.json", None),
        ("grid data_dir", ["grid", _grid(tmp_path, "dd", data_dir=str(tmp_path / "nowhere")), "--dry-run"],
         "does not exist", None),
        ("eval --out a file", ["eval", "--model", "tiny-test", "--split", "forget01", "--out", str(Path(
            _grid(tmp_path, "file")))], "a file is in the way", None),
    ], capsys)


def _model_dir(root: Path, name: str) -> Path:
    """A saved model's files: config, tokenizer and one whole safetensors file."""
    import torch
    from safetensors.torch import save_file

    d = root / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (d / "tokenizer.json").write_text("{}")
    save_file({"w": torch.zeros(256)}, str(d / "model.safetensors"))
    return d


def test_local_model_directories(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    bad_config = _model_dir(tmp_path, "config")
    (bad_config / "config.json").write_text('{"model_type": "lla')
    bad_weights = _model_dir(tmp_path, "weights")
    data = (bad_weights / "model.safetensors").read_bytes()
    (bad_weights / "model.safetensors").write_bytes(data[: len(data) // 2])
    _check_table([
        ("empty", ["eval", "--model", str(empty)], f"model directory {empty} has no config.json (it is empty)", None),
        ("truncated config.json", ["eval", "--model", str(bad_config)], "config.json is not valid JSON", None),
        ("truncated safetensors", ["eval", "--model", str(bad_weights)], "model.safetensors is truncated", None),
    ])


def test_local_data_directories(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    missing_file = tmp_path / "missing_file"
    missing_file.mkdir()
    (missing_file / "README.md").write_text("---\nconfigs:\n- config_name: full\n  data_files:\n"
                                            "  - split: train\n    path: full-train.jsonl\n---\n")
    not_utf8 = tmp_path / "not_utf8"
    not_utf8.mkdir()
    (not_utf8 / "full-train.jsonl").write_bytes(b'{"question": "a", "answer": "b"}\n{"question": "\xff"}\n')
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    rows = "".join(json.dumps({"question": f"q{i}", "answer": "a"}) + "\n" for i in range(2))
    (truncated / "full-train.jsonl").write_text(rows + '{"question": "q2", "ans')
    ev = ["eval", "--model", "tiny-test", "--split", "forget01", "--data-dir"]
    _check_table([
        ("missing", ev + [str(tmp_path / "nowhere")], f"data path {tmp_path / 'nowhere'} does not exist", None),
        ("empty", ev + [str(empty)], f"data directory {empty} is empty", None),
        ("missing file", ev + [str(missing_file)], "README.md declares full-train.jsonl, which is missing", None),
        ("non-UTF-8", ev + [str(not_utf8)], f"{not_utf8 / 'full-train.jsonl'} row 2: byte 0xff is not UTF-8", None),
        ("truncated JSON", ev + [str(truncated)], f"{truncated / 'full-train.jsonl'} row 3: not valid JSON", None),
    ])


def test_output_paths(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    plugin = tmp_path / "faults.py"
    plugin.write_text(FAULTS)
    grid = _grid(tmp_path, "g")
    ro, full = tmp_path / "ro", tmp_path / "full"
    cases = [
        ("grid --out a file", ["grid", grid, "--out", str(a_file / "sub")], "a file is in the way of a directory",
         None),
        ("grid read-only (simulated)", ["--plugin", str(plugin), "grid", grid, "--out", str(ro)],
         f"cannot write {ro}", {"FAULT_DIR": str(ro), "FAULT_ERRNO": "EROFS"}),
        ("grid full disk at the first write (simulated)", ["--plugin", str(plugin), "grid", grid, "--out", str(full)],
         "the disk is full", {"FAULT_DIR": str(full / ".lock"), "FAULT_ERRNO": "ENOSPC"}),
    ]
    if os.geteuid() != 0:  # root writes through permission bits
        real_ro = tmp_path / "real_ro"
        real_ro.mkdir(mode=0o500)
        cases.append(("grid read-only", ["grid", grid, "--out", str(real_ro / "x")], "Permission denied", None))
    _check_table(cases)


def test_temp_file_cleanup_keeps_the_first_error(tmp_path, monkeypatch):
    """A full disk in the writer, and the cleanup failing too: the disk error is what surfaces."""
    from unlearnbench import files

    def writer(tmp):
        tmp.write_text("partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    def unlink(self, missing_ok=False):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(OSError) as info:
        files.atomic_save(tmp_path / "result.json", writer)
    assert info.value.errno == errno.ENOSPC and info.value.__context__ is None
    monkeypatch.undo()
    assert not (tmp_path / "result.json").exists()
