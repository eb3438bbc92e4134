"""Which of the harness's files one grid cell goes through, from the grid to its result.json.

    .venv/bin/python benchmarks/repro/cell_walk.py            # GA on tofu-synth forget01, tiny-test
    .venv/bin/python benchmarks/repro/cell_walk.py --method npo --out /tmp/walk

Runs a one-cell grid (its references first, as any grid does) with every Python process of it
profiled (a ``sitecustomize`` put on ``PYTHONPATH``), then prints, for the grid's own process
and for the cell's process, the ``unlearnbench`` files in which a function ran for the job
(``entered``; work done while a module is imported, i.e. module and class bodies and what they
call, such as a registering decorator, counts as ``only imported``) and how many times a
``Benchmark`` was constructed. The tiny-test family is built first if the cache lacks it (a few
minutes); the walk itself takes about a minute on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HOOK = '''
import atexit, json, os, sys
_out = os.environ["CELL_WALK_OUT"]
_entered, _imported, _built = set(), set(), [0]
def _importing(frame):
    # A module body, a class body (its code is not a function's: no CO_NEWLOCALS), or anything
    # either runs (a decorator registering a class) is import-time work, not the cell's.
    while frame is not None:
        code = frame.f_code
        if code.co_name == "<module>" and frame.f_globals.get("__name__") != "__main__":
            return True
        if not code.co_flags & 2 and code.co_name != "<module>":
            return True
        frame = frame.f_back
    return False
def _profile(frame, event, arg):
    if event != "call":
        return
    path = frame.f_code.co_filename
    if "/unlearnbench/" not in path or "site-packages" in path:
        return
    rel = path.split("/unlearnbench/", 1)[1]
    # Benchmark.__init__ by its code object: StandIn.__init__ is in the same file.
    bench_cls = getattr(sys.modules.get("unlearnbench.benchmarks.base"), "Benchmark", None)
    if bench_cls is not None and frame.f_code is bench_cls.__init__.__code__:
        _built[0] += 1
    if rel in _entered:
        return
    if _importing(frame):
        _imported.add(rel)
        return
    _entered.add(rel)
sys.setprofile(_profile)
import threading
threading.setprofile(_profile)
@atexit.register
def _dump():
    with open(os.path.join(_out, f"{os.getpid()}.json"), "w") as f:
        json.dump({"argv": sys.argv, "entered": sorted(_entered), "imported_only": sorted(_imported - _entered),
                   "benchmarks_built": _built[0]}, f)
'''

GRID = """name: cell-walk
description: one cell, for benchmarks/repro/cell_walk.py
benchmark: tofu-synth
splits: [forget01]
models: [tiny-test]
seeds: [42]
strategy: single
defaults: {{lr: 1.0e-3, weight_decay: 0.01, epochs: 1, warmup_epochs: 0, batch_size: 16, grad_clip: 1.0}}
eval: {{batch_size: 32, max_new_tokens: 20}}
references: {{retain_seeds: [0]}}
methods:
  - {method}
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="ga")
    ap.add_argument("--out", default=None, help="keep the walk's grid output here (default: a temp dir)")
    args = ap.parse_args(argv)
    work = Path(args.out or tempfile.mkdtemp(prefix="cell-walk-"))
    (work / "hook").mkdir(parents=True, exist_ok=True)
    (work / "trace").mkdir(exist_ok=True)
    (work / "hook" / "sitecustomize.py").write_text(HOOK)
    (work / "grid.yaml").write_text(GRID.format(method=args.method))
    env = {**os.environ, "CELL_WALK_OUT": str(work / "trace"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(work / "hook"), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-m", "unlearnbench.cli", "grid", str(work / "grid.yaml"), "--out",
                    str(work / "results"), "--jobs", "1"], env=env, check=True, stdout=subprocess.DEVNULL)
    for trace in sorted((work / "trace").glob("*.json"), key=lambda p: p.stat().st_mtime):
        t = json.loads(trace.read_text())
        job = t["argv"][-1]
        if "/cells/" in job:
            who = "the cell's process (" + Path(job).parent.name + ")"
        elif job.endswith("grid.yaml") or "grid" in t["argv"]:
            who = "the grid's process"
        else:
            continue  # the reference jobs
        print(f"{who}: {len(t['entered'])} files entered, {len(t['imported_only'])} only imported, "
              f"Benchmark built {t['benchmarks_built']}x")
        for f in t["entered"]:
            print(f"  {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
