"""FiftyOne App operators for fiftyone-mslite: apply a catalog model (or a model file), evaluate predictions
(optionally followed by FiftyOne Brain), compute embeddings and a 2-D map for the Embeddings panel.

FiftyOne loads this file as a plugin (see fiftyone.yml); `fiftyone-mslite plugin install` links this directory
into `fo.config.plugins_dir`. The operators are in `operators`, built from `forms` (input pieces), `access` (what
the browser may make the server read or fetch, docs/security.md) and `progress` (one long call reported in either
execution mode). Imports are absolute: FiftyOne loads this file under a module name of its own.
"""
from __future__ import annotations

from fiftyone_mslite.app.operators import ApplyModel, ComputeEmbeddings, Evaluate, EvaluateMultilabel


def register(p) -> None:
    p.register(ApplyModel)
    p.register(Evaluate)
    p.register(EvaluateMultilabel)
    p.register(ComputeEmbeddings)
