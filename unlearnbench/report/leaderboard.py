"""Aggregate grid results over seeds into a leaderboard and render it (Markdown, LaTeX, CSV).

Columns, their better direction and the ranking rule come from each benchmark's metadata
(stored in its results), so one results directory may hold several benchmarks: each gets
its own table.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from . import published as pub_rows
from unlearnbench.files import atomic_save, atomic_write_text
from .plots import geometric_spread, plot_chains, plot_robustness, plot_tradeoff, plot_training_curves, spread_key
from .results import COST_FIELDS, VALIDATION, load_results, numeric_columns, results_frame
from .schema import NOT_APPLICABLE, Kind, is_ref

KEYS = ["kind", "method_label", "benchmark", "split", "model"]
VALIDATION_SHARE_TEXT = "quarter of the"  # benchmarks.base.is_validation, in words
BLOCK = ["benchmark", "split", "model"]
COST_SHOWN = ["wall_time_s", "periodic_eval_wall_time_s", "tokens", "peak_host_mem_mib", "peak_accel_mem_mib",
              "kept_step"]  # the last two only where cells evaluated during unlearning
_ARROW_MD = {"max": " ↑", "min": " ↓", "zero": " →0", "half": " →0.5"}
_ARROW_TEX = {"max": r" $\uparrow$", "min": r" $\downarrow$", "zero": r" $\to 0$", "half": r" $\to 0.5$"}


def directions(metas: dict[str, dict], columns=()) -> dict[str, str]:
    """Column -> better direction (``max``, ``min``, ``zero``, ``half``), over every benchmark;
    a metric after an attack (``m@attack``) keeps ``m``'s direction, a recovery is ``min``."""
    out = {c["name"]: c["direction"] for meta in metas.values() for c in meta["columns"]
           if c["direction"] != "none"}
    for col in columns:
        if col.startswith("recovery@"):
            out[col] = "min"
        elif "@" in col and col.split("@")[0] in out:
            out[col] = out[col.split("@")[0]]
    return {**out, **{c: "min" for c in [*COST_FIELDS, "periodic_eval_wall_time_s"]}}


def _score(values: pd.Series, direction: str) -> pd.Series:
    return {"max": values, "min": -values, "zero": -values.abs(),
            "half": -(values - 0.5).abs()}[direction]


