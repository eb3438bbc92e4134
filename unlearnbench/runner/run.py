"""The matrix runner: references first, then every cell in its own process, resumable.

A cell is *done* when its ``result.json`` says ``ok`` and was computed with the same
configuration as the grid asks for now; done cells are never recomputed, so a grid killed
(or Ctrl-C'd) part-way is resumed by running it again. Every other cell (never run, killed
mid-way, failed, or whose YAML entry changed) is run again.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

from unlearnbench.files import _jsonable, atomic_write_json
from unlearnbench.numerics import cpu_threads
from unlearnbench.report.schema import NOT_APPLICABLE, Kind, Status
from unlearnbench.runner.grid import Cell, Grid
from unlearnbench.runner.jobs import INPUTS_FILE, Job
from unlearnbench.runner.preflight import Benchmarks, check_jobs
from unlearnbench.runner.schedule import default_workers, dependencies

# Cell keys that do not change a cell's numbers: a result computed under other values of
# these is still valid.
_NOT_CONFIG = ("plugins", "keep_model", "logger")
# A child's output line that the grid also prints (models.progress writes them).
PROGRESS_PREFIX = b"[family]"
# An evaluation's progress line (eval.progress: items done / total, items/s; in a cell's
# log one every 10 s and one at the end); the grid prints it too, naming the cell.
EVAL_PREFIX = b"[eval] "


def _print(msg: str) -> None:
    print(msg, flush=True)  # a log tailed (or a process killed) mid-grid loses no line


def reference_cells(grid: Grid, cells: list[Cell] | None = None, plugins: list[str] | None = None) -> list[Job]:
    """The reference models each benchmark declares (TOFU: target, retain and, where it can
    exist, a second-seed retain), once per benchmark / evaluated split / model of ``cells``
    (default: every cell of the grid). ``references.retain_seeds`` keeps the retain-role
    references of those training seeds."""
    from unlearnbench.registry import benchmarks, models

    seeds = grid.references.get("retain_seeds", [0, 1])
    seen, refs = set(), []
    for c in grid.cells if cells is None else cells:
        bench = benchmarks.get(c.benchmark)
        split = bench.eval_split(c.split)
        key = (c.benchmark, split, c.model)
        if key in seen:
            continue
        seen.add(key)
        spec = models.get(c.model) if c.model in models else None
        for order, ref in enumerate(bench.references):
            if ref.role == "retain" and ref.seed not in seeds:
                continue
            if ref.seed != 0 and (spec is None or not spec.is_tiny):
                continue  # published checkpoints have one seed; another needs a fine-tune of your own
            refs.append(Job.reference(ref, order, c, split, plugins or []))
    return refs


def _config_key(cell: dict) -> dict:
    """The cell as it reads back from JSON, without the keys that do not affect results."""
    return {k: v for k, v in json.loads(json.dumps(_jsonable(cell), default=str)).items()
            if k not in _NOT_CONFIG}


def _read_result(cell_dir: Path) -> dict | None:
    try:
        data = json.loads((cell_dir / "result.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cell_state(cell: dict, cell_dir: Path, data_key=None) -> str:
    """``done`` (ok or not applicable, same config), ``stale`` (other config, or other data:
    a result that records a data key other than ``data_key``), ``failed`` or ``todo``.

    Results written before data keys were recorded are compared by config only."""
    result = _read_result(cell_dir)
    if result is None:
        return "todo"
    if result.get("status") not in (Status.OK.value, NOT_APPLICABLE):
        return "failed"
    if result.get("status") == NOT_APPLICABLE and _applicable_now(cell):
        return "stale"  # its method has since learnt to train on this data (FLAT on raw text)
    if _config_key(result.get("config") or {}) != _config_key(cell):
        return "stale"
    if data_key is not None and result.get("data_key", data_key) != data_key:
        return "stale"
    return "done"


def _applicable_now(config: dict) -> bool:
    """Whether a job recorded not applicable (a method cell, or an attack on one) would run now."""
    kind = Kind.of(config)
    if kind is Kind.CELL or (kind is Kind.ATTACK and config.get("parent_kind") == Kind.CELL.value):
        try:
            return _method_misfit(config) is None
        except KeyError:  # a method or benchmark not registered (here): leave the record as it is
            return False
    return False


def _data_keys(jobs: list[Job], plugins: list[str] | None, benches: Benchmarks) -> dict:
    """``Benchmark.data_key`` of every (benchmark, data_dir) of the grid, computed here once;
    ``None`` where it cannot be (then results are compared by config only)."""
    from unlearnbench.registry import load_plugin

    for plugin in plugins or []:
        load_plugin(plugin)
    keys = {}
    for job in jobs:
        where = (job.benchmark, job.data_dir)
        if where not in keys:
            try:
                keys[where] = benches.get(*where).data_key()
            except Exception:  # noqa: BLE001 — the cell itself will report what is wrong
                keys[where] = None
    return keys


class Planned(NamedTuple):
    """A job of ``plan``: the job, its directory, and its state there."""

    job: Job
    dir: Path
    state: str


def plan(grid: Grid, out_dir: str | os.PathLike, retry_failed: bool = True, only: str | None = None,
         plugins: list[str] | None = None, benches: Benchmarks | None = None) -> list[Planned]:
    """Every job of the grid, references first, each method cell or reference followed by
    its attacks.

    ``state`` is ``cell_state``'s, except that a failed cell is ``kept`` (not re-run) when
    ``retry_failed`` is false. ``only`` keeps the cells whose id contains it (and their
    references)."""
    out_dir = Path(out_dir)
    cells = select_cells(grid, only)
    parents = reference_cells(grid, cells, plugins) + [Job.method_cell(c, plugins or []) for c in cells]
    jobs: list[tuple[Job, Path]] = []
    for parent in parents:  # each job, then its attacks (which need its model)
        parent_dir = out_dir / parent.kind.group / parent.id
        jobs.append((parent, parent_dir))
        jobs += [(Job.attack(parent, name, params), parent_dir / "attacks" / name)
                 for name, params in grid.attacks.items()]
    # Data keys only matter for jobs with a result: a plan of a new directory (a dry run)
    # generates no stand-in data.
    keys = _data_keys([job for job, d in jobs if (d / "result.json").exists()], plugins, benches or Benchmarks())
    out = []
    for job, job_dir in jobs:
        state = cell_state(job.to_json(), job_dir, keys.get((job.benchmark, job.data_dir)))
        if state == "failed" and not retry_failed:
            state = "kept"
        out.append(Planned(job, job_dir, state))
    # A sequential chain's step starts from the previous step's model, an attack from its
    # cell's: a job to run whose source cell is done but whose model is gone (deleted, or
    # never kept) re-runs that cell.
    index = {p.job.id: i for i, p in enumerate(out)}
    for job, _, state in out:
        prev = job.model_source
        if prev in index and state not in ("done", "kept"):
            source = out[index[prev]]
            if source.state == "done" and not (source.dir / "work" / "model" / "config.json").exists():
                out[index[prev]] = source._replace(state="todo")
    return out


def select_cells(grid: Grid, only: str | None) -> list[Cell]:
    """The cells whose id contains ``only`` (all without it); none is a user error."""
    from unlearnbench.runner.grid import GridError

    cells = [c for c in grid.cells if not only or only in c.cell_id]
    if not cells:
        raise GridError(f"--only {only!r} matches none of the {len(grid.cells)} cells of grid {grid.name!r}; "
                        f"it keeps the cells whose id contains it, e.g. --only {grid.cells[0].cell_id}"
                        " (`--dry-run` lists them)")
    return cells


# How a dry run names each state of ``plan``.
_DRY = {"done": "done", "todo": "to-run", "failed": "to-run", "stale": "stale", "kept": "kept"}


def dry_run(grid: Grid, out_dir: Path, retry_failed: bool = True, only: str | None = None,
            plugins: list[str] | None = None) -> list[str]:
    """One line per job of ``plan`` (state, kind, id), after a summary line; nothing runs."""
    jobs = plan(grid, out_dir, retry_failed=retry_failed, only=only, plugins=plugins)
    counts: dict[str, int] = {}
    lines = []
    for job, _, state in jobs:
        mark = _DRY[state]
        counts[mark] = counts.get(mark, 0) + 1
        note = {"failed": "  (failed before)", "stale": "  (configuration or data changed)",
                "kept": "  (failed before, kept: --no-retry-failed)"}.get(state, "")
        lines.append(f"{mark:<7} {job.kind.value:<6} {job.id}{note}")
    summary = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("done", "to-run", "stale", "kept") if counts.get(k))
    return [f"[grid {grid.name}] {len(jobs)} jobs -> {out_dir}: {summary}"] + lines


def not_applicable(job: Job) -> str | None:
    """Why a method cell's method cannot train on its benchmark's data shape, or ``None``."""
    return _method_misfit(job.config) if job.kind is Kind.CELL else None


def _method_misfit(cell: dict) -> str | None:
    """Why the method of ``cell`` (a method cell's, or the cell an attack attacks) cannot train
    on its benchmark's data, or ``None``."""
    from unlearnbench.registry import benchmarks, methods

    bench, method = benchmarks.get(cell["benchmark"]), methods.get(cell["method"])
    shape = bench.shape
    if not method.supports(shape, cell.get("params")):
        return (f"method {cell['label']!r} does not train on {shape!r} data "
                f"(benchmark {cell['benchmark']!r})")
    # A raw-text benchmark carries only the extras it offers (e.g. FLAT's template: general text).
    missing = [n for n in method.needs if n != "retain" and n not in bench.text_extras] if shape == "text" else []
    if missing:
        return (f"method {cell['label']!r} needs {', '.join(missing)} data, which benchmark "
                f"{cell['benchmark']!r} (raw text) does not offer")
    return None


def spawn(argv: list[str], out, keep_fds: tuple[int, ...] = ()) -> subprocess.Popen:
    """A job's child process: it gets SIGTERM if the grid dies, and inherits ``keep_fds``
    (the results lock, so that the directory stays locked while the child lives)."""
    from unlearnbench.runner.lock import die_with_parent

    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy(),
                            preexec_fn=die_with_parent(), pass_fds=keep_fds)


