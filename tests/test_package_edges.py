"""The packages import each other only along the allowed edges (each ``__init__.py`` says why).

Every ``import unlearnbench.X`` / ``from unlearnbench.X import`` in the package is read from
the source, function-level imports included, so a new edge (e.g. ``methods`` reaching into
``runner``, ``data`` into ``eval``) fails here instead of growing a hidden cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "unlearnbench"

# Modules of the package root that import nothing of the harness but each other.
FOUNDATION = {"errors", "files", "numerics", "parallel", "registry", "__init__"}

ALLOWED = {
    "metrics": set(),
    # models -> data: the tiny-family builders (models/finetune, models/tiny) encode their
    # training text with data's Encoder (the prompt templates are data's too);
    # models/rehearse writes a shrunk real model fine-tuned on a benchmark's stand-in.
    "models": {"data", "benchmarks"},
    "data": set(),
    "methods": {"data", "models", "metrics"},
    "eval": {"data", "metrics", "models"},
    "attacks": {"models"},
    "bridges": {"data", "eval"},
    "benchmarks": {"data", "eval", "metrics", "models", "bridges"},
    "report": {"attacks"},
    "runner": {"attacks", "benchmarks", "data", "eval", "methods", "metrics", "models", "report"},
    "cli": {"attacks", "benchmarks", "bridges", "data", "eval", "methods", "metrics", "models", "report",
            "runner"},
}


def _package(path: Path) -> str:
    parts = path.relative_to(ROOT).parts
    return parts[0] if len(parts) > 1 else path.stem


def _imported(node: ast.AST, package: str = "unlearnbench") -> list[str]:
    """The harness's top-level names an import statement reaches (``unlearnbench.X`` -> X);
    ``package`` is the dotted package of the importing file, for relative imports."""
    if isinstance(node, ast.Import):
        mods = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:  # from .atomic import ...: relative to the importing file's package
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        if module == "unlearnbench":  # from unlearnbench import parallel, __version__
            return [a.name for a in node.names if a.name != "__version__"]
        mods = [module] if node.module or node.level == 0 else [f"{module}.{a.name}" for a in node.names]
    else:
        return []
    return [m.split(".")[1] for m in mods if m.startswith("unlearnbench.")]


def edges() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        src = _package(path)
        package = ".".join(("unlearnbench", *path.relative_to(ROOT).parts[:-1]))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for dst in _imported(node, package):
                if dst != src:
                    found.setdefault((src, dst), []).append(str(path.relative_to(ROOT.parent)))
    return found


def test_every_package_imports_only_its_allowed_packages():
    bad = []
    for (src, dst), where in sorted(edges().items()):
        if dst in FOUNDATION:
            continue
        if src in FOUNDATION:
            bad.append(f"{src} -> {dst} ({where[0]}): the foundation modules import only each other")
        elif dst not in ALLOWED.get(src, set()):
            bad.append(f"{src} -> {dst} ({', '.join(sorted(set(where)))})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_the_edge_reader_sees_function_level_imports(tmp_path):
    # The walk must see an import inside a function (where the old cycles hid).
    tree = ast.parse("def f():\n    from unlearnbench.runner.cell import run_method\n")
    assert [d for node in ast.walk(tree) for d in _imported(node)] == ["runner"]
    # ... and a relative one, resolved from the importing file's package.
    tree = ast.parse("from .atomic import atomic_save\nfrom ..runner import cell\nfrom . import plots\n")
    found = [d for node in ast.walk(tree) for d in _imported(node, "unlearnbench.report")]
    assert found == ["report", "runner", "report"]
