"""FiftyOne App operators for fiftyone-mslite: apply a catalog model (or a model file), evaluate predictions
(optionally followed by FiftyOne Brain), compute embeddings and a 2-D map for the Embeddings panel.

FiftyOne loads this file as a plugin (see fiftyone.yml); `fiftyone-mslite plugin install` links this directory
into `fo.config.plugins_dir`. The operators are in `operators`, built from `forms` (input pieces), `access` (what
the browser may make the server read or fetch, docs/security.md) and `progress` (one long call reported in either
execution mode). Imports are absolute: FiftyOne loads this file under a module name of its own.
"""
from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

INSTALL = ("fiftyone-mslite is not installed in the Python that runs the App ({}). Install it with "
           "`fiftyone plugins requirements @fiftyone-mslite/mslite --install` (or `pip install fiftyone-mslite`), "
           "then `fiftyone-mslite runtime install` for MindSpore Lite, and restart the App.")

try:
    from fiftyone_mslite.app.compare import CompareModels
    from fiftyone_mslite.app.confidence import ReliabilityPanel
    from fiftyone_mslite.app.operators import ApplyModel, ComputeEmbeddings, Evaluate, EvaluateMultilabel

    OPERATORS = (ApplyModel, Evaluate, EvaluateMultilabel, ComputeEmbeddings, CompareModels, ReliabilityPanel)
    MISSING = None
except ModuleNotFoundError as exc:  # the folder `fiftyone plugins download` copied, without the package behind it
    if not (exc.name or "").startswith("fiftyone_mslite"):
        raise
    OPERATORS, MISSING = (), exc


class SetupHelp(foo.Operator):
    """Shown instead of the operators when the package is missing: says how to install it, in the App."""

    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(name="apply_model", label="MindSpore Lite: apply model (set-up needed)",
                                  description="fiftyone-mslite is not installed: how to install it")

    def resolve_input(self, ctx) -> types.Property:
        inputs = types.Object()
        inputs.view("missing", types.Error(label="fiftyone-mslite is not installed",
                                           description=INSTALL.format(MISSING)))
        return types.Property(inputs, view=types.View(label="MindSpore Lite: set-up needed"))

    def execute(self, ctx) -> dict:
        raise RuntimeError(INSTALL.format(MISSING))


def register(p) -> None:
    for operator in OPERATORS or (SetupHelp,):
        p.register(operator)