def pump(proc: subprocess.Popen, out, log=_print, label: str | None = None) -> int:
    """Copy a child's output to ``out`` (its log.txt) until it exits; progress lines (the tiny
    family's build, which the first reference triggers and which takes minutes, and the
    evaluation's items done / total and items/s, prefixed with ``label``, the cell's id) also
    go to the grid's own output. Returns the exit status."""
    for line in iter(proc.stdout.readline, b""):
        out.write(line)
        out.flush()
        if line.startswith(PROGRESS_PREFIX):
            log(line.decode("utf-8", errors="replace").rstrip())
        elif line.startswith(EVAL_PREFIX):
            text = line[len(EVAL_PREFIX):].decode("utf-8", errors="replace").rstrip()
            log(f"  [eval] {label}: {text}" if label else f"  [eval] {text}")
    return proc.wait()


class _Launched:
    """One job's child process, started now (from the grid's main thread: a child gets SIGTERM
    when the thread that started it exits, so never from a worker thread), its output copied
    to its log.txt by a thread that puts the job's id on ``finished`` when the child exits.

    A child that exits without a result gets a ``failed`` one, unless the grid stopped it
    (``stop``): an interrupted job is not a failed one, and the next run computes it."""

    def __init__(self, job: Job, cell_dir: Path, log, keep_fds: tuple[int, ...], finished: queue.Queue):
        cell_dir.mkdir(parents=True, exist_ok=True)
        (cell_dir / "result.json").unlink(missing_ok=True)
        shutil.rmtree(cell_dir / "work", ignore_errors=True)  # what a killed earlier attempt left
        job.write(cell_dir)
        self.job, self.cell_dir, self.rc, self.stopped = job, cell_dir, None, False
        self.out = open(cell_dir / "log.txt", "wb")
        self.proc = spawn([sys.executable, "-m", job.module, str(cell_dir / "cell.json")], subprocess.PIPE, keep_fds)
        self.thread = threading.Thread(target=self._follow, args=(log, finished), daemon=True)
        self.thread.start()

    def _follow(self, log, finished: queue.Queue) -> None:
        try:
            self.rc = pump(self.proc, self.out, log, self.job.id)
        finally:
            self.out.close()
        if not self.stopped and _read_result(self.cell_dir) is None:
            tail = (self.cell_dir / "log.txt").read_text(errors="replace")[-3000:]
            atomic_write_json(self.cell_dir / "result.json", self.job.failed(
                f"cell process exited with code {self.rc} without a result (killed or crashed)", tail))
        finished.put(self.job.id)

    def stop(self) -> None:
        """Stop the child (Ctrl-C) and remove whatever it wrote that is not ``ok``."""
        self.stopped = True
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.thread.join(timeout=30)
        # Lightning turns Ctrl-C into sys.exit(1), which the cell records as a failure.
        if (_read_result(self.cell_dir) or {}).get("status") != Status.OK.value:
            (self.cell_dir / "result.json").unlink(missing_ok=True)


