"""The Ray actor of `annotate(..., engine="ray")`: a block of `(id, filepath)`s in, raw outputs out.

Kept free of FiftyOne (the import-linter contract says so for the whole engines package): an actor imports the
classifier and the inference pipeline only, which saves every actor FiftyOne's seconds-long import at start-up.
Labels are made on the driver, behind the engine's sink, from the outputs sent back, exactly as for the local
engine's batches.
"""
from __future__ import annotations

import os
import socket
from typing import Any

import numpy as np

from ..classifier import load_classifier
from ..errors import ModelMismatchError
from ..pipeline import Batch, run_pipeline

OUTPUT = "output_{}"  # record columns of the raw outputs the driver uses, by output index


class Annotator:
    """One MindSpore Lite session, opened once with the driver's settings (`env`: its forwarded variables) and
    kept for every block; runs the local engine's pipeline on each block (`threads` decoder threads, decoding
    ahead of inference). Refuses to start on a node whose model differs from the driver's."""

    def __init__(self, env: dict[str, str], classifier_args: dict[str, Any], expected: dict[str, Any],
                 batch_size: int, draft: bool, outputs: list[int]):
        os.environ.update(env)  # the driver's catalog settings, before anything reads them
        self.clf = load_classifier(**classifier_args)
        found = self.clf.identity()
        if found != expected:
            differ = sorted(k for k in expected if found.get(k) != expected[k])
            self.clf.close()
            raise ModelMismatchError(f"node {socket.gethostname()} loads '{expected['model']}' with other "
                                     f"{', '.join(differ)} than the driver: give every node the same catalog and "
                                     f"model files (docs/scale-out.md)")
        self.threads, self.batch_size, self.draft, self.outputs = classifier_args["threads"], batch_size, draft, outputs
        specs = self.clf.session.outputs
        # a failed row's outputs: zeros, so that every block has the same columns (the driver skips those rows)
        self.blank = {k: (tuple(max(d, 0) for d in specs[k].shape[1:]), specs[k].dtype) for k in outputs}
        print(f"fiftyone-mslite actor pid {os.getpid()} on {socket.gethostname()}: {found['model']}, "
              f"{self.threads} threads, backend {self.clf.session.backend}", flush=True)

    def __call__(self, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Records of a block: the ready rows (their outputs), then the failed ones (`error` set, outputs zero);
        the block's worker-crash count rides on its first row."""
        batches: list[Batch] = []
        items = list(zip(block["id"].tolist(), block["filepath"].tolist()))
        run_pipeline(self.clf, items, self.batch_size, self.threads, self.draft, batches.append)
        ready = [item for b in batches for item in b.ready]
        failed = [f for b in batches for f in b.failed]
        n = len(ready) + len(failed)
        crashes = np.zeros(n, np.int64)
        crashes[:1] = sum(b.crashes for b in batches)
        records = {"id": np.array([i for i, _ in ready] + [i for i, _, _ in failed], dtype=object),
                   "filepath": np.array([p for _, p in ready] + [p for _, p, _ in failed], dtype=object),
                   "error": np.array([""] * len(ready) + [e for _, _, e in failed], dtype=object),
                   "crashes": crashes}
        for k in self.outputs:
            shape, dtype = self.blank[k]
            parts = [b.outputs[k] for b in batches if b.ready]
            if parts:
                shape, dtype = parts[0].shape[1:], parts[0].dtype
            records[OUTPUT.format(k)] = np.concatenate(parts + [np.zeros((len(failed), *shape), dtype)])
        return records
