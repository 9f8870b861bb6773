"""The catalog's schema: one entry says everything needed to run a model correctly.

Like timm's PretrainedCfg, an entry states input size, resize/crop, interpolation, mean/std and labels;
unlike it, every fact also says where it came from (verified or inferred, and the source), because the
seed page that lists MindSpore Lite's models is wrong about several of them.
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..adapters.base import AdapterOptions
from ..adapters.preprocessing import PreprocessConfig
from ..errors import CatalogError
from ..runtime import formats

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_model_name(name: object) -> str:
    """The one rule for model names (catalog files, plugins, `models add`, files run ad hoc): a name is a directory
    of the converted-model cache and is typed in shells, so letters, digits, '.', '_' and '-' only, starting with a
    letter or digit ('.' and '..' are no names), at most 100 characters. Raises a one-line CatalogError."""
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise CatalogError(f"model name {name!r} is not allowed: use letters, digits, '.', '_' and '-', starting "
                           "with a letter or digit, at most 100 characters (e.g. my-model-v2)")
    return name


def model_name_for(text: str) -> str:
    """A valid model name made from a file name (other characters become '-')."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:100].strip("._-")
    return name or "model"


def source_formats() -> tuple[str, ...]:
    """What a catalog source may be (`catalog_source` rows of the format table, plugin formats included)."""
    return formats.names(catalog_source=True)