def _prune_models(jobs: list[Planned], pending: set[str]) -> None:
    """Delete a kept unlearned model once no job that needs it (its chain successor, its
    attacks) is still to run in this invocation, so a grid of 7B cells does not fill the disk.

    ``pending`` holds the ids of the jobs not yet run now: a stale or failed job keeps its old
    result.json until it re-runs, so "has a result" would delete a re-run cell's model before
    its re-run attacks could read it."""
    needed_by: dict[str, list[str]] = {}
    for job, _, _ in jobs:
        if job.model_source:
            needed_by.setdefault(job.model_source, []).append(job.id)
    for job, job_dir, _ in jobs:
        waiting = needed_by.get(job.id)
        if job.kind is Kind.CELL and waiting and not pending.intersection(waiting):
            shutil.rmtree(job_dir / "work" / "model", ignore_errors=True)


def _parent_not_ok(attack_dir: Path) -> str | None:
    """Why an attack cannot run: its cell is not applicable or did not succeed."""
    parent = _read_result(attack_dir.parents[1]) or {}
    if parent.get("status") == Status.OK.value:
        return None
    if parent.get("status") == NOT_APPLICABLE:
        return f"not applicable: {parent.get('reason')}"
    return f"its cell {attack_dir.parents[1].name} did not succeed ({parent.get('error')})"


