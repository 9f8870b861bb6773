"""The MindSpore Lite side of benchmarks/cpu_options.py; runs on the runtime's Python 3.7 (stdlib + numpy only).

`convert ONNX WORKDIR`: converts the model with the converter's "general" (default) and "none" optimisation levels
and prints both paths as JSON. `serve MODEL THREADS OPTIONS_JSON`: loads the model with those context options (one
process per variant: core binding pins the loading thread too, so variants must not share a process), prints the
output of a fixed input as JSON, then for every "N" line on stdin runs N batch-1 calls and prints their median ms.
"""
import json
import statistics
import sys
import time

import mindspore_lite as mslite
import numpy as np


def convert(onnx, workdir):
    paths = {}
    for optimize in ("general", "none"):
        converter = mslite.Converter()
        converter.optimize = optimize
        converter.save_type = mslite.ModelType.MINDIR_LITE
        converter.convert(mslite.FmkType.ONNX, onnx, f"{workdir}/model-{optimize}")
        paths[optimize] = f"{workdir}/model-{optimize}.ms"
    print(json.dumps(paths))


def serve(path, threads, options):
    context = mslite.Context()
    context.target = ["cpu"]
    context.cpu.thread_num = threads
    for key, value in options.items():  # thread_affinity_mode, thread_affinity_core_list, inter_op_parallel_num
        setattr(context.cpu, key, value)
    model = mslite.Model()
    model.build_from_file(path, mslite.ModelType.MINDIR_LITE, context)
    tensors = model.get_inputs()
    tensors[0].set_data_from_numpy(np.random.default_rng(0).standard_normal(tensors[0].shape).astype(np.float32))
    out = model.predict(tensors)[0].get_data_to_numpy()
    for _ in range(3):
        model.predict(tensors)
    print(json.dumps(out.ravel().tolist()), flush=True)
    for line in sys.stdin:
        times = []
        for _ in range(int(line)):
            t = time.perf_counter()
            model.predict(tensors)
            times.append(1000 * (time.perf_counter() - t))
        print(statistics.median(times), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "convert":
        convert(sys.argv[2], sys.argv[3])
    else:
        serve(sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]))
