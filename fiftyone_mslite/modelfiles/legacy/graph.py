"""The in-memory graph both schema generations are read into and written from.

Why one neutral model: the reader, the per-op translation and the writer each deal with one concern, and tests
build graphs here without knowing any FlatBuffer offsets.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tensor:
    """A ``Tensor`` table. ``data`` holds the raw little-endian bytes of a constant (empty for activations)."""

    name: str
    dtype: int
    dims: tuple[int, ...]
    format: int
    node_type: int = 0
    data: bytes = b""
    quant_params: tuple[dict[str, Any], ...] = ()
    quant_clusters: tuple[float, ...] = ()

    @property
    def is_const(self) -> bool:
        return bool(self.data)


@dataclass
class Node:
    """A ``CNode``: the primitive's union member name and its attributes by field name."""

    name: str
    op: str
    attrs: dict[str, Any]
    inputs: list[int]
    outputs: list[int]
    quant_type: int = 0


@dataclass
class SubGraph:
    name: str
    inputs: list[int]
    outputs: list[int]
    nodes: list[int]
    tensors: list[int]


@dataclass
class Graph:
    """A ``MetaGraph``."""

    name: str
    version: str
    fmk: int
    inputs: list[int]
    outputs: list[int]
    nodes: list[Node]
    tensors: list[Tensor]
    subgraphs: list[SubGraph] = field(default_factory=list)
