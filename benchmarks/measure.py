"""Measurement that holds under noise (issue 14): paired, interleaved segments with CPU accounting.

Wall time on a shared VM swings with the neighbours; the CPU our own process tree spends per item barely does, and
it sets the physical limit (cores / core-seconds per item). So every path runs in short segments that alternate
with the other paths on the same items (ABBA order, so a linear drift cancels), a ratio is the median of the
per-pair ratios with its interquartile range, and every segment also records the user+sys CPU of the caller, its
threads and its descendant processes (from /proc, no psutil), split into named components, and the steal and idle
time of the CPUs we may run on.

Linux only. Standalone (stdlib only), so every script under `benchmarks/` can import it; it also holds the helpers
those scripts share: `find_shared()` and `machine_info()`.
"""
from __future__ import annotations

import datetime
import os
import platform
import resource
import statistics
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Union

from fiftyone_mslite.demo import find_shared, shared_path  # noqa: F401 - the one locator, re-exported for scripts

REPO = Path(__file__).resolve().parents[1]
THREAD_POLL_S = 0.05  # how often tagged threads are read, so that ended ones keep their CPU
REST = "rest"  # the caller's CPU not claimed by a component
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")

# A process or thread matcher: a name, a collection of pids/TIDs (read at every snapshot, so a set filled after the
# meter was made works), or a predicate on (pid or TID, name).
Matcher = Union[str, Collection[int], Callable[[int, str], bool]]
_Key = tuple[int, int]  # (pid or TID, start time in ticks): survives pid reuse between two snapshots


# ------------------------------------------------------------------------------------------ shared folder, machine


def cores() -> int:
    """CPUs this process may run on (affinity, not the machine's count): the cores the physical limit assumes."""
    return len(os.sched_getaffinity(0))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


SIMD_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx2", "fma", "avx", "sse4_2", "asimd",
              "asimddp", "sve")  # what MindSpore Lite's and ONNX Runtime's CPU kernels choose between


def cpu_flags() -> set[str]:
    """The first CPU's feature flags (/proc/cpuinfo `flags` on x86, `Features` on ARM); empty if unreadable."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def simd_level(flags: Collection[str] | None = None) -> str:
    """The widest vector instruction set the CPU offers, as kernels pick it: 'avx512', 'avx2' (with or without
    FMA), 'avx', 'sse4.2', 'neon' (arm64) or 'baseline'. Figures measured at one level do not carry over to another:
    on an AVX2-only EPYC MindSpore Lite 2.0.0 fell behind ONNX Runtime where on an AVX-512 Xeon they were even."""
    flags = cpu_flags() if flags is None else set(flags)
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2" if "fma" in flags else "avx2 (no fma)"
    for flag, level in (("avx", "avx"), ("sse4_2", "sse4.2"), ("asimd", "neon")):
        if flag in flags:
            return level
    return "baseline"


def machine_info(packages: Sequence[str] = ()) -> dict[str, Any]:
    """What a benchmark result needs to be read later: CPU and its SIMD level, cores, kernel, Python and the given
    packages' versions."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    flags = cpu_flags()
    return {"date": datetime.date.today().isoformat(), "cpu": cpu_model(), "simd": simd_level(flags),
            "simd_flags": sorted(flags & set(SIMD_FLAGS)), "cores": cores(),
            "cpu_count": os.cpu_count(), "arch": platform.machine(), "kernel": platform.release(),
            "platform": platform.platform(), "python": platform.python_version(), "versions": versions}


def describe_machine(info: Mapping[str, Any]) -> str:
    """One line for the docs, e.g. 'AMD EPYC, AVX2 (2 cores as seen by sched_getaffinity), Linux 6.1, Python 3.11.7'."""
    simd = info.get("simd")
    cpu = f"{info['cpu']}, {simd.upper()}" if simd else info["cpu"]
    return (f"{cpu} ({info['cores']} cores as seen by sched_getaffinity), {platform.system()} "
            f"{info['kernel']}, Python {info['python']}")


# ----------------------------------------------------------------------------------------------- /proc reading


def _parse_stat(text: str) -> tuple[str, int, float, float, int]:
    """(comm, ppid, own user+sys s, reaped children's user+sys s, start time) from a /proc/.../stat line."""
    head, _, tail = text.rpartition(")")  # comm may hold spaces and parentheses
    f = tail.split()
    own = (int(f[11]) + int(f[12])) * _TICK_S
    children = (int(f[13]) + int(f[14])) * _TICK_S
    return head.partition("(")[2], int(f[1]), own, children, int(f[19])


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:  # gone between listing and reading
        return None


