"""Engines by name: the built-in ones and those plugins register (`register_engines` hook), read at each lookup
so that a plugin registered meanwhile is seen. Options are checked against the chosen engine's before any work."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..hooks import plugin_manager
from .base import Engine, EngineOptions, EngineSpec


def engine_specs() -> dict[str, EngineSpec]:
    """Every registered engine by name; a name registered twice is refused (which one would run is unclear)."""
    specs: dict[str, EngineSpec] = {}

    def register(spec: EngineSpec) -> None:
        if not isinstance(spec, EngineSpec):
            raise TypeError(f"register_engines: register() takes an EngineSpec, got {type(spec).__name__}")
        if spec.name in specs:
            raise ValueError(f"two plugins register an engine named {spec.name!r}; uninstall one of them")
        specs[spec.name] = spec

    plugin_manager().hook.register_engines(register=register)
    return dict(sorted(specs.items()))


def engine_names() -> list[str]:
    return list(engine_specs())


def _either(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def engine_options(spec: EngineSpec, options: EngineOptions | Mapping[str, Any] | None,
                   specs: Mapping[str, EngineSpec]) -> EngineOptions:
    """`options` as the engine's own options object: given as one, or as a mapping of names to values (strings
    from the CLI are converted). An unknown name says which engines take it."""
    if isinstance(options, EngineOptions):
        if not isinstance(options, spec.options):
            raise ValueError(f"engine={spec.name!r} takes {spec.options.__name__}, not {type(options).__name__}")
        return options
    given = dict(options or {})
    for name in given:
        if name not in spec.options.model_fields:
            takers = [n for n, s in specs.items() if name in s.options.model_fields]
            where = f"; {name} is one of the options of engine={takers[0]!r}" if len(takers) == 1 else \
                f"; engines {_either(takers)} take it" if takers else ""
            own = ", ".join(spec.options.model_fields) or "none"
            raise ValueError(f"engine={spec.name!r} has no option {name!r} (its options: {own}){where}")
    try:
        return spec.options.model_validate(given)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ValueError(f"engine={spec.name!r} option {where}={error.get('input')!r}: {error['msg']}") from None


def create_engine(name: str, options: EngineOptions | Mapping[str, Any] | None = None) -> Engine:
    """The engine called `name`, made with `options`; refuses an unknown engine or option, or a missing
    dependency, before any work."""
    specs = engine_specs()
    spec = specs.get(name)
    if spec is None:
        raise ValueError(f"engine must be {_either(list(specs))}, got {name!r}")
    return spec.create(engine_options(spec, options, specs))