def _record_not_run(job: Job, job_dir: Path, reason: str) -> Status:
    """Write the result of a job that cannot run (``reason``): a method cell that does not
    train on its benchmark's data, or an attack on it, is not applicable; an attack whose cell
    failed has failed too. Returns the status written."""
    job_dir.mkdir(parents=True, exist_ok=True)
    failure = job.kind is Kind.ATTACK and not reason.startswith("not applicable")
    status = Status.FAILED if failure else Status.NOT_APPLICABLE
    atomic_write_json(job_dir / "result.json",
                      job.failed(reason if failure else None, status=status, reason=reason))
    return status


def _record_grid(path: Path, raw: dict) -> None:
    """Write ``grid.json`` (the grid as run), keeping an earlier run's ``attacks`` when this
    run names none (their results stay in the directory and in its tables), and leaving the
    file untouched when nothing changed: a committed results directory stays clean."""
    raw = json.loads(json.dumps(_jsonable(raw), default=str))
    old = None
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    if isinstance(old, dict) and "attacks" not in raw and old.get("attacks"):
        raw["attacks"] = old["attacks"]
    if raw != old:
        atomic_write_json(path, raw)


def eta_seconds(times: dict[str, list[float]], remaining: dict[str, int]) -> float | None:
    """Time still needed: the mean time of each job kind (``cells``, ``attacks``) so far times
    the jobs of that kind still to run. References are left out: the first one builds the
    one-off tiny family, which would make every later cell look minutes long. ``None`` until
    a job of each kind still to run has finished."""
    total = 0.0
    for kind in ("cells", "attacks"):
        if remaining.get(kind):
            if not times.get(kind):
                return None
            total += sum(times[kind]) / len(times[kind]) * remaining[kind]
    return total


