"""The built-in engines, registered through the same hook as a plugin's."""
from __future__ import annotations

from collections.abc import Callable

from ..hooks import hookimpl
from .base import EngineSpec
from .local import LOCAL
from .ray_engine import RAY

ENGINES = (LOCAL, RAY)


@hookimpl
def register_engines(register: Callable[[EngineSpec], None]) -> None:
    for spec in ENGINES:
        register(spec)
