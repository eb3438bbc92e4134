"""A static results site: ``unlearnbench site results/ --out site/``.

Plain HTML files (jinja2 templates under ``report/templates``) that open from disk, with no
server: an index of every grid and its benchmarks; per grid a page with, per benchmark, the
leaderboard (sortable by a click on a column, or by the URL: ``#sort=<column>&dir=asc``),
the published rows beside ours, the robustness table, the grid's plots (copied PNGs) and its
failed cells; and a page per job (reference or cell, one seed) with its config, provenance,
cost, metrics, attacks, training curve (inline SVG from ``history.csv``) and per-item samples
from ``items.jsonl`` when the results directory holds them (committed results do not).
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import pandas as pd
from markupsafe import Markup, escape

from . import published as pub_rows
from unlearnbench.files import atomic_write_text
from .leaderboard import (
    _ARROW_MD, BLOCK, KEYS, _benchmarks, _cell, _display_columns, _fmt, _is_multi, _ranking_text, _sci_columns,
    best_mask, directions, leaderboard_table, published_for, robustness_columns,
)
from .results import load_results, results_frame
from .schema import NOT_APPLICABLE, Kind, is_attack, is_cell, is_ref

PLOTS = ("tradeoff.png", "training_curves.png", "robustness.png", "chain.png")
SAMPLES_PER_TASK = 5
JOB_FIELDS = ("cell_id", "kind", "method", "method_label", "benchmark", "split", "model", "seed", "status",
              "error", "traceback")  # what a job page shows; a result may lack any of them
CURVE_W, CURVE_H = 600, 240
CURVE_LEFT, CURVE_RIGHT, CURVE_TOP, CURVE_BOTTOM = 64, 16, 10, 26  # margins of the plot area (px)


def find_grids(root: str | Path) -> list[Path]:
    """``root`` itself when it holds a grid's ``refs/`` or ``cells/``, else its sub-directories
    that do (sorted by name)."""
    root = Path(root)
    is_grid = lambda d: (d / "refs").is_dir() or (d / "cells").is_dir()  # noqa: E731
    if is_grid(root):
        return [root]
    return sorted(d for d in root.iterdir() if d.is_dir() and is_grid(d)) if root.is_dir() else []


def _env():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("unlearnbench.report", "templates"),
                      autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["code"] = _code
    env.filters["pretty"] = lambda obj: json.dumps(obj, indent=2, sort_keys=False, default=str)
    return env


def _code(text: Any) -> Markup:
    """Escape ``text`` and show its Markdown `code` spans as <code>."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(str(text)))))


def page_name(cell_id: str) -> str:
    """The file name of a job's page: its id made safe for any file system and URL."""
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", cell_id) + ".html"