def _fmt(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


_SKIP_NOTE = {"done": "already done", "kept": "failed earlier, kept (--no-retry-failed)"}


def run_grid(grid: Grid, out_dir: Path, retry_failed: bool = True, only: str | None = None,
             plugins: list[str] | None = None, log=_print, wait: bool = False, workers: int | None = None) -> dict:
    """Run every job not yet done, then rebuild the leaderboard, holding the results
    directory's lock (another grid there: refuse, or ``wait`` for it). ``workers`` jobs run
    at a time (default ``schedule.default_workers``: one per core for tiny models on a CPU).

    Returns ``{"ok": n, "failed": [(cell_id, error), ...], "skipped": n, "ran": n, "paths"}``:
    ``failed`` lists every job of the grid that is not ok at the end (run now and failed, or
    an earlier failure kept by ``retry_failed=False``); ``skipped`` counts the jobs not run.
    """
    from unlearnbench.runner.lock import ResultsLock

    out_dir = Path(out_dir)
    select_cells(grid, only)  # refuse an `only` that matches nothing before touching anything
    # Bad input is answered before the lock is taken (and the results directory created), so a
    # grid waiting for another (`wait`) does not hold its error back: every model and data
    # reference of the jobs still to run resolves, or one line; then the method checks a grid
    # read with check_methods=False left (they import Lightning). Planning only reads; the plan
    # is made again under the lock, where a grid that waited sees the first one's results
    # (a subset of these jobs).
    benches = Benchmarks()  # each built once, for every use below
    jobs = plan(grid, out_dir, retry_failed=retry_failed, only=only, plugins=plugins, benches=benches)
    check_jobs([p.job for p in jobs if p.state not in _SKIP_NOTE], benches)
    grid.check_methods()
    with ResultsLock(out_dir, wait=wait, log=log) as lock:
        return _run_locked(grid, out_dir, retry_failed, only, plugins, log, (lock.fd,), workers, benches)


def _run_locked(grid: Grid, out_dir: Path, retry_failed: bool, only: str | None,
                plugins: list[str] | None, log, keep_fds: tuple[int, ...], workers: int | None,
                benches: Benchmarks) -> dict:
    from unlearnbench.report.leaderboard import write_leaderboard

    # Planned under the lock: a second grid that waited sees the first one's results.
    jobs = plan(grid, out_dir, retry_failed=retry_failed, only=only, plugins=plugins, benches=benches)
    todo = [p for p in jobs if p.state not in _SKIP_NOTE]
    _record_grid(out_dir / "grid.json", grid.raw)
    total, skipped = len(jobs), len(jobs) - len(todo)
    n_cells = sum(p.job.kind is Kind.CELL for p in jobs)
    n_attacks = sum(p.job.kind is Kind.ATTACK for p in jobs)
    log(f"[grid {grid.name}] {total} jobs ({n_cells} cells + {total - n_cells - n_attacks} references"
        + (f" + {n_attacks} attacks" if n_attacks else "") + "); "
        f"{skipped} already done, {len(todo)} to run -> {out_dir}")
    for job, _, state in jobs:
        if state in _SKIP_NOTE:
            log(f"[skip] {job.id}: {_SKIP_NOTE[state]}")
        elif state == "stale":
            log(f"[stale] {job.id}: configuration changed since its result; re-running")
    start, failed = time.time(), {}
    workers = max(1, min(workers or default_workers([p.job.config for p in todo]), len(todo) or 1))
    if workers > 1:
        log(f"[grid {grid.name}] {workers} jobs at a time, {cpu_threads()} thread(s) each")
    deps = dependencies([p.job for p in todo])
    unfinished = {p.job.id for p in todo}  # neither run nor written yet
    waiting = list(todo)
    running: dict[str, tuple[_Launched, Planned, float]] = {}
    finished: queue.Queue = queue.Queue()
    times: dict[str, list[float]] = {}
    remaining: dict[str, int] = {}
    for p in todo:
        remaining[p.job.kind.group] = remaining.get(p.job.kind.group, 0) + 1
    n = 0
    try:
        while waiting or running:
            for planned in list(waiting):
                job, job_dir, _ = planned
                if len(running) >= workers:
                    break
                if deps[job.id] & unfinished:
                    continue
                waiting.remove(planned)
                remaining[job.kind.group] -= 1
                reason = _parent_not_ok(job_dir) if job.kind is Kind.ATTACK else not_applicable(job)
                if reason is None:
                    # With what it reads, resolved here once (Benchmark.inputs, its inputs.json).
                    launched = _Launched(benches.with_inputs(job), job_dir, log, keep_fds, finished)
                    running[job.id] = (launched, planned, time.time())
                    continue
                status = _record_not_run(job, job_dir, reason)
                unfinished.discard(job.id)
                n += 1
                log(f"[{skipped + n}/{total}] {job.id}: {status.value.replace('_', ' ')} ({reason})")
                if status is not Status.NOT_APPLICABLE:
                    failed[job.id] = reason
            if not running:
                if waiting and all(deps[p.job.id] & unfinished for p in waiting):
                    raise RuntimeError(f"grid jobs wait for each other: {[p.job.id for p in waiting]}")
                continue
            try:
                done_id = finished.get(timeout=0.5)  # a timeout, so Ctrl-C is seen while waiting
            except queue.Empty:
                continue
            launched, (job, job_dir, _), t0 = running.pop(done_id)
            launched.thread.join()
            (job_dir / INPUTS_FILE).unlink(missing_ok=True)  # resolved for this launch only
            unfinished.discard(done_id)
            n += 1
            if not grid.raw.get("keep_models"):
                _prune_models(jobs, unfinished)
            status = _read_result(job_dir) or {"status": Status.FAILED.value, "error": "unreadable result.json"}
            ok = status.get("status") == Status.OK.value
            if not ok:
                failed[job.id] = status.get("error")
            elapsed = time.time() - start
            times.setdefault(job.kind.group, []).append(time.time() - t0)
            eta = eta_seconds(times, remaining)
            log(f"[{skipped + n}/{total}] {job.id}: {status.get('status')} ({time.time() - t0:.1f}s, "
                f"rc={launched.rc}) | elapsed {_fmt(elapsed)}, "
                f"ETA {_fmt(eta / workers) if eta is not None else 'after the first cell'}"
                + (f"\n    error: {status.get('error')}" if not ok else ""))
    except KeyboardInterrupt:
        for launched, _, _ in running.values():
            launched.stop()
        raise
    for job, job_dir, state in jobs:  # failures kept from an earlier run count too
        if state == "kept":
            failed[job.id] = (_read_result(job_dir) or {}).get("error")
    paths = write_leaderboard(out_dir, published=grid.published)
    failed_list = [(p.job.id, failed[p.job.id]) for p in jobs if p.job.id in failed]
    log(f"[grid {grid.name}] done in {_fmt(time.time() - start)}: {total - len(failed_list)} ok, "
        f"{len(failed_list)} failed ({len(todo)} run, {skipped} skipped). "
        f"Leaderboard: {paths.get('markdown')}")
    for cid, err in failed_list:
        log(f"  FAILED {cid}: {err}")
    return {"ok": total - len(failed_list), "failed": failed_list, "skipped": skipped,
            "ran": len(todo), "paths": paths}