def _on_cpu_s(schedstat: str, fallback: float) -> float:
    """A thread's time on a CPU in ns resolution from its schedstat (stat counts 10 ms ticks, so a decode thread
    that worked 8 ms may show 0 or 10), else `fallback`."""
    text = _read(schedstat)
    return int(text.split()[0]) / 1e9 if text else fallback


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    comm: str
    key: _Key
    cpu_s: float  # own + reaped children: what moves to the parent's cutime when it is reaped


def _processes() -> dict[int, _Proc]:
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            text = _read(f"/proc/{entry}/stat")
            if text:
                comm, ppid, own, children, start = _parse_stat(text)
                pid = int(entry)
                procs[pid] = _Proc(pid, ppid, comm, (pid, start), own + children)
    return procs


def _subtree(children: Mapping[int, list[int]], root: int) -> list[int]:
    """root and its descendants, parents before children."""
    order, i = [root], 0
    while i < len(order):
        order.extend(children.get(order[i], ()))
        i += 1
    return order


def _matches(matcher: Matcher, ident: int, name: str, prefix: bool) -> bool:
    if isinstance(matcher, str):
        return name.startswith(matcher) if prefix else name == matcher[:15]  # comm is cut to 15 characters
    if callable(matcher):
        return matcher(ident, name)
    return ident in matcher


