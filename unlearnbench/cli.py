"""``unlearnbench`` command line: ls, data, train, finetune, eval, run, grid, leaderboard, site, compare."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from unlearnbench.registry import REGISTRIES, load_plugin
from unlearnbench.runner.grid import GridError


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", default="tofu-synth", help="benchmark name (see `ls benchmarks`)")
    p.add_argument("--split", default=None,
                   help="forget split (default: the benchmark's own, e.g. forget10 for TOFU)")
    p.add_argument("--data-dir", default=None,
                   help="local directory holding the benchmark's files (offline mirror)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlearnbench", description=__doc__)
    parser.add_argument("--plugin", action="append", default=[],
                        help="module or .py file that registers methods/benchmarks/models/attacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ls", help="list registered names with their first docstring line")
    p.add_argument("kind", choices=sorted(REGISTRIES))
    p.add_argument("--params", action="store_true",
                   help="with `methods`: every parameter with its default and meaning (the shared ones once)")

    p = sub.add_parser("data", help="generate a benchmark's stand-in and print its directory")
    p.add_argument("--benchmark", default="tofu-synth")

    p = sub.add_parser("train", help="build the tiny family, or unlearn with --method")
    p.add_argument("--model", default="tiny")
    _add_common(p)
    p.add_argument("--method", default=None, help="unlearning method (see `ls methods`)")
    p.add_argument("--retain-seeds", type=int, nargs="+", default=[0, 1],
                   help="seeds of the retain models to build (the second is the noise ceiling)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="method hyper-parameter override, e.g. --set lr=1e-5")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default=None, help="where to save the unlearned model")

    p = sub.add_parser("eval", help="evaluate a model with a benchmark's evaluator")
    p.add_argument("--model", required=True, help="model name or local directory")
    p.add_argument("--role", default="target", choices=["base", "target", "retain"],
                   help="which checkpoint of a named model to evaluate")
    p.add_argument("--retain-seed", type=int, default=0)
    p.add_argument("--reference-model", default=None,
                   help="named model whose reference checkpoints score a local directory "
                        "(e.g. its retain model for forget quality)")
    _add_common(p)
    p.add_argument("--out", default=None, help="output dir (summary.json, items.jsonl)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="evaluation option, e.g. --set max_items=300 (see the benchmark's eval options)")
    p.add_argument("--harness", default=None, choices=["lm-eval"],
                   help="evaluate with lm-evaluation-harness itself (optional extra: pip install "
                        "'unlearnbench[lm-eval]'); results land in the same schema")
    p.add_argument("--tasks", default=None,
                   help="with --harness: comma-separated sets, e.g. wmdp_bio,mmlu (a stand-in's sets are "
                        "written as local task files; a real benchmark uses the harness's own tasks)")

    p = sub.add_parser("finetune", help="fine-tune a model into a benchmark's target (e.g. on your copy of a book)")
    p.add_argument("--model", required=True, help="model name (its hub id) or local directory to start from")
    _add_common(p)
    p.add_argument("--out", required=True, help="directory to save the fine-tuned model (pass it as --model later)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe: epochs (5), lr (1e-5), batch_size (8), max_len (512), weight_decay (0.01), seed (42)")

    p = sub.add_parser("grid", help="run a grid YAML (methods x benchmarks x models x seeds)")
    p.add_argument("grid", help="path to a grid YAML, e.g. benchmarks/default.yaml")
    p.add_argument("--model", default=None, help="replace the grid's models (make bench MODEL=...)")
    p.add_argument("--attacks", default=None,
                   help="robustness attacks on every job, comma-separated, e.g. relearn,quant8,quant4 "
                        "(make bench ATTACKS=...); replaces the grid's own `attacks`")
    p.add_argument("--out", default=None, help="results dir (default results/<grid name>)")
    p.add_argument("--only", default=None, help="run only cells whose id contains this text")
    p.add_argument("--seeds", default=None, help="replace the grid's seeds, comma-separated, e.g. 42,43")
    p.add_argument("--no-retry-failed", action="store_true", help="keep failed cells as they are")
    p.add_argument("--dry-run", action="store_true",
                   help="list every job (references, cells, attacks) as done, to-run or stale, and exit")
    p.add_argument("--wait", action="store_true",
                   help="another grid holds the results dir: wait for it instead of refusing")
    p.add_argument("--jobs", type=int, default=None,
                   help="jobs run at once (default: one per core for tiny models on a CPU, else 1); each "
                        "job runs UNLEARNBENCH_CPU_THREADS intra-op threads (default 1)")

    p = sub.add_parser("run", help="run one cell (unlearn + evaluate) and write its result.json")
    p.add_argument("--method", required=True)
    p.add_argument("--model", default="tiny")
    _add_common(p)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--strategy", default="single")
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--out", required=True, help="cell directory")
    p.add_argument("--eval-set", action="append", default=[], metavar="KEY=VALUE",
                   help="evaluation option, e.g. --eval-set max_items=50")

    p = sub.add_parser("rehearse", help="shrink a real model (real tokenizer, architecture, config but depth/width) "
                                         "and fine-tune its target and retain models on a stand-in, offline")
    p.add_argument("model", help="a registered real model, e.g. llama2-7b (see docs/real-models.md)")
    p.add_argument("--benchmark", default="tofu-synth", help="the stand-in whose data and recipe to use")
    p.add_argument("--splits", default=None, help="forget splits whose retain models to build, comma-separated "
                                                   "(default: every split of the real benchmark)")
    p.add_argument("--epochs", type=int, default=None,
                   help="fine-tuning epochs of the target and retain models (default 3; fewer: a cheaper "
                        "rehearsal of a large-vocabulary family, e.g. 1)")

    p = sub.add_parser("leaderboard", help="rebuild the leaderboard of a results dir")
    p.add_argument("dir")

    p = sub.add_parser("site", help="write a static HTML site of every grid under a results dir")
    p.add_argument("dir", help="a results dir (e.g. results/) or one grid's results")
    p.add_argument("--out", default="site", help="where to write the site (default site/; open its index.html)")

    p = sub.add_parser("readme-tables", help="copy the committed leaderboards' tables into the README")
    p.add_argument("readme", nargs="?", default="README.md")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if a table is out of date")

    p = sub.add_parser("compare", help="do two results dirs agree within their stated spread over seeds?")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--k", type=float, default=2.0, help="tolerance in units of the seed std (default 2)")
    p.add_argument("--out", default=None, help="also write the report (Markdown) here")
    return parser


def _bench(args):
    """The benchmark of a command and its forget split (the benchmark's default if none given)."""
    from unlearnbench.benchmarks.base import get_benchmark

    bench = get_benchmark(args.benchmark, getattr(args, "data_dir", None))
    split = bench.check_split(args.split or bench.default_split)
    return bench, split


def cmd_ls(args) -> int:
    if getattr(args, "params", False):
        if args.kind != "methods":
            from unlearnbench.errors import UserError

            raise UserError(f"--params lists the parameters of methods, not of {args.kind}; "
                            "use `unlearnbench ls methods --params`")
        from unlearnbench.methods.settings import describe_params

        print("\n".join(describe_params()))
        return 0
    rows = REGISTRIES[args.kind].describe()
    if not rows:
        print(f"(no {args.kind} registered)")
    width = max((len(n) for n, _ in rows), default=0)
    for name, line in rows:
        print(f"{name:<{width}}  {line}")
    return 0


def cmd_data(args) -> int:
    from unlearnbench.benchmarks.base import get_benchmark

    print(get_benchmark(args.benchmark).path)  # a stand-in is generated on first use
    return 0


def _bench_class(args):
    """The benchmark class and split of a command, checked without instantiating it (a
    stand-in generates its data when instantiated): bad input fails before any work."""
    from unlearnbench.registry import benchmarks

    cls = benchmarks.get(args.benchmark)
    return cls, cls.check_split(args.split or cls.default_split)


def cmd_train(args) -> int:
    from unlearnbench.errors import check_writable
    from unlearnbench.methods.settings import check_params
    from unlearnbench.runner.train import parse_sets
    from unlearnbench.models.specs import ModelSpec

    spec = ModelSpec.from_name(args.model)
    if args.method is not None:
        # Fail fast: an unknown method, a bad parameter or an unwritable output is reported
        # before the target is built (building the tiny family takes minutes).
        check_params(args.method, parse_sets(args.set), _bench_class(args)[0].data_options, where="--set")
        if args.out:
            check_writable(args.out)
    bench, split = _bench(args)
    args.split = split
    if args.method is None:
        for role in ("base", "target"):
            print(f"{role}: {bench.checkpoint(spec, role, split)}")
        if any(r.role == "retain" for r in bench.references):
            for seed in args.retain_seeds:
                print(f"retain (seed {seed}): {bench.checkpoint(spec, 'retain', split, seed)}")
        return 0
    from unlearnbench.runner.train import unlearn_cli

    return unlearn_cli(args, spec)


def cmd_eval(args) -> int:
    from unlearnbench.eval.references import cached_eval, compare_reference
    from unlearnbench.eval.write import write_eval
    from unlearnbench.runner.train import parse_sets
    from unlearnbench.models.specs import ModelSpec

    from unlearnbench.errors import check_writable
    from unlearnbench.models.local import check_model_dir

    is_dir = Path(args.model).is_dir()
    if is_dir:
        check_model_dir(args.model)
    spec = ModelSpec.from_name(args.reference_model or ("tiny" if is_dir else args.model))
    if not args.harness:
        cls, split = _bench_class(args)
        options = cls.check_eval_options(parse_sets(args.set))
        out = Path(args.out or Path("results") / "evals"
                   / f"{Path(str(args.model)).name}-{args.role}-{cls.name}-{split}")
        check_writable(out)  # before the evaluation, whose result would have nowhere to go
    bench, split = _bench(args)
    if args.harness:
        return _eval_with_harness(args, bench, spec, split, is_dir)
    compare = compare_reference(bench, spec, split, options)
    ckpt = args.model if is_dir else bench.checkpoint(spec, args.role, split, args.retain_seed)
    if compare is not None and not is_dir and args.role == "retain" and args.retain_seed == 0:
        summary, records = compare  # the reference itself: evaluated alone
    else:
        summary, records = cached_eval(ckpt, spec, bench, split, reference=compare, options=options)
    write_eval(out, summary, records, {"model": args.model, "checkpoint": ckpt, "role": args.role,
                                       "benchmark": bench.name, "split": split,
                                       "metrics": bench.metrics(summary)})
    print(json.dumps({k: v for k, v in summary.items() if k != "cost"}, indent=2))
    print(f"wrote {out}/summary.json and items.jsonl")
    return 0


FINETUNE_DEFAULTS = {"epochs": 5, "lr": 1e-5, "batch_size": 8, "max_len": 512, "weight_decay": 0.01, "seed": 42}


def cmd_finetune(args) -> int:
    from types import SimpleNamespace

    from unlearnbench.data.collate import encoder_for
    from unlearnbench.runner.train import parse_sets
    from unlearnbench.models.finetune import fit_causal_lm
    from unlearnbench.models.specs import load_model, load_tokenizer
    from unlearnbench.models.specs import ModelSpec

    from unlearnbench.errors import check_writable

    recipe = {**FINETUNE_DEFAULTS, **parse_sets(args.set)}
    unknown = sorted(set(recipe) - set(FINETUNE_DEFAULTS))
    if unknown:
        raise GridError(f"finetune: unknown setting(s) {unknown}; known: {sorted(FINETUNE_DEFAULTS)}")
    for key, value in recipe.items():  # every recipe setting is a positive number
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 \
                or (key != "weight_decay" and not value > 0):
            raise GridError(f"finetune: --set {key}={value!r} must be a positive number "
                            f"(default {FINETUNE_DEFAULTS[key]})")
    check_writable(args.out)
    spec = ModelSpec.from_name(args.model)
    bench, split = _bench(args)
    qa, texts = bench.target_data(split)  # the data first: a missing book fails before loading a model
    # A model directory is fine-tuned as it is; a named model starts from its base checkpoint.
    source = spec.hub_id if spec.is_local else bench.checkpoint(spec, "base", split)
    tok = load_tokenizer(source, spec)
    model = load_model(source, spec, dtype=__import__("torch").float32)
    fit_causal_lm(model, tok, epochs=int(recipe["epochs"]), lr=float(recipe["lr"]),
                  tiny=SimpleNamespace(**{k: recipe[k] for k in ("max_len", "batch_size", "weight_decay")}),
                  seed=int(recipe["seed"]), texts=texts, qa=qa, template=encoder_for(bench, spec, tok).template,
                  desc=f"{bench.name} target from {source}")
    model.save_pretrained(args.out)
    tok.save_pretrained(args.out)
    from unlearnbench.models.specs import LOCAL_META

    # What the directory was fine-tuned from and how its prompts are written, for later runs.
    (Path(args.out) / LOCAL_META).write_text(json.dumps({"base": source, "template": spec.template,
                                                        "benchmark": bench.name, "recipe": recipe}, indent=2))
    print(f"saved the fine-tuned target to {args.out}; use it as --model {args.out} (or MODEL={args.out})")
    return 0


def _eval_with_harness(args, bench, spec, split: str, is_dir: bool) -> int:
    """``eval --harness lm-eval``: lm-evaluation-harness on a model directory or a named model's
    checkpoint, its numbers written in the harness's own result schema (summary + items)."""
    import tempfile

    from unlearnbench.bridges.lm_eval import run_harness, write_synth_tasks
    from unlearnbench.eval.write import write_eval

    wanted = [t for t in (args.tasks or "").split(",") if t]
    if not wanted:
        raise GridError("--harness needs --tasks, e.g. --tasks wmdp_bio,mmlu")
    ckpt = args.model if is_dir else bench.checkpoint(spec, args.role, split, args.retain_seed)
    with tempfile.TemporaryDirectory() as tasks_dir:
        if bench.stand_in_for:  # a stand-in's questions are local: write harness task files for them
            available = write_synth_tasks(tasks_dir, bench.path)
            unknown = sorted(set(wanted) - set(available))
            if unknown:
                raise GridError(f"--tasks {unknown} are not sets of {bench.name}; it has {sorted(available)}")
            tasks, include = {t: available[t] for t in wanted}, tasks_dir
        else:
            tasks, include = wanted, None
        summary, records = run_harness(ckpt, tasks, include_path=include,
                                       device="cuda" if __import__("torch").cuda.is_available() else "cpu")
    out = Path(args.out or Path("results") / "evals" / f"{Path(str(args.model)).name}-lm-eval-{bench.name}")
    write_eval(out, summary, records, {"model": args.model, "checkpoint": ckpt, "harness": "lm-eval",
                                       "harness_version": summary["harness_version"], "benchmark": bench.name})
    print(json.dumps(summary, indent=2))
    print(f"wrote {out}/summary.json and items.jsonl")
    return 0


def cmd_grid(args) -> int:
    from unlearnbench.numerics import cpu_threads
    from unlearnbench.runner.grid import load_grid, parse_seeds
    from unlearnbench.runner.run import dry_run, run_grid

    grid = load_grid(args.grid, model=args.model,
                     attacks=[a for a in args.attacks.split(",") if a] if args.attacks is not None else None,
                     seeds=parse_seeds(args.seeds) if args.seeds is not None else None,
                     check_methods=args.dry_run)  # run_grid checks them after the references
    out = Path(args.out or Path("results") / grid.name)
    plugins = list(args.plugin) + [p for p in grid.plugins if p not in args.plugin]
    if args.jobs is not None and args.jobs < 1:
        raise GridError(f"--jobs {args.jobs}: the jobs to run at once are a whole number >= 1, e.g. --jobs 2")
    try:
        cpu_threads()
    except ValueError as exc:
        raise GridError(str(exc)) from None
    if args.dry_run:
        print("\n".join(dry_run(grid, out, retry_failed=not args.no_retry_failed, only=args.only,
                                plugins=plugins)))
        return 0
    try:
        res = run_grid(grid, out, retry_failed=not args.no_retry_failed, only=args.only,
                       plugins=plugins, wait=args.wait, workers=args.jobs)
    except KeyboardInterrupt:
        # Finished cells are on disk (atomic result.json); the interrupted one is not.
        print(f"\nunlearnbench: interrupted; finished cells are kept in {out}. "
              "Run the same command again to resume.", file=sys.stderr, flush=True)
        return 130
    print((out / "leaderboard.md").read_text() if (out / "leaderboard.md").exists() else "")
    return 0 if not res["failed"] else 1


def cmd_run(args) -> int:
    from unlearnbench.runner.train import parse_sets
    from unlearnbench.report.schema import Kind
    from unlearnbench.runner.jobs import Job, execute

    from unlearnbench.runner.run import not_applicable

    from unlearnbench.methods.settings import check_params
    from unlearnbench.models.specs import ModelSpec

    out = Path(args.out)
    ModelSpec.from_name(args.model)  # an unknown name or a broken model directory: now, not in the cell
    check_params(args.method, parse_sets(args.set), _bench_class(args)[0].data_options, where="--set")
    bench, split = _bench(args)
    label = args.method + "".join(f"[{s}]" for s in args.set)
    job = Job(Kind.CELL, {
        "cell_id": out.name, "kind": Kind.CELL.value, "method": args.method, "label": label,
        "benchmark": bench.name, "split": split, "model": args.model, "seed": args.seed,
        "params": parse_sets(args.set), "strategy": args.strategy, "devices": args.devices,
        "num_nodes": args.num_nodes, "data_dir": args.data_dir, "plugins": args.plugin,
        "eval": bench.check_eval_options(parse_sets(args.eval_set))})
    reason = not_applicable(job)
    if reason is not None:
        raise GridError(f"{reason}; choose a method that trains on {bench.shape!r} data")
    from unlearnbench.runner.eval_every import check

    try:  # --set eval_every=... / keep=... (evaluation during unlearning)
        check(job.config["params"], type(bench))
    except ValueError as exc:
        raise GridError(str(exc)) from exc
    out.mkdir(parents=True, exist_ok=True)
    job.write(out)
    rc = execute(out / "cell.json")
    result = json.loads((out / "result.json").read_text()) if (out / "result.json").exists() else {}
    if result.get("status") == "failed":
        print(f"unlearnbench: cell failed: {result['error']}", file=sys.stderr)
    elif result:
        print(json.dumps({k: v for k, v in result["summary"].items() if k != "cost"}, indent=2))
    return rc


def cmd_leaderboard(args) -> int:
    from unlearnbench.report.leaderboard import write_leaderboard

    d = Path(args.dir)
    if not any((d / sub).is_dir() for sub in ("refs", "cells")):
        raise GridError(f"{d} holds no grid results (no refs/ or cells/ directory); "
                        "run `unlearnbench grid` first")
    grid = json.loads((d / "grid.json").read_text()) if (d / "grid.json").exists() else {}
    paths = write_leaderboard(d, published=grid.get("published"))
    print(Path(paths["markdown"]).read_text())
    return 0


def cmd_site(args) -> int:
    from unlearnbench.report.site import build_site, find_grids

    if not find_grids(args.dir):
        raise GridError(f"{args.dir} holds no grid results (no refs/ or cells/ directory in it or below it); "
                        "run `unlearnbench grid` first")
    print(build_site(args.dir, args.out))
    return 0


def cmd_compare(args) -> int:
    from unlearnbench.files import atomic_write_text
    from unlearnbench.report.compare import compare, render

    for d in (args.a, args.b):
        if not any((Path(d) / sub).is_dir() for sub in ("refs", "cells")):
            raise GridError(f"{d} holds no grid results (no refs/ or cells/ directory)")
    rows, problems = compare(args.a, args.b, k=args.k)
    text = render(rows, problems, args.a, args.b, args.k)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    return 0 if rows and all(r.agree for r in rows) and not problems else 1


def cmd_rehearse(args) -> int:
    from unlearnbench.models.assets import AssetError
    from unlearnbench.models.rehearse import RehearsalError, rehearse

    try:
        recipe = None
        if args.epochs is not None:
            from dataclasses import replace

            from unlearnbench.models.rehearse import RehearsalRecipe

            if args.epochs < 1:
                raise RehearsalError(f"--epochs {args.epochs}: must be at least 1")
            recipe = replace(RehearsalRecipe(), epochs=args.epochs)
        target = rehearse(args.model, args.benchmark, [s for s in (args.splits or "").split(",") if s] or None,
                          recipe=recipe)
    except (RehearsalError, AssetError) as exc:
        print(f"unlearnbench: error: {exc}", file=sys.stderr)
        return 2
    print(target)
    return 0


def cmd_readme_tables(args) -> int:
    from unlearnbench.report.readme import update

    if not Path(args.readme).is_file():
        raise GridError(f"{args.readme} does not exist; run from the repository root or name the README")
    current = update(Path(args.readme), check=args.check)
    print(f"{args.readme}: tables {'up to date' if current else ('out of date' if args.check else 'updated')}")
    return 1 if args.check and not current else 0


COMMANDS = {"readme-tables": cmd_readme_tables, "compare": cmd_compare, "finetune": cmd_finetune, "ls": cmd_ls,
            "data": cmd_data, "train": cmd_train, "eval": cmd_eval, "grid": cmd_grid, "run": cmd_run,
            "leaderboard": cmd_leaderboard, "site": cmd_site, "rehearse": cmd_rehearse}


def main(argv: list[str] | None = None) -> int:
    from unlearnbench.errors import user_message

    args = build_parser().parse_args(argv)
    try:
        for plugin in args.plugin:
            load_plugin(plugin)
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # `unlearnbench ... | head`: the reader is gone, nothing to report
        return 0
    except Exception as exc:
        message = user_message(exc)
        if message is None:
            raise  # a bug: its traceback is what a report needs
        print(f"unlearnbench: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
