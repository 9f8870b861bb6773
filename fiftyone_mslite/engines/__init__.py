"""Annotate engines: what runs `annotate`'s inference (docs/annotate.md#engines). The contract (`Job`, `Sink`,
`Engine`, `EngineOptions`, `EngineSpec`) is in `base`; engines are looked up by name in `registry`, filled by the
`register_engines` plugin hook (the built-in `local` and `ray` come through it too). FiftyOne-free, like the
pipeline below it: the dataset side (plan, lock, labels, writes) is the FiftyOne layer's, behind the sink."""
from .base import Engine, EngineOptions, EngineSpec, Job, MultiModelEngine, Sink, run_jobs
from .registry import create_engine, engine_names, engine_specs

__all__ = ["Engine", "EngineOptions", "EngineSpec", "Job", "MultiModelEngine", "Sink", "create_engine",
           "engine_names", "engine_specs", "run_jobs"]