def cmdline_contains(text: str) -> Callable[[int, str], bool]:
    """A process matcher on the command line, e.g. `cmdline_contains("runtime/worker.py")` for the MindSpore Lite
    workers, whose comm is just the interpreter's name."""
    def match(pid: int, _name: str) -> bool:
        return text in (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ")
    return match


def _cpu_jiffies() -> tuple[int, int, int]:
    """(total, idle + iowait, steal) jiffies of the CPUs in our affinity: the machine we actually share."""
    allowed = {f"cpu{n}" for n in os.sched_getaffinity(0)}
    total = idle = steal = 0
    for line in (_read("/proc/stat") or "").splitlines():
        fields = line.split()
        if fields and fields[0] in allowed:
            user, nice, system, idle_, iowait, irq, softirq, steal_ = (int(v) for v in fields[1:9])
            total += user + nice + system + idle_ + iowait + irq + softirq + steal_  # guest is inside user
            idle += idle_ + iowait
            steal += steal_
    return total, idle, steal


def _pct(part: int, total: int) -> float | None:
    return 100.0 * part / total if total > 0 else None


# ---------------------------------------------------------------------------------------------------- CPU meter


@dataclass(frozen=True)
class Component:
    """A named share of the CPU. `processes` tags descendant processes of the caller (with their own subtrees;
    a name matches the comm exactly, e.g. "mongod"); `threads` tags threads of the caller (a name is a prefix of
    the Python thread name or the OS thread name, e.g. "mslite-decode"). The first matching component wins."""
    name: str
    processes: Matcher | None = None
    threads: Matcher | None = None


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU counters at one moment; `later.since(earlier)` is the usage in between. The caller's own counter and the
    clock are read before and after the /proc scan, so the scan itself is not charged to the measured interval."""
    t_before: float
    t_after: float
    caller_before: float  # caller's user+sys s (all threads), microsecond resolution
    caller_after: float
    reaped: float  # user+sys s of the caller's reaped children (and theirs)
    tree: dict[_Key, float]  # live descendants outside `separate` → own + reaped children s
    owner: dict[_Key, str]  # tree key → component
    threads: dict[_Key, tuple[str, float]]  # tagged caller threads → (component, s)
    separate: dict[_Key, tuple[str, float]]  # processes reported on their own → (name, s)
    jiffies: tuple[int, ...]  # (total, idle, steal) of our CPUs

    def since(self, start: CpuSnapshot) -> CpuUsage:
        tree = sum(s - start.tree.get(k, 0.0) for k, s in self.tree.items())
        tree -= sum(s for k, s in start.tree.items() if k not in self.tree and k not in self.separate)
        # A vanished descendant moved its CPU into its parent's reaped counter: the -start above and that counter
        # net to what it spent since `start`. A process that turned out to be separate leaves the tree sum.
        tree -= sum(s for k, s in self.tree.items() if k in start.separate)
        total = (self.caller_before - start.caller_after) + (self.reaped - start.reaped) + tree
        names = list(dict.fromkeys(list(self.owner.values()) + [c for c, _ in self.threads.values()]))
        components = {name: 0.0 for name in names}
        for k, name in self.owner.items():
            if k not in start.separate:
                components[name] += self.tree[k] - start.tree.get(k, 0.0)
        for k, (name, s) in self.threads.items():
            components[name] += s - start.threads.get(k, (name, 0.0))[1]
        components[REST] = total - sum(components.values())
        separate: dict[str, float] = {}
        for k, (name, s) in self.separate.items():
            separate[name] = separate.get(name, 0.0) + s - start.separate.get(k, (name, 0.0))[1]
        jiffies = tuple(b - a for a, b in zip(start.jiffies, self.jiffies))
        return CpuUsage(self.t_before - start.t_after, total, components, separate, jiffies)


@dataclass
class CpuUsage:
    """CPU seconds of the process tree over an interval, by component (incl. `rest`), plus the machine's noise.
    Limits: a tagged process that ends inside the interval has its CPU counted in `rest` (the kernel folds it into the
    parent; tagged threads are polled, so an ended one keeps its share to within one poll), and /proc counts in clock
    ticks (10 ms per process), so intervals should be ≥ ~1 s."""
    wall_s: float
    total_s: float  # caller (all threads) + descendants, without `separate`
    components: dict[str, float]
    separate: dict[str, float]
    jiffies: tuple[int, ...]  # (total, idle, steal) of our CPUs

    @property
    def steal_pct(self) -> float | None:
        return _pct(self.jiffies[2], self.jiffies[0])

    @property
    def idle_pct(self) -> float | None:
        return _pct(self.jiffies[1], self.jiffies[0])

    def __add__(self, other: CpuUsage) -> CpuUsage:
        def merged(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
            return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in dict.fromkeys([*a, *b])}
        return CpuUsage(self.wall_s + other.wall_s, self.total_s + other.total_s,
                        merged(self.components, other.components), merged(self.separate, other.separate),
                        tuple(a + b for a, b in zip(self.jiffies, other.jiffies)))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steal_pct": self.steal_pct, "idle_pct": self.idle_pct}


class CpuMeter:
    """Takes `CpuSnapshot`s of the calling process tree. `separate` processes (e.g. Component("mongod",
    processes="mongod")) and their subtrees are left out of the tree and reported on their own. A name or predicate
    only looks inside our tree (other engineers' mongods run beside it); pids are taken anywhere, for a mongod
    that FiftyOne reuses from another process."""

    def __init__(self, components: Sequence[Component] = (), separate: Sequence[Component] = ()) -> None:
        names = [c.name for c in (*components, *separate)]
        if REST in names or len(set(names)) != len(names):
            raise ValueError(f"component names must be unique and not {REST!r}: {names}")
        if any(c.threads is not None or c.processes is None for c in separate):
            raise ValueError("a separate component names processes only")
        self.components = tuple(components)
        self.separate = tuple(separate)
        # Tagged threads that end inside an interval (a decode pool shut down at the end of an annotate call) would
        # take their CPU with them: a daemon thread polls them every `THREAD_POLL_S` and keeps each one's last
        # counter, so an ended thread stays attributed (to within one poll of CPU).
        self._seen: dict[_Key, tuple[str, float]] = {}
        self._seen_lock = threading.Lock()
        if any(c.threads is not None for c in self.components):
            threading.Thread(target=self._poll_threads, name="cpumeter-poll", daemon=True).start()

    def _poll_threads(self) -> None:
        while True:
            self._tracked_threads()
            time.sleep(THREAD_POLL_S)

    def _tracked_threads(self) -> dict[_Key, tuple[str, float]]:
        fresh = self._threads(os.getpid())
        with self._seen_lock:
            self._seen.update(fresh)
            return dict(self._seen)

    def snapshot(self) -> CpuSnapshot:
        t_before, caller_before = time.perf_counter(), _caller_cpu()
        me = os.getpid()
        procs = _processes()
        children: dict[int, list[int]] = {}
        for p in procs.values():
            children.setdefault(p.ppid, []).append(p.pid)
        mine = _subtree(children, me)[1:]
        separate: dict[_Key, tuple[str, float]] = {}
        for comp in self.separate:
            by_pids = not isinstance(comp.processes, str) and not callable(comp.processes)
            for pid in procs if by_pids else mine:
                p = procs.get(pid)
                if p and p.key not in separate and _matches(comp.processes, pid, p.comm, False):
                    for q in _subtree(children, pid):
                        separate.setdefault(procs[q].key, (comp.name, procs[q].cpu_s))
        tree: dict[_Key, float] = {}
        owner: dict[_Key, str] = {}
        by_pid: dict[int, str] = {}
        for pid in mine:
            p = procs[pid]
            if p.key in separate:
                continue
            tree[p.key] = p.cpu_s
            name = next((c.name for c in self.components
                         if c.processes is not None and _matches(c.processes, pid, p.comm, False)), by_pid.get(p.ppid))
            if name:
                by_pid[pid] = owner[p.key] = name
        threads = self._tracked_threads()
        jiffies = _cpu_jiffies()
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        t_after, caller_after = time.perf_counter(), _caller_cpu()
        return CpuSnapshot(t_before, t_after, caller_before, caller_after, reaped.ru_utime + reaped.ru_stime,
                           tree, owner, threads, separate, jiffies)

    def _threads(self, me: int) -> dict[_Key, tuple[str, float]]:
        tagged = [c for c in self.components if c.threads is not None]
        if not tagged:
            return {}
        python_names = {t.native_id: t.name for t in threading.enumerate()}  # Python < 3.14 leaves OS names alone
        out = {}
        for entry in os.listdir(f"/proc/{me}/task"):
            text = _read(f"/proc/{me}/task/{entry}/stat")
            if not text:
                continue
            comm, _, own, _, start = _parse_stat(text)
            own = _on_cpu_s(f"/proc/{me}/task/{entry}/schedstat", own)
            tid = int(entry)
            names = [n for n in (python_names.get(tid), comm) if n]
            comp = next((c for c in tagged if any(_matches(c.threads, tid, n, True) for n in names)), None)
            if comp:
                out[(tid, start)] = (comp.name, own)
        return out


def _caller_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ----------------------------------------------------------------------------------------- paired segments, stats


@dataclass
class Spread:
    """Median and quartiles (linear interpolation, as numpy's default) of a set of figures."""
    median: float
    q1: float
    q3: float
    iqr: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spread(values: Sequence[float]) -> Spread:
    if not values:
        raise ValueError("no values")
    if len(values) == 1:
        q1 = q3 = values[0]
    else:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return Spread(statistics.median(values), q1, q3, q3 - q1, len(values))


def pair_ratios(path: Sequence[float], baseline: Sequence[float]) -> Spread:
    """The ratio of two paths: median (and IQR) of the per-pair ratios, not a ratio of medians, so a burst that
    slows one pair shifts one ratio out of twenty."""
    if len(path) != len(baseline):
        raise ValueError("paths need one figure per pair each")
    return spread([p / b for p, b in zip(path, baseline)])


def interleaved_order(names: Sequence[str], pairs: int) -> list[list[str]]:
    """The run order: every path once per pair (round), reversed every other round (AB BA AB …, ABC CBA …), so a
    drift over the run hits every path equally on average."""
    return [list(names) if r % 2 == 0 else list(reversed(names)) for r in range(pairs)]


@dataclass
class PathResult:
    name: str
    items: int  # timed items
    throughput: Spread  # items/s over the timed segments
    segments: list[float]  # items/s of each timed segment, in pair order
    cpu_ms_per_item: float  # whole tree without `separate`
    components_ms_per_item: dict[str, float]  # incl. rest
    separate_ms_per_item: dict[str, float]
    steal_pct: float | None  # over this path's segments
    idle_pct: float | None
    essential_ms_per_item: float
    physical_limit: float | None  # items/s = cores / essential core-s per item
    limit_ratio: float | None  # median throughput / physical_limit

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PairedResult:
    baseline: str
    pairs: int
    segment: int  # items per segment
    cores: int
    essential: list[str]  # the components the physical limit counts
    order: list[str]  # timed segments as run
    paths: dict[str, PathResult]
    ratios: dict[str, Spread]  # path → its per-pair ratio to the baseline
    wall_s: float  # the whole run, warm-ups included
    steal_pct: float | None
    idle_pct: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_paired(paths: Mapping[str, Callable[[Any], object]], items: Any, segment: int, *, pairs: int = 20,
               baseline: str | None = None, meter: CpuMeter | None = None, essential: Sequence[str] | None = None,
               log: Callable[[str], None] | None = None) -> PairedResult:
    """Run every path on `items[a:b]` segments of `segment` items in interleaved pairs (see `interleaved_order`);
    both paths of a pair get the same segment; segments cycle through `items` (anything with len() and slicing:
    a list, an array, a FiftyOne view). Each path first runs one untimed warm-up segment. `essential` names the
    components of the physical limit (default: every component, i.e. all but rest)."""
    names = list(paths)
    baseline = baseline or names[0]
    n_segments = len(items) // segment if segment > 0 else 0
    if len(names) < 2 or baseline not in paths or pairs < 1 or n_segments < 1:
        raise ValueError(f"need ≥ 2 paths incl. the baseline, pairs ≥ 1 and ≥ 1 segment of {segment} items "
                         f"in {len(items)}")
    meter = meter or CpuMeter()
    essential = list(essential if essential is not None else [c.name for c in meter.components])
    run_start = meter.snapshot()
    for name in names:
        paths[name](items[:segment])
    rates: dict[str, list[float]] = {name: [] for name in names}
    usages: dict[str, list[CpuUsage]] = {name: [] for name in names}
    counts = dict.fromkeys(names, 0)
    order: list[str] = []
    for r, round_names in enumerate(interleaved_order(names, pairs)):
        chunk = items[(r % n_segments) * segment:(r % n_segments + 1) * segment]
        for name in round_names:
            before = meter.snapshot()
            paths[name](chunk)
            usage = meter.snapshot().since(before)
            rates[name].append(len(chunk) / usage.wall_s)
            usages[name].append(usage)
            counts[name] += len(chunk)
            order.append(name)
        if log:
            log(f"  pair {r + 1}/{pairs}: " + ", ".join(f"{n} {rates[n][-1]:.1f}/s" for n in round_names))
    run = meter.snapshot().since(run_start)
    n_cores = cores()
    results = {}
    for name in names:
        total = sum(usages[name][1:], usages[name][0])
        per_item = {k: 1000 * v / counts[name] for k, v in total.components.items()}
        ess = sum(per_item.get(k, 0.0) for k in essential)
        thr = spread(rates[name])
        limit = n_cores / (ess / 1000) if ess > 0 else None
        results[name] = PathResult(
            name, counts[name], thr, rates[name], 1000 * total.total_s / counts[name], per_item,
            {k: 1000 * v / counts[name] for k, v in total.separate.items()}, total.steal_pct, total.idle_pct,
            ess, limit, thr.median / limit if limit else None)
    ratios = {name: pair_ratios(rates[name], rates[baseline]) for name in names if name != baseline}
    return PairedResult(baseline, pairs, segment, n_cores, essential, order, results, ratios, run.wall_s,
                        run.steal_pct, run.idle_pct)


# ------------------------------------------------------------------------------------------------------ rendering


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "—" if x is None else format(x, fmt)


def markdown_table(result: PairedResult, unit: str = "img") -> str:
    """The paths of one paired run as a Markdown table: median throughput (IQR over segments), ratio to the
    baseline (median and IQR of the per-pair ratios), core-ms per item by component, share of the physical limit,
    steal and idle %."""
    comps = list(dict.fromkeys(k for p in result.paths.values() for k in p.components_ms_per_item))
    comps = [k for k in comps if k != REST] + [REST]
    seps = list(dict.fromkeys(k for p in result.paths.values() for k in p.separate_ms_per_item))
    head = (["path", f"{unit}/s median (IQR)", f"÷ {result.baseline} median (IQR)", f"core-ms/{unit}"]
            + [f"{c} core-ms/{unit}" for c in comps] + [f"{s} core-ms/{unit} (apart)" for s in seps]
            + ["of physical limit", "steal %", "idle %"])
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, p in result.paths.items():
        r = result.ratios.get(name)
        ratio = f"{r.median:.3f} ({r.q1:.3f}–{r.q3:.3f})" if r else "baseline"
        limit = "—" if p.limit_ratio is None else f"{p.limit_ratio:.2f}"
        cells = ([name, f"{p.throughput.median:.1f} ({p.throughput.q1:.1f}–{p.throughput.q3:.1f})", ratio,
                  _num(p.cpu_ms_per_item)] + [_num(p.components_ms_per_item.get(c)) for c in comps]
                 + [_num(p.separate_ms_per_item.get(s)) for s in seps]
                 + [limit, _num(p.steal_pct, ".1f"), _num(p.idle_pct, ".1f")])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
