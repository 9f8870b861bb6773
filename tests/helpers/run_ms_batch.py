"""Run many .ms files with MindSpore Lite (Python 3.7 runtime venv): jobs.json -> outputs as .npy.

Usage: python run_ms_batch.py JOBS.json; writes results.json beside it ([{"error": str|null, "outputs": n}]).
A model that fails to build or run records its error and the batch goes on.
"""
import json
import os
import sys

import mindspore_lite as mslite
import numpy as np


def run(job):
    context = mslite.Context()
    context.target = ["cpu"]
    context.cpu.thread_num = 1
    model = mslite.Model()
    model.build_from_file(job["model"], mslite.ModelType.MINDIR_LITE, context)
    inputs = model.get_inputs()
    arrays = [np.load(p) for p in job["inputs"]]
    if any(list(t.shape) != list(a.shape) for t, a in zip(inputs, arrays)):
        model.resize(inputs, [list(a.shape) for a in arrays])
        inputs = model.get_inputs()
    for tensor, array in zip(inputs, arrays):
        tensor.set_data_from_numpy(array.astype(np.float32))
    outputs = model.predict(inputs)
    for k, out in enumerate(outputs):
        np.save("{}_{}.npy".format(job["out"], k), out.get_data_to_numpy().copy())
    return len(outputs)


def main():
    jobs_path = sys.argv[1]
    with open(jobs_path) as fh:
        jobs = json.load(fh)
    results = []
    for job in jobs:
        try:
            results.append({"error": None, "outputs": run(job)})
        except Exception as exc:  # noqa: BLE001 - one broken model must not hide the others' results
            results.append({"error": "{}: {}".format(type(exc).__name__, exc), "outputs": 0})
    with open(os.path.join(os.path.dirname(jobs_path), "results.json"), "w") as fh:
        json.dump(results, fh)


if __name__ == "__main__":
    main()
