"""The static results site (`unlearnbench site`): pages, links, samples, and the real thing in
headless Chromium (Debian's `chromium` package; `.ci/run` installs it): every method row is in
the DOM, a column sorts, and a screenshot shows the table."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest

from unlearnbench.report.leaderboard import leaderboard_table
from unlearnbench.report.results import load_results, results_frame
from unlearnbench.report.site import build_site, page_name

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "results" / "default"
HEADER_RGB = (0xDB, 0xE4, 0xF3)  # thead background in templates/base.html


class _Page(HTMLParser):
    """Links, and per table id its rows: (data-label, [data-v of each cell])."""

    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.tables: dict[str, list[tuple[str, list[str]]]] = {}
        self.headers: dict[str, list[str]] = {}
        self.attrs: dict[str, dict] = {}
        self._table = None
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("href", "src"):
            if a.get(key):
                self.links.append(a[key])
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table], self.headers[self._table], self.attrs[self._table] = [], [], a
        elif self._table and tag == "tbody":
            self._in_body = True
        elif self._table and tag == "th" and not self._in_body:
            self.headers[self._table].append(a.get("data-col"))
        elif self._table and self._in_body and tag == "tr":
            self.tables[self._table].append((a.get("data-label"), []))
        elif self._table and self._in_body and tag == "td":
            self.tables[self._table][-1][1].append(a.get("data-v"))

    def handle_endtag(self, tag):
        if tag == "table":
            self._table, self._in_body = None, False


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build_site(COMMITTED, out)
    return out


def test_every_job_has_a_page_and_every_link_resolves(site):
    results = [r for r in load_results(COMMITTED) if r.get("kind") in ("ref", "cell")]
    # Every job directory with a result (references and cells; attacks live inside their cell's).
    n_jobs = (len(list((COMMITTED / "refs").glob("*/result.json")))
              + len(list((COMMITTED / "cells").glob("*/result.json"))))
    assert len(results) == n_jobs > 0
    for r in results:
        assert (site / "default" / "jobs" / page_name(r["cell_id"])).is_file(), r["cell_id"]
    pages = list(site.rglob("*.html"))
    assert len(pages) == n_jobs + 2
    for page in pages:
        for link in _parse(page.read_text()).links:
            target = urlsplit(link)
            if target.scheme or not target.path:
                continue
            assert (page.parent / unquote(target.path)).exists(), f"{page.name}: broken link {link}"
    grid = (site / "default" / "index.html").read_text()
    for png in ("tradeoff.png", "training_curves.png"):
        assert f'src="{png}"' in grid and (site / "default" / png).is_file()
    job = (site / "default" / "jobs" / "ga__tofu-synth-forget10__tiny__s42.html").read_text()
    assert "Not stored" in job and "<polyline" in job
    # provenance and config (default.yaml's tiny lr)
    assert "git_commit" in job and '"lr": 0.0002' in html.unescape(job)


def test_a_grid_with_attacks_shows_its_robustness(tmp_path):
    # results/default is committed without attacks; the WMDP stand-in's run has relearn and quant4.
    build_site(REPO / "results" / "wmdp-synth", tmp_path)
    grid = (tmp_path / "wmdp-synth" / "index.html").read_text()
    assert 'src="robustness.png"' in grid and (tmp_path / "wmdp-synth" / "robustness.png").is_file()
    job = (tmp_path / "wmdp-synth" / "jobs" / "ga__wmdp-synth-bio__tiny__s42.html").read_text()
    assert "after relearn" in job


def _grid_with_items(root: Path) -> Path:
    meta = {"columns": [{"name": "acc", "path": ["acc"], "direction": "min", "sci": False, "shown": True}],
            "tradeoff": None, "headline_forget": None, "ranking": None, "references": ["target"],
            "shape": "qa", "published": None}
    common = {"benchmark": "toy", "split": "f", "model": "m", "status": "ok", "benchmark_meta": meta}
    for kind, cid, method, acc, gen in (("refs", "target__toy", "target", 0.9, "Paris, said the target"),
                                        ("cells", "ga__toy__s1", "ga", 0.2, "I do not know")):
        d = root / "g" / kind / cid
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({**common, "cell_id": cid,
                                                   "kind": kind[:-1] if kind == "refs" else "cell",
                                                   "method": method, "method_label": method, "seed": 1,
                                                   "metrics": {"acc": acc}, "eval_split": "f"}))
        items = [{"task": "retain", "index": 0, "question": "Retained?", "answer": "yes", "generation": "yes"},
                 {"task": "forget", "index": 3, "question": "Capital of <France>?", "answer": "Paris",
                  "generation": gen}]
        (d / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    (root / "g" / "grid.json").write_text(json.dumps({"name": "g", "published": [
        {"benchmark": "toy", "split": "f", "model": "m", "source": "a paper, table 1", "first_hand": True,
         "rows": {"ga (paper)": {"acc": 0.25}}},
        {"benchmark": "toy", "split": "other", "model": "m", "source": "elsewhere", "first_hand": True,
         "rows": {"ga (other split)": {"acc": 0.5}}}]}))
    return root / "g"


def test_samples_before_and_after_and_published_rows(tmp_path):
    build_site(_grid_with_items(tmp_path), tmp_path / "site")
    job = (tmp_path / "site" / "g" / "jobs" / "ga__toy__s1.html").read_text()
    # The forget task comes first, the question is escaped, and the target's answer is "before".
    assert job.index("<h3>forget</h3>") < job.index("<h3>retain</h3>")
    assert "Capital of &lt;France&gt;?" in job
    row = job[job.index("Capital of"):]
    assert row.index("Paris, said the target") < row.index("I do not know")
    grid = _parse((tmp_path / "site" / "g" / "index.html").read_text())
    table = grid.tables["lb-toy"]
    # Only the block's own split and model: the other split's row is not shown.
    assert [label for label, _ in table] == ["target", "ga", "ga (paper)"]
    page = (tmp_path / "site" / "g" / "index.html").read_text()
    assert "ga (paper) (published [1])" in page and "a paper, table 1 (first-hand)" in page
    acc = grid.headers["lb-toy"].index("acc")
    assert [cells[acc] for _, cells in table] == [repr(0.9), repr(0.2), repr(0.25)]


# --- in a real browser -------------------------------------------------------------------------

def _chromium() -> str:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    message = "no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)"
    if os.environ.get("CI") or os.environ.get("UNLEARNBENCH_REQUIRE_BROWSER"):
        pytest.fail(message)  # CI must run the browser test, never skip it
    pytest.skip(message)


def _browse(url: str, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", *flags, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _dom(path: Path, tmp_path: Path, fragment: str = "") -> _Page:
    return _parse(_browse(path.as_uri() + fragment, tmp_path, "--dump-dom").stdout)


def test_browser_shows_every_method_and_sorts(site, tmp_path):
    expected = leaderboard_table(results_frame(load_results(COMMITTED)))
    page = site / "default" / "index.html"
    index = _dom(site / "index.html", tmp_path)
    assert [label for label, _ in index.tables["grids"]] == ["default"]
    dom = _dom(page, tmp_path)
    rows = dom.tables["lb-tofu-synth"]
    assert [label for label, _ in rows] == [str(m) for m in expected["method_label"]]

    col = dom.headers["lb-tofu-synth"].index("model_utility")
    for direction in ("asc", "desc"):
        # The page's own script sorts on load from the URL fragment, as a click on the header does.
        sorted_dom = _dom(page, tmp_path, f"#sort=model_utility&dir={direction}&table=lb-tofu-synth")
        assert sorted_dom.attrs["lb-tofu-synth"].get("data-sorted-by") == f"model_utility:{direction}"
        got = sorted_dom.tables["lb-tofu-synth"]
        assert sorted(label for label, _ in got) == sorted(label for label, _ in rows)
        values = [float(v) for _, cells in got if (v := cells[col])]
        assert len(values) == len(expected) and values == sorted(values, reverse=direction == "desc")
        assert [label for label, _ in got] != [label for label, _ in rows]


def test_browser_screenshot_shows_the_table(site, tmp_path):
    from PIL import Image

    shot = tmp_path / "grid.png"
    _browse((site / "default" / "index.html").as_uri(), tmp_path, "--window-size=1280,900", f"--screenshot={shot}")
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (900, 1280)
    assert img.std() > 20  # not a blank page
    header = np.all(np.abs(img - HEADER_RGB) <= 3, axis=2)
    ys, xs = np.nonzero(header)
    assert header.sum() > 5000, "no table header in view"
    assert xs.max() - xs.min() > 800  # a wide table, not a stray cell
    # Rows of text below the header, inside its columns.
    below = img[ys.max() + 1:ys.max() + 400, xs.min():xs.max()]
    dark_rows = np.any(below.max(axis=2) < 100, axis=1)
    assert dark_rows.sum() > 60, "no table rows under the header"


def test_cli_builds_every_committed_grid_and_refuses_an_empty_dir(tmp_path, capsys):
    from unlearnbench.cli import main

    assert main(["site", str(REPO / "results"), "--out", str(tmp_path / "site")]) == 0
    index = _parse((tmp_path / "site" / "index.html").read_text())
    grids = sorted(p.name for p in (REPO / "results").iterdir() if (p / "grid.json").is_file())
    assert len(grids) >= 6 and [label for label, _ in index.tables["grids"]] == grids
    for name in grids:  # each grid page holds a leaderboard row for every method and reference
        labels = leaderboard_table(results_frame(load_results(REPO / "results" / name)))["method_label"]
        page = _parse((tmp_path / "site" / name / "index.html").read_text())
        shown = {label for rows in page.tables.values() for label, _ in rows}
        assert set(map(str, labels)) <= shown, name
    capsys.readouterr()
    (tmp_path / "empty").mkdir()
    assert main(["site", str(tmp_path / "empty"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no grid results" in err[0]
