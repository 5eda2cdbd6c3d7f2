"""The registry of analyses: each analysis registers its processors, commands and main job.

An analysis is a plug-in: it describes itself with an :class:`Analysis` and is found either
through the ``softtrack.analyses`` entry-point group of an installed distribution (its
``pyproject.toml`` has ``[project.entry-points."softtrack.analyses"] NAME = "module:ANALYSIS"``)
or by calling :func:`register` in code. Processors and commands are named by import path
("module:Class", "module"), imported only when used, so listing the analyses imports none of
their code. The core imports no analysis: the registry is how it reaches them.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from analysis.configuration import AnalysisConfig, load_config
from analysis.errors import ConfigError

ENTRY_POINT_GROUP = "softtrack.analyses"


@dataclass(frozen=True)
class Analysis:
    """An analysis' plug-in description.

    Attributes
    ----------
    name : the name users type (``--analysis NAME``).
    description : one line for ``run.py --help``.
    config : "module:Class" of its configuration (an :class:`AnalysisConfig` subclass).
    processors : processor name -> "module:Class" (subclasses of processors.base.AnalysisProcessor).
    commands : modules of its ``run.py`` subcommands (each with NAME, HELP, add_arguments, main).
    main_job : "module:function" of its main job (called with parsed arguments), if any.
    default_processor : the processor ``process --analysis NAME`` runs without ``--processor``.
    process_options : module with ``add_arguments(group)`` (the analysis' own options of
        ``run.py process``, e.g. models and corrections) and ``processor_kwargs(args, name)``
        (the keyword arguments of its processor ``name`` from the parsed options).
    processes : the process names of its datasets (fileset metadata ``process``); a fileset
        whose process no registered analysis declares is refused (``processors.fileset``).
    """

    name: str
    description: str
    config: str
    processors: Mapping[str, str] = field(default_factory=dict)
    commands: tuple[str, ...] = ()
    main_job: str | None = None
    default_processor: str | None = None
    process_options: str | None = None
    processes: tuple[str, ...] = ()

    def processor_class(self, name: str | None = None):
        """The processor class ``name`` (default: the analysis' default processor)."""
        name = name or self.default_processor
        if name not in self.processors:
            raise ConfigError(f"analysis {self.name!r} has no processor {name!r}: choose from "
                              f"{', '.join(self.processors)}")
        return load_object(self.processors[name], f"processor {name!r} of analysis {self.name!r}")

    def options(self):
        """The module of its ``run.py process`` options, or None."""
        return None if self.process_options is None else load_object(self.process_options, f"options of {self.name!r}")

    def main_job_entry(self):
        """(main(args), default_args()) of the analysis' main job."""
        if self.main_job is None:
            raise ConfigError(f"analysis {self.name!r} has no main job")
        module = self.main_job.partition(":")[0]
        return (load_object(self.main_job, f"main job of {self.name!r}"),
                load_object(f"{module}:default_args", f"main-job defaults of {self.name!r}"))

    def config_class(self) -> type[AnalysisConfig]:
        cls = load_object(self.config, f"configuration of analysis {self.name!r}")
        if not (isinstance(cls, type) and issubclass(cls, AnalysisConfig)):
            raise ConfigError(f"analysis {self.name!r}: {self.config} is not an AnalysisConfig subclass")
        return cls

    def load_config(self, path=None) -> AnalysisConfig:
        """The analysis' configuration: its defaults, overridden by the file at ``path``."""
        return load_config(self.config_class(), path)


def load_object(target: str, what: str):
    """The object at "module:attr" (or the module), or one ConfigError naming ``what``."""
    module, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module)
        return getattr(obj, attr) if attr else obj
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"cannot load {what} from {target!r}: {err}; is the analysis installed "
                          "(pip install -e .)?") from err


_REGISTRY: dict[str, Analysis] = {}
_DISCOVERED = False


def register(analysis: Analysis) -> Analysis:
    """Add ``analysis`` to the registry (its name must be new, or the same description)."""
    known = _REGISTRY.get(analysis.name)
    if known is not None and known != analysis:
        raise ConfigError(f"analysis {analysis.name!r} registered twice with different contents")
    _REGISTRY[analysis.name] = analysis
    return analysis


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            analysis = ep.load()
        except Exception as err:  # noqa: BLE001 - name the broken plug-in, whatever it raised
            raise ConfigError(f"analysis plug-in {ep.name!r} ({ep.value}) does not load: "
                              f"{type(err).__name__}: {err}") from err
        if not isinstance(analysis, Analysis) or analysis.name != ep.name:
            raise ConfigError(f"entry point {ep.name!r} ({ep.value}) must be an Analysis named {ep.name!r}")
        register(analysis)


def analyses() -> dict[str, Analysis]:
    """Every registered analysis by name (entry points discovered on first use)."""
    _discover()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Analysis:
    """The analysis ``name``, or one ConfigError listing the registered ones."""
    known = analyses()
    if name not in known:
        raise ConfigError(f"unknown analysis {name!r}: registered are {', '.join(known) or 'none'} "
                          "(an installed analysis registers itself in the softtrack.analyses entry points)")
    return known[name]


def metadata_keys() -> dict[str, type]:
    """Dataset-metadata keys that the registered analyses add to the fileset (name -> type)."""
    from analysis.configuration import METADATA_TYPES

    keys: dict[str, type] = {}
    for a in analyses().values():
        for key, type_name in a.config_class()().metadata_keys.items():
            keys[key] = METADATA_TYPES[type_name]
    return keys


def known_processes() -> frozenset[str]:
    """The process names (fileset metadata ``process``) the registered analyses declare."""
    return frozenset(p for a in analyses().values() for p in a.processes)