def _one_of(value: str | None, allowed: tuple[str, ...]) -> str | None:
    """`value` if it is one of `allowed` (rows of the format table, read when validating: plugins' rows count)."""
    if value is not None and value not in allowed:
        raise ValueError(f"Input should be {' or '.join(repr(a) for a in allowed)}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fact(_Strict):
    """Provenance of one fact about a model (why we believe it)."""

    field: str
    value: Any = None
    status: Literal["verified", "inferred", "corrected", "calibrated"]  # calibrated: measured on labeled data
    source: str


class Reported(_Strict):
    """The seed page's own figures, kept verbatim even where they are wrong (see `facts`)."""

    size_mb: float | None = None
    top1: float | None = None
    top5: float | None = None
    f1: float | None = None
    latency_ms: float | None = Field(None, description="Mate30, 4 threads, as reported")
    dataset: str | None = None


class Conversion(_Strict):
    """Converter options for convert-on-fetch sources."""

    save_type: str = Field("ms", description="a format MindSpore Lite runs as it is (ms, mindir)")
    input_data_type: Literal["float32", "uint8", "int8"] | None = None
    output_data_type: Literal["float32", "uint8", "int8"] | None = None
    dequantize: bool = Field(False, description="rewrite a quantized TFLite as float32 first (fast fp32 kernels)")

    @field_validator("save_type")
    @classmethod
    def _runnable(cls, v: str) -> str:
        return _one_of(v, formats.names(runnable=True))


class Embedding(_Strict):
    """The tensor FiftyOne gets as a sample's embedding: the input of the final classifier layer, exposed as an
    extra output at conversion. `tensor` unset means "find it"; `add_model` records what was found."""

    tensor: str | None = Field(None, description="graph tensor name (ONNX); found automatically when unset")
    size: int | None = Field(None, gt=0, description="values per sample")


class Source(_Strict):
    """Where the model file comes from: a public URL (fetched, mirror-aware) or a local path."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    url: str | None = None
    path: str | None = None
    sha256: str | None = None
    format: str | None = Field(None, description="a catalog source format (source_formats()); default: from the "
                                                 "suffix")
    conversion: Conversion = Conversion()
    file_schema: Literal["v0", "v2"] | None = Field(
        None, alias="schema", description="for .ms sources: v0 = legacy schema (pre-1.1 converter), upgraded on "
                                          "fetch; v2 = current ('MSL2'). Written `schema:` in catalog files")
    note: str | None = None

    @model_validator(mode="after")
    def _one_location(self) -> Source:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of 'url' or 'path'")
        digits = set(self.sha256 or "0" * 64)
        if len(self.sha256 or "0" * 64) != 64 or not digits <= set("0123456789abcdef"):
            raise ValueError(f"sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        return self

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str | None) -> str | None:
        return _one_of(v, source_formats())

    @property
    def location(self) -> str:
        return self.url or self.path or ""

    @property
    def resolved_format(self) -> str:
        if self.format:
            return self.format
        suffix = formats.from_suffix(self.location)
        if suffix not in source_formats():
            raise ValueError(f"cannot tell the format of {self.location}: set 'format' to one of {source_formats()}")
        return suffix

    @property
    def needs_conversion(self) -> bool:
        return not formats.get(self.resolved_format).runnable


class ModelEntry(_Strict):
    """One catalog model."""

    name: str
    description: str = ""
    task: Literal["single", "multi"] = "single"
    adapter: str = "classifier"
    labels: str = Field(description="a label set name, or the path/URL of a label file")
    num_classes: int = Field(gt=0, description="label count the outputs must match (background included)")
    background: bool = Field(False, description="output 0 is a background class that the label set does not list")
    source: Source
    alternatives: tuple[Source, ...] = ()
    preprocess: PreprocessConfig
    embedding: Embedding = Embedding()
    reported: Reported | None = None
    facts: tuple[Fact, ...] = ()
    tags: tuple[str, ...] = ()
    license: str | None = Field(None, description="the model file's licence (SPDX id), shown in the zoo")
    origin: str = "builtin"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_model_name(v)

    def adapter_options(self) -> AdapterOptions:
        """What this entry tells its model family besides `preprocess` and its labels."""
        return AdapterOptions(model=self.name, background=self.background)

    @model_validator(mode="after")
    def _adapter_matches_task(self) -> ModelEntry:
        if self.task == "multi" and self.adapter == "classifier":
            raise ValueError("task 'multi' needs a multi-label adapter (e.g. 'multilabel'), not 'classifier'")
        return self


class LabelSetEntry(_Strict):
    """A label set: where its names (and synsets, thresholds) come from."""

    name: str
    description: str = ""
    num_classes: int = Field(gt=0)
    loader: str
    names: tuple[str, ...] = ()
    urls: dict[str, str] = {}
    sha256: dict[str, str] = {}
    background: bool = Field(False, description="names[0] is a background class")
    background_head: bool = Field(False, description="a model may output one background class before these "
                                                     "labels (TF-slim's 1001-way ImageNet heads)")
    facts: tuple[Fact, ...] = ()


class CatalogFile(_Strict):
    version: Literal[1] = 1
    label_sets: dict[str, dict] = {}
    models: dict[str, dict] = {}


def _format_error(exc: ValidationError, where: str) -> str:
    lines = [f"{where}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(entry)"
        # dataclass fields (preprocess) word an unknown key differently from models: one wording for users
        msg = "Extra inputs are not permitted" if err["type"] == "unexpected_keyword_argument" else err["msg"]
        lines.append(f"  field '{loc}': {msg}")
    return "\n".join(lines)


def parse_entries(data: Any, origin: str) -> tuple[dict[str, ModelEntry], dict[str, LabelSetEntry]]:
    """Validate a loaded YAML document; errors name the file, the entry and the field."""
    try:
        doc = CatalogFile.model_validate(data or {})
    except ValidationError as exc:
        raise CatalogError(_format_error(exc, f"{origin}: top level")) from None
    models, label_sets = {}, {}
    for name, body in doc.models.items():
        try:
            models[name] = ModelEntry.model_validate({**(body or {}), "name": name, "origin": origin})
        except ValidationError as exc:
            raise CatalogError(_format_error(exc, f"{origin}: model '{name}'")) from None
    for name, body in doc.label_sets.items():
        try:
            label_sets[name] = LabelSetEntry.model_validate({**(body or {}), "name": name})
        except ValidationError as exc:
            raise CatalogError(_format_error(exc, f"{origin}: label set '{name}'")) from None
    return models, label_sets
