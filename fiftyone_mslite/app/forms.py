"""Pieces of the operators' input forms: field pickers and the model chooser, built from the dataset's schema
and the catalog."""
from __future__ import annotations

import fiftyone as fo
import fiftyone.core.fields as fof
import fiftyone.operators.types as types

from fiftyone_mslite.app.access import ALLOWED_DIRS_ENV

SINGLE, MULTI = (fo.Classification,), (fo.Classifications,)


def label_fields(samples, label_types: tuple) -> list[str]:
    schema = samples.get_field_schema(embedded_doc_type=fo.Label)
    return sorted(name for name, field in schema.items() if issubclass(field.document_type, label_types))


def vector_fields(samples) -> list[str]:
    """Top-level fields that hold vectors (embeddings written by annotate or compute_embeddings)."""
    return sorted(name for name, field in samples.get_field_schema().items()
                  if isinstance(field, (fof.VectorField, fof.ArrayField)))


def colour_fields(samples) -> list[str]:
    """What the Embeddings panel can colour by that this package writes: label fields, evaluation booleans."""
    flags = [name for name, field in samples.get_field_schema().items() if isinstance(field, fof.BooleanField)]
    return sorted(set(label_fields(samples, SINGLE + MULTI)) | set(flags))


def default_brain_key(embeddings_field: str) -> str:
    from fiftyone_mslite.integration.brain import brain_key

    return brain_key(embeddings_field, "viz")


def shown(value) -> str:
    """A result value as the App's label-value rows show it."""
    return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def field_choice(inputs: types.Object, name: str, fields: list[str], label: str, description: str,
                 default: str | None = None) -> None:
    """A required field picker; an error in the form when the dataset has no suitable field."""
    if not fields:
        prop = inputs.view(name, types.Error(label=f"{label}: no suitable field",
                                             description=description))
        prop.invalid = True
        return
    choices = types.DropdownView()
    for field in fields:
        choices.add_choice(field, label=field)
    inputs.enum(name, choices.values(), required=True, label=label, description=description, view=choices,
                default=default if default in fields else fields[0])


def catalog_choices() -> types.DropdownView:
    """The catalog's models, for a dropdown."""
    from fiftyone_mslite.catalog.registry import catalog

    choices = types.DropdownView()
    for name, entry in sorted(catalog().models.items()):
        choices.add_choice(name, label=name, description=entry.description or None)
    return choices


def runtime_notice(inputs: types.Object) -> bool:
    """A warning at the top of a form when no MindSpore Lite runtime can run models here; True when shown."""
    from fiftyone_mslite.runtime import RuntimeUnavailableError, runtime_python
    from fiftyone_mslite.runtime.inprocess import mslite_available

    if mslite_available():
        return False
    try:
        runtime_python()
        return False
    except RuntimeUnavailableError as exc:
        inputs.view("runtime_missing", types.Warning(
            label="No MindSpore Lite runtime on the App's server",
            description=f"{exc} Then reopen this form (no App restart needed)."))
        return True


def model_inputs(inputs: types.Object, ctx) -> None:
    """A catalog model, or a model file on the server with its labels (`access.load_chosen_model` reads them)."""
    tabs = types.TabsView()
    tabs.add_choice("CATALOG", label="Catalog model")
    tabs.add_choice("FILE", label="Model file")
    inputs.enum("source", tabs.values(), default="CATALOG", view=tabs)
    if ctx.params.get("source", "CATALOG") == "CATALOG":
        choices = catalog_choices()
        inputs.enum("model", choices.values(), required=True, label="Model", view=choices,
                    description="A model from the fiftyone-mslite catalog (`fiftyone-mslite models list`); "
                                "it is downloaded and converted on first use")
    else:
        inputs.str("model_path", required=True, label="Model file",
                   description=f"Path of a .ms/.mindir (or ONNX/TFLite, converted once) file on the server, in a "
                               f"directory its operator lists in {ALLOWED_DIRS_ENV} (none by default)")
        inputs.str("labels", required=True, label="Labels",
                   description="A catalog label set name (e.g. imagenet-1000), or a label file in an allowed "
                               "directory")