def anchor_rows(block: pd.DataFrame, name: str, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The reference ``name`` of a block: its own row, or (a chain step's block, which has no
    references) the one of the split the block was evaluated on."""
    own = block[(block["kind"] == Kind.REF.value) & (block["method"] == name)]
    if len(own) or table is None or "eval_split" not in block or not len(block):
        return own
    first = block.iloc[0]
    return table[(table["kind"] == Kind.REF.value) & (table["method"] == name)
                 & (table["benchmark"] == first["benchmark"]) & (table["model"] == first["model"])
                 & (table["split"] == first["eval_split"])]


def _rank_block(block: pd.DataFrame, meta: dict | None, table: pd.DataFrame | None = None) -> pd.Series:
    """Rank of each method row by the benchmark's ranking rule (NaN: below the utility bar); ties on
    the forget metric go to the method keeping more utility."""
    rank = pd.Series(np.nan, index=block.index)
    rule = (meta or {}).get("ranking")
    methods = block[block["kind"] != Kind.REF.value]
    if not rule or rule["forget"] not in block or rule["utility"] not in block or not len(methods):
        return rank
    anchor = anchor_rows(block, rule["anchor"], table)
    ref = float(anchor[rule["utility"]].iloc[0]) if len(anchor) else math.nan
    _, forget_dir, utility_dir = _rule_columns(meta)
    eligible = methods[passes_bar(methods[rule["utility"]], ref, rule["min_ratio"], utility_dir)]
    # Equal forget metrics (e.g. every method at a harmful rate of 0) are ranked by utility.
    keys = pd.DataFrame({"forget": _score(eligible[rule["forget"]].astype(float), forget_dir).fillna(-math.inf),
                         "utility": _utility_score(eligible[rule["utility"]], utility_dir)})
    order = keys.sort_values(["forget", "utility"], ascending=False, kind="stable").index
    rank.loc[order] = np.arange(1, len(order) + 1, dtype=float)
    return rank


def leaderboard_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (kind, method_label, benchmark, split, model) of the ok results.

    Columns: ``kind, method, method_label, benchmark, split, model, chain, step,
    ref_order, n_seeds, rank``, then for every metric/cost column its mean over seeds (NaNs
    skipped) followed by ``<col>_std`` (sample std, ddof=1; NaN for a single seed). Within
    each benchmark/split/model block the references come first (in the benchmark's order),
    then the methods by the benchmark's ranking rule (``rank``; the methods below its
    utility bar follow, by their forget metric). ``attrs["log_spread"]`` holds, per row
    (``plots.spread_key``), each log-scale (``sci``) column's geometric mean and ×/÷ factor
    over seeds, which the trade-off plot draws on its log axis.
    """
    numeric = numeric_columns(frame)
    metas = frame.attrs.get("metas", {})
    ok = frame[frame["status"] == "ok"]
    # Columns shown on a log axis (p-values): their spread over seeds is kept as geometric
    # mean and ×/÷ factor, for plots only (the table keeps the arithmetic mean ± std).
    logged = [c["name"] for meta in metas.values() for c in meta["columns"] if c.get("sci") and c["name"] in numeric]
    rows, spreads = [], {}
    for keys, group in ok.groupby(KEYS, dropna=False, sort=False):
        row: dict[str, Any] = dict(zip(KEYS, keys))
        for col in ("method", "chain", "step", "ref_order", "entry", "eval_split"):
            row[col] = group[col].iloc[0]
        row["n_seeds"] = len(group)
        for col in numeric:
            row[col] = float(group[col].mean())
            row[f"{col}_std"] = float(group[col].std()) if len(group) > 1 else math.nan
        spreads[spread_key(row)] = {col: geometric_spread(group[col]) for col in logged}
        rows.append(row)
    columns = ["kind", "method", "method_label", *BLOCK, "chain", "step", "ref_order", "entry", "eval_split",
               "n_seeds", "rank"]
    columns += [c for col in numeric for c in (col, f"{col}_std")]
    table = pd.DataFrame(rows, columns=columns)
    table, sweep = select_sweeps(table, metas)
    parts = []
    for _, block in table.groupby(BLOCK, dropna=False, sort=False):
        meta = metas.get(block["benchmark"].iloc[0])
        block = block.assign(rank=_rank_block(block, meta, table))
        parts.append(_sorted_block(block, meta))
    out = (pd.concat(parts) if parts else table).reset_index(drop=True)
    # Plain floats / NaN (not pandas' NA) so the table reads back from its CSV unchanged.
    for col in ("step", "ref_order"):
        out[col] = pd.to_numeric(out[col].astype(object).where(out[col].notna(), None), errors="coerce").astype(float)
    for col in ("chain", "entry", "eval_split"):
        out[col] = out[col].astype(object).where(out[col].notna(), np.nan)
    out.attrs["metas"] = metas
    out.attrs["sweep"] = sweep
    out.attrs["log_spread"] = spreads
    return out


def _rule_columns(meta: dict | None) -> tuple[dict, str, str] | None:
    """(ranking rule, forget column's direction, utility column's direction); a column without
    a better direction ("none") is ranked as higher-is-better."""
    rule = (meta or {}).get("ranking")
    if not rule:
        return None
    directions_ = {c["name"]: c["direction"] for c in meta["columns"]}
    return rule, *(d if d != "none" else "max" for d in (directions_.get(rule["forget"], "max"),
                                                        directions_.get(rule["utility"], "max")))


def passes_bar(utility: pd.Series, ref: float, min_ratio: float, utility_dir: str) -> pd.Series:
    """Which values pass a ranking rule's utility bar: at least ``min_ratio`` × the anchor's
    ``ref``, or for a lower-is-better utility (perplexity) at most ``ref / min_ratio``. Every
    value passes when there is no anchor value (NaN) or no bar (``min_ratio <= 0``); a NaN
    utility never passes a bar. The leaderboard's ranks and a sweep's choice both use it."""
    utility = utility.astype(float)
    if math.isnan(ref) or min_ratio <= 0:
        return pd.Series(True, index=utility.index)
    if utility_dir == "min":
        return utility <= ref / min_ratio
    return utility >= ref * min_ratio


def select_sweeps(table: pd.DataFrame, metas: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep, of each swept method entry, the setting its benchmark's ranking rule prefers on the
    *validation* items (``val:`` columns; the rows report the test items). Returns the table
    without the other settings, and the sweep table (every setting, its validation numbers and
    whether it was chosen). Without validation numbers nothing is selected."""
    empty = pd.DataFrame()
    if not any(c.startswith(VALIDATION) for c in table.columns):
        return table, empty
    drop, sweep_rows = [], []
    methods = table[table["kind"] != Kind.REF.value]
    for keys, group in methods.groupby([*BLOCK, "entry"], dropna=False, sort=False):
        if len(group) < 2:
            continue
        found = _rule_columns(metas.get(keys[0]))
        if found is None:
            continue
        rule, forget_dir, utility_dir = found
        vf, vu = VALIDATION + rule["forget"], VALIDATION + rule["utility"]
        block = table[(table[BLOCK[0]] == keys[0]) & (table[BLOCK[1]] == keys[1]) & (table[BLOCK[2]] == keys[2])]
        anchor = anchor_rows(block, rule["anchor"], table)
        ref = float(anchor[vu].iloc[0]) if len(anchor) and vu in anchor else math.nan
        # Ties on the forget metric go to the setting that keeps more utility, then to the
        # smallest swept values (the gentlest setting): never to whichever label sorts first
        # as text ("lr=0.0001" sorts before "lr=3e-05").
        utility = _utility_score(group[vu], utility_dir)
        group = group.loc[sorted(group.index, key=lambda i: (-utility[i], swept_key(group.at[i, "method_label"])))]
        chosen = preferred(group[vf], group[vu], ref, rule["min_ratio"], forget_dir, utility_dir)
        for idx, row in group.iterrows():
            sweep_rows.append({**{c: row[c] for c in (*BLOCK, "entry", "method_label", "n_seeds")},
                               vf: row[vf], vu: row[vu], "chosen": idx == chosen})
            if idx != chosen:
                drop.append(idx)
    return table.drop(index=drop), pd.DataFrame(sweep_rows)


def _utility_score(values: pd.Series, utility_dir: str) -> pd.Series:
    """Utility as a score where higher is better (a missing value scores lowest)."""
    return _score(pd.to_numeric(values, errors="coerce").astype(float),
                  utility_dir if utility_dir != "none" else "max").fillna(-math.inf)


def swept_key(label: str) -> tuple:
    """The swept values a sweep point's label ends with (``name[k=v,...]``, keys in name order),
    numbers as numbers, for ordering a sweep's points from the smallest values up."""
    inner = label.rsplit("[", 1)[-1].rstrip("]") if label.endswith("]") else ""
    key = []
    for part in filter(None, inner.split(",")):
        _, _, value = part.partition("=")
        try:
            key.append((0, float(value), ""))
        except ValueError:
            key.append((1, 0.0, value))
    return tuple(key)


def preferred(forget: pd.Series, utility: pd.Series, ref: float, min_ratio: float, forget_dir: str,
              utility_dir: str):
    """Index of the candidate a ranking rule prefers: the best ``forget`` among those whose
    ``utility`` passes ``min_ratio`` × the anchor's ``ref`` (all of them when ``ref`` is NaN);
    when none passes, the one that keeps most utility. Ties go to the first. A sweep's settings
    (``select_sweeps``) and a cell's checkpoints (``runner.periodic_eval``) are chosen by it."""
    utility = utility.astype(float)
    eligible = utility.index[passes_bar(utility, ref, min_ratio, utility_dir)]
    if len(eligible):
        score = _score(forget.loc[eligible].astype(float), forget_dir if forget_dir != "none" else "max")
    else:  # nobody keeps utility: the candidate that keeps most of it
        score = _score(utility, utility_dir if utility_dir != "none" else "max")
    return score.fillna(-math.inf).idxmax()


def _sorted_block(block: pd.DataFrame, meta: dict | None) -> pd.DataFrame:
    refs = block[block["kind"] == Kind.REF.value]
    declared = (meta or {}).get("references", [])
    # References in the benchmark's declared order (older results carry no ref_order).
    order = refs["method"].map(lambda m: declared.index(m) if m in declared else len(declared))
    own = pd.to_numeric(refs["ref_order"].astype(object).where(refs["ref_order"].notna(), None), errors="coerce")
    refs = refs.assign(_o=own.astype(float).fillna(order.astype(float)))
    refs = refs.sort_values(["_o", "method_label"], kind="stable").drop(columns=["_o"])
    methods = block[block["kind"] != Kind.REF.value]
    rule = (meta or {}).get("ranking")
    forget = rule["forget"] if rule else None
    if forget is None and meta and meta.get("columns"):
        forget = meta["columns"][0]["name"]
    if forget in methods:
        direction = next((c["direction"] for c in meta["columns"] if c["name"] == forget), "max")
        score = _score(methods[forget].astype(float), direction if direction != "none" else "max")
        methods = methods.assign(_r=methods["rank"].fillna(math.inf), _s=-score.fillna(-math.inf))
        methods = methods.sort_values(["_r", "_s", "method_label"], kind="stable").drop(columns=["_r", "_s"])
    return pd.concat([refs, methods])


def best_mask(table: pd.DataFrame) -> pd.DataFrame:
    """Boolean frame (table's index × directed columns present): True where a method row holds
    the best mean in its column within its benchmark/split/model block. References never win;
    tied winners are all marked, but a column where every method ties marks none."""
    best = directions(table.attrs.get("metas", {}), table.columns)
    cols = [c for c in best if c in table.columns]
    mask = pd.DataFrame(False, index=table.index, columns=cols)
    methods = table[table["kind"] != Kind.REF.value]
    for _, block in methods.groupby(BLOCK, dropna=False, sort=False):
        for col in cols:
            score = _score(block[col].astype(float), best[col]).dropna()
            hit = np.isclose(score, score.max(), rtol=1e-9, atol=0.0) if len(score) else []
            # When several methods all tie (e.g. same token budget) nobody is "best".
            if len(score) and (len(score) == 1 or not hit.all()):
                mask.loc[score.index[hit], col] = True
    return mask


def _fmt(value: Any, sci: bool = False) -> str:
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return "n/a"
    v = float(value)
    if sci:
        return f"{v:.1e}"
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1e4:  # token counts and the like: 123k, 1.23M
        for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if a >= div:
                return f"{v / div:.3g}{unit}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1e-3:
        return f"{v:.3g}"
    return f"{v:.2e}"


def _sci_columns(table: pd.DataFrame) -> set[str]:
    return {c["name"] for meta in table.attrs.get("metas", {}).values() for c in meta["columns"] if c.get("sci")}


def _cell(row: pd.Series, col: str, pm: str, esc: Callable[[str], str], sci: bool) -> str:
    if col == "n_seeds":
        return str(int(row[col]))
    if col == "rank":
        return "–" if pd.isna(row[col]) else str(int(row[col]))
    text = esc(_fmt(row[col], sci))
    std = row.get(f"{col}_std")
    if std is not None and not pd.isna(std) and not pd.isna(row[col]):
        text += pm + esc(_fmt(std, sci))
    return text


def _display_columns(table: pd.DataFrame, benchmark: str, published: list[dict] | None) -> list[str]:
    meta = table.attrs.get("metas", {}).get(benchmark, {"columns": []})
    block = table[table["benchmark"] == benchmark]
    extra = {c for row in published or () for c in row["values"]}
    cols = ["n_seeds"] + (["rank"] if meta.get("ranking") and block["rank"].notna().any() else [])
    for c in meta["columns"]:
        if c.get("shown", True) and (c["name"] in extra or (c["name"] in block and block[c["name"]].notna().any())):
            cols.append(c["name"])
    cols += [c for c in COST_SHOWN if c in block and block[c].notna().any()]
    return cols + sorted(c for c in extra if c not in cols)


def _is_multi(table: pd.DataFrame) -> bool:
    return len(table.drop_duplicates(BLOCK)) > 1


def _rows(table: pd.DataFrame, cols: list[str], esc: Callable[[str], str],
          bold: Callable[[str], str], pm: str, multi: bool) -> list[list[str]]:
    mask = best_mask(table)
    sci = _sci_columns(table)
    out = []
    for idx, row in table.iterrows():
        label = esc(str(row["method_label"])) + (" (ref)" if is_ref(row) else "")
        cells = [label] + ([esc(_fmt(row[c])) for c in BLOCK[1:]] if multi else [])
        for col in cols:
            text = _cell(row, col, pm, esc, col in sci) if col in table else ""
            cells.append(bold(text) if col in mask and mask.at[idx, col] else text)
        out.append(cells)
    return out


def _headers(table: pd.DataFrame, cols: list[str], arrows: dict[str, str],
             esc: Callable[[str], str], multi: bool) -> list[str]:
    best = directions(table.attrs.get("metas", {}), table.columns)
    return ["method", *(BLOCK[1:] if multi else [])] + [esc(c) + arrows.get(best.get(c, ""), "") for c in cols]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _benchmarks(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table["benchmark"].dropna().tolist()))


def _ranking_text(meta: dict | None) -> str | None:
    rule = (meta or {}).get("ranking")
    if not rule:
        return None
    lower = next((c["direction"] for c in meta["columns"] if c["name"] == rule["utility"]), "max") == "min"
    bar = (f"at most the {rule['anchor']}'s / {rule['min_ratio']:g}" if lower
           else f"at least {rule['min_ratio']:g} × the {rule['anchor']}'s")
    return (f"Rank: by `{rule['forget']}` among the methods whose `{rule['utility']}` is {bar}; "
            "methods outside that bar are not ranked (–) and follow, by the same metric.")


def published_for(part: pd.DataFrame, bench: str, published=None) -> list[dict]:
    """Published rows for one benchmark's table (``report.published``): the benchmark's own,
    then the grid's, each only where its (split, model) is a block of the table."""
    own = part.attrs.get("metas", {}).get(bench, {}).get("published")
    # Results written before rows were keyed carry a {label: values} dict: not shown, as it
    # cannot say which split and model its numbers are for.
    own = own if isinstance(own, (list, tuple)) else None
    rows = pub_rows.parse(own, f"benchmark {bench} published") + pub_rows.parse(published)
    return pub_rows.rows_for(rows, bench, part[BLOCK[1:]].drop_duplicates().itertuples(index=False))


def render_markdown(table: pd.DataFrame, failures: pd.DataFrame | None = None,
                    published: list[dict] | None = None) -> str:
    """Render the leaderboard as a Markdown document: one table per benchmark.

    Numbers are compact (p-values as ``1.2e-05``, others to 3 significant digits),
    ``mean ± std`` where a std exists, and the best method value per column in **bold**.
    ``published`` (a grid's ``published:`` groups, ``report.published``) adds rows labelled
    "(published [n])" in the blocks of their own benchmark, split and model, [n] naming the source;
    ``failures`` (non-ok ``results_frame`` rows) adds "Failed cells" and "Not applicable".
    """
    lines = ["# Leaderboard", "",
             "Mean ± sample std over seeds; best method per column in **bold** "
             "(references excluded); arrows give the better direction.", ""]
    names = _benchmarks(table)
    if not len(table):
        lines += ["_No successful results._", ""]
    for bench in names:
        part = table[table["benchmark"] == bench]
        part.attrs = table.attrs
        multi = _is_multi(part)
        if bench is not None:
            lines += [f"## {bench}", ""]
            if not multi:
                s, m = (_fmt(part[c].iloc[0]) for c in BLOCK[1:])
                lines += [f"Split `{s}`, model `{m}`.", ""]
            rule = _ranking_text(table.attrs.get("metas", {}).get(bench))
            if rule:
                lines += [rule, ""]
        pub = published_for(part, bench, published)
        cols = _display_columns(table, bench, pub)
        headers = _headers(part, cols, _ARROW_MD, str, multi)
        rows = _rows(part, cols, _md_escape, lambda t: f"**{t}**", " ± ", multi)
        sources = list(dict.fromkeys(pub_rows.source_note(r) for r in pub))
        for r in pub:
            vals = r["values"]
            where = [r["split"], r["model"]] if multi else []
            cells = [_fmt(vals.get(c), c in _sci_columns(table)) if c in vals else "" for c in cols]
            n = sources.index(pub_rows.source_note(r)) + 1
            rows.append([f"{_md_escape(r['label'])} (published [{n}])", *where, *map(_md_escape, cells)])
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join([":---"] * (len(headers) - len(cols)) + ["---:"] * len(cols)) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
        lines += [f"[{i}] {_md_escape(s)}" + ("  " if i < len(sources) else "") for i, s in enumerate(sources, 1)]
        lines += [""] if sources else []
        lines += _robustness_markdown(part, bench)
    sweep = table.attrs.get("sweep")
    if sweep is not None and len(sweep):
        lines += ["## Sweeps: each method's setting chosen on validation items", "",
                  f"A {VALIDATION_SHARE_TEXT} evaluation items (by a hash of their index) are validation items: "
                  "each swept method keeps the "
                  "setting its benchmark's ranking rule prefers there (or, if none keeps the utility, the one "
                  "that keeps most); every table above reports the other (test) items only.", ""]
        cols = [c for c in sweep.columns if c.startswith(VALIDATION)]
        lines += ["| entry | setting | n_seeds | " + " | ".join(cols) + " | chosen |",
                  "|:---|:---|---:|" + "---:|" * len(cols) + ":---:|"]
        for _, r in sweep.iterrows():
            lines.append(f"| {_md_escape(str(r['entry']))} | {_md_escape(str(r['method_label']))} | "
                         f"{int(r['n_seeds'])} | "
                         + " | ".join(_fmt(r[c]) for c in cols) + f" | {'yes' if r['chosen'] else ''} |")
        lines.append("")
    if failures is not None and len(failures):
        for title, sub in (("Failed cells", failures[failures["status"] != NOT_APPLICABLE]),
                           ("Not applicable", failures[failures["status"] == NOT_APPLICABLE])):
            if not len(sub):
                continue
            what = "reason" if title == "Not applicable" else "error"
            lines += [f"## {title}", "", f"| cell | method | {what} |", "|:---|:---|:---|"]
            for _, row in sub.iterrows():
                error = str(row.get("error") if not pd.isna(row.get("error")) else "unknown error")
                error = error.strip().splitlines()[0] if error.strip() else "unknown error"
                method = row.get("method_label")
                lines.append(f"| `{_md_escape(str(row.get('cell_id')))}` | "
                             f"{_md_escape('n/a' if pd.isna(method) else str(method))} | {_md_escape(error)} |")
            lines.append("")
    return "\n".join(lines)


def robustness_columns(table: pd.DataFrame, bench: str | None) -> list[str]:
    """The robustness table's columns: the headline metric, then per attack the metric after
    it, the recovery and the ranking utility after it."""
    meta = table.attrs.get("metas", {}).get(bench, {})
    head = meta.get("headline_forget")
    attacks = list(dict.fromkeys(c.split("@", 1)[1] for c in table.columns
                                 if c.startswith("recovery@") and not c.endswith("_std")))  # std: shown as ±
    if not head or not attacks:
        return []
    utility = (meta.get("ranking") or {}).get("utility")
    cols = ["n_seeds", head]
    for a in attacks:
        cols += [c for c in (f"{head}@{a}", f"recovery@{a}", f"{utility}@{a}" if utility else None)
                 if c and c in table and table[c].notna().any()]
    return cols if len(cols) > 2 else []


def _robustness_markdown(part: pd.DataFrame, bench: str | None) -> list[str]:
    cols = robustness_columns(part, bench)
    if not cols:
        return []
    head = cols[1]
    multi = _is_multi(part)
    headers = _headers(part, cols, _ARROW_MD, str, multi)
    rows = _rows(part, cols, _md_escape, lambda t: f"**{t}**", " ± ", multi)
    return [f"### Robustness of {bench}", "",
            f"`{head}` (higher = more remembered) before and after each attack on the unlearned model; "
            f"`recovery@attack` = (after − unlearned) / (target − unlearned), clipped to [0, 1], per seed "
            "(n/a where unlearning removed nothing). The target and retain rows are the anchors: a retain "
            "model recovers only what the attack itself teaches.", "",
            "| " + " | ".join(headers) + " |",
            "|" + "|".join([":---"] * (len(headers) - len(cols)) + ["---:"] * len(cols)) + "|",
            *["| " + " | ".join(r) + " |" for r in rows], ""]


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


def render_latex(table: pd.DataFrame) -> str:
    """Render the leaderboard as LaTeX ``tabular``s (booktabs rules), one per benchmark;
    best values in ``\\textbf{}``."""
    out = []
    for bench in _benchmarks(table):
        part = table[table["benchmark"] == bench]
        part.attrs = table.attrs
        multi = _is_multi(part)
        cols = _display_columns(table, bench, None)
        # Cells are escaped piecewise before markup is added, so to_latex must not escape again.
        rows = _rows(part, cols, _tex_escape, lambda t: rf"\textbf{{{t}}}", r" $\pm$ ", multi)
        headers = _headers(part, cols, _ARROW_TEX, _tex_escape, multi)
        frame = pd.DataFrame(rows, columns=headers)
        n_left = len(headers) - len(cols)
        out.append(f"% {_tex_escape(bench)}\n"
                   + frame.to_latex(index=False, escape=False, column_format="l" * n_left + "r" * len(cols)))
    return "\n".join(out)


def write_leaderboard(grid_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                      published: list[dict] | None = None) -> dict[str, Path]:
    """Load ``grid_dir``'s results and atomically write the leaderboard and plots into ``out_dir``.

    ``out_dir`` defaults to ``grid_dir``. Writes ``leaderboard.md`` (with failed and
    not-applicable cells and ``published`` numbers), ``leaderboard.csv``, ``leaderboard.tex``,
    ``tradeoff.png``, ``training_curves.png`` and, for a grid with a chain of unlearning
    requests, ``chain.png``; returns them keyed ``markdown, csv, latex, tradeoff,
    training_curves[, chain]``. Prints nothing.
    """
    grid = Path(grid_dir)
    out = Path(out_dir) if out_dir is not None else grid
    out.mkdir(parents=True, exist_ok=True)
    results = load_results(grid)
    frame = results_frame(results)
    table = leaderboard_table(frame)
    paths = {
        "markdown": out / "leaderboard.md",
        "csv": out / "leaderboard.csv",
        "latex": out / "leaderboard.tex",
        "tradeoff": out / "tradeoff.png",
        "training_curves": out / "training_curves.png",
    }
    from .curves import kept_markdown

    atomic_write_text(paths["markdown"], render_markdown(table, frame[frame["status"] != "ok"], published)
                      + kept_markdown(results))
    atomic_save(paths["csv"], lambda tmp: table.to_csv(tmp, index=False))
    atomic_write_text(paths["latex"], render_latex(table))
    plot_tradeoff(table, paths["tradeoff"])
    plot_training_curves(grid, results, paths["training_curves"])
    if table["chain"].notna().any():
        paths["chain"] = plot_chains(table, out / "chain.png")
    panels = [(b, cols) for b in _benchmarks(table) if (cols := robustness_columns(table, b))]
    if panels:
        paths["robustness"] = plot_robustness(table, panels, out / "robustness.png")
    return paths
