"""One small generic registry for models, benchmarks, methods and attacks.

Three sources of names, in this order:
1. a built-in table in code (``name -> "module:attr"``), imported lazily so an
   uninstalled checkout works and a heavy import is paid only when used;
2. ``importlib.metadata`` entry points in the group ``unlearnbench.<kind>``;
3. explicit registration, usually from a ``--plugin module_or_file.py``.

A broken plugin is reported by name and never breaks the built-ins.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import warnings
from pathlib import Path
from typing import Any


class RegistryError(Exception):
    """Base class for registry errors; the CLI prints the message and exits 2."""


class UnknownNameError(RegistryError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DuplicateNameError(RegistryError):
    pass


class PluginError(RegistryError):
    pass


class Registry:
    def __init__(self, kind: str, builtins: dict[str, str] | None = None,
                 bootstrap: str | None = None):
        self.kind = kind  # plural, e.g. "methods"
        # A module that registers built-in objects (not classes) when imported.
        self._bootstrap = bootstrap
        self.group = f"unlearnbench.{kind}"
        self._lazy: dict[str, str] = dict(builtins or {})
        self._loaded: dict[str, Any] = {}
        self._entry_points_read = False
        self._broken: dict[str, str] = {}

    # -- registration -------------------------------------------------
    def register(self, name: str, obj: Any = None) -> Any:
        """Register ``obj`` under ``name``; usable as ``@registry.register("name")``."""
        if obj is None:
            return lambda o: self.register(name, o)
        self._read_entry_points()
        if name in self._lazy or name in self._loaded:
            raise DuplicateNameError(
                f"{self.singular} {name!r} is already registered "
                f"({self._origin(name)}); pick another name"
            )
        self._loaded[name] = _named(obj, name)
        return obj

    def _origin(self, name: str) -> str:
        if name in self._lazy:
            return self._lazy[name]
        obj = self._loaded[name]
        return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', obj)}"

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        if self._bootstrap:
            importlib.import_module(self._bootstrap)
        for ep in importlib.metadata.entry_points(group=self.group):
            if ep.name in self._lazy or ep.name in self._loaded:  # built-ins win
                warnings.warn(
                    f"entry point {ep.value!r} ignored: {self.singular} {ep.name!r} is already "
                    f"defined by {self._origin(ep.name)}"
                )
                continue
            self._lazy[ep.name] = ep.value

    # -- lookup -------------------------------------------------------
    @property
    def singular(self) -> str:
        return self.kind[:-1] if self.kind.endswith("s") else self.kind

    def names(self) -> list[str]:
        self._read_entry_points()
        return sorted(set(self._lazy) | set(self._loaded))

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def get(self, name: str) -> Any:
        self._read_entry_points()
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._lazy:
            raise UnknownNameError(self.unknown_message(name))
        target = self._lazy[name]
        try:
            module_name, _, attr = target.partition(":")
            obj = importlib.import_module(module_name)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
        except Exception as exc:  # a broken plugin must name itself
            raise PluginError(
                f"{self.singular} {name!r} could not be loaded from {target!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        self._loaded[name] = _named(obj, name)
        return obj

    def unknown_message(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(known) if known else "(none registered)"
        return f"unknown {self.singular} {name!r}.{hint} Known {self.kind}: {listing}."

    def describe(self) -> list[tuple[str, str]]:
        """(name, first docstring line) for every name; broken ones say so."""
        rows = []
        for name in self.names():
            try:
                obj = self.get(name)
                # Specs (dataclass instances) carry a description; classes a docstring.
                doc = getattr(obj, "description", None) or inspect.getdoc(obj) or ""
                line = doc.strip().splitlines()[0] if doc.strip() else "(no docstring)"
            except RegistryError as exc:
                line = f"[broken] {exc}"
            rows.append((name, line))
        return rows


def _named(obj: Any, name: str) -> Any:
    """A class that declares an empty ``name`` (a plugin benchmark) takes its registered name."""
    if inspect.isclass(obj) and hasattr(obj, "name") and not getattr(obj, "name"):
        obj.name = name
    return obj


def load_plugin(spec: str) -> None:
    """Import a plugin given as a dotted module name or a path to a ``.py`` file.

    The plugin registers what it provides on import (``@methods.register("x")``).
    """
    try:
        path = Path(spec)
        if spec.endswith(".py") or path.is_file():
            if not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            # Named by the resolved path, so two plugins both called p.py both load.
            digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
            mod_name = f"unlearnbench_plugin_{path.stem}_{digest}"
            if mod_name in sys.modules:
                return
            module_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[mod_name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[mod_name]
                raise
        else:
            importlib.import_module(spec)
    except RegistryError:
        raise
    except Exception as exc:
        raise PluginError(
            f"plugin {spec!r} failed to import: {type(exc).__name__}: {exc}. "
            "Built-in names are unaffected; fix the plugin or drop --plugin."
        ) from exc


methods = Registry("methods", {
    "ga": "unlearnbench.methods.ga:GradientAscent",
    "grad_diff": "unlearnbench.methods.grad_diff:GradDiff",
    "ga_kl": "unlearnbench.methods.ga_kl:GAKL",
    "idk": "unlearnbench.methods.idk:IdkPO",
    "dpo": "unlearnbench.methods.dpo:IdkDPO",
    "npo": "unlearnbench.methods.npo:NPO",
    "npo_rt": "unlearnbench.methods.npo_rt:NPORT",
    "simnpo": "unlearnbench.methods.simnpo:SimNPO",
    "rmu": "unlearnbench.methods.rmu:RMU",
    "llmu": "unlearnbench.methods.llmu:LLMU",
    "flat": "unlearnbench.methods.flat:FLAT",
    "wagle": "unlearnbench.methods.wagle:WAGLE",
    "undial": "unlearnbench.methods.undial:UNDIAL",
    "satimp": "unlearnbench.methods.satimp:SatImp",
    "wga": "unlearnbench.methods.wga:WGA",
    "ceu": "unlearnbench.methods.ceu:CEU",
    "pdu": "unlearnbench.methods.pdu:PDU",
    "altpo": "unlearnbench.methods.altpo:AltPO",
})
benchmarks = Registry(
    "benchmarks",
    {
        "tofu": "unlearnbench.benchmarks.tofu:TofuBenchmark",
        "tofu-synth": "unlearnbench.benchmarks.tofu:TofuSynthBenchmark",
        "harmful": "unlearnbench.benchmarks.harmful:HarmfulBenchmark",
        "harmful-synth": "unlearnbench.benchmarks.harmful:HarmfulSynthBenchmark",
        "detox": "unlearnbench.benchmarks.detox:DetoxBenchmark",
        "detox-synth": "unlearnbench.benchmarks.detox_synth:DetoxSynthBenchmark",
        "muse-news": "unlearnbench.benchmarks.muse:MuseBenchmark",
        "muse-books": "unlearnbench.benchmarks.muse:MuseBooksBenchmark",
        "muse-synth": "unlearnbench.benchmarks.muse:MuseSynthBenchmark",
        "wmdp": "unlearnbench.benchmarks.wmdp:WmdpBenchmark",
        "wmdp-synth": "unlearnbench.benchmarks.wmdp:WmdpSynthBenchmark",
        "copyright": "unlearnbench.benchmarks.copyright:CopyrightBenchmark",
        "copyright-synth": "unlearnbench.benchmarks.copyright:CopyrightSynthBenchmark",
        "halueval": "unlearnbench.benchmarks.halueval:HaluEvalBenchmark",
        "halueval-synth": "unlearnbench.benchmarks.halueval:HaluEvalSynthBenchmark",
    },
)
models = Registry("models", bootstrap="unlearnbench.models.specs")
attacks = Registry("attacks", {
    "relearn": "unlearnbench.attacks.relearn:Relearn",
    "quant8": "unlearnbench.attacks.quantize:Quant8",
    "quant4": "unlearnbench.attacks.quantize:Quant4",
})
REGISTRIES: dict[str, Registry] = {
    r.kind: r for r in (methods, benchmarks, models, attacks)
}

