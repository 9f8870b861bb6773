"""The "recording" runtime backend: the worker backend, with every open recorded (in `RecordingBackend.opened`,
and as JSON lines in the file MSLITE_TEST_PLUGIN_LOG names, for tests that run the CLI in a subprocess). It has
no priority, so it runs only when asked for by name."""
from __future__ import annotations

import json
import os

from fiftyone_mslite.plugins import Backend, backend, hookimpl


class RecordingBackend(Backend):
    name = "recording"

    def __init__(self) -> None:
        self.opened: list[dict] = []

    def available(self) -> bool:
        return backend("worker").available()

    def open(self, path, threads, batch_size=None, device="cpu", **options):
        call = {"path": str(path), "threads": threads, "batch_size": batch_size, "device": device}
        self.opened.append(call)
        log = os.environ.get("MSLITE_TEST_PLUGIN_LOG")
        if log:
            with open(log, "a") as f:
                f.write(json.dumps(call) + "\n")
        return backend("worker").open(path, threads, batch_size, device, **options)


RECORDING = RecordingBackend()


@hookimpl
def register_backends(register):
    register(RECORDING)
