"""Mutation fuzzing of model files through the CLI (issue 20, item 6): current-schema `.ms` (ms-corpus files and
an upgraded legacy file), legacy (v0) `.ms`, ONNX and TFLite, through `inspect`, `predict`, `upgrade`, `convert` and
`models add`.

Every mutant is made from a seed file and a mutant number alone (the same number always gives the same bytes),
and runs in its own process — forked from this one, after the package is imported, so a run costs no interpreter
start — under a deadline (--timeout; the whole process group is killed then) and an address-space ceiling
(RLIMIT_AS, --memory-gb), with a private cache, HOME and user catalog. Outcomes:

- ok:        exit 0
- refused:   exit 1 with one `{"error", "message"}` JSON object on stdout, an error class of ours
- FOREIGN:   refused, but with a standard-library error class (ValueError, OSError...): a message nobody wrote
- TRACEBACK: a traceback on stderr, or an exception escaping the CLI
- CRASH:     killed by a signal or any other exit status
- HANG:      still running at the deadline
- MEMORY:    MemoryError (the ceiling was hit)

Upper-case outcomes are bugs; each is printed with the seed, mutant number and edits, which is what a regression
test needs to rebuild the file (`mutant(seed_bytes, label, number)`).

    .venv/bin/python benchmarks/fuzz_model_files.py                      # every target, default counts
    .venv/bin/python benchmarks/fuzz_model_files.py --only ms-inspect --count 50 --json

This is a script, not a test: a run takes minutes (predict starts MindSpore Lite, convert runs its converter).
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from measure import find_shared, machine_info  # benchmarks/measure.py, beside this script

from fiftyone_mslite.errors import MSLiteError

# Values that hit FlatBuffer/protobuf edge cases when written over an offset, a length or a varint.
_INT32_EDGES = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFF, 0x10000, 0x7FFFFFF0)
_WINDOW = 4096  # FlatBuffer structure (root, vtables, index vectors) sits at both ends; weights in between
BUGS = ("FOREIGN", "TRACEBACK", "CRASH", "HANG", "MEMORY")


def edits(data_len: int, label: str, number: int) -> list[tuple[str, int, int]]:
    """The mutant's edits, (kind, offset, value), from the seed's label and the mutant number alone."""
    rng = random.Random(f"{label}:{number}")
    out = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        where = rng.random()
        if where < 0.45:
            offset = rng.randrange(min(_WINDOW, data_len))
        elif where < 0.9:
            offset = max(0, data_len - 1 - rng.randrange(min(_WINDOW, data_len)))
        else:
            offset = rng.randrange(data_len)
        kind = rng.choice(("flip", "flip", "int32", "int32", "byte", "truncate", "zero"))
        value = {"flip": 1 << rng.randrange(8), "int32": rng.choice(_INT32_EDGES), "byte": rng.choice((0, 0xFF, 0x80)),
                 "truncate": 0, "zero": rng.choice((4, 16, 64))}[kind]
        out.append((kind, offset & ~3 if kind == "int32" else offset, value))
    return out


def apply(data: bytes, changes: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, offset, value in changes:
        offset = min(offset, max(len(buf) - 1, 0))
        if kind == "flip":
            buf[offset] ^= value
        elif kind == "byte":
            buf[offset] = value
        elif kind == "int32":
            buf[offset:offset + 4] = value.to_bytes(4, "little")
        elif kind == "zero":
            buf[offset:offset + value] = bytes(len(buf[offset:offset + value]))
        elif kind == "truncate":
            del buf[offset:]
    return bytes(buf)


def mutant(data: bytes, label: str, number: int) -> bytes:
    """The bytes of mutant `number` of a seed (what regression tests rebuild)."""
    return apply(data, edits(len(data), label, number))


@dataclass
class Seed:
    label: str  # names the seed in mutant ids; with the number it fixes the bytes
    path: Path
    suffix: str
    classes: int  # its output count: predict gets a label file of that many lines, so inference really runs


@dataclass
class Target:
    name: str
    seeds: list[Seed]
    args: Callable[[Path, Seed, Path], list[str]]  # (mutant file, its seed, scratch dir) -> CLI arguments
    count: int  # default mutants


@dataclass
class Result:
    target: str
    seed: str
    number: int
    edits: list
    outcome: str
    seconds: float
    detail: str


def targets(shared: Path, work: Path) -> list[Target]:
    corpus = shared / "ms-corpus"
    coral = shared / "mirror/raw.githubusercontent.com/google-coral/test_data/master"
    image = next((shared / "mirror").rglob("*.jpg"))

    def labels(seed: Seed) -> str:
        path = work / f"labels-{seed.classes}.txt"
        path.write_text("".join(f"class {i}\n" for i in range(seed.classes)))
        return str(path)

    from fiftyone_mslite.modelfiles.upgrade import upgrade_ms

    upgraded = upgrade_ms(shared / "legacy-ms" / "mobilefacenet0924.ms", work / "mobilefacenet.upgraded.ms").output
    ms = [Seed("two_add_operators", corpus / "two_add_operators.ms", ".ms", 1),
          Seed("lenet_tod_infer", corpus / "lenet_tod_infer.ms", ".ms", 10),
          Seed("ml_face_isface", corpus / "ml_face_isface.ms", ".ms", 2),
          Seed("mobilefacenet_upgraded", upgraded, ".ms", 128)]
    legacy = [Seed("retinaface1", corpus / "retinaface1.ms", ".ms", 0),
              Seed("mobilefacenet0924", shared / "legacy-ms" / "mobilefacenet0924.ms", ".ms", 128)]
    onnx = [Seed("cifar10_resnet20", shared / "onnx" / "cifar10_resnet20.onnx", ".onnx", 10)]
    tflite = [Seed("mobilenet_v1_0.25_128_quant", coral / "mobilenet_v1_0.25_128_quant.tflite", ".tflite", 1001)]

    def convert(f: Path, _: Seed, w: Path) -> list[str]:
        return ["convert", str(f), "-o", str(w / "out.ms"), "--json"]

    def add(f: Path, seed: Seed, _: Path) -> list[str]:
        return ["models", "add", "fuzzed", "--source", str(f), "--labels", labels(seed), "--json"]

    return [
        Target("ms-inspect", ms, lambda f, _, __: ["inspect", str(f), "--json"], 200),
        Target("ms-predict", ms[1:], lambda f, seed, _: ["predict", str(f), str(image), "--labels", labels(seed),
                                                         "--json"], 60),
        Target("v0-upgrade", legacy, lambda f, _, w: ["upgrade", str(f), "-o", str(w / "out.ms"), "--json"], 100),
        Target("onnx-convert", onnx, convert, 30),
        Target("tflite-convert", tflite, convert, 30),
        Target("onnx-models-add", onnx, add, 10),
        Target("tflite-models-add", tflite, add, 10),
    ]


def _child(args: list[str], scratch: Path, memory: int) -> None:
    """In the forked process: limits, a private cache/HOME/catalog, the CLI; never returns."""
    os.setsid()  # the parent kills the whole group (the MindSpore Lite worker and converter too)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    os.environ.update({"HOME": str(scratch / "home"), "FIFTYONE_MSLITE_HOME": str(scratch / "cache"),
                       "FIFTYONE_MSLITE_USER_CATALOG": str(scratch / "user.yaml")})
    for fd, name in ((1, "stdout"), (2, "stderr")):
        target = os.open(scratch / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
    code = 0
    try:
        from fiftyone_mslite.cli import main

        main.main(args, prog_name="fiftyone-mslite", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except MemoryError:
        os.write(2, b"\nMemoryError\n")
        code = 98
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 99
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def run_one(args: list[str], scratch: Path, timeout: float, memory: int) -> tuple[str, str]:
    """(outcome, detail) of one CLI run in a forked, limited process."""
    pid = os.fork()
    if pid == 0:
        _child(args, scratch, memory)
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return "HANG", f"still running after {timeout:.0f} s"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # anything the command left running
    out = (scratch / "stdout").read_text(errors="replace")
    err = (scratch / "stderr").read_text(errors="replace")
    return classify(status, out, err)


def classify(status: int, out: str, err: str) -> tuple[str, str]:
    if os.WIFSIGNALED(status):
        return "CRASH", f"signal {os.WTERMSIG(status)}"
    code = os.WEXITSTATUS(status)
    if "MemoryError" in err:
        return "MEMORY", err.strip().splitlines()[-1][:300]
    if "Traceback" in err or code == 99:
        return "TRACEBACK", " | ".join(err.strip().splitlines()[-3:])[:400]
    if code == 0:
        return "ok", ""
    if code != 1:
        return "CRASH", f"exit {code}: {err.strip()[-300:]}"
    lines = [line for line in out.splitlines() if line.startswith("{") and '"error"' in line]
    if not lines:  # predict reports per-image errors in its JSON lines and exits 1
        errors = [json.loads(line).get("error") for line in out.splitlines() if line.startswith("{")]
        if any(errors):
            return "refused", str(next(e for e in errors if e))[:300]
        return "CRASH", f"exit 1 without a message: {err[-300:]}"
    record = json.loads(lines[-1])
    known = _ours(record["error"])
    return ("refused" if known else "FOREIGN"), f"{record['error']}: {record['message'][:300]}"


def _ours(name: str) -> bool:
    def subclasses(cls: type) -> set[str]:
        return {cls.__name__}.union(*(subclasses(c) for c in cls.__subclasses__()))
    return name in subclasses(MSLiteError)


def fuzz(only: list[str] | None, count: int | None, timeout: float, memory_gb: float, first: int = 0) -> list[Result]:
    shared = find_shared()
    if shared is None:
        raise SystemExit("needs ../shared (ms-corpus, onnx, mirror): set FIFTYONE_MSLITE_SHARED")
    from fiftyone_mslite.runtime import runtime_python

    # resolved before each mutant gets its own empty cache and HOME, where no runtime is installed
    os.environ.setdefault("FIFTYONE_MSLITE_RUNTIME_PYTHON", runtime_python())
    import fiftyone_mslite.classifier  # noqa: F401 - imported once here, so that every fork starts warm
    import fiftyone_mslite.cli  # noqa: F401
    import fiftyone_mslite.modelfiles.convert  # noqa: F401

    results = []
    with tempfile.TemporaryDirectory(prefix="fuzz-model-files-") as tmp:
        work = Path(tmp)
        for target in targets(shared, work):
            if only and target.name not in only:
                continue
            total = count or target.count
            for number in range(first, first + total):
                seed = target.seeds[number % len(target.seeds)]
                data = seed.path.read_bytes()
                changes = edits(len(data), seed.label, number)
                scratch = Path(tempfile.mkdtemp(dir=work, prefix=f"{target.name}-{number}-"))
                model = scratch / f"mutant{seed.suffix}"
                model.write_bytes(apply(data, changes))
                start = time.monotonic()
                outcome, detail = run_one(target.args(model, seed, scratch), scratch, timeout, int(memory_gb * 2**30))
                results.append(Result(target.name, seed.label, number, changes, outcome,
                                      round(time.monotonic() - start, 2), detail))
                if outcome in BUGS:
                    print(f"{outcome} {target.name} {seed.label} #{number} {changes}: {detail}", file=sys.stderr)
                with contextlib.suppress(OSError):
                    import shutil

                    shutil.rmtree(scratch)
    return results


def summary(results: list[Result]) -> str:
    table = collections.Counter((r.target, r.outcome) for r in results)
    names = sorted({r.target for r in results})
    outcomes = ["ok", "refused", *BUGS]
    lines = ["| target | " + " | ".join(outcomes) + " |", "|---|" + "---:|" * len(outcomes)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(str(table[(name, o)]) for o in outcomes) + " |")
    bugs = [r for r in results if r.outcome in BUGS]
    reasons = collections.Counter((r.target, r.detail.split(":")[0][:60]) for r in results if r.outcome == "refused")
    lines += ["", "Most frequent refusals (target, error class):"]
    lines += [f"- {n} × {target}: {reason}" for (target, reason), n in reasons.most_common(12)]
    lines += ["", f"{len(results)} mutants, {len(bugs)} bugs"]
    lines += [f"- {r.outcome} {r.target} {r.seed} #{r.number} {r.edits}: {r.detail}" for r in bugs]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", help="targets to run (ms-inspect, ms-predict, onnx-convert, ...)")
    parser.add_argument("--count", type=int, help="mutants per target (default: each target's own)")
    parser.add_argument("--first", type=int, default=0, help="first mutant number (another range, other mutants)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant before it counts as a hang")
    parser.add_argument("--memory-gb", type=float, default=6.0, help="address-space ceiling per mutant")
    parser.add_argument("--json", action="store_true", help="print every result as JSON")
    args = parser.parse_args(argv)
    results = fuzz(args.only, args.count, args.timeout, args.memory_gb, args.first)
    if args.json:
        print(json.dumps({"machine": machine_info(["mindspore-lite", "onnx"]),
                          "results": [asdict(r) for r in results]}, indent=1))
    else:
        print(summary(results))
    return 1 if any(r.outcome in BUGS for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
