"""The matrix runner: references first, then every cell in its own process, resumable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from unlearnbench.report.atomic import atomic_write_json
from unlearnbench.runner.grid import Cell, Grid

REF_ROLES = (("target", "target", 0), ("retain", "retain", 0), ("retain-seed2", "retain", 1))


def reference_cells(grid: Grid) -> list[dict]:
    """Target, retain and (where it can exist) a second-seed retain per model/split."""
    seeds = grid.references.get("retain_seeds", [0, 1])
    seen, refs = set(), []
    for c in grid.cells:
        key = (c.benchmark, c.split, c.model)
        if key in seen:
            continue
        seen.add(key)
        for name, role, seed in REF_ROLES:
            if role == "retain" and seed not in seeds:
                continue
            ref_id = f"{name}__{c.benchmark}-{c.split}__{Path(c.model).name}"
            refs.append({"cell_id": ref_id, "kind": "ref", "method": name, "label": name,
                         "role": role, "ref_seed": seed, "benchmark": c.benchmark, "split": c.split,
                         "model": c.model, "seed": seed, "eval": c.eval})
    return refs


def _done(cell_dir: Path) -> bool:
    f = cell_dir / "result.json"
    if not f.exists():
        return False
    try:
        return json.loads(f.read_text()).get("status") == "ok"
    except (json.JSONDecodeError, OSError):
        return False


def _launch(cell: dict, cell_dir: Path, log) -> int:
    """Run one cell in a child process; record a failure if the child dies without one."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cell_dir / "cell.json", cell)
    (cell_dir / "result.json").unlink(missing_ok=True)
    with open(cell_dir / "log.txt", "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "unlearnbench.runner.cell", str(cell_dir / "cell.json")],
                                stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
        try:
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    if not (cell_dir / "result.json").exists():
        tail = (cell_dir / "log.txt").read_text()[-3000:]
        atomic_write_json(cell_dir / "result.json", {
            "cell_id": cell["cell_id"], "kind": cell.get("kind", "cell"), "method": cell.get("method"),
            "method_label": cell.get("label"), "benchmark": cell["benchmark"], "split": cell["split"],
            "model": cell["model"], "seed": cell.get("seed"), "config": cell, "status": "failed",
            "error": f"cell process exited with code {rc} without a result (killed or crashed)",
            "traceback": tail})
    return rc


def _fmt(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


def run_grid(grid: Grid, out_dir: Path, retry_failed: bool = True, only: str | None = None,
             plugins: list[str] | None = None, log=print) -> dict:
    """Run every cell not yet done; returns {"ok": n, "failed": [...], "skipped": n}."""
    from unlearnbench.report.leaderboard import write_leaderboard

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "grid.json", grid.raw)
    jobs = [("refs", r) for r in reference_cells(grid)]
    jobs += [("cells", {**c.as_dict(), "label": c.label, "kind": "cell", "plugins": plugins or []})
             for c in grid.cells if not only or only in c.cell_id]
    todo = []
    for sub, cell in jobs:
        cell_dir = out_dir / sub / cell["cell_id"]
        if _done(cell_dir):
            continue
        if not retry_failed and (cell_dir / "result.json").exists():
            continue
        todo.append((sub, cell, cell_dir))
    total, skipped = len(jobs), len(jobs) - len(todo)
    log(f"[grid {grid.name}] {total} jobs ({len(grid.cells)} cells + references); "
        f"{skipped} already done, {len(todo)} to run -> {out_dir}")
    start, failed = time.time(), []
    for n, (sub, cell, cell_dir) in enumerate(todo, 1):
        t0 = time.time()
        rc = _launch(cell, cell_dir, log)
        status = json.loads((cell_dir / "result.json").read_text())
        if status["status"] != "ok":
            failed.append((cell["cell_id"], status.get("error")))
        elapsed = time.time() - start
        eta = elapsed / n * (len(todo) - n)
        log(f"[{skipped + n}/{total}] {cell['cell_id']}: {status['status']} ({time.time() - t0:.1f}s, rc={rc})"
            f" | elapsed {_fmt(elapsed)}, ETA {_fmt(eta)}"
            + (f"\n    error: {status.get('error')}" if status["status"] != "ok" else ""))
    paths = write_leaderboard(out_dir, published=grid.published)
    log(f"[grid {grid.name}] done in {_fmt(time.time() - start)}: {total - len(failed)} ok, "
        f"{len(failed)} failed. Leaderboard: {paths.get('markdown')}")
    for cid, err in failed:
        log(f"  FAILED {cid}: {err}")
    return {"ok": total - len(failed), "failed": failed, "skipped": skipped, "paths": paths}