def _sort_value(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    return repr(v) if math.isfinite(v) else ""


def _table(part: pd.DataFrame, bench: str, cols: list[str], table_id: str, cell_links: dict,
           published: list[dict] | None = None) -> dict:
    """A sortable table's headers and rows: each cell's text and its sort value."""
    multi = _is_multi(part)
    best = directions(part.attrs.get("metas", {}), part.columns)
    mask = best_mask(part)
    sci = _sci_columns(part)
    headers = [{"name": "method", "arrow": "", "num": False}]
    headers += [{"name": c, "arrow": "", "num": False} for c in (BLOCK[1:] if multi else [])]
    headers += [{"name": c, "arrow": _ARROW_MD.get(best.get(c, ""), "").strip(), "num": True} for c in cols]
    headers.append({"name": "seeds", "arrow": "", "num": False})
    rows = []
    for idx, row in part.iterrows():
        label = str(row["method_label"])
        cells = [{"text": label + (" (ref)" if is_ref(row) else ""), "v": label, "best": False}]
        cells += [{"text": _fmt(row[c]), "v": str(row[c]), "best": False} for c in (BLOCK[1:] if multi else [])]
        for c in cols:
            text = _cell(row, c, " ± ", str, c in sci) if c in part else ""
            cells.append({"text": text, "v": _sort_value(row.get(c)),
                          "best": bool(c in mask and mask.at[idx, c])})
        key = tuple(str(row[k]) for k in KEYS)
        rows.append({"kind": row["kind"], "label": label, "cells": cells, "jobs": cell_links.get(key, [])})
    # Published rows (report.published): each labelled with its source's number, as in the Markdown.
    sources = list(dict.fromkeys(pub_rows.source_note(r) for r in published or []))
    for r in published or []:
        vals = r["values"]
        n = sources.index(pub_rows.source_note(r)) + 1
        cells = [{"text": f"{r['label']} (published [{n}])", "v": r["label"], "best": False}]
        cells += [{"text": str(r[k]), "v": str(r[k]), "best": False} for k in (BLOCK[1:] if multi else [])]
        cells += [{"text": _fmt(vals.get(c), c in sci) if c in vals else "", "v": _sort_value(vals.get(c)),
                   "best": False} for c in cols]
        rows.append({"kind": "published", "label": r["label"], "cells": cells, "jobs": []})
    return {"id": table_id, "headers": headers, "rows": rows, "bench": bench}


def _job_links(frame: pd.DataFrame) -> dict[tuple, list[dict]]:
    """Leaderboard row key -> the pages of its ok jobs (one per seed)."""
    links: dict[tuple, list[dict]] = {}
    for _, r in frame[(frame["status"] == "ok") & (frame["kind"] != Kind.ATTACK.value)].iterrows():
        key = tuple(str(r[k]) for k in KEYS)
        seed = r["seed"]
        links.setdefault(key, []).append({"href": "jobs/" + quote(page_name(str(r["cell_id"]))),
                                          "text": f"s{seed}" if pd.notna(seed) else "job"})
    return links


def _sweep(table: pd.DataFrame) -> dict | None:
    sweep = table.attrs.get("sweep")
    if sweep is None or not len(sweep):
        return None
    cols = [c for c in sweep.columns if c.startswith("val:")]
    rows = [[str(r["entry"]), str(r["method_label"]), str(int(r["n_seeds"])), *(_fmt(r[c]) for c in cols),
             "yes" if r["chosen"] else ""] for _, r in sweep.iterrows()]
    return {"headers": ["entry", "setting", "n_seeds", *cols, "chosen"], "rows": rows}


def _failures(frame: pd.DataFrame) -> list[dict]:
    out = []
    for _, r in frame[frame["status"] != "ok"].iterrows():
        error = str(r["error"]) if pd.notna(r["error"]) else "unknown error"
        out.append({"id": str(r["cell_id"]), "label": str(r["method_label"]), "status": str(r["status"]),
                    "error": (error.strip().splitlines() or ["unknown error"])[0],
                    "href": None if is_attack(r) else "jobs/" + quote(page_name(str(r["cell_id"]))),
                    "na": r["status"] == NOT_APPLICABLE})
    return out


def _curve(path: Path) -> dict | None:
    """An SVG line chart of every numeric column of a history CSV against ``step``."""
    try:
        hist = pd.read_csv(path)
    except Exception:  # noqa: BLE001 - an unreadable history is shown as such, not fatal
        return None
    x = hist["step"].astype(float) if "step" in hist else pd.Series(range(len(hist)), dtype=float)
    terms = [c for c in hist.select_dtypes("number").columns if c != "step"]
    values = hist[terms].astype(float) if terms else pd.DataFrame()
    if not terms or not len(hist) or not values.notna().any().any():
        return None
    lo, hi = float(values.min().min()), float(values.max().max())
    hi = hi if hi > lo else lo + 1.0
    x0, x1 = float(x.min()), float(x.max())
    x1 = x1 if x1 > x0 else x0 + 1.0
    pw, ph = CURVE_W - CURVE_LEFT - CURVE_RIGHT, CURVE_H - CURVE_TOP - CURVE_BOTTOM
    sx = lambda v: CURVE_LEFT + (v - x0) / (x1 - x0) * pw  # noqa: E731
    sy = lambda v: CURVE_TOP + (hi - v) / (hi - lo) * ph  # noqa: E731
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
    lines = []
    for i, term in enumerate(terms):
        pts = [f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(x, values[term]) if math.isfinite(b)]
        lines.append({"term": term, "colour": palette[i % len(palette)], "points": " ".join(pts),
                      "last": _fmt(values[term].dropna().iloc[-1]) if values[term].notna().any() else "n/a"})
    return {"w": CURVE_W, "h": CURVE_H, "left": CURVE_LEFT, "top": CURVE_TOP, "pw": pw, "ph": ph, "lines": lines,
            "x0": _fmt(x0), "x1": _fmt(x1), "lo": _fmt(lo), "hi": _fmt(hi), "n": len(hist)}


def _items(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # one bad line hides nothing else
                if isinstance(rec, dict):
                    yield rec


def samples(job_dir: Path, target_dir: Path | None, limit: int = SAMPLES_PER_TASK) -> list[dict] | None:
    """The first ``limit`` generated items of each task in ``job_dir/items.jsonl``: prompt,
    reference answer, the target's generation (before unlearning, matched by task and index)
    and this job's (after). Tasks named like "forget…" come first. None when no items are
    stored (committed results keep no items.jsonl)."""
    path = job_dir / "items.jsonl"
    if not path.is_file():
        return None
    tasks: dict[str, list[dict]] = {}
    for rec in _items(path):
        if "generation" not in rec:
            continue
        rows = tasks.setdefault(str(rec.get("task")), [])
        if len(rows) < limit:
            rows.append({"task": str(rec.get("task")), "index": rec.get("index"),
                         "prompt": rec.get("question") or rec.get("prompt") or "",
                         "reference": rec.get("answer") or rec.get("reference") or "",
                         "after": rec.get("generation"), "before": None})
    wanted = {(r["task"], str(r["index"])): r for rows in tasks.values() for r in rows}
    if target_dir is not None and target_dir != job_dir and (target_dir / "items.jsonl").is_file():
        for rec in _items(target_dir / "items.jsonl"):
            hit = wanted.get((str(rec.get("task")), str(rec.get("index"))))
            if hit is not None:
                hit["before"] = rec.get("generation")
    order = sorted(tasks, key=lambda t: "forget" not in t.lower())  # stable: file order otherwise
    return [{"task": t, "items": tasks[t]} for t in order]


def _flat(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(obj, dict):
        return [kv for k, v in obj.items() for kv in _flat(v, f"{prefix}{k}.")]
    return [(prefix.rstrip("."), json.dumps(obj) if isinstance(obj, (list, bool)) or obj is None else str(obj))]


def _job_page(env, result: dict, attacks: list[dict], target: dict | None, grid_name: str) -> str:
    job_dir = Path(result["result_path"]).parent
    history = result.get("history_file")
    curve = _curve(job_dir / history) if history and (job_dir / history).is_file() else None
    target_dir = Path(target["result_path"]).parent if target else None
    # One table: each metric of the job, then its value after each attack.
    sci = _sci_names(result)
    done = [a for a in attacks if a.get("status") == "ok"]
    names = list(dict.fromkeys([*(result.get("metrics") or {}), *(k for a in done for k in a.get("metrics") or {})]))
    metrics = [(k, [_fmt((m.get("metrics") or {}).get(k), k in sci) for m in (result, *done)]) for k in names]
    return env.get_template("job.html").render(
        title=f"{result.get('cell_id')}", root="../../", grid=grid_name, r={**dict.fromkeys(JOB_FIELDS), **result},
        metrics=metrics, cost=_flat(result.get("cost") or {}), provenance=_flat(result.get("provenance") or {}),
        config=result.get("config") or {}, curve=curve, has_history=bool(history), is_reference=is_ref(result),
        samples=samples(job_dir, target_dir),
        target_id=str(target.get("cell_id")) if target and target is not result else None,
        metric_heads=["value", *(f"after {a.get('attack')}" for a in done)],
        attacks=[{"name": a.get("attack"), "status": a.get("status"), "error": a.get("error") or a.get("reason")}
                 for a in attacks if a.get("status") != "ok"])


def _sci_names(result: dict) -> set[str]:
    return {c["name"] for c in (result.get("benchmark_meta") or {}).get("columns", []) if c.get("sci")}


def _target_of(result: dict, results: list[dict]) -> dict | None:
    """The target reference a job is compared with: same benchmark and model, evaluated on
    the split the job was evaluated on."""
    split = result.get("eval_split") or result.get("split")
    return next((r for r in results if is_ref(r) and r.get("method") == "target"
                 and r.get("status") == "ok" and r.get("benchmark") == result.get("benchmark")
                 and r.get("model") == result.get("model")
                 and (r.get("eval_split") or r.get("split")) == split), None)


def _write_grid(env, grid: Path, out: Path) -> dict:
    """Write one grid's page, its job pages and plots under ``out``; return its index entry."""
    spec = json.loads((grid / "grid.json").read_text()) if (grid / "grid.json").is_file() else {}
    results = load_results(grid)
    frame = results_frame(results)
    table = leaderboard_table(frame)
    metas = table.attrs.get("metas", {})
    links = _job_links(frame)
    sections = []
    for bench in _benchmarks(table):
        part = table[table["benchmark"] == bench]
        part.attrs = table.attrs
        pub = published_for(part, bench, spec.get("published"))
        cols = _display_columns(table, bench, pub)
        slug = re.sub(r"[^A-Za-z0-9-]", "-", bench)
        robust_cols = robustness_columns(part, bench)
        sections.append({
            "bench": bench, "ranking": _ranking_text(metas.get(bench)),
            "block": None if _is_multi(part) else (str(part["split"].iloc[0]), str(part["model"].iloc[0])),
            "table": _table(part, bench, cols, f"lb-{slug}", links, pub),
            "sources": list(dict.fromkeys(pub_rows.source_note(r) for r in pub)),
            "robustness": _table(part, bench, robust_cols, f"rb-{slug}", links) if robust_cols else None,
            "head": robust_cols[1] if robust_cols else None,
        })
    out.mkdir(parents=True, exist_ok=True)
    plots = []
    for name in PLOTS:
        if (grid / name).is_file():
            shutil.copyfile(grid / name, out / name)
            plots.append(name)
    jobs = [r for r in results if is_ref(r) or is_cell(r)]
    attacks: dict[str, list[dict]] = {}
    for a in results:
        if is_attack(a):
            attacks.setdefault(str(a.get("parent")), []).append(a)
    (out / "jobs").mkdir(exist_ok=True)
    for r in jobs:
        target = _target_of(r, results)
        atomic_write_text(out / "jobs" / page_name(str(r.get("cell_id"))),
                          _job_page(env, r, attacks.get(str(r.get("cell_id")), []), target, grid.name))
    failures = _failures(frame)
    atomic_write_text(out / "index.html", env.get_template("grid.html").render(
        title=str(spec.get("name") or grid.name), root="../", spec=spec, description=spec.get("description"),
        sections=sections, plots=plots, failures=failures, sweep=_sweep(table), source=str(grid)))
    ok = frame[frame["status"] == "ok"]
    return {"name": grid.name, "href": quote(grid.name) + "/index.html", "description": spec.get("description", ""),
            "benchmarks": _benchmarks(table), "models": sorted({str(m) for m in ok["model"].dropna()}),
            "seeds": sorted({int(s) for s in ok[ok["kind"] == Kind.CELL.value]["seed"].dropna()}),
            "methods": int((table["kind"] != Kind.REF.value).sum()), "jobs": len(jobs),
            "failed": sum(1 for f in failures if not f["na"]), "na": sum(1 for f in failures if f["na"]),
            "attacks": sorted({str(a["attack"]) for a in results if is_attack(a) and a.get("attack")})}


def build_site(root: str | Path, out: str | Path) -> Path:
    """Write the site of every grid under ``root`` into ``out``; returns ``out/index.html``.
    Pages are rewritten in place (atomically); nothing else in ``out`` is removed."""
    grids = find_grids(root)
    if not grids:
        raise ValueError(f"{root} holds no grid results (no refs/ or cells/ directory in it or below it)")
    out = Path(out)
    env = _env()
    entries = [_write_grid(env, g, out / g.name) for g in grids]
    index = out / "index.html"
    atomic_write_text(index, env.get_template("index.html").render(title="unlearnbench results", root="",
                                                                   grids=entries, source=str(root)))
    return index

